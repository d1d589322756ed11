//! SFTP (version 3) as seen by the recorder: every request that changes or
//! reveals something on the target becomes a marker — which operation, on
//! which paths (whole, escaped: see `token`), with what arguments — and the
//! server's refusal of it becomes a second marker ("… failed: permission
//! denied"). File contents are not put in the cast: a transfer is summarised
//! when its handle closes (direction, size and, for sequential transfers, a
//! BLAKE3 checksum, see `checksum`), and kept as a copy only for targets that
//! ask for it.
//!
//! Markers are written when the request goes by, not when it is answered, so
//! a session cut short still shows what was asked. Reads, writes, directory
//! reads and FSTAT carry no marker of their own: they are counted into the
//! summary of the handle they use, whose opening is already named.
//!
//! Fed the raw bytes of each direction; reassembles packets across channel
//! data frames. Memory is bounded: a packet is at most [`MAX_PACKET`]
//! bytes (a larger one stops the parsing, said once), and what is remembered
//! between packets — open handles, requests awaiting their reply — is capped
//! in count and in bytes. Past a cap the marker says what is not followed;
//! nothing is dropped silently. The transfer itself is never affected.

mod token;
mod wire;

#[cfg(test)]
mod tests;

use super::checksum::Checksum;
use std::collections::HashMap;
use token::token;
use wire::{Reader, fxp};

/// Largest SFTP packet followed (OpenSSH sends and accepts at most 256 KiB).
const MAX_PACKET: usize = 512 * 1024;
/// Open handles followed at most.
const MAX_HANDLES: usize = 4096;
/// Requests awaiting their reply followed at most (OpenSSH's client keeps
/// 64 in flight).
const MAX_PENDING: usize = 4096;
/// Bytes remembered between packets at most, over both tables (names,
/// handles, each open file's transfer state of about 2 KiB): room for a
/// thousand open files or requests with PATH_MAX-long paths; a peer sending
/// packet-sized names fills it with a few, and the markers then say so.
const MAX_RETAINED: usize = 4 << 20;
/// What one remembered entry costs besides its text (map slot, headers).
const ENTRY_COST: usize = 64;

const NOT_FOLLOWED: &str = " (its reply is not followed: too many requests outstanding)";

struct File {
    /// Where the contents are kept, when the target asks for it.
    copy: Option<(std::fs::File, String)>,
    written: u64,
    read: u64,
    sum: Checksum,
    /// Every byte so far came at the offset after the one before: only
    /// then is the checksum the file's.
    sequential: bool,
    /// WRITEs the server refused, and the first refusal's status.
    refused: u64,
    first_refusal: Option<String>,
    /// A copy-data request named this file as its destination / its source.
    copied_into: bool,
    copied_from: bool,
    /// Some reply for this handle was not followed (a cap): counts may be short.
    unfollowed: bool,
}

enum Opened {
    File(Box<File>),
    Dir { entries: u64, unfollowed: bool },
}

struct Handle {
    /// The path it was opened with, as a marker word.
    path: String,
    opened: Opened,
}

/// A request awaiting its reply.
enum Pending {
    /// Its marker is out; a refusal repeats it with the reason.
    Said(String),
    Open {
        path: String,
        /// How it was opened ("(read)") for a refusal's marker; `None`: OPENDIR.
        how: Option<String>,
        /// File name for a kept copy.
        base: String,
    },
    Read {
        handle: Vec<u8>,
        offset: u64,
    },
    Write {
        handle: Vec<u8>,
    },
    ReadDir {
        handle: Vec<u8>,
    },
}

impl Pending {
    fn cost(&self) -> usize {
        ENTRY_COST
            + match self {
                Pending::Said(s) => s.len(),
                Pending::Open { path, how, base } => {
                    path.len() + how.as_ref().map_or(0, String::len) + base.len()
                }
                Pending::Read { handle, .. }
                | Pending::Write { handle }
                | Pending::ReadDir { handle } => handle.len(),
            }
    }
}

/// What an open handle costs: its key and path, and a file's transfer
/// state (the checksum's hasher is most of it).
fn entry_cost(key: &[u8], path: &str, dir: bool) -> usize {
    let state = if dir { 0 } else { std::mem::size_of::<File>() };
    ENTRY_COST + key.len() + path.len() + state
}

fn handle_cost(key: &[u8], h: &Handle) -> usize {
    entry_cost(key, &h.path, matches!(h.opened, Opened::Dir { .. }))
}

#[derive(Default)]
pub struct SftpLog {
    /// Directory for file copies (`None`: contents are not kept).
    capture: Option<std::path::PathBuf>,
    copies: u32,
    /// A copy could not be written: the caller must fail closed.
    pub capture_failed: Option<String>,
    up: Vec<u8>,
    down: Vec<u8>,
    /// Request id → what it asked, until its reply.
    pending: HashMap<u32, Pending>,
    handles: HashMap<Vec<u8>, Handle>,
    /// Bytes held by `pending` and `handles` (see [`MAX_RETAINED`]).
    retained: usize,
    /// The server announced no OpenSSH extension: SYMLINK's arguments are
    /// read in the draft's order, not OpenSSH's reversed one.
    draft_symlink: bool,
    broken: bool,
}

impl SftpLog {
    /// Keeps the contents of every transferred file under `dir`
    /// (`NNNN-basename`, mode 0600); the markers name the copies.
    pub fn with_capture(dir: std::path::PathBuf) -> SftpLog {
        SftpLog {
            capture: Some(dir),
            ..SftpLog::default()
        }
    }

    /// Client → server bytes; returns markers to record.
    pub fn up(&mut self, data: &[u8]) -> Vec<String> {
        self.feed(true, data)
    }

    /// Server → client bytes; returns markers to record.
    pub fn down(&mut self, data: &[u8]) -> Vec<String> {
        self.feed(false, data)
    }

    fn feed(&mut self, up: bool, data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        if self.broken {
            return out;
        }
        let mut buf = std::mem::take(if up { &mut self.up } else { &mut self.down });
        if buf.is_empty() {
            // The usual case: whole packets straight from the frame, only
            // a packet's unfinished tail is copied.
            let used = self.packets(up, data, &mut out);
            buf.extend_from_slice(data.get(used..).unwrap_or_default());
        } else {
            buf.extend_from_slice(data);
            let used = self.packets(up, &buf, &mut out);
            buf.drain(..used.min(buf.len()));
        }
        if self.broken {
            self.up = Vec::new();
            self.down = Vec::new();
        } else {
            // What is left is less than one packet's header and body.
            *(if up { &mut self.up } else { &mut self.down }) = buf;
        }
        out
    }

    /// Handles every whole packet at the start of `bytes`; returns how many
    /// bytes they took.
    fn packets(&mut self, up: bool, bytes: &[u8], out: &mut Vec<String>) -> usize {
        let mut start = 0;
        while let Some(head) = bytes.get(start..).and_then(|b| b.first_chunk::<4>()) {
            let len = u32::from_be_bytes(*head) as usize;
            if len == 0 || len > MAX_PACKET {
                self.stop(
                    out,
                    "sftp: stream not followed further (oversized or malformed packet)".into(),
                );
                return bytes.len();
            }
            let Some(packet) = bytes.get(start + 4..start + 4 + len) else {
                break;
            };
            start += 4 + len;
            if up {
                self.request(packet, out);
            } else {
                self.reply(packet, out);
            }
            if self.broken {
                return bytes.len();
            }
        }
        start
    }

    /// Stops following the stream, says why, forgets what it held.
    fn stop(&mut self, out: &mut Vec<String>, why: String) {
        self.broken = true;
        self.pending = HashMap::new();
        self.handles = HashMap::new();
        self.retained = 0;
        out.push(why);
    }

    /// Remembers request `id` until its reply; false when a cap says no.
    fn expect(&mut self, id: u32, p: Pending) -> bool {
        let cost = p.cost();
        if self.pending.len() >= MAX_PENDING || self.retained + cost > MAX_RETAINED {
            return false;
        }
        self.retained += cost;
        if let Some(old) = self.pending.insert(id, p) {
            // A client reusing an id in flight: the older request's reply
            // can no longer be told apart.
            self.retained -= old.cost();
        }
        true
    }

    fn answered(&mut self, id: u32) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        self.retained -= p.cost();
        Some(p)
    }

    /// A marker for request `id`, remembered so that a refusal can be said.
    fn said(&mut self, id: u32, marker: String, out: &mut Vec<String>) {
        if self.expect(id, Pending::Said(marker.clone())) {
            out.push(marker);
        } else {
            out.push(marker + NOT_FOLLOWED);
        }
    }

    /// The path a handle was opened with, as a marker word.
    fn handle_name(&self, handle: &[u8]) -> String {
        self.handles
            .get(handle)
            .map_or_else(|| "(untracked handle)".to_string(), |h| h.path.clone())
    }

    fn file(&mut self, handle: &[u8]) -> Option<&mut File> {
        match &mut self.handles.get_mut(handle)?.opened {
            Opened::File(f) => Some(f),
            Opened::Dir { .. } => None,
        }
    }

    fn request(&mut self, p: &[u8], out: &mut Vec<String>) {
        let Some((&kind, rest)) = p.split_first() else {
            return;
        };
        if kind == fxp::INIT {
            return;
        }
        let mut r = Reader(rest);
        let decoded = match r.u32() {
            Some(id) => self.decode(kind, id, &mut r, out),
            None => None,
        };
        if decoded.is_none() {
            out.push(match wire::request_name(kind) {
                Some(name) => format!("sftp: malformed {name} request ({} bytes)", p.len()),
                None => format!("sftp: request type {kind} not decoded ({} bytes)", p.len()),
            });
        }
    }

    /// One request's markers; `None` when its fields do not parse (every
    /// field is read before anything is remembered or said).
    fn decode(&mut self, kind: u8, id: u32, r: &mut Reader, out: &mut Vec<String>) -> Option<()> {
        let path_op = |verb: &str, r: &mut Reader| -> Option<String> {
            Some(format!("sftp {verb} {}", token(r.bytes()?)))
        };
        match kind {
            fxp::OPEN | fxp::OPENDIR => {
                let raw = r.bytes()?;
                let how = if kind == fxp::OPEN {
                    let pflags = r.u32()?;
                    let attrs = attr_words(r, false);
                    Some(format!("({}){attrs}", wire::open_flags(pflags)))
                } else {
                    None
                };
                let path = token(raw);
                let marker = open_marker(&path, how.as_deref());
                let base = basename(raw);
                if self.expect(id, Pending::Open { path, how, base }) {
                    out.push(marker);
                } else {
                    out.push(marker + NOT_FOLLOWED);
                }
            }
            fxp::CLOSE => {
                let handle = r.bytes()?;
                match self.handles.remove(handle) {
                    Some(h) => {
                        self.retained -= handle_cost(handle, &h);
                        // A refusal repeats the short form, not the summary.
                        let short = format!("sftp close {}", h.path);
                        let summary = close_marker(h);
                        if self.expect(id, Pending::Said(short)) {
                            out.push(summary);
                        } else {
                            out.push(summary + NOT_FOLLOWED);
                        }
                    }
                    None => self.said(id, "sftp close of an untracked handle".into(), out),
                }
            }
            fxp::READ => {
                let handle = r.bytes()?;
                let offset = r.u64()?;
                let _len = r.u32()?;
                if self.file(handle).is_some() {
                    let pending = Pending::Read {
                        handle: handle.to_vec(),
                        offset,
                    };
                    if !self.expect(id, pending)
                        && let Some(f) = self.file(handle)
                    {
                        // Its data will go by uncounted.
                        f.unfollowed = true;
                        f.sequential = false;
                    }
                }
            }
            fxp::WRITE => {
                let handle = r.bytes()?;
                let offset = r.u64()?;
                let data = r.bytes()?;
                self.keep(handle, offset, data);
                let Some(f) = self.file(handle) else {
                    return Some(());
                };
                f.sequential &= offset == f.written;
                if f.sequential {
                    f.sum.update(data);
                }
                f.written += data.len() as u64;
                let pending = Pending::Write {
                    handle: handle.to_vec(),
                };
                if !self.expect(id, pending)
                    && let Some(f) = self.file(handle)
                {
                    // A refusal of this write would go unseen.
                    f.unfollowed = true;
                }
            }
            fxp::READDIR => {
                let handle = r.bytes()?;
                if let Some(Handle {
                    opened: Opened::Dir { .. },
                    ..
                }) = self.handles.get(handle)
                {
                    let pending = Pending::ReadDir {
                        handle: handle.to_vec(),
                    };
                    if !self.expect(id, pending)
                        && let Some(Handle {
                            opened: Opened::Dir { unfollowed, .. },
                            ..
                        }) = self.handles.get_mut(handle)
                    {
                        *unfollowed = true;
                    }
                }
            }
            // The handle's path was named when it was opened; its
            // attributes are no news.
            fxp::FSTAT => {
                r.bytes()?;
            }
            fxp::LSTAT => self.said(id, path_op("lstat", r)?, out),
            fxp::STAT => self.said(id, path_op("stat", r)?, out),
            fxp::REALPATH => self.said(id, path_op("realpath", r)?, out),
            fxp::READLINK => self.said(id, path_op("readlink", r)?, out),
            fxp::REMOVE => self.said(id, path_op("remove", r)?, out),
            fxp::RMDIR => self.said(id, path_op("rmdir", r)?, out),
            fxp::MKDIR => {
                let path = token(r.bytes()?);
                let attrs = attr_words(r, false);
                self.said(id, format!("sftp mkdir {path}{attrs}"), out);
            }
            fxp::SETSTAT => {
                let path = token(r.bytes()?);
                let attrs = attr_words(r, true);
                self.said(id, format!("sftp setstat {path}{attrs}"), out);
            }
            fxp::FSETSTAT => {
                let path = self.handle_name(r.bytes()?);
                let attrs = attr_words(r, true);
                self.said(id, format!("sftp fsetstat {path}{attrs}"), out);
            }
            fxp::RENAME => {
                let from = token(r.bytes()?);
                let to = token(r.bytes()?);
                self.said(id, format!("sftp rename {from} -> {to}"), out);
            }
            fxp::SYMLINK => {
                let first = token(r.bytes()?);
                let second = token(r.bytes()?);
                // OpenSSH sends (and its server reads) targetpath, then
                // linkpath: the reverse of the draft's linkpath, targetpath
                // (PROTOCOL 4.1). Other servers follow the draft.
                let marker = if self.draft_symlink {
                    format!(
                        "sftp symlink {first} pointing to {second} (draft argument order: \
                         the server announced no OpenSSH extension)"
                    )
                } else {
                    format!("sftp symlink {second} pointing to {first}")
                };
                self.said(id, marker, out);
            }
            fxp::EXTENDED => {
                let name = r.bytes()?;
                let marker = self.extended(name, r).unwrap_or_else(|| {
                    format!("sftp extension {} (malformed arguments)", token(name))
                });
                self.said(id, marker, out);
            }
            _ => {
                // A type version 3 does not define: named, and its
                // refusal followed like any other's.
                let marker = format!(
                    "sftp: request type {kind} not decoded ({} bytes)",
                    r.remaining() + 5
                );
                self.said(id, marker, out);
            }
        }
        Some(())
    }

    /// An EXTENDED request's marker; `None` when a known extension's
    /// arguments do not parse.
    fn extended(&mut self, name: &[u8], r: &mut Reader) -> Option<String> {
        Some(match name {
            b"posix-rename@openssh.com" => {
                let from = token(r.bytes()?);
                let to = token(r.bytes()?);
                format!("sftp rename {from} -> {to} (posix-rename@openssh.com)")
            }
            // link(oldpath, newpath): newpath is the new name.
            b"hardlink@openssh.com" => {
                let old = token(r.bytes()?);
                let new = token(r.bytes()?);
                format!("sftp hardlink {new} to existing {old}")
            }
            b"lsetstat@openssh.com" => {
                let path = token(r.bytes()?);
                format!("sftp lsetstat {path}{}", attr_words(r, true))
            }
            b"fsync@openssh.com" => format!("sftp fsync {}", self.handle_name(r.bytes()?)),
            b"fstatvfs@openssh.com" => {
                format!("sftp fstatvfs {}", self.handle_name(r.bytes()?))
            }
            b"statvfs@openssh.com" => format!("sftp statvfs {}", token(r.bytes()?)),
            b"expand-path@openssh.com" => {
                format!("sftp expand-path {}", token(r.bytes()?))
            }
            b"limits@openssh.com" => "sftp limits".into(),
            b"home-directory" => {
                let user = r.bytes()?;
                if user.is_empty() {
                    r#"sftp home-directory "" (the current user)"#.into()
                } else {
                    format!("sftp home-directory {}", token(user))
                }
            }
            b"users-groups-by-id@openssh.com" => {
                let uids = id_list(r.bytes()?)?;
                let gids = id_list(r.bytes()?)?;
                format!("sftp users-groups-by-id uids {uids} gids {gids}")
            }
            b"copy-data" => {
                let from = r.bytes()?;
                let from_offset = r.u64()?;
                let length = r.u64()?;
                let to = r.bytes()?;
                let to_offset = r.u64()?;
                let span = if length == 0 {
                    "to end of file".to_string()
                } else {
                    format!("{length} bytes")
                };
                if let Some(f) = self.file(from) {
                    f.copied_from = true;
                }
                if let Some(f) = self.file(to) {
                    f.copied_into = true;
                }
                format!(
                    "sftp copy-data from {} (offset {from_offset}, {span}) to {} (offset {to_offset})",
                    self.handle_name(from),
                    self.handle_name(to)
                )
            }
            _ => format!(
                "sftp extension {} (arguments not decoded, {} bytes)",
                token(name),
                r.remaining()
            ),
        })
    }

    fn reply(&mut self, p: &[u8], out: &mut Vec<String>) {
        let Some((&kind, rest)) = p.split_first() else {
            return;
        };
        let mut r = Reader(rest);
        // VERSION's first field is the version, every other reply's the id.
        let Some(id) = r.u32() else { return };
        match kind {
            fxp::VERSION => self.version(id, &mut r, out),
            fxp::STATUS => {
                let code = r.u32();
                let message = r.bytes().unwrap_or_default();
                // Worded only for a refusal: most replies are a write's "ok".
                let why = || match code {
                    Some(code) => wire::status_text(code, message),
                    None => "(malformed status reply)".to_string(),
                };
                match self.answered(id) {
                    Some(_) if code == Some(0) => {}
                    Some(Pending::Said(marker)) => out.push(format!("{marker} failed: {}", why())),
                    Some(Pending::Open { path, how, .. }) => out.push(format!(
                        "{} failed: {}",
                        open_marker(&path, how.as_deref()),
                        why()
                    )),
                    Some(Pending::Write { handle }) => {
                        if let Some(f) = self.file(&handle) {
                            f.refused += 1;
                            // The name only: the server's message is not
                            // kept for the file's lifetime.
                            f.first_refusal.get_or_insert_with(|| {
                                code.map_or_else(|| "malformed status".into(), wire::status_name)
                            });
                        }
                    }
                    // A read or a listing that ends (EOF) or fails is
                    // simply not counted.
                    Some(Pending::Read { .. } | Pending::ReadDir { .. }) | None => {}
                }
            }
            fxp::HANDLE => {
                let handle = r.bytes();
                match (self.answered(id), handle) {
                    (Some(Pending::Open { path, how, base }), Some(handle)) => {
                        self.opened(handle, path, how.is_none(), &base, out);
                    }
                    (Some(Pending::Open { path, how, .. }), None) => out.push(format!(
                        "{}: malformed handle reply, its reads, writes and close are not summarised",
                        open_marker(&path, how.as_deref())
                    )),
                    (Some(_), _) => {}
                    (None, _) => out.push(
                        "sftp: a handle was returned for a request not followed; its reads, \
                         writes and close are not summarised"
                            .into(),
                    ),
                }
            }
            fxp::DATA => {
                let Some(Pending::Read { handle, offset }) = self.answered(id) else {
                    return;
                };
                let Some(data) = r.bytes() else { return };
                self.keep(&handle, offset, data);
                let Some(f) = self.file(&handle) else { return };
                if f.written == 0 {
                    f.sequential &= offset == f.read;
                    if f.sequential {
                        f.sum.update(data);
                    }
                }
                f.read += data.len() as u64;
            }
            fxp::NAME => {
                let Some(Pending::ReadDir { handle }) = self.answered(id) else {
                    return;
                };
                let Some(count) = r.u32() else { return };
                if let Some(Handle {
                    opened: Opened::Dir { entries, .. },
                    ..
                }) = self.handles.get_mut(&handle)
                {
                    *entries = entries.saturating_add(u64::from(count));
                }
            }
            // ATTRS, EXTENDED_REPLY and anything else: the request is answered.
            _ => {
                self.answered(id);
            }
        }
    }

    fn version(&mut self, version: u32, r: &mut Reader, out: &mut Vec<String>) {
        if version != 3 {
            // Later versions move fields (OPEN's flags, ATTRS, RENAME's
            // flags): decoding them as version 3 would write false markers.
            self.stop(
                out,
                format!(
                    "sftp: the server chose version {version}; only version 3 is decoded, \
                     file operations are not followed further"
                ),
            );
            return;
        }
        let mut openssh = false;
        while let (Some(name), Some(_)) = (r.bytes(), r.bytes()) {
            openssh |= name.ends_with(b"@openssh.com");
        }
        self.draft_symlink = !openssh;
    }

    /// The server returned `handle` for an open of `path`.
    fn opened(
        &mut self,
        handle: &[u8],
        path: String,
        dir: bool,
        base: &str,
        out: &mut Vec<String>,
    ) {
        let verb = if dir { "opendir" } else { "open" };
        let full = self.handles.len() >= MAX_HANDLES && !self.handles.contains_key(handle);
        let cost = entry_cost(handle, &path, dir);
        if full || self.retained + cost > MAX_RETAINED {
            out.push(format!(
                "sftp {verb} {path}: handle not tracked ({} open handles already followed); \
                 its reads, writes and close are not summarised",
                self.handles.len()
            ));
            return;
        }
        let opened = if dir {
            Opened::Dir {
                entries: 0,
                unfollowed: false,
            }
        } else {
            Opened::File(Box::new(File {
                copy: self.new_copy(base, &path),
                written: 0,
                read: 0,
                sum: Checksum::default(),
                sequential: true,
                refused: 0,
                first_refusal: None,
                copied_into: false,
                copied_from: false,
                unfollowed: false,
            }))
        };
        let h = Handle { path, opened };
        self.retained += handle_cost(handle, &h);
        if let Some(old) = self.handles.insert(handle.to_vec(), h) {
            // The server gave out a handle still open: the older file's
            // summary ends here.
            self.retained -= handle_cost(handle, &old);
            out.push(format!(
                "{} (cut short: the server gave its handle to another open)",
                close_marker(old)
            ));
        }
    }

    fn new_copy(&mut self, base: &str, path: &str) -> Option<(std::fs::File, String)> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.capture.clone()?;
        self.copies += 1;
        let name = format!(
            "{:04}-{}",
            self.copies,
            if base.is_empty() { "file" } else { base }
        );
        let made = std::fs::create_dir_all(&dir).and_then(|_| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dir.join(&name))
        });
        match made {
            Ok(f) => Some((f, name)),
            Err(e) => {
                self.capture_failed = Some(format!("cannot keep a copy of {path}: {e}"));
                None
            }
        }
    }

    fn keep(&mut self, handle: &[u8], offset: u64, data: &[u8]) {
        use std::os::unix::fs::FileExt;
        let Some(h) = self.handles.get(handle) else {
            return;
        };
        let Opened::File(f) = &h.opened else { return };
        let Some((file, _)) = &f.copy else { return };
        if let Err(e) = file.write_all_at(data, offset) {
            self.capture_failed = Some(format!("cannot keep a copy of {}: {e}", h.path));
        }
    }
}

/// "sftp open PATH (read)" / "sftp opendir PATH".
fn open_marker(path: &str, how: Option<&str>) -> String {
    match how {
        Some(how) => format!("sftp open {path} {how}"),
        None => format!("sftp opendir {path}"),
    }
}

/// ATTRS as the words after a path: " mode=0640 uid=…"; with `always`, an
/// empty block says so instead of saying nothing.
fn attr_words(r: &mut Reader, always: bool) -> String {
    match wire::attrs(r) {
        Ok(words) if words.is_empty() && always => " (no attributes)".into(),
        Ok(words) => words.iter().map(|w| format!(" {w}")).collect(),
        Err(why) => format!(" {why}"),
    }
}

/// users-groups-by-id's lists of uint32 ids: "0,4242", or "none".
fn id_list(b: &[u8]) -> Option<String> {
    if !b.len().is_multiple_of(4) {
        return None;
    }
    if b.is_empty() {
        return Some("none".into());
    }
    let ids: Vec<String> = b
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]).to_string())
        .collect();
    Some(ids.join(","))
}

/// A kept copy's file name from the path's last component: safe characters
/// only, short.
fn basename(raw: &[u8]) -> String {
    let last = raw.rsplit(|&b| b == b'/').next().unwrap_or_default();
    String::from_utf8_lossy(last)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect()
}

fn close_marker(h: Handle) -> String {
    let path = h.path;
    let f = match h.opened {
        Opened::Dir {
            entries,
            unfollowed,
        } => {
            let note = if unfollowed {
                " (count incomplete: some replies not followed)"
            } else {
                ""
            };
            return format!("sftp list {path}: {entries} entries{note}");
        }
        Opened::File(f) => f,
    };
    let (dir, n) = if f.written > 0 {
        ("upload", f.written)
    } else {
        ("download", f.read)
    };
    let mut m = if n > 0 {
        let sum = if f.sequential && !(f.written > 0 && f.read > 0) {
            f.sum.finish()
        } else {
            "checksum n/a (not sequential)".to_string()
        };
        match &f.copy {
            Some((_, copy)) => {
                format!("sftp {dir} {path} {n} bytes {sum} (content kept as {copy})")
            }
            None => format!("sftp {dir} {path} {n} bytes {sum}"),
        }
    } else if f.copied_into {
        format!(
            "sftp close {path} (written by copy-data on the server, no data through the bastion)"
        )
    } else if f.copied_from {
        format!("sftp close {path} (read by copy-data on the server, no data through the bastion)")
    } else {
        format!("sftp close {path} (no data read or written)")
    };
    if f.refused > 0 {
        let s = if f.refused == 1 { "" } else { "s" };
        let why = f.first_refusal.as_deref().unwrap_or("failure");
        m.push_str(&format!(
            "; {} write{s} refused by the server ({why})",
            f.refused
        ));
    }
    if f.unfollowed {
        m.push_str(" (counts may be incomplete: some replies not followed)");
    }
    m
}
