//! Keeps what is typed at a no-echo prompt (a `sudo` or `ssh` password) out
//! of the recording.
//!
//! The bastion cannot see the remote tty's ECHO flag, so it watches for the
//! echo instead. Typed printable bytes are held per line; every output byte
//! that follows is matched, in order, against the held bytes (a subsequence
//! match, so colour codes and redraws between echoed characters do not
//! matter). When a line is closed (Enter, or a control key):
//!
//! - if all its characters were echoed, it is released in clear, chunk by
//!   chunk with the times they were typed;
//! - otherwise it waits: its echo may simply not be back yet (a pasted
//!   `ls -la\r` arrives before any echo). A terminal's newline output before
//!   the characters (sudo prints "\n" after reading a password), too much
//!   unrelated output, or [`ENTER_GRACE_SECS`] without the echo decide it is
//!   hidden: one `[hidden input: N chars]` event replaces it.
//!
//! Control keys (Ctrl-C, arrows and other escape sequences) are not secrets:
//! they close the current line and are released as soon as the lines before
//! them are, keeping the input order.
//!
//! Limits (documented, not solved):
//! - Output that happens to contain the typed characters in order counts as
//!   echo: a background job printing while a password is typed, or a
//!   password typed ahead of its prompt whose text contains it ("pass" is in
//!   "password"), is recorded in clear. The budget of unrelated output bytes
//!   per line narrows this but cannot close it without the tty's state.
//! - Applications that draw typed text elsewhere or not at all (vi commands,
//!   pagers) get their non-echoed keystrokes masked: an audit gap, never a
//!   leak.
//! - The length of hidden input is recorded.

use super::text::Utf8Carry;
use std::collections::VecDeque;

/// How long after its close a line's echo may still arrive.
pub const ENTER_GRACE_SECS: f64 = 2.0;
/// Unrelated output bytes tolerated while matching a line's echo.
const BASE_MISSES: usize = 256;
const MISSES_PER_CHAR: usize = 64;
/// Output bytes after a released line that may still be its newline echo.
const NEWLINE_ECHO_BYTES: usize = 64;
/// A line longer than this (a huge paste) is closed to bound memory.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Closed lines waiting for echo past this are decided at once.
const MAX_QUEUED_LINES: usize = 256;

#[derive(Debug, Default)]
struct Line {
    chunks: Vec<(f64, Vec<u8>)>,
    raw_len: usize,
    /// The printable bytes an echo would show, after backspaces.
    expect: Vec<u8>,
    matched: usize,
    misses: usize,
    closed_at: Option<f64>,
    /// The Enter byte that closed it, if Enter did.
    terminator: Option<u8>,
}

impl Line {
    fn push(&mut self, t: f64, bytes: &[u8]) {
        self.raw_len += bytes.len();
        match self.chunks.last_mut() {
            Some((last, chunk)) if *last == t => chunk.extend_from_slice(bytes),
            _ => self.chunks.push((t, bytes.to_vec())),
        }
    }

    fn backspace(&mut self) {
        self.expect.pop();
        self.matched = self.matched.min(self.expect.len());
    }

    fn echoed(&self) -> bool {
        self.matched >= self.expect.len()
    }

    fn budget_spent(&self) -> bool {
        self.misses > BASE_MISSES + MISSES_PER_CHAR * self.expect.len()
    }

    /// Matches one output byte; true if it echoed the next held character.
    fn observe(&mut self, b: u8) -> bool {
        if self.echoed() || self.budget_spent() {
            return false;
        }
        if self.expect.get(self.matched) == Some(&b) {
            self.matched += 1;
            true
        } else {
            self.misses += 1;
            false
        }
    }
}

/// Decides, line by line, whether typed input is recorded in clear.
#[derive(Debug, Default)]
pub struct InputMasker {
    /// Closed lines waiting for their echo, oldest first.
    queue: VecDeque<Line>,
    current: Line,
    /// Output bytes still to skip as the newline echo of a released line.
    newline_echo: usize,
    carry: Utf8Carry,
}

impl InputMasker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes typed bytes; returns the input events that can be recorded now
    /// (earlier lines decided by then, control keys), as `(time, text)`.
    pub fn input(&mut self, t: f64, bytes: &[u8]) -> Vec<(f64, String)> {
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            let n = match b {
                b'\r' | b'\n' => {
                    self.current.push(t, &[b]);
                    self.close(t, Some(b));
                    1
                }
                0x7f | 0x08 => {
                    self.current.push(t, &[b]);
                    self.current.backspace();
                    1
                }
                // Completion: its echo is the completed text, not a tab.
                b'\t' => {
                    self.current.push(t, &[b]);
                    1
                }
                0x00..=0x1f => {
                    let n = if b == 0x1b {
                        escape_len(&bytes[i..])
                    } else {
                        1
                    };
                    self.close(t, None);
                    self.current.push(t, &bytes[i..i + n]);
                    self.close(t, None);
                    n
                }
                _ => {
                    self.current.push(t, &[b]);
                    self.current.expect.push(b);
                    if self.current.raw_len > MAX_LINE_BYTES {
                        self.close(t, None);
                    }
                    1
                }
            };
            i += n;
        }
        let mut out = Vec::new();
        self.release(Some(t), &mut out);
        out
    }

    /// Takes what the terminal printed; returns input events this decided
    /// (a line whose echo completed, or whose newline came without it).
    #[must_use = "input events decided by this output must be recorded"]
    pub fn output(&mut self, bytes: &[u8]) -> Vec<(f64, String)> {
        // Nothing typed is waiting for its echo: output needs no look (the
        // common case for bulk output, so it must cost nothing).
        if self.newline_echo == 0 && self.queue.is_empty() && self.current.raw_len == 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        for &b in bytes {
            if self.newline_echo > 0 {
                self.newline_echo = if b == b'\n' { 0 } else { self.newline_echo - 1 };
                continue;
            }
            match self.queue.front_mut() {
                Some(front) => {
                    if !front.observe(b)
                        && !front.echoed()
                        && (b == b'\n' || front.budget_spent())
                        && let Some(line) = self.queue.pop_front()
                    {
                        self.emit(line, false, &mut out);
                    }
                }
                None => {
                    self.current.observe(b);
                }
            }
            self.release(None, &mut out);
        }
        out
    }

    /// At the end of the session: decides everything still held.
    pub fn flush(&mut self) -> Vec<(f64, String)> {
        let t = self.current.chunks.last().map_or(0.0, |(t, _)| *t);
        self.close(t, None);
        let mut out = Vec::new();
        while let Some(line) = self.queue.pop_front() {
            let clear = line.echoed();
            self.emit(line, clear, &mut out);
        }
        self.carry.clear();
        out
    }

    fn close(&mut self, t: f64, terminator: Option<u8>) {
        if self.current.raw_len == 0 {
            return;
        }
        let mut line = std::mem::take(&mut self.current);
        line.closed_at = Some(t);
        line.terminator = terminator;
        self.queue.push_back(line);
    }

    /// Releases decided lines from the front, in order.
    fn release(&mut self, now: Option<f64>, out: &mut Vec<(f64, String)>) {
        while let Some(front) = self.queue.front() {
            let expired = match (now, front.closed_at) {
                (Some(now), Some(closed)) => now - closed >= ENTER_GRACE_SECS,
                _ => false,
            };
            let clear = if front.echoed() {
                true
            } else if expired || self.queue.len() > MAX_QUEUED_LINES {
                false
            } else {
                return;
            };
            let Some(line) = self.queue.pop_front() else {
                return;
            };
            self.emit(line, clear, out);
        }
    }

    fn emit(&mut self, line: Line, clear: bool, out: &mut Vec<(f64, String)>) {
        if clear {
            for (t, bytes) in &line.chunks {
                let text = self.carry.decode(bytes);
                if !text.is_empty() {
                    out.push((*t, text.into_owned()));
                }
            }
            if line.terminator.is_some() {
                self.newline_echo = NEWLINE_ECHO_BYTES;
            }
            return;
        }
        self.carry.clear();
        let n = String::from_utf8_lossy(&line.expect).chars().count();
        let mut text = format!("[hidden input: {n} chars]");
        if let Some(term) = line.terminator {
            text.push(char::from(term));
        }
        out.push((line.closed_at.unwrap_or_default(), text));
    }
}

/// Length of the escape sequence at the start of `bytes` (which starts with
/// ESC): CSI/SS3 up to their final byte, or ESC plus one key (Alt+key).
fn escape_len(bytes: &[u8]) -> usize {
    match bytes.get(1) {
        Some(b'[') | Some(b'O') => {
            let mut i = 2;
            while let Some(&c) = bytes.get(i) {
                i += 1;
                if (0x40..=0x7e).contains(&c) {
                    break;
                }
            }
            i
        }
        Some(_) => 2,
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(events: &[(f64, String)]) -> String {
        events.iter().map(|(_, s)| s.as_str()).collect()
    }

    #[test]
    fn sudo_password_is_masked() {
        let mut m = InputMasker::new();
        assert!(m.output(b"[sudo] password for x: ").is_empty());
        assert!(m.input(1.0, b"hunter2\r").is_empty());
        let out = m.output(b"\n");
        assert_eq!(texts(&out), "[hidden input: 7 chars]\r");
        assert!(!format!("{out:?}").contains("hunter2"));
    }

    #[test]
    fn password_typed_key_by_key_is_masked() {
        let mut m = InputMasker::new();
        assert!(m.output(b"Password: ").is_empty());
        let mut all = Vec::new();
        for (i, b) in b"hunter2\r".iter().enumerate() {
            all.extend(m.input(i as f64 * 0.1, &[*b]));
        }
        all.extend(m.output(b"\r\nSorry, try again.\r\n"));
        all.extend(m.flush());
        assert_eq!(texts(&all), "[hidden input: 7 chars]\r");
    }

    #[test]
    fn unanswered_password_is_masked_after_grace_or_flush() {
        let mut m = InputMasker::new();
        assert!(m.input(1.0, b"secret\r").is_empty());
        let out = m.input(1.0 + ENTER_GRACE_SECS, b"\x03");
        assert_eq!(texts(&out), "[hidden input: 6 chars]\r\u{3}");
        let mut m = InputMasker::new();
        assert!(m.input(1.0, b"secret").is_empty());
        assert_eq!(texts(&m.flush()), "[hidden input: 6 chars]");
    }

    #[test]
    fn echoed_command_is_clear() {
        let mut m = InputMasker::new();
        let mut all = Vec::new();
        for (i, b) in b"ls -la".iter().enumerate() {
            all.extend(m.input(i as f64, &[*b]));
            all.extend(m.output(&[*b]));
        }
        assert!(all.is_empty());
        all.extend(m.input(7.0, b"\r"));
        assert_eq!(texts(&all), "ls -la\r");
        assert_eq!(all.first().map(|e| e.0), Some(0.0));
        assert!(m.output(b"\r\ntotal 0\r\n").is_empty());
    }

    #[test]
    fn pasted_lines_wait_for_their_echo() {
        let mut m = InputMasker::new();
        assert!(m.input(1.0, b"ls -la\rpwd\r").is_empty());
        let out = m.output(b"\x1b[32mls\x1b[0m -la\r\npwd\r\n/home\r\n");
        assert_eq!(texts(&out), "ls -la\rpwd\r");
    }

    #[test]
    fn control_keys_are_released_in_order() {
        let mut m = InputMasker::new();
        assert_eq!(texts(&m.input(1.0, b"\x1b[A")), "\x1b[A");
        assert!(m.output(b"echo hi").is_empty());
        let out = m.input(2.0, b"ab\x03");
        assert!(out.is_empty(), "ab not echoed yet: {out:?}");
        let out = m.output(b"ab");
        assert_eq!(texts(&out), "ab\u{3}");
    }

    #[test]
    fn backspace_and_utf8_are_kept_in_clear() {
        let mut m = InputMasker::new();
        assert!(m.input(1.0, "héx\x7f".as_bytes()).is_empty());
        assert!(m.output("hé".as_bytes()).is_empty());
        assert_eq!(texts(&m.input(2.0, b"\r")), "héx\x7f\r");
    }

    #[test]
    fn escape_lengths() {
        assert_eq!(escape_len(b"\x1b"), 1);
        assert_eq!(escape_len(b"\x1bx"), 2);
        assert_eq!(escape_len(b"\x1bOA"), 3);
        assert_eq!(escape_len(b"\x1b[1;5Arest"), 6);
        assert_eq!(escape_len(b"\x1b[12"), 4);
    }
}
