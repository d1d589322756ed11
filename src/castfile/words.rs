//! Words for the search index: runs of letters, digits, `_`, `.`, `/`, `-`,
//! lower-cased, 2 to 64 characters, and the parts of each run between `.`,
//! `/` and `-` (so `cat /etc/passwd` is found by `passwd`, and a marker's
//! `/root/pc-denied` by `pc-denied`). A pattern's parts must all be in a
//! recording for it to be opened; the exact pattern is then matched in full.
//! A fragment of a word (`assw`) is not a part: `sessions search --scan`
//! opens every recording instead.

use super::{CastReader, EventKind, Result};
use std::collections::{BTreeSet, HashSet};
use std::path::Path;

pub const MAX_WORDS: usize = 20_000;
/// Text read per recording for the index; the rest is still searched by scan
/// when a recording is a candidate, but words only there are not indexed.
pub const MAX_INDEXED_BYTES: usize = 64 << 20;

fn is_joiner(c: char) -> bool {
    matches!(c, '.' | '-' | '/')
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || is_joiner(c)
}

/// [`is_joiner`] for a byte: `-`, `.` and `/` are adjacent in ASCII.
const fn is_joiner_byte(b: u8) -> bool {
    b.wrapping_sub(b'-') < 3
}

/// [`is_word`] for an ASCII byte (the same answer as for its char), by
/// comparisons rather than a table, so that a fold over a block of bytes
/// vectorises (a table lookup per byte does not).
const fn is_word_byte(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 10)
        | ((b | 0x20).wrapping_sub(b'a') < 26)
        | is_joiner_byte(b)
        | (b == b'_')
}

fn runs(text: &str) -> impl Iterator<Item = &str> + '_ {
    Runs { rest: text }.map(|w| w.trim_matches(is_joiner))
}

/// The maximal non-empty runs of word characters, as
/// `text.split(|c| !is_word(c))` less its empty pieces, but ASCII is
/// judged byte by byte (the index reads up to 64 MiB per recording: the
/// char-by-char split was a quarter of its time).
struct Runs<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Runs<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        while !self.rest.is_empty() {
            let (len, sep) = word_prefix(self.rest);
            let (w, after) = self.rest.split_at(len);
            self.rest = after.get(sep..).unwrap_or_default();
            if !w.is_empty() {
                return Some(w);
            }
        }
        None
    }
}

/// [`is_word_byte`] of every byte, as a table (false from 0x80: not ASCII).
const WORD_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 128 {
        table[i] = is_word_byte(i as u8);
        i += 1;
    }
    table
};

/// ASCII word bytes skipped in blocks before the byte-by-byte loop.
const WORD_BLOCK: usize = 16;

/// How many bytes `bytes` starts with in whole [`WORD_BLOCK`]s of ASCII
/// word bytes. Long runs (paths, hashes, `base64`) were judged byte by
/// byte: a third of the index's time on `base64` output.
fn word_blocks(bytes: &[u8]) -> usize {
    let mut at = 0;
    for block in bytes.chunks_exact(WORD_BLOCK) {
        if !block.iter().fold(true, |all, &b| all & is_word_byte(b)) {
            break;
        }
        at += WORD_BLOCK;
    }
    at
}

/// The length of the run of word characters `s` starts with, and the
/// length of the separator after it (0 at the end of `s`).
fn word_prefix(s: &str) -> (usize, usize) {
    let bytes = s.as_bytes();
    let mut i = word_blocks(bytes);
    while let Some(&b) = bytes.get(i) {
        if b < 0x80 {
            if !WORD_BYTE.get(usize::from(b)).copied().unwrap_or(false) {
                return (i, 1);
            }
            i += 1;
        } else {
            // `i` is on a char boundary: only whole chars are stepped over.
            let Some(c) = s.get(i..).and_then(|t| t.chars().next()) else {
                break;
            };
            if !is_word(c) {
                return (i, c.len_utf8());
            }
            i += c.len_utf8();
        }
    }
    (bytes.len(), 0)
}

/// Whether a term of 2 to 64 characters; chars are counted only where
/// the byte length cannot tell.
fn keep(w: &str) -> bool {
    match w.len() {
        0 | 1 => false,
        // Two bytes or more: one char only if it is one wide char.
        2..=4 => w.chars().nth(1).is_some(),
        5..=64 => true,
        // More than 64 chars for certain past 256 bytes.
        65..=256 => !w.is_ascii() && w.chars().count() <= 64,
        _ => false,
    }
}

/// Index terms of `text`: every whole run and every part of it.
pub fn split(text: &str) -> impl Iterator<Item = String> + '_ {
    terms(text).map(str::to_lowercase)
}

/// [`split`]'s terms before lower-casing.
fn terms(text: &str) -> impl Iterator<Item = &str> + '_ {
    runs(text)
        .flat_map(|w| {
            // A run without a joiner is its only part (and is not repeated).
            // A fold, not `any`: it vectorises, and most runs have none.
            let joined = w.bytes().fold(false, |any, b| any | is_joiner_byte(b));
            let parts = joined
                .then(|| w.split(is_joiner).filter(move |p| *p != w))
                .into_iter()
                .flatten();
            std::iter::once(w).chain(parts)
        })
        .filter(|w| keep(w))
}

/// What a recording's index must hold for `pattern` to be in it: the parts
/// of its words (each also indexed on its own, see [`split`]).
pub fn query(pattern: &str) -> impl Iterator<Item = String> + '_ {
    runs(pattern)
        .flat_map(|w| w.split(is_joiner))
        .filter(|w| keep(w))
        .map(str::to_lowercase)
}

/// The distinct words of a recording's output and input, and whether they
/// are all of them (false when a cap stopped the reading: such a recording
/// must still be scanned by every search).
///
/// Output and input are read as streams with escape sequences removed, as
/// the search matches them: a pty echoes each keystroke as its own event
/// and colour codes touch the words they paint (`ESC[31mword`), so words
/// taken event by event from the raw text missed what was typed or shown
/// in colour, and the index then kept the search from opening the file.
pub fn of_cast(path: &Path) -> Result<(BTreeSet<String>, bool)> {
    let mut words = Words::default();
    let mut read = 0usize;
    let (mut out, mut input) = (Stream::default(), Stream::default());
    for ev in CastReader::open(path)? {
        let ev = ev?;
        let stream = match ev.kind {
            EventKind::Output => &mut out,
            EventKind::Input => &mut input,
            // A marker is whole: its words are its own.
            EventKind::Marker => {
                read += ev.data.len();
                words.extend_from(&ev.data);
                continue;
            }
            _ => continue,
        };
        read += ev.data.len();
        stream.push(&ev.data, &mut words);
        if words.len() >= MAX_WORDS || read >= MAX_INDEXED_BYTES {
            return Ok((words.into_sorted(), false));
        }
    }
    out.finish(&mut words);
    input.finish(&mut words);
    Ok((words.into_sorted(), true))
}

/// The distinct terms, lower-cased. A term already seen (most of them in
/// a long recording) costs a hash lookup, no allocation: a `BTreeSet` of
/// lower-cased `String`s cost an allocation and a tree walk per term,
/// most of the index's time on text with many words (issue 20). Sorted
/// once at the end.
#[derive(Default)]
struct Words {
    /// foldhash, not SipHash: hashing each term was a sixth of the index's
    /// time on text with many words. Still seeded at random per process,
    /// and the set is capped at [`MAX_WORDS`].
    set: HashSet<String, foldhash::fast::RandomState>,
    /// The lower-cased term, reused.
    lower: String,
}

impl Words {
    fn len(&self) -> usize {
        self.set.len()
    }

    fn extend_from(&mut self, text: &str) {
        for term in terms(text) {
            self.add(term);
        }
    }

    fn add(&mut self, term: &str) {
        let key = if !term.is_ascii() {
            self.lower = term.to_lowercase();
            self.lower.as_str()
        } else if term
            .bytes()
            .fold(false, |any, b| any | b.is_ascii_uppercase())
        {
            self.lower.clear();
            self.lower.push_str(term);
            self.lower.make_ascii_lowercase();
            self.lower.as_str()
        } else {
            term
        };
        if !self.set.contains(key) {
            self.set.insert(key.to_owned());
        }
    }

    fn into_sorted(self) -> BTreeSet<String> {
        self.set.into_iter().collect()
    }
}

/// Longest unfinished run carried from one event to the next (a word is
/// at most 64 characters; a path of several parts can be longer).
const CARRY: usize = 1024;

/// One direction's text across events: the run not yet ended, and the
/// state of an escape sequence cut between events.
#[derive(Default)]
struct Stream {
    carry: String,
    escape: Escape,
    /// The carry and the next event without escapes, reused: a fresh
    /// `String` per event grew (and was copied) several times per event.
    text: String,
}

impl Stream {
    fn push(&mut self, data: &str, words: &mut Words) {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        text.reserve(self.carry.len() + data.len());
        text.push_str(&self.carry);
        self.escape.strip_into(data, &mut text);
        // Words up to the last separator are complete; the rest may go on.
        let end = text
            .char_indices()
            .rev()
            .find(|(_, c)| !is_word(*c))
            .map(|(i, c)| i + c.len_utf8());
        self.carry.clear();
        match end {
            Some(end) => {
                words.extend_from(&text[..end]);
                self.carry.push_str(&text[end..]);
            }
            None => self.carry.push_str(&text),
        }
        self.text = text;
        if self.carry.len() > CARRY {
            words.extend_from(&self.carry);
            self.carry.clear();
        }
    }

    fn finish(&mut self, words: &mut Words) {
        words.extend_from(&self.carry);
        self.carry.clear();
    }
}

/// How many bytes `b` starts with that are printable ASCII. Blocks of 32
/// are judged whole first (a comparison the compiler vectorises; the
/// byte-by-byte search was a fifth of the index's time on plain text).
fn printable_prefix(b: &[u8]) -> usize {
    let printable = |c: &u8| (0x20..0x7f).contains(c);
    let mut at = 0;
    for block in b.chunks_exact(32) {
        if !block.iter().fold(true, |all, c| all & printable(c)) {
            break;
        }
        at += 32;
    }
    let rest = b.get(at..).unwrap_or_default();
    at + rest
        .iter()
        .position(|c| !printable(c))
        .unwrap_or(rest.len())
}

/// Where an escape sequence being removed stands.
#[derive(Default, Clone, Copy, PartialEq)]
enum Escape {
    #[default]
    Text,
    /// After ESC.
    Esc,
    /// In a CSI, up to its final byte.
    Csi,
    /// One character more (after `ESC (` and the like).
    One,
    /// In an OSC/DCS/APC/PM/SOS string, up to BEL or ESC \.
    Str,
    /// ESC inside a string (the start of ST, or not).
    StrEsc,
}

impl Escape {
    /// Appends `data` to `out` without escape sequences; a control
    /// character becomes a space (a separator).
    fn strip_into(&mut self, data: &str, out: &mut String) {
        let mut rest = data;
        loop {
            if *self == Escape::Text {
                // Printable ASCII, the bulk of any text, goes through whole.
                let n = printable_prefix(rest.as_bytes());
                let (plain, after) = rest.split_at(n);
                out.push_str(plain);
                rest = after;
            }
            let mut chars = rest.chars();
            let Some(c) = chars.next() else {
                return;
            };
            rest = chars.as_str();
            self.step(c, out);
        }
    }

    /// One character through the state machine.
    fn step(&mut self, c: char, out: &mut String) {
        *self = match (*self, c) {
            (Escape::Text, '\x1b') => Escape::Esc,
            (Escape::Text, c) if c.is_control() => {
                out.push(' ');
                Escape::Text
            }
            (Escape::Text, c) => {
                out.push(c);
                Escape::Text
            }
            (Escape::Esc, '[') => Escape::Csi,
            (Escape::Esc, ']' | 'P' | '_' | '^' | 'X') => Escape::Str,
            // Charset selection and the like: one more character.
            (Escape::Esc, '(' | ')' | '*' | '+' | '#' | '%') => Escape::One,
            (Escape::One, _) => Escape::Text,
            (Escape::Esc, _) => Escape::Text,
            (Escape::Csi, c) if ('\x40'..='\x7e').contains(&c) => Escape::Text,
            (Escape::Csi, c) if c.is_control() => Escape::Text,
            (Escape::Csi, _) => Escape::Csi,
            (Escape::Str | Escape::StrEsc, '\x07') => Escape::Text,
            (Escape::Str | Escape::StrEsc, '\x1b') => Escape::StrEsc,
            (Escape::StrEsc, '\\') => Escape::Text,
            (Escape::Str | Escape::StrEsc, _) => Escape::Str,
        };
    }
}

/// A terminal stream without its escape sequences, event after event (a
/// sequence may be cut between two): what the index and the search read.
#[derive(Default)]
pub struct Unescape(Escape);

impl Unescape {
    /// Appends `data` to `out` without escape sequences; a control
    /// character becomes a space.
    pub fn push(&mut self, data: &str, out: &mut String) {
        self.0.strip_into(data, out);
    }
}

/// `text` without escape sequences (controls become spaces).
pub fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    Escape::default().strip_into(text, &mut out);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn splitting() {
        let w: Vec<String> = super::split("$ rm -rf /var/tmp/xy; echo Done.").collect();
        assert_eq!(
            w,
            vec!["rm", "rf", "var/tmp/xy", "var", "tmp", "xy", "echo", "done"]
        );
        let q: Vec<String> = super::query("/etc/passwd pc-denied").collect();
        assert_eq!(q, vec!["etc", "passwd", "pc", "denied"]);
        // Every query term of a text is among its index terms.
        let text = "cat /etc/pass-wd.d/x_y Ab.c";
        let index: Vec<String> = super::split(text).collect();
        assert!(super::query(text).all(|q| index.contains(&q)), "{index:?}");
    }

    /// The definitions the fast paths replaced, char by char.
    fn split_by_chars(text: &str) -> std::collections::BTreeSet<String> {
        text.split(|c: char| !(c.is_alphanumeric() || c == '_' || super::is_joiner(c)))
            .map(|w| w.trim_matches(super::is_joiner))
            .flat_map(|w| {
                let parts = w.split(super::is_joiner).filter(move |p| *p != w);
                std::iter::once(w).chain(parts)
            })
            .filter(|w| (2..=64).contains(&w.chars().count()))
            .map(str::to_lowercase)
            .collect()
    }

    fn strip_by_chars(text: &str) -> String {
        let mut out = String::new();
        let mut e = super::Escape::default();
        for c in text.chars() {
            e.step(c, &mut out);
        }
        out
    }

    #[test]
    fn word_byte_comparisons_match_the_char_definitions() {
        for b in 0..=u8::MAX {
            let ascii = b < 0x80;
            assert_eq!(
                super::WORD_BYTE[usize::from(b)],
                ascii && super::is_word(char::from(b)),
                "byte {b:#x}"
            );
            assert_eq!(
                super::is_joiner_byte(b),
                ascii && super::is_joiner(char::from(b)),
                "byte {b:#x}"
            );
            if ascii {
                assert_eq!(super::is_word_byte(b), super::is_word(char::from(b)));
            }
        }
    }

    #[test]
    fn fast_paths_index_the_same_words_as_the_char_loops() {
        let samples = [
            "",
            "a",
            "ab",
            "$ rm -rf /var/tmp/xy; echo Done.",
            "..a..b../-c-/ ÄÖÜ straße/ünïcödé x\u{85}y\u{a0}z _under_score_",
            "日本語のテキスト/パス.txt ٣٤٥ ⅷ ǅungla",
            "\x1b[01;31mRED\x1b[0m \x1b]0;title\x07tail \x1b(0q\x1bP1$r\x1b\\end \u{9b}31m",
        ];
        let mut long = String::new();
        for i in 0..300 {
            long.push(char::from(b'a' + (i % 26) as u8));
        }
        // Byte lengths either side of 64 and 256, chars either side of 64.
        let wide = [
            "é".repeat(40),
            "é".repeat(70),
            "ǅ".into(),
            "日本".into(),
            "x".repeat(80),
        ]
        .join(" ");
        let mut x: u32 = 9;
        let mut random = String::new();
        for _ in 0..50_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let pick = "aZ9_.-/ \n\t\x1b[];é✓日\u{85}\u{7f}+=:\u{1b}P\\\u{7}";
            let chars: Vec<char> = pick.chars().collect();
            random.push(chars[(x >> 16) as usize % chars.len()]);
        }
        for s in samples
            .iter()
            .copied()
            .chain([long.as_str(), random.as_str(), wide.as_str()])
        {
            let fast: std::collections::BTreeSet<String> = super::split(s).collect();
            assert_eq!(fast, split_by_chars(s), "{s:?}");
            // The set lower-cases in place (ASCII) or as `to_lowercase`.
            let mut words = super::Words::default();
            words.extend_from(s);
            assert_eq!(words.into_sorted(), fast, "{s:?}");
            assert_eq!(super::strip_escapes(s), strip_by_chars(s), "{s:?}");
            // Cut anywhere (an escape split between events): the same.
            for cut in (0..s.len()).filter(|&c| s.is_char_boundary(c)).step_by(97) {
                let mut e = super::Escape::default();
                let mut out = String::new();
                e.strip_into(&s[..cut], &mut out);
                e.strip_into(&s[cut..], &mut out);
                assert_eq!(out, strip_by_chars(s));
            }
        }
    }

    #[test]
    fn typed_keys_and_coloured_words_are_indexed() {
        use super::*;
        let mut words = Words::default();
        let mut s = Stream::default();
        // A pty echo: one event per key, then colour around a word.
        for k in "echo ZEBRA-42\r\n".chars() {
            s.push(&k.to_string(), &mut words);
        }
        s.push("\x1b[01;31mRED", &mut words);
        s.push("WORD\x1b[0m \x1b]0;title-text\x07tail", &mut words);
        s.finish(&mut words);
        let words = words.into_sorted();
        for w in ["echo", "zebra-42", "zebra", "redword", "tail"] {
            assert!(words.contains(w), "{w} not in {words:?}");
        }
        assert!(
            !words
                .iter()
                .any(|w| w.contains("title") || w.contains("31m")),
            "{words:?}"
        );
        assert!(query("ZEBRA-42").all(|q| words.contains(&q)));
        assert_eq!(strip_escapes("a\x1b[1mb\x1b(0c\x1bP1$r\x1b\\d"), "abcd");
    }
}
