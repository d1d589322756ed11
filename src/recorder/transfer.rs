//! A proven file transfer: an exec that `policy::classify_exec` (the gate's
//! own decision) found to be legacy scp or an rsync server. Its streams are
//! the transfer protocol carrying file contents, so both directions are
//! counted and hashed, not put in the cast; stderr (the tools' messages) is
//! text and recorded. Where the target keeps file contents, the raw streams
//! are kept beside the recording in `<name>.files/`, like sftp copies.

use super::RecorderError;
use super::out::Out;
use super::piped::{close, feed};
use crate::castfile::EventKind;
use crate::castfile::binary::Segmenter;
use crate::castfile::checksum::Checksum;
use crate::policy::Transfer;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub(crate) struct TransferLog {
    kind: Transfer,
    up: Stream,
    down: Stream,
    stderr: Segmenter,
}

/// One direction: counted, hashed, perhaps kept.
struct Stream {
    name: &'static str,
    bytes: u64,
    sum: Checksum,
    copy: Option<Copy>,
}

struct Copy {
    path: PathBuf,
    /// As the marker names it: relative to the recordings directory.
    shown: String,
    file: BufWriter<File>,
}

impl TransferLog {
    /// `keep`: the directory for raw copies of both streams, if the target
    /// keeps file contents.
    pub fn new(kind: Transfer, keep: Option<&Path>) -> Result<Self, RecorderError> {
        Ok(TransferLog {
            kind,
            up: Stream::new("upload", keep)?,
            down: Stream::new("download", keep)?,
            stderr: Segmenter::new("stderr"),
        })
    }

    pub fn opening(&self, at: f64, out: &mut impl Out) -> Result<(), RecorderError> {
        let kept = if self.up.copy.is_some() {
            "; both streams kept beside the recording"
        } else {
            ""
        };
        out.marker(
            at,
            &format!(
                "file transfer ({}): the protocol streams are counted and hashed both ways, not recorded{kept}",
                self.kind.name()
            ),
        )
    }

    pub fn up(&mut self, b: &[u8]) -> Result<(), RecorderError> {
        self.up.push(b)
    }

    pub fn down(&mut self, b: &[u8]) -> Result<(), RecorderError> {
        self.down.push(b)
    }

    pub fn stderr(&mut self, at: f64, b: &[u8], out: &mut impl Out) -> Result<(), RecorderError> {
        feed(&mut self.stderr, at, EventKind::Output, b, out)
    }

    /// The target's EOF: its messages so far are recorded now.
    pub fn output_ended(&mut self, at: f64, out: &mut impl Out) -> Result<(), RecorderError> {
        close(&mut self.stderr, at, EventKind::Output, out)
    }

    pub fn finish(&mut self, at: f64, out: &mut impl Out) -> Result<(), RecorderError> {
        self.output_ended(at, out)?;
        for s in [&mut self.up, &mut self.down] {
            let line = s.finish()?;
            out.marker(at, &line)?;
        }
        Ok(())
    }
}

impl Stream {
    fn new(name: &'static str, keep: Option<&Path>) -> Result<Self, RecorderError> {
        let copy = keep.map(|dir| Copy::create(dir, name)).transpose()?;
        Ok(Stream {
            name,
            bytes: 0,
            sum: Checksum::default(),
            copy,
        })
    }

    fn push(&mut self, b: &[u8]) -> Result<(), RecorderError> {
        self.bytes += b.len() as u64;
        self.sum.update(b);
        match self.copy.as_mut() {
            Some(c) => c.write(b),
            None => Ok(()),
        }
    }

    /// The closing marker: size and checksum, and where the copy is.
    fn finish(&mut self) -> Result<String, RecorderError> {
        let mut line = format!("{}: {} bytes {}", self.name, self.bytes, self.sum.finish());
        if let Some(c) = self.copy.take() {
            line.push_str(&format!(" (kept as {})", c.finish()?));
        }
        Ok(line)
    }
}

impl Copy {
    fn create(dir: &Path, name: &str) -> Result<Self, RecorderError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(name);
        let file = std::fs::create_dir_all(dir)
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
            })
            .map_err(|e| copy_failed(&path, &e))?;
        let shown = match dir.file_name() {
            Some(d) => format!("{}/{name}", d.to_string_lossy()),
            None => name.to_owned(),
        };
        Ok(Copy {
            path,
            shown,
            file: BufWriter::with_capacity(256 * 1024, file),
        })
    }

    fn write(&mut self, b: &[u8]) -> Result<(), RecorderError> {
        self.file
            .write_all(b)
            .map_err(|e| copy_failed(&self.path, &e))
    }

    /// Flushed and durable before the recording that names it is sealed.
    fn finish(mut self) -> Result<String, RecorderError> {
        self.file
            .flush()
            .and_then(|_| self.file.get_ref().sync_all())
            .map_err(|e| copy_failed(&self.path, &e))?;
        Ok(self.shown)
    }
}

fn copy_failed(path: &Path, e: &std::io::Error) -> RecorderError {
    RecorderError::Capture(format!(
        "cannot keep the transfer stream {}: {e}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::super::out::Kept;
    use super::*;

    fn blake3(b: &[u8]) -> String {
        let mut c = Checksum::default();
        c.update(b);
        c.finish()
    }

    #[test]
    fn both_directions_are_counted_and_hashed_and_stderr_recorded() {
        let mut x = TransferLog::new(Transfer::ScpSink, None).unwrap();
        let mut out = Kept::default();
        x.opening(0.0, &mut out).unwrap();
        x.up(b"C0644 3 f\n").unwrap();
        x.up(b"abc\0").unwrap();
        x.down(b"\0\0").unwrap();
        x.stderr(0.5, b"scp: /x: Permission denied\n", &mut out)
            .unwrap();
        x.finish(1.0, &mut out).unwrap();
        assert_eq!(
            out.joined(EventKind::Output),
            "scp: /x: Permission denied\n"
        );
        let m = out.markers();
        assert!(m[0].starts_with("file transfer (scp upload)"), "{m:?}");
        assert_eq!(
            m[1],
            format!("upload: 14 bytes {}", blake3(b"C0644 3 f\nabc\0"))
        );
        assert_eq!(m[2], format!("download: 2 bytes {}", blake3(b"\0\0")));
    }

    #[test]
    fn raw_streams_are_kept_where_the_target_keeps_contents() {
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("s-1.files");
        let mut x = TransferLog::new(Transfer::RsyncSender, Some(&keep)).unwrap();
        let mut out = Kept::default();
        x.up(b"request").unwrap();
        x.down(b"file contents").unwrap();
        x.finish(1.0, &mut out).unwrap();
        assert_eq!(std::fs::read(keep.join("upload")).unwrap(), b"request");
        assert_eq!(
            std::fs::read(keep.join("download")).unwrap(),
            b"file contents"
        );
        assert!(out.markers()[1].ends_with("(kept as s-1.files/download)"));
    }
}
