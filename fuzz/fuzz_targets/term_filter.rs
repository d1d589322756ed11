//! `replay` and `watch` pass recorded output (anything a recorded user's
//! programs printed) through `castfile::term::TermFilter` on its way to the
//! auditor's terminal. Any text, split anywhere: no panic, the same output
//! however it is split, and nothing that opens a control string (OSC, DCS,
//! APC, PM, SOS) or asks the terminal to answer.
//! The first byte picks where the input is split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::castfile::term::TermFilter;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let whole = TermFilter::new().filter(&text);
    let mut at = (cut as usize * text.len()) / 256;
    while !text.is_char_boundary(at) {
        at += 1;
    }
    let mut t = TermFilter::new();
    let mut split = t.filter(&text[..at]);
    split.push_str(&t.filter(&text[at..]));
    assert_eq!(whole, split, "output depends on where the input was split");
    for opener in ["\x1b]", "\x1bP", "\x1b_", "\x1b^", "\x1bX", "\x1bZ", "\x1bc", "\x1b[c", "\x1b[6n"] {
        assert!(!whole.contains(opener), "{opener:?} passed: {whole:?}");
    }
    for c1 in '\u{80}'..='\u{9f}' {
        assert!(!whole.contains(c1), "C1 control {c1:?} passed");
    }
    // Every ESC left opens a sequence from the allow list: a CSI ending in
    // an allowed final, or a two- or three-byte escape.
    for (i, _) in whole.match_indices('\x1b') {
        let next = whole[i + 1..].chars().next();
        assert!(
            matches!(next, Some('[' | '7' | '8' | 'D' | 'E' | 'M' | '=' | '>' | 'H' | '(' | ')' | '*' | '+' | '-' | '.' | '/' | '#')),
            "ESC {next:?} passed: {whole:?}"
        );
    }
});
