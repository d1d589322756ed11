//! JSON string escaping for event lines: the recorder's hottest loop.
//!
//! Terminal output is mostly bytes that need no escape, so each 64-byte
//! block is classified at once into a bit mask (a comparison per byte into
//! a flag array, which the compiler vectorises, then eight flags to eight
//! bits by one multiplication: no `unsafe`, no target features). Clean
//! bytes are copied in fixed 64-byte moves, the last one cut back (the
//! overshoot is overwritten by what follows), and an escape is one fixed
//! 8-byte move from a table: no `memcpy` call and no branch per escape,
//! where a `'\n'` (a line) or an ESC (a colour) comes every few dozen
//! bytes. Issue 20: ~0.3 -> ~0.24 CPU s/GiB on `base64` lines, ~0.34 ->
//! ~0.24 with `\r\n` (a pty), ~1.0 -> ~0.75 on `ls --color` output, one
//! core under load; it was 2-2.5x that before the block masks. The output
//! is byte-for-byte what `serde_json` writes (the golden recordings and the
//! tests below hold it to that).

const BLOCK: usize = 64;

/// Whether JSON needs `b` escaped: controls, `"` and `\`. Bytes `>= 0x80`
/// (UTF-8) never do.
fn needs(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

/// Bit `i` set where `block[i]` needs an escape.
fn mask(block: &[u8; BLOCK]) -> u64 {
    super::binary::mask(block, needs)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// How `serde_json` writes each byte below 0x80 inside a string: up to 6
/// bytes, their number in the last byte. Bytes that need no escape stand
/// for themselves.
const ESCAPES: [[u8; 8]; 128] = {
    let mut table = [[0u8; 8]; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        table[i] = match b {
            b'"' => [b'\\', b'"', 0, 0, 0, 0, 0, 2],
            b'\\' => [b'\\', b'\\', 0, 0, 0, 0, 0, 2],
            b'\n' => [b'\\', b'n', 0, 0, 0, 0, 0, 2],
            b'\r' => [b'\\', b'r', 0, 0, 0, 0, 0, 2],
            b'\t' => [b'\\', b't', 0, 0, 0, 0, 0, 2],
            0x08 => [b'\\', b'b', 0, 0, 0, 0, 0, 2],
            0x0c => [b'\\', b'f', 0, 0, 0, 0, 0, 2],
            0x00..=0x1f => [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
                0,
                6,
            ],
            _ => [b, 0, 0, 0, 0, 0, 0, 1],
        };
        i += 1;
    }
    table
};

/// Appends the escape of `b` (a byte below 0x80): one 8-byte move, cut back.
#[inline(always)]
fn escape_byte(out: &mut Vec<u8>, b: u8) {
    let e = ESCAPES.get(usize::from(b)).copied().unwrap_or_default();
    let len = out.len() + usize::from(e[7]);
    out.extend_from_slice(&e);
    out.truncate(len);
}

/// Appends `bytes[from..to]` (bytes that need no escape) in whole 64-byte
/// moves, the last one cut back where `bytes` has 64 bytes from its start.
#[inline(always)]
fn copy_clean(out: &mut Vec<u8>, bytes: &[u8], mut from: usize, to: usize) {
    while from < to {
        let end = out.len() + (to - from).min(BLOCK);
        match bytes.get(from..from + BLOCK).map(<&[u8; BLOCK]>::try_from) {
            Some(Ok(block)) => out.extend_from_slice(block),
            // The last bytes of the text: an exact copy.
            _ => {
                out.extend_from_slice(bytes.get(from..to).unwrap_or_default());
                return;
            }
        }
        out.truncate(end);
        from += BLOCK;
    }
}

/// Appends `text` as a quoted JSON string.
pub(crate) fn json_string_into(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    json_body_into(out, text);
    out.push(b'"');
}

/// Appends `text` escaped as the inside of a JSON string (no quotes): the
/// writer appends several chunks to one open string.
pub(crate) fn json_body_into(dst: &mut Vec<u8>, text: &str) {
    // A local Vec: its length stays in a register. Through `&mut` it was
    // stored and reloaded around every move (a byte store may alias it).
    let mut out = std::mem::take(dst);
    escape_into(&mut out, text.as_bytes());
    *dst = out;
}

#[inline(always)]
fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    // Room for the text, some escapes and the last move's overshoot.
    out.reserve(bytes.len() + bytes.len() / 8 + 2 * BLOCK);
    // Clean bytes from here are not copied yet: they go with the next escape.
    let mut from = 0;
    let mut base = 0;
    let mut blocks = bytes.chunks_exact(BLOCK);
    for block in &mut blocks {
        let Ok(block) = <&[u8; BLOCK]>::try_from(block) else {
            break;
        };
        let mut m = mask(block);
        while m != 0 {
            let at = base + m.trailing_zeros() as usize;
            copy_clean(out, bytes, from, at);
            escape_byte(out, bytes.get(at).copied().unwrap_or_default());
            from = at + 1;
            m &= m - 1;
        }
        base += BLOCK;
    }
    for (at, &b) in blocks.remainder().iter().enumerate() {
        if needs(b) {
            let at = base + at;
            copy_clean(out, bytes, from, at);
            escape_byte(out, b);
            from = at + 1;
        }
    }
    copy_clean(out, bytes, from, bytes.len());
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
    fn every_byte_value_in_every_block_lane_matches_serde_json() {
        // Neighbours of each kind around the byte, at every offset of a
        // block and past it: a wrong bit in the mask would flag or miss one.
        for b in 0u8..=0x7f {
            for around in ['\u{0}', '"', '~', ' ', '\u{7f}', 'é'] {
                for pad in 0..(BLOCK + 8) {
                    let mut s: String = std::iter::repeat_n(around, pad).collect();
                    s.push(char::from(b));
                    s.extend(std::iter::repeat_n(around, BLOCK + 8));
                    assert_eq!(
                        ours(&s),
                        serde_json::to_string(&s).unwrap(),
                        "byte {b:#x} pad {pad} around {around:?}"
                    );
                }
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
