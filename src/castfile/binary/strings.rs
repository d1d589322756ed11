//! The printable-strings preview of a binary run (what `strings(1)` would
//! show), kept so text hidden between binary bytes is still readable.

use super::{MIN_STRING, PREVIEW_BYTES, mask};

/// Printable ASCII strings of at least [`MIN_STRING`] bytes, as `strings(1)`
/// finds them, up to [`PREVIEW_BYTES`]: text an attacker sprinkles NULs
/// into stays readable (and searchable) in the run's summary.
#[derive(Default)]
pub(super) struct Strings {
    pub(super) kept: String,
    /// A printable tail of the last chunk shorter than a string (< 4 bytes).
    pending: Vec<u8>,
    /// The last kept string reached the end of the last chunk.
    open: bool,
    pub(super) full: bool,
}

fn printable(b: u8) -> bool {
    (b == b'\t') | ((0x20..0x7f).contains(&b))
}

impl Strings {
    pub(super) fn push(&mut self, chunk: &[u8]) {
        if self.full {
            return;
        }
        let mut d = chunk;
        if self.open {
            let n = d.iter().position(|&b| !printable(b)).unwrap_or(d.len());
            let (head, rest) = d.split_at(n);
            self.append(head);
            if rest.is_empty() {
                return;
            }
            self.open = false;
            d = rest;
        }
        if self.pending.is_empty() {
            return self.scan(d);
        }
        let mut joined = std::mem::take(&mut self.pending);
        joined.extend_from_slice(d);
        self.scan(&joined);
    }

    /// The run ended: a short pending tail is not a string.
    pub(super) fn end(&mut self) {
        self.pending.clear();
        self.open = false;
    }

    /// Finds the strings in `d` (skipping by [`MIN_STRING`] where a byte
    /// is not printable, like [`text_start`]).
    fn scan(&mut self, d: &[u8]) {
        let mut p = 0;
        while p < d.len() && !self.full {
            // Zeros and other runs without a printable byte: a block at once.
            if let Some(block) = d.get(p..p + 64)
                && mask(block, printable) == 0
            {
                p += 64;
                continue;
            }
            let Some(window) = d.get(p..p + MIN_STRING) else {
                // Fewer than MIN_STRING bytes left: keep a printable tail.
                let tail = d.get(p..).unwrap_or_default();
                let start = tail
                    .iter()
                    .rposition(|&b| !printable(b))
                    .map_or(0, |q| q + 1);
                self.pending = tail.get(start..).unwrap_or_default().to_vec();
                return;
            };
            if let Some(q) = window.iter().rposition(|&b| !printable(b)) {
                p += q + 1;
                continue;
            }
            let len = d
                .get(p..)
                .unwrap_or_default()
                .iter()
                .position(|&b| !printable(b))
                .unwrap_or(d.len() - p);
            self.separate();
            self.append(d.get(p..p + len).unwrap_or_default());
            p += len;
            self.open = p == d.len();
        }
    }

    fn separate(&mut self) {
        if !self.kept.is_empty() {
            self.kept.push_str(" | ");
        }
    }

    fn append(&mut self, s: &[u8]) {
        let room = PREVIEW_BYTES.saturating_sub(self.kept.len());
        let take = s.get(..room.min(s.len())).unwrap_or_default();
        // Printable ASCII only: always one byte per character.
        self.kept.extend(take.iter().map(|&b| char::from(b)));
        if take.len() < s.len() || self.kept.len() >= PREVIEW_BYTES {
            self.full = true;
        }
    }
}
