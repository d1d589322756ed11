//! A path (or any name) from the wire as one unambiguous word of a marker.
//!
//! Plain names stay as they are (`/home/u/report.pdf`, `café`), so markers
//! read naturally and stay searchable. Anything else — a space, a quote, a
//! backslash, a control or invisible character, bytes that are not UTF-8,
//! the empty name — is put in double quotes with JSON's escapes (the
//! recording's own, from `escape`), `\uXXXX` for invisible characters JSON
//! leaves alone and `\xNN` for each byte that is not UTF-8. A bare word never
//! contains a space or starts with a quote, so a marker splits into its words
//! one way only, and nothing in it can move a terminal's cursor or reorder
//! the text around it. Nothing is ever cut: a name is as long as the packet
//! that carried it.

/// Characters JSON's escaping leaves as they are but that a reader cannot
/// see or that rearrange what they read: DEL and C1 controls, bidi and
/// zero-width formatting, line separators, non-ASCII spaces.
fn hidden(c: char) -> bool {
    matches!(c,
        '\u{7f}'..='\u{9f}'
        | '\u{ad}'
        | '\u{61c}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{e0000}'..='\u{e007f}'
    ) || (!c.is_ascii() && c.is_whitespace())
}

fn bare(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            (c.is_ascii_graphic() && c != '"' && c != '\\') || (!c.is_ascii() && !hidden(c))
        })
}

/// `raw` as one word of a marker (see the module comment).
pub(super) fn token(raw: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(raw)
        && bare(s)
    {
        return s.to_owned();
    }
    let mut out = Vec::with_capacity(raw.len() + 2);
    out.push(b'"');
    for chunk in raw.utf8_chunks() {
        let valid = chunk.valid();
        let mut from = 0;
        for (at, c) in valid.char_indices() {
            if hidden(c) {
                json_escaped(&mut out, &valid[from..at]);
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
                from = at + c.len_utf8();
            }
        }
        json_escaped(&mut out, &valid[from..]);
        for b in chunk.invalid() {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
    }
    out.push(b'"');
    // Only valid UTF-8 and ASCII escapes went in; a lossy conversion keeps
    // this free of a panic path all the same.
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// `text` with the recording's JSON escapes, without the surrounding quotes.
fn json_escaped(out: &mut Vec<u8>, text: &str) {
    if text.is_empty() {
        return;
    }
    let at = out.len();
    crate::castfile::escape::json_string_into(out, text);
    // json_string_into wrote `"…"`: keep what is between the quotes.
    out.pop();
    out.remove(at);
}

#[cfg(test)]
mod tests {
    use super::token;

    #[test]
    fn plain_names_stay_bare_and_the_rest_is_quoted() {
        assert_eq!(token(b"/srv/a.txt"), "/srv/a.txt");
        assert_eq!(token("日本/é".as_bytes()), "日本/é");
        assert_eq!(token(b""), r#""""#);
        assert_eq!(token(b"a b"), r#""a b""#);
        assert_eq!(token(b"\"x"), r#""\"x""#);
        assert_eq!(token(b"a\\b"), r#""a\\b""#);
        assert_eq!(token(b"\t\r\n\x01"), r#""\t\r\n\u0001""#);
        assert_eq!(token(b"\xc3(\xff"), r#""\xc3(\xff""#);
        assert_eq!(token("a\u{a0}b".as_bytes()), r#""a\u00a0b""#);
        assert_eq!(token("\u{e0041}".as_bytes()), r#""\udb40\udc41""#);
        assert_eq!(token("x\u{85}".as_bytes()), r#""x\u0085""#);
    }

    #[test]
    fn quoted_valid_text_reads_back_through_json() {
        // Without raw bytes, a quoted word is a JSON string of the name.
        for name in [
            "a b",
            "q\"uote",
            "back\\slash",
            "tab\there",
            "bidi\u{202e}txt",
        ] {
            let word = token(name.as_bytes());
            let back: String = serde_json::from_str(&word).unwrap_or_default();
            assert_eq!(back, name, "{word}");
        }
    }
}
