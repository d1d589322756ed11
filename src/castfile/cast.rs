//! asciicast v2 (<https://docs.asciinema.org/manual/asciicast/v2/>): a JSON
//! header line, then one `[time, code, data]` array per line. Standard players
//! replay our files; our own facts live under the header's `portcullis` key,
//! which players ignore.
//!
//! The parsers read untrusted files: lines are bounded by [`MAX_LINE`], JSON
//! nesting by serde_json's recursion limit, and nothing here panics on input.

use super::{MAX_LINE, RecordingError, Result, format_err, io_err};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Event data is split into pieces of at most this many bytes of text, so a
/// line stays far below [`MAX_LINE`] even if JSON escaping grows it sixfold.
pub(crate) const MAX_EVENT_TEXT: usize = 64 * 1024;
const _: () = assert!(MAX_EVENT_TEXT * 6 + 64 < MAX_LINE);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    /// Unix seconds of the recording start (0 when a foreign file omits it).
    #[serde(default)]
    pub timestamp: i64,
    /// Captured variables such as `TERM`; values that are not strings in a
    /// foreign file are dropped rather than refused.
    #[serde(default, deserialize_with = "lenient_env")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portcullis: Option<SessionMeta>,
}

/// Who recorded what: the bastion's own header extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub session: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub channel: u32,
    pub kind: ChannelKind,
    /// The exec command or the subsystem name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Shell,
    Exec,
    Subsystem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Output,
    Input,
    Resize,
    Marker,
}

impl EventKind {
    pub fn code(self) -> &'static str {
        match self {
            EventKind::Output => "o",
            EventKind::Input => "i",
            EventKind::Resize => "r",
            EventKind::Marker => "m",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "o" => Some(EventKind::Output),
            "i" => Some(EventKind::Input),
            "r" => Some(EventKind::Resize),
            "m" => Some(EventKind::Marker),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the recording start.
    pub time: f64,
    pub kind: EventKind,
    pub data: String,
}

/// Serializer view that puts `version` first, as asciinema writes it.
#[derive(Serialize)]
struct HeaderOut<'a> {
    version: u8,
    #[serde(flatten)]
    header: &'a Header,
}

/// The header line, with its `'\n'`.
pub(crate) fn header_line(header: &Header) -> Result<String> {
    let out = HeaderOut { version: 2, header };
    let mut line = serde_json::to_string(&out).map_err(|e| format_err(1, e.to_string()))?;
    if line.len() > MAX_LINE {
        return Err(format_err(1, "header longer than 1 MiB"));
    }
    line.push('\n');
    Ok(line)
}

/// One event line, with its `'\n'`. Times have microsecond precision; the
/// caller keeps them finite, non-negative and non-decreasing.
#[cfg(test)]
pub(crate) fn event_line(time: f64, kind: EventKind, data: &str) -> String {
    let mut out = Vec::with_capacity(data.len() + 32);
    event_line_into(&mut out, time, kind, data);
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends the event line to `out` (the writer builds lines in pieces:
/// [`event_line_open`]).
#[cfg(test)]
pub(crate) fn event_line_into(out: &mut Vec<u8>, time: f64, kind: EventKind, data: &str) {
    event_line_open(out, time, kind);
    super::escape::json_body_into(out, data);
    event_line_close(out);
}

/// The start of an event line, up to its data string's opening quote; the
/// writer then appends escaped text ([`super::escape::json_body_into`]),
/// possibly in several pieces, and [`event_line_close`].
pub(crate) fn event_line_open(out: &mut Vec<u8>, time: f64, kind: EventKind) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "[{time:.6}, \"{}\", \"", kind.code());
}

/// The end of an event line: the data string's closing quote, `]`, `'\n'`.
pub(crate) fn event_line_close(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\"]\n");
}

pub fn parse_header(line: &str) -> Result<Header> {
    if line.len() > MAX_LINE {
        return Err(format_err(1, "header longer than 1 MiB"));
    }
    let value: Value = serde_json::from_str(line)
        .map_err(|e| format_err(1, format!("header is not JSON: {e}")))?;
    match value.get("version").and_then(Value::as_u64) {
        Some(2) => {}
        _ => {
            return Err(format_err(
                1,
                "not an asciicast v2 header (version must be 2)",
            ));
        }
    }
    serde_json::from_value(value).map_err(|e| format_err(1, format!("bad header: {e}")))
}

/// Parses one event line (without its `'\n'`). Errors carry line 0; the
/// [`CastReader`] puts the real line number in.
pub fn parse_line(line: &str) -> Result<Event> {
    if line.len() > MAX_LINE {
        return Err(format_err(0, "line longer than 1 MiB"));
    }
    let (time, code, data): (f64, String, String) = serde_json::from_str(line)
        .map_err(|e| format_err(0, format!("not an event [time, code, data]: {e}")))?;
    if !time.is_finite() || time < 0.0 {
        return Err(format_err(0, "event time must be a non-negative number"));
    }
    let kind = EventKind::from_code(&code)
        .ok_or_else(|| format_err(0, format!("unknown event code {code:?}")))?;
    Ok(Event { time, kind, data })
}

fn lenient_env<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, String>, D::Error> {
    let raw: Option<BTreeMap<String, Value>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect())
}

/// How a bounded line read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineEnd {
    Eof,
    /// A whole line; the buffer ends with `'\n'`.
    Complete,
    /// Bytes without a final `'\n'` at the end of the file (a torn write).
    Torn,
    /// No `'\n'` within [`MAX_LINE`] bytes; the buffer holds a prefix only.
    TooLong,
}

/// Reads one line into `buf` (cleared first) without ever holding more than
/// `MAX_LINE + 1` bytes, whatever the file contains.
pub(crate) fn read_line_bounded<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<LineEnd> {
    buf.clear();
    let limit = MAX_LINE as u64 + 1;
    let n = r.by_ref().take(limit).read_until(b'\n', buf)?;
    Ok(if n == 0 {
        LineEnd::Eof
    } else if buf.last() == Some(&b'\n') {
        LineEnd::Complete
    } else if buf.len() > MAX_LINE {
        LineEnd::TooLong
    } else {
        LineEnd::Torn
    })
}

/// Iterates the events of a cast file. The header is read by `new`; each
/// item is an event or the error of its line (iteration stops after one).
pub struct CastReader<R> {
    reader: R,
    name: String,
    header: Header,
    line: u64,
    buf: Vec<u8>,
    done: bool,
}

impl CastReader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(io_err(path))?;
        Self::with_name(BufReader::new(file), path.display().to_string())
    }
}

impl<R: BufRead> CastReader<R> {
    pub fn new(reader: R) -> Result<Self> {
        Self::with_name(reader, "<reader>".to_owned())
    }

    fn with_name(mut reader: R, name: String) -> Result<Self> {
        let mut buf = Vec::new();
        let end =
            read_line_bounded(&mut reader, &mut buf).map_err(|source| RecordingError::Io {
                path: name.clone(),
                source,
            })?;
        if end != LineEnd::Complete {
            return Err(format_err(1, "missing or incomplete header line"));
        }
        let text = std::str::from_utf8(&buf).map_err(|_| format_err(1, "header is not UTF-8"))?;
        let header = parse_header(text.trim_end_matches(['\n', '\r']))?;
        Ok(CastReader {
            reader,
            name,
            header,
            line: 1,
            buf,
            done: false,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn next_event(&mut self) -> Option<Result<Event>> {
        let end = match read_line_bounded(&mut self.reader, &mut self.buf) {
            Ok(end) => end,
            Err(source) => {
                let path = self.name.clone();
                return Some(Err(RecordingError::Io { path, source }));
            }
        };
        self.line += 1;
        let line = self.line;
        let problem = match end {
            LineEnd::Eof => return None,
            LineEnd::Complete => None,
            LineEnd::Torn => Some("incomplete last line (still being written, or cut short)"),
            LineEnd::TooLong => Some("line longer than 1 MiB"),
        };
        if let Some(reason) = problem {
            return Some(Err(format_err(line, reason)));
        }
        let Ok(text) = std::str::from_utf8(&self.buf) else {
            return Some(Err(format_err(line, "line is not UTF-8")));
        };
        Some(
            parse_line(text.trim_end_matches(['\n', '\r'])).map_err(|e| match e {
                RecordingError::Format { reason, .. } => format_err(line, reason),
                other => other,
            }),
        )
    }
}

impl<R: BufRead> Iterator for CastReader<R> {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_event();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_round_trip() {
        let line = event_line(1.5, EventKind::Output, "a\"\u{1b}[0m\r\n✓");
        assert_eq!(line, "[1.500000, \"o\", \"a\\\"\\u001b[0m\\r\\n✓\"]\n");
        let ev = parse_line(line.trim_end()).expect("parses");
        assert_eq!(ev.kind, EventKind::Output);
        assert_eq!(ev.data, "a\"\u{1b}[0m\r\n✓");
        assert!((ev.time - 1.5).abs() < 1e-9);
    }

    #[test]
    fn parse_line_rejects_garbage() {
        for bad in [
            "",
            "[",
            "[1.0, \"o\"]",
            "[1.0, \"x\", \"a\"]",
            "[-1, \"o\", \"a\"]",
            "[1.0, \"o\", \"a\", 4]",
            "{\"a\": 1}",
            &"[".repeat(10_000),
        ] {
            assert!(parse_line(bad).is_err(), "{bad:.20}");
        }
    }

    #[test]
    fn header_round_trip_and_foreign_headers() {
        let header = Header {
            width: 80,
            height: 24,
            timestamp: 1_700_000_000,
            env: BTreeMap::from([("TERM".to_owned(), "xterm".to_owned())]),
            title: Some("t".to_owned()),
            portcullis: None,
        };
        let line = header_line(&header).expect("serializes");
        assert!(line.starts_with("{\"version\":2,"));
        assert_eq!(parse_header(line.trim_end()).expect("parses"), header);
        let foreign = r#"{"version": 2, "width": 10, "height": 5, "env": {"SHELL": null, "TERM": "x"}, "idle_time_limit": 2}"#;
        let parsed = parse_header(foreign).expect("foreign header");
        assert_eq!(parsed.env.len(), 1);
        assert!(parse_header(r#"{"version": 1, "width": 1, "height": 1}"#).is_err());
    }

    #[test]
    fn reader_reports_line_numbers_and_bounds_lines() {
        let text =
            "{\"version\":2,\"width\":1,\"height\":1}\n[0.1, \"o\", \"a\"]\n[0.2, \"q\", \"b\"]\n";
        let mut reader = CastReader::new(text.as_bytes()).expect("header");
        assert_eq!(reader.next().map(|r| r.is_ok()), Some(true));
        match reader.next() {
            Some(Err(RecordingError::Format { line, .. })) => assert_eq!(line, 3),
            other => panic!("unexpected {other:?}"),
        }
        assert!(reader.next().is_none());

        let long = format!(
            "{{\"version\":2,\"width\":1,\"height\":1}}\n{}\n",
            "x".repeat(MAX_LINE + 10)
        );
        let mut reader = CastReader::new(long.as_bytes()).expect("header");
        assert!(matches!(
            reader.next(),
            Some(Err(RecordingError::Format { line: 2, .. }))
        ));
    }
}
