//! What `replay` and `watch` let through to the auditor's terminal.
//!
//! A recording holds whatever the recorded user's programs printed, so it is
//! untrusted input to the auditor's terminal: OSC can set the window title or
//! write the clipboard (OSC 52), DCS/APC/PM/SOS reach terminal extensions,
//! and requests (device attributes, status reports, window reports) make the
//! terminal type answers into the auditor's own input. The filter keeps what
//! a replay needs — text, SGR colours, cursor movement, erasing, scrolling,
//! the alternate screen, charset selection for line drawing — and drops every
//! other control, by an allow list. It is a state machine fed chunk by chunk
//! (a sequence can span two events) and gives the same output however the
//! input is split.

/// Longest control string (OSC, DCS, ...) swallowed before it is treated as
/// unterminated: past it the rest shows as text, so one unterminated `ESC ]`
/// cannot hide the remainder of a session from the auditor.
pub const MAX_STRING: usize = 4096;
/// Longest CSI parameter text kept; longer sequences are dropped whole.
const MAX_CSI: usize = 64;

const ESC: char = '\x1b';
const BEL: char = '\x07';
const CAN: char = '\x18';
const SUB: char = '\x1a';
/// The 8-bit (C1) controls as they appear in UTF-8 text.
const C1_DCS: char = '\u{90}';
const C1_SOS: char = '\u{98}';
const C1_CSI: char = '\u{9b}';
const C1_ST: char = '\u{9c}';
const C1_OSC: char = '\u{9d}';
const C1_PM: char = '\u{9e}';
const C1_APC: char = '\u{9f}';

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Ground,
    /// After ESC.
    Esc,
    /// After ESC and an intermediate byte (`(`, `#`, ...).
    EscInter(char),
    /// Collecting a CSI's parameters and intermediates.
    Csi,
    /// Inside a control string (OSC, DCS, APC, PM, SOS): dropped.
    Str,
    /// Inside a control string, just after an ESC (maybe the start of ST).
    StrEsc,
}

/// Streaming filter; keep one per output stream.
#[derive(Debug, Default, Clone)]
pub struct TermFilter {
    state: State,
    csi: String,
    csi_overflow: bool,
    str_len: usize,
}

impl TermFilter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends what may be shown of `input` to `out`.
    pub fn push(&mut self, input: &str, out: &mut String) {
        for c in input.chars() {
            self.step(c, out);
        }
    }

    /// `push` into a new string.
    pub fn filter(&mut self, input: &str) -> String {
        let mut out = String::with_capacity(input.len());
        self.push(input, &mut out);
        out
    }

    fn step(&mut self, c: char, out: &mut String) {
        match self.state {
            State::Ground => self.ground(c, out),
            State::Esc => self.esc(c, out),
            State::EscInter(i) => {
                self.state = State::Ground;
                if esc_inter_allowed(i, c) {
                    out.extend([ESC, i, c]);
                } else if c == ESC {
                    self.state = State::Esc;
                }
            }
            State::Csi => self.csi(c, out),
            State::Str | State::StrEsc => self.string(c, out),
        }
    }

    fn ground(&mut self, c: char, out: &mut String) {
        match c {
            ESC => self.state = State::Esc,
            C1_CSI => self.start_csi(),
            C1_OSC | C1_DCS | C1_SOS | C1_PM | C1_APC => self.start_string(),
            '\t' | '\n' | '\r' | '\x08' | BEL => out.push(c),
            // Other C0 controls (charset shifts, ENQ's answerback, ...),
            // DEL and the remaining C1 controls.
            c if c.is_control() => {}
            c => out.push(c),
        }
    }

    fn esc(&mut self, c: char, out: &mut String) {
        self.state = State::Ground;
        match c {
            '[' => self.start_csi(),
            ']' | 'P' | 'X' | '^' | '_' => self.start_string(),
            // Save/restore cursor, index, next line, reverse index, keypad
            // modes, set tab stop.
            '7' | '8' | 'D' | 'E' | 'M' | '=' | '>' | 'H' => out.extend([ESC, c]),
            '(' | ')' | '*' | '+' | '-' | '.' | '/' | '#' | ' ' | '%' => {
                self.state = State::EscInter(c)
            }
            ESC => self.state = State::Esc,
            // RIS, DECID (answers), single shifts, anything else: dropped.
            _ => {}
        }
    }

    fn start_csi(&mut self) {
        self.state = State::Csi;
        self.csi.clear();
        self.csi_overflow = false;
    }

    fn start_string(&mut self) {
        self.state = State::Str;
        self.str_len = 0;
    }

    fn csi(&mut self, c: char, out: &mut String) {
        match c {
            '\x20'..='\x3f' => {
                if self.csi.len() < MAX_CSI {
                    self.csi.push(c);
                } else {
                    self.csi_overflow = true;
                }
            }
            '\x40'..='\x7e' => {
                self.state = State::Ground;
                if !self.csi_overflow && csi_allowed(&self.csi, c) {
                    out.push(ESC);
                    out.push('[');
                    out.push_str(&self.csi);
                    out.push(c);
                }
            }
            ESC => self.state = State::Esc,
            CAN | SUB => self.state = State::Ground,
            // A control inside the sequence: the sequence is dropped and the
            // control judged on its own.
            c => {
                self.state = State::Ground;
                self.ground(c, out);
            }
        }
    }

    fn string(&mut self, c: char, out: &mut String) {
        self.str_len += 1;
        let after_esc = self.state == State::StrEsc;
        self.state = State::Str;
        match c {
            BEL | C1_ST => self.state = State::Ground,
            '\\' if after_esc => self.state = State::Ground,
            CAN | SUB => self.state = State::Ground,
            ESC => self.state = State::StrEsc,
            // ESC then anything but `\` ends the string and starts a new sequence.
            c if after_esc => {
                self.state = State::Esc;
                self.esc(c, out);
            }
            _ if self.str_len > MAX_STRING => {
                self.state = State::Ground;
                self.ground(c, out);
            }
            _ => {}
        }
    }
}

/// `ESC I F`: charset designations (line drawing) and double-size lines.
/// Not 7/8-bit control switching (`ESC SP F/G`), not `ESC % @` (leaving
/// UTF-8), not `ESC # 8` (fills the screen).
fn esc_inter_allowed(i: char, c: char) -> bool {
    match i {
        '(' | ')' | '*' | '+' | '-' | '.' | '/' => c.is_ascii_alphanumeric() || "<>=`".contains(c),
        '#' => matches!(c, '3'..='6'),
        _ => false,
    }
}

/// Private modes a replay may switch: cursor keys, reverse video, origin,
/// autowrap, blinking and visible cursor, the alternate screen, synchronised
/// output. Not mouse or focus reporting, bracketed paste or anything else
/// that changes what the auditor's terminal sends.
const PRIVATE_MODES: &[u32] = &[1, 5, 6, 7, 12, 25, 47, 1047, 1048, 1049, 2026];

fn csi_allowed(params: &str, fin: char) -> bool {
    let (private, rest) = match params.chars().next() {
        Some(p @ ('?' | '>' | '<' | '=')) => (Some(p), &params[1..]),
        _ => (None, params),
    };
    // Cursor shape (`CSI n SP q`) is the one sequence with an intermediate.
    if private.is_none() && fin == 'q' {
        return rest.strip_suffix(' ').is_some_and(all_numeric);
    }
    if !all_numeric(rest) {
        return false;
    }
    match private {
        None => match fin {
            // SGR, cursor movement and position, erase, insert/delete,
            // scrolling and the scroll region, save/restore, tabs.
            'm' | 'A' | 'B' | 'C' | 'D' | 'E' | 'F' | 'G' | 'H' | 'f' | 'd' | 'e' | 'a' | '`'
            | 'J' | 'K' | 'L' | 'M' | 'P' | '@' | 'X' | 'S' | 'T' | 'r' | 's' | 'u' | 'I' | 'Z'
            | 'g' => true,
            // Repeat the last character: bounded, or one line could print millions.
            'b' => rest.len() <= 3,
            // Insert mode only.
            'h' | 'l' => rest == "4",
            // Device attributes and status reports answer into the auditor's
            // input; window operations report the title; media copy prints.
            _ => false,
        },
        Some('?') => match fin {
            'h' | 'l' => rest
                .split(';')
                .all(|m| m.parse::<u32>().is_ok_and(|m| PRIVATE_MODES.contains(&m))),
            'J' | 'K' => true,
            _ => false,
        },
        // `>`/`<`/`=`: keyboard protocols and queries of the terminal itself.
        _ => false,
    }
}

fn all_numeric(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_digit() || c == ';' || c == ':')
}

/// One line of text with every control shown as caret or `\u{..}` notation,
/// for markers (command lines, paths chosen by the client) that are printed
/// whole inside replay's own formatting.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\x00'..='\x1f' => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}
