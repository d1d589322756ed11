//! SFTP (version 3) as seen by the recorder: file operations are logged as
//! markers — path, direction, size and, for sequential transfers, a BLAKE3
//! checksum (see `checksum`) —
//! instead of dumping file contents into the cast.
//!
//! Fed the raw bytes of each direction; reassembles packets across channel
//! data frames with a bounded buffer. Anything it cannot follow (a packet over
//! the bound, garbage) stops the parsing and says so once; the transfer
//! itself is never affected.

use super::checksum::Checksum;
use std::collections::HashMap;

/// Largest SFTP packet followed (OpenSSH sends at most 256 KiB).
const MAX_PACKET: usize = 512 * 1024;
/// Open handles and outstanding requests remembered at most.
const MAX_TRACKED: usize = 4096;

const FXP_OPEN: u8 = 3;
const FXP_CLOSE: u8 = 4;
const FXP_READ: u8 = 5;
const FXP_WRITE: u8 = 6;
const FXP_REMOVE: u8 = 13;
const FXP_MKDIR: u8 = 14;
const FXP_RMDIR: u8 = 15;
const FXP_RENAME: u8 = 18;
const FXP_EXTENDED: u8 = 200;
const FXP_HANDLE: u8 = 102;
const FXP_DATA: u8 = 103;

struct File {
    path: String,
    /// Where the contents are kept, when the target asks for it.
    copy: Option<(std::fs::File, String)>,
    written: u64,
    read: u64,
    sum: Checksum,
    /// Every byte so far came at the offset after the one before: only
    /// then is the checksum the file's.
    sequential: bool,
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
    /// Request id → path of an OPEN awaiting its handle.
    opening: HashMap<u32, String>,
    /// Request id → (handle, offset) of a READ awaiting its data.
    reading: HashMap<u32, (Vec<u8>, u64)>,
    files: HashMap<Vec<u8>, File>,
    broken: bool,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (b, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*b))
    }
    fn u64(&mut self) -> Option<u64> {
        let (b, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_be_bytes(*b))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        if n > self.0.len() {
            return None;
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b)
    }
}

fn text(b: &[u8]) -> String {
    crate::names::escape_for_log(&String::from_utf8_lossy(b))
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

    fn new_copy(&mut self, path: &str) -> Option<(std::fs::File, String)> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.capture.clone()?;
        self.copies += 1;
        let base: String = path
            .rsplit('/')
            .next()
            .unwrap_or("file")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(64)
            .collect();
        let name = format!(
            "{:04}-{}",
            self.copies,
            if base.is_empty() { "file" } else { &base }
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
        let Some(f) = self.files.get_mut(handle) else {
            return;
        };
        let Some((file, _)) = &f.copy else { return };
        if let Err(e) = file.write_all_at(data, offset) {
            self.capture_failed = Some(format!("cannot keep a copy of {}: {e}", f.path));
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
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(len) = buf
            .get(start..start + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        {
            if len == 0 || len > MAX_PACKET {
                self.broken = true;
                out.push(
                    "sftp: stream not followed further (oversized or malformed packet)".into(),
                );
                return out;
            }
            let Some(packet) = buf.get(start + 4..start + 4 + len) else {
                break;
            };
            let packet = packet.to_vec();
            start += 4 + len;
            let r = if up {
                self.request(&packet)
            } else {
                self.reply(&packet)
            };
            out.extend(r);
        }
        buf.drain(..start);
        if buf.len() > MAX_PACKET + 4 {
            self.broken = true;
        }
        *(if up { &mut self.up } else { &mut self.down }) = buf;
        out
    }

    fn request(&mut self, p: &[u8]) -> Option<String> {
        let (&kind, rest) = p.split_first()?;
        let mut r = Reader(rest);
        let id = r.u32()?;
        match kind {
            FXP_OPEN => {
                let path = text(r.bytes()?);
                if self.opening.len() < MAX_TRACKED {
                    self.opening.insert(id, path);
                }
                None
            }
            FXP_WRITE => {
                let handle = r.bytes()?;
                let offset = r.u64()?;
                let data = r.bytes()?;
                self.keep(handle, offset, data);
                let f = self.files.get_mut(handle)?;
                f.sequential &= offset == f.written;
                if f.sequential {
                    f.sum.update(data);
                }
                f.written += data.len() as u64;
                None
            }
            FXP_READ => {
                let handle = r.bytes()?.to_vec();
                let offset = r.u64()?;
                if self.reading.len() < MAX_TRACKED {
                    self.reading.insert(id, (handle, offset));
                }
                None
            }
            FXP_CLOSE => {
                let f = self.files.remove(r.bytes()?)?;
                Some(close_marker(f))
            }
            FXP_REMOVE => Some(format!("sftp remove {}", text(r.bytes()?))),
            FXP_MKDIR => Some(format!("sftp mkdir {}", text(r.bytes()?))),
            FXP_RMDIR => Some(format!("sftp rmdir {}", text(r.bytes()?))),
            FXP_RENAME => {
                let from = text(r.bytes()?);
                Some(format!("sftp rename {from} -> {}", text(r.bytes()?)))
            }
            FXP_EXTENDED => match r.bytes()? {
                b"posix-rename@openssh.com" => {
                    let from = text(r.bytes()?);
                    Some(format!("sftp rename {from} -> {}", text(r.bytes()?)))
                }
                b"hardlink@openssh.com" => {
                    let from = text(r.bytes()?);
                    Some(format!("sftp hardlink {from} -> {}", text(r.bytes()?)))
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn reply(&mut self, p: &[u8]) -> Option<String> {
        let (&kind, rest) = p.split_first()?;
        let mut r = Reader(rest);
        let id = r.u32()?;
        match kind {
            FXP_HANDLE => {
                let path = self.opening.remove(&id)?;
                let handle = r.bytes()?.to_vec();
                if self.files.len() < MAX_TRACKED {
                    let copy = self.new_copy(&path);
                    self.files.insert(
                        handle,
                        File {
                            path,
                            copy,
                            written: 0,
                            read: 0,
                            sum: Checksum::default(),
                            sequential: true,
                        },
                    );
                }
                None
            }
            FXP_DATA => {
                let (handle, offset) = self.reading.remove(&id)?;
                let data = r.bytes()?;
                self.keep(&handle, offset, data);
                let f = self.files.get_mut(&handle)?;
                if f.written == 0 {
                    f.sequential &= offset == f.read;
                    if f.sequential {
                        f.sum.update(data);
                    }
                }
                f.read += data.len() as u64;
                None
            }
            _ => {
                // STATUS and the rest end a pending open or read.
                self.opening.remove(&id);
                self.reading.remove(&id);
                None
            }
        }
    }
}

fn close_marker(f: File) -> String {
    let (dir, n) = if f.written > 0 {
        ("upload", f.written)
    } else {
        ("download", f.read)
    };
    if n == 0 {
        return format!("sftp open/close {} (no data)", f.path);
    }
    let sum = if f.sequential && !(f.written > 0 && f.read > 0) {
        f.sum.finish()
    } else {
        "checksum n/a (not sequential)".to_string()
    };
    match &f.copy {
        Some((_, copy)) => format!(
            "sftp {dir} {} {n} bytes {sum} (content kept as {copy})",
            f.path
        ),
        None => format!("sftp {dir} {} {n} bytes {sum}", f.path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(kind: u8, id: u32, body: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![kind];
        p.extend_from_slice(&id.to_be_bytes());
        for b in body {
            p.extend_from_slice(b);
        }
        let mut out = (p.len() as u32).to_be_bytes().to_vec();
        out.extend(p);
        out
    }

    fn s(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn an_upload_is_logged_with_size_and_checksum_across_split_frames() {
        let mut log = SftpLog::default();
        let open = pkt(
            FXP_OPEN,
            1,
            &[
                &s(b"/home/u/up.bin"),
                &0x1au32.to_be_bytes(),
                &0u32.to_be_bytes(),
            ],
        );
        assert!(log.up(&open).is_empty());
        assert!(log.down(&pkt(FXP_HANDLE, 1, &[&s(b"H1")])).is_empty());
        let mut stream = pkt(
            FXP_WRITE,
            2,
            &[&s(b"H1"), &0u64.to_be_bytes(), &s(b"hello ")],
        );
        stream.extend(pkt(
            FXP_WRITE,
            3,
            &[&s(b"H1"), &6u64.to_be_bytes(), &s(b"world")],
        ));
        stream.extend(pkt(FXP_CLOSE, 4, &[&s(b"H1")]));
        let (a, b) = stream.split_at(7);
        let mut markers = log.up(a);
        markers.extend(log.up(b));
        let want = format!(
            "sftp upload /home/u/up.bin 11 bytes blake3 {}",
            blake3::hash(b"hello world").to_hex()
        );
        assert_eq!(markers, vec![want]);
    }

    /// A log that saw `f` opened for reading (request 1) as handle `H`.
    fn opened_for_reading() -> SftpLog {
        let mut log = SftpLog::default();
        log.up(&pkt(
            FXP_OPEN,
            1,
            &[&s(b"f"), &1u32.to_be_bytes(), &0u32.to_be_bytes()],
        ));
        log.down(&pkt(FXP_HANDLE, 1, &[&s(b"H")]));
        log
    }

    #[test]
    fn downloads_renames_and_garbage() {
        let mut log = opened_for_reading();
        log.up(&pkt(
            FXP_READ,
            2,
            &[&s(b"H"), &0u64.to_be_bytes(), &32768u32.to_be_bytes()],
        ));
        log.down(&pkt(FXP_DATA, 2, &[&s(b"abc")]));
        let m = log.up(&pkt(FXP_CLOSE, 3, &[&s(b"H")]));
        assert!(
            m[0].starts_with("sftp download f 3 bytes blake3 6437b3ac"),
            "{m:?}"
        );
        let m = log.up(&pkt(FXP_RENAME, 4, &[&s(b"a"), &s(b"b")]));
        assert_eq!(m, vec!["sftp rename a -> b".to_string()]);
        let m = log.up(&[0xff, 0xff, 0xff, 0xff, 1]);
        assert!(m[0].contains("not followed"));
        assert!(
            log.up(&pkt(FXP_REMOVE, 5, &[&s(b"x")])).is_empty(),
            "stays quiet once broken"
        );
    }

    #[test]
    fn a_download_answered_out_of_order_has_no_checksum() {
        let mut log = opened_for_reading();
        for (id, offset) in [(2u32, 0u64), (3, 3)] {
            log.up(&pkt(
                FXP_READ,
                id,
                &[&s(b"H"), &offset.to_be_bytes(), &3u32.to_be_bytes()],
            ));
        }
        // The second block arrives first: hashing in arrival order would
        // name a file that never existed.
        log.down(&pkt(FXP_DATA, 3, &[&s(b"def")]));
        log.down(&pkt(FXP_DATA, 2, &[&s(b"abc")]));
        let m = log.up(&pkt(FXP_CLOSE, 4, &[&s(b"H")]));
        assert_eq!(
            m,
            vec!["sftp download f 6 bytes checksum n/a (not sequential)".to_string()]
        );
    }
}
