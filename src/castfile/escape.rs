//! JSON string escaping for event lines: the recorder's hottest loop.
//!
//! Terminal output is mostly bytes that need no escape, so the scan finds
//! the bytes to escape 32 at a time (a bit mask per block) and copies the
//! clean runs between them whole. The output is
//! byte-for-byte what `serde_json` writes (the golden recordings and the
//! tests below hold it to that).

const BLOCK: usize = 32;

/// One bit per byte of the block that needs an escape. Written as a plain
/// loop over a fixed-size array so the compiler turns it into vector
/// compares and a movemask.
fn escape_mask(block: &[u8; BLOCK]) -> u32 {
    let mut mask = 0u32;
    for (i, &b) in block.iter().enumerate() {
        let bad = (b < 0x20) | (b == b'"') | (b == b'\\');
        mask |= u32::from(bad) << i;
    }
    mask
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn escape_byte(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        0x00..=0x1f => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]),
        _ => out.push(b),
    }
}

/// Appends `text` as a quoted JSON string.
pub(crate) fn json_string_into(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + bytes.len() / 8 + 2);
    out.push(b'"');
    let mut clean_from = 0;
    let mut blocks = bytes.chunks_exact(BLOCK);
    let mut base = 0;
    for chunk in &mut blocks {
        let mut block = [0u8; BLOCK];
        block.copy_from_slice(chunk);
        let mut mask = escape_mask(&block);
        while mask != 0 {
            let at = base + mask.trailing_zeros() as usize;
            out.extend_from_slice(&bytes[clean_from..at]);
            escape_byte(out, bytes[at]);
            clean_from = at + 1;
            mask &= mask - 1;
        }
        base += BLOCK;
    }
    for (at, &b) in blocks.remainder().iter().enumerate() {
        if b < 0x20 || b == b'"' || b == b'\\' {
            let at = base + at;
            out.extend_from_slice(&bytes[clean_from..at]);
            escape_byte(out, b);
            clean_from = at + 1;
        }
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        json_string_into(&mut out, s);
        // INVARIANT (test): escaping keeps UTF-8 valid.
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_ascii_byte_at_every_offset_matches_serde_json() {
        for b in 0u8..=0x7f {
            for pad in 0..17 {
                let s = format!("{}{}tail", "x".repeat(pad), char::from(b));
                assert_eq!(
                    ours(&s),
                    serde_json::to_string(&s).unwrap(),
                    "byte {b:#x} pad {pad}"
                );
            }
        }
    }

    #[test]
    fn mixed_text_matches_serde_json() {
        let samples = [
            "",
            "plain",
            "\u{1b}[01;34mdir\u{1b}[0m  \"quoted\" back\\slash\r\n",
            "é✓🦀 and\u{0}nul\u{7f}del \u{2028} separators",
            "12345678\"2345678\\23456781234567\n",
        ];
        for s in samples {
            assert_eq!(ours(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
        // A pseudo-random mix of every kind of byte, long enough for many words.
        let mut x: u32 = 7;
        let mut s = String::new();
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let c = match x >> 28 {
                0 => char::from((x >> 8) as u8 & 0x1f),
                1 => '"',
                2 => '\\',
                3 => 'é',
                4 => '🦀',
                _ => char::from(0x20 + ((x >> 8) as u8 % 0x5f)),
            };
            s.push(c);
        }
        assert_eq!(ours(&s), serde_json::to_string(&s).unwrap());
    }
}
