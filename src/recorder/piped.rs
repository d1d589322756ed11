//! An exec or shell without a pty: stdin is piped data (a script, a file),
//! output is whatever the command prints. Both are recorded as text, with
//! binary runs marked and summarised (`castfile::binary`), so one NUL does
//! not hide what follows it. Stdin is recorded up to [`STDIN_CAP`]; past
//! that it is still counted and hashed, and the recording says so.

use super::RecorderError;
use super::out::Out;
use crate::castfile::EventKind;
use crate::castfile::binary::{Piece, Segmenter};
use crate::castfile::checksum::Checksum;

/// Stdin recorded per channel. Past this a bulk upload (`ssh host 'cat >
/// f' < big`) costs the recorder a hash, not a cast the size of the file.
pub(crate) const STDIN_CAP: u64 = 1 << 20;

/// A channel's streams without a pty.
pub(crate) struct Piped {
    stdin: StdinLog,
    stdout: Segmenter,
    stderr: Segmenter,
}

impl Piped {
    pub fn new() -> Self {
        Piped {
            stdin: StdinLog::default(),
            stdout: Segmenter::new("output"),
            stderr: Segmenter::new("stderr"),
        }
    }

    /// The recording states its cap before any stdin arrives.
    pub fn opening(&self, at: f64, out: &mut impl Out) -> Result<(), RecorderError> {
        if !out.contents() {
            return Ok(());
        }
        out.marker(
            at,
            &format!(
                "stdin recorded up to 1 MiB ({STDIN_CAP} bytes); past that counted and hashed"
            ),
        )
    }

    pub fn input(&mut self, at: f64, b: &[u8], out: &mut impl Out) -> Result<(), RecorderError> {
        self.stdin.push(at, b, out)
    }

    pub fn output(&mut self, at: f64, b: &[u8], out: &mut impl Out) -> Result<(), RecorderError> {
        feed(&mut self.stdout, at, EventKind::Output, b, out)
    }

    pub fn stderr(&mut self, at: f64, b: &[u8], out: &mut impl Out) -> Result<(), RecorderError> {
        feed(&mut self.stderr, at, EventKind::Output, b, out)
    }

    /// The target's EOF: output is over, so what its streams still hold is
    /// recorded now, before the exit status that follows.
    pub fn output_ended(&mut self, at: f64, out: &mut impl Out) -> Result<(), RecorderError> {
        close(&mut self.stdout, at, EventKind::Output, out)?;
        close(&mut self.stderr, at, EventKind::Output, out)
    }

    /// The client's EOF: stdin is over.
    pub fn input_ended(&mut self, at: f64, out: &mut impl Out) -> Result<(), RecorderError> {
        self.stdin.ended(at, out)
    }

    pub fn finish(&mut self, at: f64, out: &mut impl Out) -> Result<(), RecorderError> {
        self.output_ended(at, out)?;
        self.stdin.finish(at, out)
    }
}

/// Stdin: recorded up to the cap, counted and hashed whole.
struct StdinLog {
    bytes: u64,
    /// Made at the first stdin bytes: a BLAKE3 hasher is ~1.9 KiB, and an
    /// idle channel (or one whose client never sends) would hold it for
    /// its whole life (issue 20: memory per idle session).
    sum: Option<Box<Checksum>>,
    text: Segmenter,
    capped: bool,
}

impl Default for StdinLog {
    fn default() -> Self {
        StdinLog {
            bytes: 0,
            sum: None,
            text: Segmenter::new("input"),
            capped: false,
        }
    }
}

impl StdinLog {
    fn push(&mut self, at: f64, b: &[u8], out: &mut impl Out) -> Result<(), RecorderError> {
        let room = STDIN_CAP.saturating_sub(self.bytes);
        self.bytes += b.len() as u64;
        self.sum.get_or_insert_default().update(b);
        if self.capped {
            return Ok(());
        }
        let head = b.get(..usize::try_from(room).unwrap_or(usize::MAX).min(b.len()));
        let head = head.unwrap_or_default();
        feed(&mut self.text, at, EventKind::Input, head, out)?;
        if head.len() < b.len() {
            self.cap(at, out)?;
        }
        Ok(())
    }

    fn cap(&mut self, at: f64, out: &mut impl Out) -> Result<(), RecorderError> {
        self.capped = true;
        close(&mut self.text, at, EventKind::Input, out)?;
        out.marker(
            at,
            &format!("stdin cap reached after {STDIN_CAP} bytes: the rest is counted and hashed, not recorded"),
        )
    }

    fn ended(&mut self, at: f64, out: &mut impl Out) -> Result<(), RecorderError> {
        if self.capped {
            return Ok(());
        }
        close(&mut self.text, at, EventKind::Input, out)
    }

    /// The whole of stdin in one line: size and checksum, whatever was recorded.
    fn finish(&mut self, at: f64, out: &mut impl Out) -> Result<(), RecorderError> {
        self.ended(at, out)?;
        let Some(sum) = self.sum.as_ref().filter(|_| self.bytes > 0) else {
            return Ok(());
        };
        let recorded = if self.capped {
            format!(" (the first {STDIN_CAP} recorded)")
        } else {
            String::new()
        };
        out.marker(
            at,
            &format!("stdin: {} bytes {}{recorded}", self.bytes, sum.finish()),
        )
    }
}

/// Passes a chunk through `seg` and records what it decided: text as
/// `kind` events, binary runs as markers.
pub(crate) fn feed(
    seg: &mut Segmenter,
    at: f64,
    kind: EventKind,
    b: &[u8],
    out: &mut impl Out,
) -> Result<(), RecorderError> {
    seg.push(b, &mut |p| piece(out, at, kind, p))
}

/// The stream ended: what `seg` still held is decided and recorded.
pub(crate) fn close(
    seg: &mut Segmenter,
    at: f64,
    kind: EventKind,
    out: &mut impl Out,
) -> Result<(), RecorderError> {
    seg.finish(&mut |p| piece(out, at, kind, p))
}

fn piece(out: &mut impl Out, at: f64, kind: EventKind, p: Piece<'_>) -> Result<(), RecorderError> {
    match p {
        Piece::Text(t) => out.text(at, kind, t),
        Piece::Started(m) => out.marker(at, &m),
        // The strings found in a run are contents.
        Piece::Ended(run) => {
            let with_strings = out.contents();
            out.marker(at, &run.line(with_strings))
        }
    }
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
    fn piped_stdin_is_recorded_as_input() {
        // `echo 'id; echo SECRET' | ssh host sh` left no trace of the script.
        let mut p = Piped::new();
        let mut out = Kept::default();
        p.opening(0.0, &mut out).unwrap();
        p.input(0.1, b"id; echo SE", &mut out).unwrap();
        p.input(0.2, b"CRET\n", &mut out).unwrap();
        p.output(0.3, b"uid=1000\nSECRET\n", &mut out).unwrap();
        p.finish(0.4, &mut out).unwrap();
        assert_eq!(out.joined(EventKind::Input), "id; echo SECRET\n");
        assert_eq!(out.joined(EventKind::Output), "uid=1000\nSECRET\n");
        let m = out.markers();
        assert!(m[0].starts_with("stdin recorded up to 1 MiB"), "{m:?}");
        assert_eq!(
            m[1],
            format!("stdin: 16 bytes {}", blake3(b"id; echo SECRET\n"))
        );
    }

    #[test]
    fn stdin_past_the_cap_is_counted_and_hashed() {
        let mut p = Piped::new();
        let mut out = Kept::default();
        let line = b"0123456789abcdef\n".repeat(4096); // 68 KiB of text
        let mut all = Vec::new();
        while all.len() < 2 * STDIN_CAP as usize {
            p.input(0.1, &line, &mut out).unwrap();
            all.extend_from_slice(&line);
        }
        p.finish(1.0, &mut out).unwrap();
        let recorded = out.joined(EventKind::Input);
        assert_eq!(recorded.len() as u64, STDIN_CAP);
        assert!(all.starts_with(recorded.as_bytes()));
        let m = out.markers();
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(
            m[0].starts_with("stdin cap reached after 1048576 bytes"),
            "{m:?}"
        );
        assert_eq!(
            m[1],
            format!(
                "stdin: {} bytes {} (the first 1048576 recorded)",
                all.len(),
                blake3(&all)
            )
        );
    }

    #[test]
    fn binary_stdin_is_summarised_and_text_after_it_recorded() {
        let mut p = Piped::new();
        let mut out = Kept::default();
        let after = "echo this line comes after the binary part\n";
        p.input(0.1, b"\x00\x01\x02\xff", &mut out).unwrap();
        p.input(0.2, after.as_bytes(), &mut out).unwrap();
        p.finish(0.3, &mut out).unwrap();
        assert_eq!(out.joined(EventKind::Input), after);
        let m = out.markers();
        assert!(m[0].starts_with("binary input from here on"), "{m:?}");
        assert!(m[1].starts_with("binary input: 4 bytes blake3 "), "{m:?}");
    }

    #[test]
    fn output_after_a_nul_is_recorded_and_stderr_kept_apart() {
        // `printf '\0'; cat /etc/secret` hid the secret.
        let mut p = Piped::new();
        let mut out = Kept::default();
        let secret = "password=correct-horse-battery-staple\n";
        p.output(0.1, b"\0", &mut out).unwrap();
        p.stderr(0.1, "caf\u{e9}".as_bytes()[..4].as_ref(), &mut out)
            .unwrap();
        p.output(0.2, secret.as_bytes(), &mut out).unwrap();
        p.stderr(0.2, "\u{e9}!\n".as_bytes()[1..].as_ref(), &mut out)
            .unwrap();
        p.finish(0.3, &mut out).unwrap();
        // The split character in stderr is not garbled by stdout between its halves.
        assert_eq!(
            out.joined(EventKind::Output),
            format!("caf{secret}\u{e9}!\n")
        );
        let m = out.markers();
        assert!(m[0].starts_with("binary output from here on"), "{m:?}");
        assert!(m[1].starts_with("binary output: 1 bytes"), "{m:?}");
    }

    #[test]
    fn metadata_only_targets_get_sizes_and_checksums_not_contents() {
        let mut p = Piped::new();
        let mut out = Kept {
            metadata_only: true,
            ..Kept::default()
        };
        p.opening(0.0, &mut out).unwrap();
        p.input(0.1, b"secret script\n", &mut out).unwrap();
        p.output(0.1, b"\0SECRET-STRING\0", &mut out).unwrap();
        p.finish(0.2, &mut out).unwrap();
        assert!(out.events.iter().all(|(k, _)| *k == EventKind::Marker));
        assert!(
            out.markers().iter().all(|m| !m.contains("SECRET")),
            "{:?}",
            out.markers()
        );
        assert!(
            out.markers()
                .iter()
                .any(|m| m.starts_with("stdin: 14 bytes"))
        );
    }
}
