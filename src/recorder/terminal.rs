//! A channel with a pty: input is keystrokes, output is what the terminal
//! shows. Keystrokes are recorded as the masker releases them (masked where
//! the target did not echo them, e.g. after `stty -echo`), but the lockdown
//! rules see the typed lines in clear: what the recording must not show is
//! still what a rule must judge.

use crate::castfile::{InputMasker, Utf8Carry};
use crate::lockdown::LineAssembler;

pub(crate) struct Terminal {
    masker: InputMasker,
    /// Typed lines for the lockdown rules (only when rules exist).
    lines: Option<Typed>,
}

/// Rebuilds command lines from the raw keystrokes.
#[derive(Default)]
struct Typed {
    carry: Utf8Carry,
    lines: LineAssembler,
}

impl Terminal {
    pub fn new(rules: bool) -> Self {
        Terminal {
            masker: InputMasker::default(),
            lines: rules.then(Typed::default),
        }
    }

    /// Keystrokes: the input events to record now (masked where not
    /// echoed), and the lines they completed, in clear, for the rules.
    pub fn input(&mut self, at: f64, b: &[u8]) -> (Vec<(f64, String)>, Vec<String>) {
        let released = self.masker.input(at, b);
        let lines = match self.lines.as_mut() {
            Some(t) => {
                let text = t.carry.decode(b);
                t.lines.feed(&text)
            }
            None => Vec::new(),
        };
        (released, lines)
    }

    /// Terminal output: the input events its echo (or its absence) decided.
    pub fn output(&mut self, b: &[u8]) -> Vec<(f64, String)> {
        self.masker.output(b)
    }

    /// At the end: what the masker still held, decided.
    pub fn flush(&mut self) -> Vec<(f64, String)> {
        self.masker.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_typed_without_echo_is_masked_but_seen_by_the_rules() {
        // After `stty -echo` the target echoes nothing: the recording masks
        // the line, and the rules used to get that masked text.
        let mut t = Terminal::new(true);
        let (_, lines) = t.input(1.0, b"rm -r");
        assert!(lines.is_empty());
        let (_, lines) = t.input(1.1, b"f /srv\r");
        assert_eq!(lines, ["rm -rf /srv"]);
        let mut recorded: Vec<String> = t.output(b"\r\n$ ").into_iter().map(|e| e.1).collect();
        recorded.extend(t.flush().into_iter().map(|e| e.1));
        let recorded = recorded.concat();
        assert!(!recorded.contains("rm"), "{recorded}");
        assert!(recorded.contains("[hidden input: 11 chars]"), "{recorded}");
    }

    #[test]
    fn echoed_keystrokes_are_recorded_in_clear() {
        let mut t = Terminal::new(false);
        let (released, lines) = t.input(1.0, b"ls\r");
        assert!(lines.is_empty(), "no rules, no lines");
        let mut recorded: Vec<String> = released.into_iter().map(|e| e.1).collect();
        recorded.extend(t.output(b"ls\r\n").into_iter().map(|e| e.1));
        assert_eq!(recorded.concat(), "ls\r");
    }
}
