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

mod reply;
mod request;
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
