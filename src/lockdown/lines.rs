//! Rebuilds the command lines a user types from keystrokes, the way a line
//! editor would for the plain keys: printable characters, backspace, Ctrl-U,
//! Ctrl-W, Ctrl-C; escape sequences (arrows, function keys) are dropped. A
//! rule sees what was typed, not what a shell's history expansion made of it.

/// Longest line kept; longer input is cut (a rule still sees its start).
const MAX_LINE: usize = 4096;

#[derive(Debug, Default)]
pub struct LineAssembler {
    line: String,
    escape: Escape,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Start,
    /// Inside a CSI or SS3 sequence, until its final byte.
    Sequence,
}

impl LineAssembler {
    /// Feeds typed text; returns the lines it completed.
    pub fn feed(&mut self, text: &str) -> Vec<String> {
        let mut done = Vec::new();
        for c in text.chars() {
            if self.in_escape(c) {
                continue;
            }
            match c {
                '\r' | '\n' => {
                    let line = std::mem::take(&mut self.line);
                    if !line.trim().is_empty() {
                        done.push(line);
                    }
                }
                '\u{7f}' | '\u{8}' => {
                    self.line.pop();
                }
                '\u{15}' | '\u{3}' => self.line.clear(),
                '\u{17}' => self.delete_word(),
                '\u{1b}' => self.escape = Escape::Start,
                c if c.is_control() => {}
                c if self.line.len() < MAX_LINE => self.line.push(c),
                _ => {}
            }
        }
        done
    }

    fn in_escape(&mut self, c: char) -> bool {
        match self.escape {
            Escape::None => false,
            Escape::Start => {
                self.escape = if c == '[' || c == 'O' {
                    Escape::Sequence
                } else {
                    Escape::None
                };
                true
            }
            Escape::Sequence => {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    self.escape = Escape::None;
                }
                true
            }
        }
    }

    fn delete_word(&mut self) {
        let kept = self.line.trim_end().len();
        self.line.truncate(kept);
        let cut = self.line.rfind(' ').map_or(0, |i| i + 1);
        self.line.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_rebuilt_from_keystrokes() {
        let mut a = LineAssembler::default();
        let cases: [(&str, &[&str]); 7] = [
            ("ls -l\r", &["ls -l"]),
            ("rm -rf /tmpx\u{7f}\u{7f}\u{7f}\u{7f}\r", &["rm -rf /"]),
            ("echo hi\u{15}whoami\r", &["whoami"]),
            ("cat /etc/passwd \u{17}id\r", &["cat id"]),
            ("sudo\u{1b}[Ds\u{1b}OA\u{1b}[1;5C\r", &["sudos"]),
            ("a\rb\r\r", &["a", "b"]),
            ("abc\u{3}pwd\n", &["pwd"]),
        ];
        for (typed, want) in cases {
            assert_eq!(a.feed(typed), want, "{typed:?}");
        }
    }

    #[test]
    fn split_input_joins_across_calls() {
        let mut a = LineAssembler::default();
        assert!(a.feed("rm -r").is_empty());
        assert!(a.feed("f /").is_empty());
        assert_eq!(a.feed("\r"), ["rm -rf /"]);
    }
}
