//! SFTP version 3 on the wire (draft-ietf-secsh-filexfer-02, OpenSSH's
//! PROTOCOL): packet types, a reader that never reads past its slice, and
//! the words the markers use for open flags, attributes and status codes.
//!
//! Everything here reads peer-controlled bytes: lengths are checked against
//! the bytes actually present, and nothing allocates by a length the peer
//! wrote (only by bytes it sent).

use super::token::token;

/// Packet types, numbered as in the draft.
pub(super) mod fxp {
    pub const INIT: u8 = 1;
    pub const VERSION: u8 = 2;
    pub const OPEN: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const READ: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const LSTAT: u8 = 7;
    pub const FSTAT: u8 = 8;
    pub const SETSTAT: u8 = 9;
    pub const FSETSTAT: u8 = 10;
    pub const OPENDIR: u8 = 11;
    pub const READDIR: u8 = 12;
    pub const REMOVE: u8 = 13;
    pub const MKDIR: u8 = 14;
    pub const RMDIR: u8 = 15;
    pub const REALPATH: u8 = 16;
    pub const STAT: u8 = 17;
    pub const RENAME: u8 = 18;
    pub const READLINK: u8 = 19;
    pub const SYMLINK: u8 = 20;
    pub const STATUS: u8 = 101;
    pub const HANDLE: u8 = 102;
    pub const DATA: u8 = 103;
    pub const NAME: u8 = 104;
    pub const EXTENDED: u8 = 200;
}

/// The request's name in a "malformed" marker.
pub(super) fn request_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        fxp::OPEN => "open",
        fxp::CLOSE => "close",
        fxp::READ => "read",
        fxp::WRITE => "write",
        fxp::LSTAT => "lstat",
        fxp::FSTAT => "fstat",
        fxp::SETSTAT => "setstat",
        fxp::FSETSTAT => "fsetstat",
        fxp::OPENDIR => "opendir",
        fxp::READDIR => "readdir",
        fxp::REMOVE => "remove",
        fxp::MKDIR => "mkdir",
        fxp::RMDIR => "rmdir",
        fxp::REALPATH => "realpath",
        fxp::STAT => "stat",
        fxp::RENAME => "rename",
        fxp::READLINK => "readlink",
        fxp::SYMLINK => "symlink",
        fxp::EXTENDED => "extended",
        _ => return None,
    })
}

pub(super) struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn u32(&mut self) -> Option<u32> {
        let (b, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*b))
    }

    pub fn u64(&mut self) -> Option<u64> {
        let (b, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_be_bytes(*b))
    }

    /// An SSH string: a borrowed slice, never a copy sized by the length field.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        if n > self.0.len() {
            return None;
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b)
    }

    pub fn remaining(&self) -> usize {
        self.0.len()
    }
}

/// SSH_FXF_* open flags as words: "read, write, create, truncate".
pub(super) fn open_flags(pflags: u32) -> String {
    const NAMES: [(u32, &str); 6] = [
        (0x01, "read"),
        (0x02, "write"),
        (0x04, "append"),
        (0x08, "create"),
        (0x10, "truncate"),
        (0x20, "exclusive"),
    ];
    let mut words: Vec<String> = NAMES
        .iter()
        .filter(|(bit, _)| pflags & bit != 0)
        .map(|(_, name)| (*name).to_string())
        .collect();
    let unknown = pflags & !0x3f;
    if unknown != 0 {
        words.push(format!("flags {unknown:#010x}"));
    }
    if words.is_empty() {
        return "no access flags".into();
    }
    words.join(", ")
}

const ATTR_SIZE: u32 = 0x01;
const ATTR_UIDGID: u32 = 0x02;
const ATTR_PERMISSIONS: u32 = 0x04;
const ATTR_ACMODTIME: u32 = 0x08;
const ATTR_EXTENDED: u32 = 0x8000_0000;
const ATTR_KNOWN: u32 = ATTR_SIZE | ATTR_UIDGID | ATTR_PERMISSIONS | ATTR_ACMODTIME | ATTR_EXTENDED;

/// What an ATTRS block sets, as `name=value` words ("mode=0640 uid=4242"),
/// empty when it sets nothing; `Err` says why it could not be read.
///
/// Flags outside version 3's five would change where the fields lie, so
/// such a block is named, not guessed at.
pub(super) fn attrs(r: &mut Reader) -> Result<Vec<String>, String> {
    const MALFORMED: &str = "(malformed attributes)";
    let flags = r.u32().ok_or(MALFORMED)?;
    if flags & !ATTR_KNOWN != 0 {
        return Err(format!("(attribute flags {flags:#010x} not decoded)"));
    }
    let mut words = Vec::new();
    if flags & ATTR_SIZE != 0 {
        words.push(format!("size={}", r.u64().ok_or(MALFORMED)?));
    }
    if flags & ATTR_UIDGID != 0 {
        let uid = r.u32().ok_or(MALFORMED)?;
        let gid = r.u32().ok_or(MALFORMED)?;
        words.push(format!("uid={uid}"));
        words.push(format!("gid={gid}"));
    }
    if flags & ATTR_PERMISSIONS != 0 {
        // Octal, as chmod takes it; file-type bits, if a client sends them,
        // stay in the number rather than being masked away.
        words.push(format!("mode={:04o}", r.u32().ok_or(MALFORMED)?));
    }
    if flags & ATTR_ACMODTIME != 0 {
        let atime = r.u32().ok_or(MALFORMED)?;
        let mtime = r.u32().ok_or(MALFORMED)?;
        words.push(format!("atime={}", time(atime)));
        words.push(format!("mtime={}", time(mtime)));
    }
    if flags & ATTR_EXTENDED != 0 {
        // Each pair takes at least 8 bytes, so a huge count ends at the
        // packet's end rather than looping on nothing.
        let count = r.u32().ok_or(MALFORMED)?;
        for _ in 0..count {
            let name = r.bytes().ok_or(MALFORMED)?;
            let data = r.bytes().ok_or(MALFORMED)?;
            words.push(format!("extended {} ({} bytes)", token(name), data.len()));
        }
    }
    Ok(words)
}

/// Seconds since 1970 as RFC 3339 UTC.
fn time(secs: u32) -> String {
    jiff::Timestamp::from_second(i64::from(secs))
        .map_or_else(|_| format!("{secs}s"), |t| t.to_string())
}

/// A status code as the draft names it (lower case, for "… failed: NAME").
pub(super) fn status_name(code: u32) -> String {
    match code {
        0 => "ok",
        1 => "end of file",
        2 => "no such file",
        3 => "permission denied",
        4 => "failure",
        5 => "bad message",
        6 => "no connection",
        7 => "connection lost",
        8 => "operation unsupported",
        _ => return format!("status {code}"),
    }
    .to_string()
}

/// A refusal for a marker: the code's name, and the server's own message
/// when it says more than the name.
pub(super) fn status_text(code: u32, message: &[u8]) -> String {
    let name = status_name(code);
    let said = String::from_utf8_lossy(message);
    if message.is_empty() || said.trim().eq_ignore_ascii_case(&name) {
        name
    } else {
        format!("{name}, the server says {}", token(message))
    }
}
