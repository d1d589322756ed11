//! Channel bytes to event text.

/// Decodes one byte stream (a channel's output or input) chunk by chunk.
/// Invalid bytes become U+FFFD as with `String::from_utf8_lossy`, but an
/// incomplete sequence at the end of a chunk is held back for the next one,
/// so a character split across two SSH packets survives whole.
#[derive(Debug, Default)]
pub struct Utf8Carry {
    /// At most 3 bytes: the longest incomplete UTF-8 prefix.
    pending: Vec<u8>,
}

impl Utf8Carry {
    pub fn decode<'a>(&mut self, bytes: &'a [u8]) -> std::borrow::Cow<'a, str> {
        // The common case, a chunk of whole characters, is not copied.
        if self.pending.is_empty()
            && let Ok(s) = std::str::from_utf8(bytes)
        {
            return std::borrow::Cow::Borrowed(s);
        }
        std::borrow::Cow::Owned(self.decode_slow(bytes))
    }

    fn decode_slow(&mut self, bytes: &[u8]) -> String {
        let joined;
        let mut rest: &[u8] = if self.pending.is_empty() {
            bytes
        } else {
            let mut v = std::mem::take(&mut self.pending);
            v.extend_from_slice(bytes);
            joined = v;
            &joined
        };
        let mut out = String::with_capacity(rest.len());
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    return out;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    // `good` was validated: lossy decoding borrows it unchanged.
                    out.push_str(&String::from_utf8_lossy(good));
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = bad.get(n..).unwrap_or_default();
                        }
                        None => {
                            self.pending = bad.to_vec();
                            return out;
                        }
                    }
                }
            }
        }
    }

    /// Whether no part of a character is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whatever is still held (a sequence the stream never completed), lossily.
    pub fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.pending);
        Some(String::from_utf8_lossy(&rest).into_owned())
    }

    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

/// Splits text into pieces of at most `max` bytes on character boundaries.
pub(crate) fn split_text(mut s: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    while s.len() > max {
        let mut cut = max;
        while cut > 0 && !s.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            // `max` is smaller than the first character: take that character.
            cut = s.chars().next().map_or(s.len(), char::len_utf8);
        }
        let (head, tail) = s.split_at(cut);
        parts.push(head);
        s = tail;
    }
    if !s.is_empty() {
        parts.push(s);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_across_chunks_is_reassembled() {
        let text = "é✓🦀";
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            let mut carry = Utf8Carry::default();
            let mut out = carry.decode(&bytes[..cut]).into_owned();
            out.push_str(&carry.decode(&bytes[cut..]));
            assert_eq!(out, text, "cut at {cut}");
            assert_eq!(carry.finish(), None);
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_like_lossy() {
        let mut carry = Utf8Carry::default();
        let bytes = b"a\xffb\xe2\x9c";
        assert_eq!(carry.decode(bytes), "a\u{fffd}b");
        assert_eq!(carry.finish().as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn split_text_respects_char_boundaries() {
        let s = "ab✓cd";
        let parts = split_text(s, 3);
        assert_eq!(parts.concat(), s);
        assert!(parts.iter().all(|p| p.len() <= 3));
    }
}
