//! Binary bytes inside a text stream: the output of a non-interactive exec
//! (`ssh host 'tar c /etc' > etc.tar`, `pg_dump -Fc`) or its piped stdin.
//! Their bytes are not terminal text (asciicast would store a NUL as six
//! bytes and no player can show it), so a binary run is logged like a
//! transfer: a marker where it starts, and where it ends its size, checksum
//! (BLAKE3, see `checksum`) and a preview of the printable strings in it.
//!
//! A binary run never hides what follows it: text after it is recorded
//! again. The switch back has hysteresis so that real binary (archives,
//! images, compressed data) stays one run instead of thousands of events:
//! a run ends only at [`TEXT_RUN`] bytes of terminal text, or at
//! [`TEXT_LINE`] bytes of it up to a `'\n'` (a line). In uniformly random
//! bytes a byte is terminal text with probability about 0.43, so such text
//! turns up by chance about once per 10^10 bytes. Short text between binary
//! bytes stays in the run; its printable strings are in the summary.
//!
//! A character split across two chunks is not binary: the incomplete tail
//! of a chunk is held until the next one decides it.

mod strings;

use super::checksum::Checksum;
use strings::Strings;

/// Terminal text this long ends a binary run.
pub const TEXT_RUN: usize = 64;
/// Terminal text this long up to a `'\n'` (included) ends a binary run.
pub const TEXT_LINE: usize = 24;
/// Printable strings kept per binary run, for its summary.
pub const PREVIEW_BYTES: usize = 2048;
/// Shortest printable string kept (as `strings(1)`).
pub const MIN_STRING: usize = 4;

/// What a [`Segmenter`] decided about the bytes it was given, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Whole UTF-8 text (never an incomplete character) to record as it
    /// is. Already validated here: the writer takes it without a second pass.
    Text(&'a str),
    /// A binary run starts here; the text is the start marker's.
    Started(String),
    /// The binary run ended here.
    Ended(RunSummary),
}

/// A finished binary run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    label: &'static str,
    pub bytes: u64,
    /// `blake3 HEX`.
    pub checksum: String,
    /// Printable strings found in the run, `" | "` between them.
    pub strings: String,
    /// More strings were found than [`PREVIEW_BYTES`] keeps.
    pub strings_cut: bool,
}

impl RunSummary {
    /// The closing marker's text. `with_strings` is false where contents
    /// are not recorded (the strings are contents).
    pub fn line(&self, with_strings: bool) -> String {
        let mut s = format!(
            "binary {}: {} bytes {}",
            self.label, self.bytes, self.checksum
        );
        if with_strings && !self.strings.is_empty() {
            s.push_str("; strings: ");
            s.push_str(&self.strings);
            if self.strings_cut {
                s.push_str(" | …");
            }
        }
        s
    }
}

/// Splits one byte stream into text and summarised binary runs.
pub struct Segmenter {
    /// What the markers call the stream: "output", "stderr", "input".
    label: &'static str,
    /// Bytes not decided yet: in text, an incomplete character at the end
    /// of the last chunk (at most 3 bytes); in a binary run, the text at its
    /// end still too short to end it (under [`TEXT_RUN`] + 3).
    held: Vec<u8>,
    run: Option<Box<Run>>,
    /// Nothing decided yet. If the stream's first chunk turns binary before
    /// its text proved itself (as text must to end a run), the run starts
    /// at byte 0: a binary stream's first bytes are no text fragment. Text
    /// is never held back for this (its time in the recording matters).
    fresh: bool,
}

impl Segmenter {
    pub fn new(label: &'static str) -> Self {
        Segmenter {
            label,
            held: Vec::new(),
            run: None,
            fresh: true,
        }
    }

    /// Takes the next chunk; `out` gets what it decided, in order.
    pub fn push<E>(
        &mut self,
        chunk: &[u8],
        out: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.held.is_empty() {
            return self.scan(chunk, out);
        }
        // Rare in text (a split character), bounded in binary: one copy.
        let mut joined = std::mem::take(&mut self.held);
        joined.extend_from_slice(chunk);
        self.scan(&joined, out)
    }

    /// The stream ended (or its end is near: EOF): held bytes are decided
    /// and an open run is closed. Later bytes start a new decision.
    pub fn finish<E>(&mut self, out: &mut impl FnMut(Piece<'_>) -> Result<(), E>) -> Result<(), E> {
        let held = std::mem::take(&mut self.held);
        match self.run.take() {
            // Short text at the very end of a run stays in it.
            Some(mut run) => {
                run.push(&held);
                out(Piece::Ended(run.summary(self.label)))
            }
            // A character the stream never completed: shown replaced.
            None if !held.is_empty() => out(Piece::Text(&String::from_utf8_lossy(&held))),
            None => Ok(()),
        }
    }

    fn scan<E>(
        &mut self,
        mut rest: &[u8],
        out: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        loop {
            let Some(run) = self.run.as_mut() else {
                let (text, binary) = match text_end(rest) {
                    TextEnd::All(text) | TextEnd::Incomplete(text) => (text, false),
                    TextEnd::Binary(text) => (text, true),
                };
                let after = rest.get(text.len()..).unwrap_or_default();
                if std::mem::take(&mut self.fresh) && binary && !proves_text(text.as_bytes()) {
                    self.start_run(out)?;
                    continue;
                }
                if !text.is_empty() {
                    out(Piece::Text(text))?;
                }
                if !binary {
                    self.held = after.to_vec();
                    return Ok(());
                }
                self.start_run(out)?;
                rest = after;
                continue;
            };
            match text_start(rest) {
                Found::At(at) => {
                    let (binary, text) = split(rest, at);
                    run.push(binary);
                    let summary = run.summary(self.label);
                    self.run = None;
                    out(Piece::Ended(summary))?;
                    rest = text;
                }
                Found::Tail(at) => {
                    let (binary, tail) = split(rest, at);
                    run.push(binary);
                    self.held = tail.to_vec();
                    return Ok(());
                }
            }
        }
    }
}

impl Segmenter {
    fn start_run<E>(&mut self, out: &mut impl FnMut(Piece<'_>) -> Result<(), E>) -> Result<(), E> {
        self.run = Some(Box::default());
        out(Piece::Started(format!(
            "binary {} from here on: counted and hashed, not shown, until text resumes",
            self.label
        )))
    }
}

/// `d` cut at `at` (clamped to its length).
fn split(d: &[u8], at: usize) -> (&[u8], &[u8]) {
    d.split_at(at.min(d.len()))
}

/// The text at the start of a chunk (a prefix of it), and what ends it.
enum TextEnd<'a> {
    /// All of the chunk is text.
    All(&'a str),
    /// Text up to an incomplete character at the end.
    Incomplete(&'a str),
    /// Text up to a binary byte.
    Binary(&'a str),
}

/// Where text stops in `d`: two whole-slice passes (memchr, UTF-8
/// validation), no loop per byte. The validated text is handed on as
/// `&str`, so the writer does not validate it again.
fn text_end(d: &[u8]) -> TextEnd<'_> {
    let nul = memchr::memchr(0, d);
    let before_nul = d.get(..nul.unwrap_or(d.len())).unwrap_or_default();
    let e = match std::str::from_utf8(before_nul) {
        Ok(text) if nul.is_none() => return TextEnd::All(text),
        Ok(text) => return TextEnd::Binary(text),
        Err(e) => e,
    };
    // Not all text (a character cut at the end, or binary): its valid
    // prefix is validated again, once per such chunk. (`utf8_chunks`
    // would not, but it decodes byte by byte: 20x slower on ASCII.)
    let valid = before_nul.get(..e.valid_up_to()).unwrap_or_default();
    let text = std::str::from_utf8(valid).unwrap_or_default();
    if nul.is_none() && e.error_len().is_none() {
        TextEnd::Incomplete(text)
    } else {
        // Invalid, or an incomplete character cut off by a NUL.
        TextEnd::Binary(text)
    }
}

/// Bytes that are never in the terminal text that ends a binary run: NUL,
/// C0 controls a terminal's text does not carry (everything but BEL, BS,
/// TAB, LF, CR, ESC), DEL, and bytes that never occur in UTF-8. Written as
/// comparisons, not a table, so that classifying a block vectorises.
fn not_text(b: u8) -> bool {
    let kept_control = (b.wrapping_sub(0x07) < 4) | (b == b'\r') | (b == 0x1b);
    ((b < 0x20) & !kept_control) | (b == 0x7f) | ((b & 0xfe) == 0xc0) | (b >= 0xf5)
}

#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Text long enough to end the binary run starts here.
    At(usize),
    /// None: the run goes on up to here; what follows is text too short yet
    /// to decide (held for the next chunk).
    Tail(usize),
}

/// Looks for the text that ends a binary run: the first candidate start
/// (see [`candidate`]), then the exact check there.
fn text_start(d: &[u8]) -> Found {
    let mut p = 0;
    while p < d.len() {
        let s = candidate(d, p);
        if s >= d.len() {
            break;
        }
        match good_prefix(d.get(s..).unwrap_or_default()) {
            Good::Enough => return Found::At(s),
            Good::Ends(skip) => p = s + skip,
            Good::ToEnd => return Found::Tail(s),
        }
    }
    Found::Tail(d.len())
}

/// The first `s >= p` where [`TEXT_LINE`] bytes (or all up to the end, if
/// fewer) hold no byte that is never text: every text that ends a binary
/// run is at least that long, so no earlier start can be one. Whole 64-byte
/// blocks are classified at once (a bit mask, no branch per byte): this
/// runs on every byte of binary output.
fn candidate(d: &[u8], p: usize) -> usize {
    // Start of the run of maybe-text bytes reaching the current block.
    let mut run = p;
    let mut at = p;
    while let Some(block) = d.get(at..at + 64) {
        let m = cannot_be_text(block);
        if at + m.trailing_zeros() as usize - run >= TEXT_LINE {
            return run;
        }
        let inside = runs_of(!m, TEXT_LINE);
        if inside != 0 {
            return at + inside.trailing_zeros() as usize;
        }
        // INVARIANT: m != 0 here, or the run would have been long enough.
        run = at + 64 - m.leading_zeros() as usize;
        at += 64;
    }
    for (i, &b) in d.get(at..).unwrap_or_default().iter().enumerate() {
        if not_text(b) {
            run = at + i + 1;
        } else if at + i + 1 - run >= TEXT_LINE {
            return run;
        }
    }
    run
}

/// Bit `i` set where `block[i]` cannot be part of the text that ends a
/// binary run: a byte that is never text, a UTF-8 continuation byte right
/// after an ASCII byte, or a lead byte not followed by a continuation byte.
/// In random data that is about 4 bytes in 10, so a clean stretch of
/// [`TEXT_LINE`] bytes is rare and the exact check seldom runs. Only what
/// the block shows is judged (its edges count as fine).
fn cannot_be_text(block: &[u8]) -> u64 {
    // Zeros (sparse files, `dd` output, padding): nothing to classify. One
    // OR over eight words instead of three passes over the bytes.
    let any = block.chunks_exact(8).fold(0u64, |acc, w| {
        acc | <[u8; 8]>::try_from(w).map_or(u64::MAX, u64::from_le_bytes)
    });
    if any == 0 && block.len() == 64 {
        return u64::MAX;
    }
    let never = mask(block, not_text);
    if never == u64::MAX {
        // No byte can be text: the other two masks cannot add to it.
        return never;
    }
    let ascii = mask(block, |b| b < 0x80);
    let cont = mask(block, |b| (b & 0xc0) == 0x80);
    let lone_cont = cont & (ascii << 1);
    let lead = !ascii & !cont;
    let bare_lead = lead & !(cont >> 1) & !(1 << 63);
    never | lone_cont | bare_lead
}

/// Bit `i` set where `is(block[i])`, for a 64-byte block (also JSON
/// escaping's classifier, `escape.rs`). Inlined: a call per block (the
/// flags spilled, the block length checked) cost escaping a fifth of its time.
#[inline(always)]
pub(super) fn mask(block: &[u8], is: impl Fn(u8) -> bool) -> u64 {
    let mut flags = [0u8; 64];
    for (f, &b) in flags.iter_mut().zip(block) {
        *f = u8::from(is(b));
    }
    let mut m = 0u64;
    for (g, group) in flags.chunks_exact(8).enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(group);
        // Eight 0/1 bytes to eight bits (byte k to bit k): each byte's
        // product lands on its own bit of the top byte, with no carries.
        let packed = u64::from_le_bytes(w).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        m |= packed << (8 * g);
    }
    m
}

/// Bit `i` set where bits `i..i + n` of `z` are all set (`n` <= 32).
fn runs_of(z: u64, n: usize) -> u64 {
    let mut t = z;
    let mut have = 1;
    while have < n {
        let step = have.min(n - have);
        t &= t >> step;
        have += step;
    }
    t
}

enum Good {
    /// Text that ends a binary run starts at the beginning.
    Enough,
    /// Not enough text: no such text starts in the first `n` bytes.
    Ends(usize),
    /// Too little text to decide, up to the end (perhaps ending in an
    /// incomplete character).
    ToEnd,
}

/// The terminal text at the start of `d`, looking at most [`TEXT_RUN`] + 3
/// bytes ahead (3: the rest of a character cut by that bound).
fn good_prefix(d: &[u8]) -> Good {
    let window = d.get(..TEXT_RUN + 3).unwrap_or(d);
    // Up to the first byte that is never text, then up to invalid UTF-8.
    let clean_len = window
        .iter()
        .position(|&b| not_text(b))
        .unwrap_or(window.len());
    let clean = window.get(..clean_len).unwrap_or_default();
    let (len, invalid) = match std::str::from_utf8(clean) {
        Ok(_) => (clean_len, None),
        Err(e) => (e.valid_up_to(), e.error_len()),
    };
    if len >= TEXT_RUN || is_line(window.get(..len).unwrap_or_default()) {
        return Good::Enough;
    }
    match invalid {
        // Text starting inside it ends at the same invalid sequence.
        Some(n) => Good::Ends(len + n),
        None if clean_len == d.len() => Good::ToEnd,
        // Cut by a byte that is never text (the window bound cannot cut it:
        // a full window is at least TEXT_RUN bytes of text): skip that too.
        None => Good::Ends(clean_len + 1),
    }
}

/// Whether text (UTF-8, no NUL) before a binary byte is long enough to
/// have ended a binary run.
fn proves_text(text: &[u8]) -> bool {
    text.len() >= TEXT_RUN || is_line(text)
}

/// Whether `text` holds a line of at least [`TEXT_LINE`] bytes from its start.
fn is_line(text: &[u8]) -> bool {
    text.get(TEXT_LINE - 1..)
        .is_some_and(|tail| memchr::memchr(b'\n', tail).is_some())
}

/// An open binary run: counted, hashed, its strings collected.
#[derive(Default)]
struct Run {
    bytes: u64,
    sum: Checksum,
    strings: Strings,
}

impl Run {
    fn push(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        self.bytes += chunk.len() as u64;
        self.sum.update(chunk);
        self.strings.push(chunk);
    }

    fn summary(&mut self, label: &'static str) -> RunSummary {
        self.strings.end();
        RunSummary {
            label,
            bytes: self.bytes,
            checksum: self.sum.finish(),
            strings: std::mem::take(&mut self.strings.kept),
            strings_cut: self.strings.full,
        }
    }
}

#[cfg(test)]
mod tests;
