//! Replay of large recordings in the console: asciinema-player's
//! "segmented" source. `GET /recordings/{name}/segments` scans the cast
//! once (time and code of each line; markers parsed whole) and answers the
//! index: duration, terminal size, markers as chapters, and segments of
//! about `SEGMENT_BYTES` of the file, each a URL the player fetches only
//! when it plays or seeks there. Nothing is held whole: a 100 MB recording
//! starts after the scan and one segment.
//!
//! The idle cap and "typed input shown" are applied here (the player does
//! not take those options for segmented sources): gaps longer than `idle`
//! seconds are shortened to it, and with `input=1` keystrokes become
//! highlighted output as in `portcullis recording replay --input`. Output
//! goes through `castfile::term::TermFilter` like every replay. A segment
//! starts from a snapshot: the output of up to `SNAPSHOT_BYTES` of the file
//! before it, which redraws line-oriented screens (a full-screen program's
//! screen may be partly missing until it redraws).

use super::http::{ApiError, Params, Seg, validate_name};
use super::tokens::Caller;
use crate::app::App;
use crate::audit::ReadKind;
use crate::castfile::term::{TermFilter, visible};
use crate::castfile::{EventKind, parse_header, parse_line};
use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SEGMENT_BYTES: u64 = 2 * 1024 * 1024;
/// A segment may run past its nominal size to the end of a line.
const SEGMENT_MAX: u64 = SEGMENT_BYTES + 2 * crate::castfile::MAX_LINE as u64;
const SNAPSHOT_BYTES: u64 = 64 * 1024;
const MAX_CUTS: usize = 100_000;
/// Indexes kept (the console fetches one, then the player the same).
const CACHED: usize = 8;

type Key = (PathBuf, u64, std::time::SystemTime, Option<u64>, bool);
static CACHE: std::sync::Mutex<Vec<(Key, Arc<Value>)>> = std::sync::Mutex::new(Vec::new());

#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// Longest pause kept, in seconds (absent: none shortened).
    #[serde(default)]
    idle: Option<f64>,
    /// Show keystrokes (highlighted) among the output.
    #[serde(default)]
    input: Option<u8>,
}

impl Shape {
    fn check(self) -> Result<Shape, ApiError> {
        if let Some(i) = self.idle
            && !(i.is_finite() && i > 0.0 && i <= 86400.0)
        {
            return Err(ApiError::bad("idle: expected seconds above 0"));
        }
        if self.input.is_some_and(|i| i > 1) {
            return Err(ApiError::bad("input: expected 0 or 1"));
        }
        Ok(self)
    }

    fn input(&self) -> bool {
        self.input == Some(1)
    }

    fn query(&self) -> String {
        let mut q = String::new();
        if let Some(i) = self.idle {
            q.push_str(&format!("&idle={i}"));
        }
        if self.input() {
            q.push_str("&input=1");
        }
        q
    }

    /// Whether an event of `code` is part of the replay.
    fn keeps(&self, code: u8) -> bool {
        matches!(code, b'o' | b'r' | b'm') || (code == b'i' && self.input())
    }
}

/// Times with long pauses shortened: continues across segments from the
/// state the index hands each one (`shift`, `prev`).
#[derive(Debug, Clone, Copy)]
struct Clock {
    idle: Option<f64>,
    shift: f64,
    prev: f64,
    last: f64,
}

impl Clock {
    fn at(&mut self, raw: f64) -> f64 {
        if let Some(idle) = self.idle {
            let gap = raw - self.prev;
            if gap > idle {
                self.shift += gap - idle;
            }
        }
        self.prev = raw;
        // Never backwards (the player checks), rounded to whole ms.
        let t = ((raw - self.shift) * 1000.0).round() / 1000.0;
        self.last = t.max(self.last);
        self.last
    }
}

/// Time and code of an event line without decoding its text.
fn peek(line: &[u8]) -> Option<(f64, u8)> {
    let rest = line.strip_prefix(b"[")?;
    let comma = memchr::memchr(b',', rest)?;
    let t: f64 = std::str::from_utf8(&rest[..comma])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let after = &rest[comma + 1..];
    let q = memchr::memchr(b'"', after)?;
    let code = *after.get(q + 1)?;
    (after.get(q + 2) == Some(&b'"') && t.is_finite() && t >= 0.0).then_some((t, code))
}

struct Boundary {
    start: f64,
    from: u64,
    clock: Clock,
    size: (u32, u32),
}

fn cast_path(app: &App, name: &str) -> PathBuf {
    app.config.recordings_dir.join(format!("{name}.cast"))
}

async fn known(app: &App, name: &str) -> Result<PathBuf, ApiError> {
    validate_name("name", name)?;
    app.store
        .recording(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("recording {name:?} does not exist")))?;
    super::sessions::readable_here(app, name).await?;
    Ok(cast_path(app, name))
}

fn io(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal("reading the recording", e)
}

fn scan(path: &Path, name: &str, shape: Shape) -> Result<Value, ApiError> {
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut r = BufReader::with_capacity(256 * 1024, file.take(len));
    let mut line = Vec::with_capacity(4096);
    r.read_until(b'\n', &mut line).map_err(io)?;
    let header = parse_header(std::str::from_utf8(&line).unwrap_or("").trim_end())
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let mut pos = line.len() as u64;
    // A pty of unknown size is recorded as 0x0; players draw it as 80x24.
    let term = (
        if header.width == 0 { 80 } else { header.width },
        if header.height == 0 {
            24
        } else {
            header.height
        },
    );
    let mut size = term;
    let mut clock = Clock {
        idle: shape.idle,
        shift: 0.0,
        prev: 0.0,
        last: 0.0,
    };
    let mut bounds = vec![Boundary {
        start: 0.0,
        from: pos,
        clock,
        size,
    }];
    let (mut markers, mut duration, mut events) = (Vec::new(), 0.0f64, 0u64);
    // Where pauses were shortened: [raw time, total shortening from there],
    // so the console maps a recording offset (a search hit) to the timeline.
    let mut cuts = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(io)? as u64;
        if n == 0 || !line.ends_with(b"\n") {
            break;
        }
        let here = pos;
        pos += n;
        let Some((raw, code)) = peek(&line) else {
            continue;
        };
        if !shape.keeps(code) {
            continue;
        }
        let before = clock;
        let t = clock.at(raw);
        if clock.shift != before.shift && cuts.len() < MAX_CUTS {
            cuts.push(json!([raw, clock.shift]));
        }
        let last = bounds.last().map_or(0.0, |b| b.start);
        if here - bounds.last().map_or(0, |b| b.from) >= SEGMENT_BYTES && t > duration && t > last {
            bounds.push(Boundary {
                start: t,
                from: here,
                clock: before,
                size,
            });
        }
        duration = t;
        events += 1;
        if code == b'r' || code == b'm' {
            let text = std::str::from_utf8(&line).unwrap_or("").trim_end();
            if let Ok(ev) = parse_line(text) {
                if code == b'm' {
                    markers.push(json!([t, visible(&ev.data)]));
                } else if let Some((c, rw)) = ev.data.split_once('x')
                    && let (Ok(c), Ok(rw)) = (c.parse::<u32>(), rw.parse::<u32>())
                    && c > 0
                    && rw > 0
                {
                    size = (c, rw);
                }
            }
        }
    }
    if events == 0 {
        return Err(ApiError::not_found("the recording has no events to replay"));
    }
    // A last boundary at the very end would start a segment at the duration.
    while bounds.len() > 1 && bounds.last().is_some_and(|b| b.start >= duration) {
        bounds.pop();
    }
    let q = shape.query();
    let segments: Vec<Value> = bounds
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let to = bounds.get(i + 1).map_or(pos, |n| n.from);
            json!({"start": b.start, "url": format!(
                "/api/v1/recordings/{name}/segment?n={i}&from={}&to={to}&shift={}&prev={}&last={}&cols={}&rows={}{q}",
                b.from, b.clock.shift, b.clock.prev, b.clock.last, b.size.0, b.size.1)})
        })
        .collect();
    Ok(json!({
        "version": 1, "duration": duration,
        "term": {"cols": term.0, "rows": term.1},
        "markers": markers, "segments": segments, "events": events, "bytes": pos, "cuts": cuts,
    }))
}

/// The replay's index: opening a replay is audited (`recording.replayed`,
/// fail closed) before the index is sent.
pub async fn index(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Seg(name): Seg<String>,
    Params(shape): Params<Shape>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let shape = shape.check()?;
    validate_name("name", &name)?;
    let row = app
        .store
        .recording(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("recording {name:?} does not exist")))?;
    let source = from.ip().to_canonical().to_string();
    super::live::audit_read(
        &app,
        &caller,
        source,
        ReadKind::Replay,
        &row.session_id,
        &name,
    )
    .await?;
    let path = cast_path(&app, &name);
    let v = tokio::task::spawn_blocking(move || cached(&path, &name, shape))
        .await
        .map_err(io)??;
    Ok((StatusCode::OK, Json(Value::clone(&v))))
}

/// The scan of an unchanged file (same length and time) is reused.
fn cached(path: &Path, name: &str, shape: Shape) -> Result<Arc<Value>, ApiError> {
    use crate::sync::MutexExt;
    let meta = std::fs::metadata(path).map_err(io)?;
    let key: Key = (
        path.to_path_buf(),
        meta.len(),
        meta.modified().map_err(io)?,
        shape.idle.map(f64::to_bits),
        shape.input(),
    );
    if let Some((_, v)) = CACHE.lock_or_recover().iter().find(|(k, _)| *k == key) {
        return Ok(v.clone());
    }
    let v = Arc::new(scan(path, name, shape)?);
    let mut cache = CACHE.lock_or_recover();
    if cache.len() >= CACHED {
        cache.remove(0);
    }
    cache.push((key, v.clone()));
    Ok(v)
}

#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// Byte range of the cast (absent: from the first event, one segment's worth).
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    to: Option<u64>,
    /// The clock at `from`, as the index computed it.
    #[serde(default)]
    shift: f64,
    #[serde(default)]
    prev: f64,
    #[serde(default)]
    last: f64,
    #[serde(default)]
    cols: Option<u32>,
    #[serde(default)]
    rows: Option<u32>,
    #[serde(default)]
    idle: Option<f64>,
    #[serde(default)]
    input: Option<u8>,
    /// The segment's number (for people reading logs; the range decides).
    #[serde(default)]
    #[allow(dead_code)]
    n: Option<u32>,
}

/// Keystrokes as the CLI shows them: highlighted, escaped.
fn typed(data: &str) -> String {
    format!("\x1b[7m{}\x1b[27m", data.escape_debug())
}

fn text_of(kind: EventKind, data: &str, filter: &mut TermFilter, out: &mut String) {
    match kind {
        EventKind::Input => out.push_str(&typed(data)),
        _ => filter.push(data, out),
    }
}

fn segment_of(path: &Path, r: &Range, shape: Shape) -> Result<Value, ApiError> {
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let from = match r.from {
        Some(f) => f,
        None => {
            let mut first = Vec::new();
            BufReader::new(&mut file)
                .take(crate::castfile::MAX_LINE as u64)
                .read_until(b'\n', &mut first)
                .map_err(io)?;
            first.len() as u64
        }
    };
    let to = r.to.unwrap_or_else(|| len.min(from + SEGMENT_BYTES));
    if from > to || to > len || to - from > SEGMENT_MAX {
        return Err(ApiError::bad("from/to: not a segment of this recording"));
    }
    let r = Range {
        from: Some(from),
        to: Some(to),
        ..*r
    };
    let mut filter = TermFilter::new();
    // The screen so far: output from just before the segment.
    let mut init = String::new();
    let back = from.saturating_sub(SNAPSHOT_BYTES);
    file.seek(SeekFrom::Start(back)).map_err(io)?;
    let mut before = BufReader::new((&mut file).take(from - back));
    let mut line = String::new();
    if back > 0 {
        before.read_line(&mut line).map_err(io)?;
    }
    loop {
        line.clear();
        if before.read_line(&mut line).map_err(io)? == 0 {
            break;
        }
        if let Ok(ev) = parse_line(line.trim_end())
            && shape.keeps(ev.kind.code().as_bytes()[0])
            && matches!(ev.kind, EventKind::Output | EventKind::Input)
        {
            text_of(ev.kind, &ev.data, &mut filter, &mut init);
        }
    }
    drop(before);
    file.seek(SeekFrom::Start(from)).map_err(io)?;
    let mut clock = Clock {
        idle: shape.idle,
        shift: r.shift,
        prev: r.prev,
        last: r.last,
    };
    let mut events = Vec::new();
    let mut reader = BufReader::with_capacity(256 * 1024, file.take(to - from));
    let mut buf = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(io)? == 0 {
            break;
        }
        let Ok(ev) = parse_line(line.trim_end()) else {
            continue;
        };
        let code = ev.kind.code();
        if !shape.keeps(code.as_bytes()[0]) {
            continue;
        }
        let t = clock.at(ev.time);
        let v = match ev.kind {
            EventKind::Output | EventKind::Input => {
                buf.clear();
                text_of(ev.kind, &ev.data, &mut filter, &mut buf);
                json!([t, "o", buf])
            }
            EventKind::Marker => json!([t, "m", visible(&ev.data)]),
            EventKind::Resize => json!([t, "r", ev.data]),
        };
        events.push(v);
    }
    Ok(json!({
        "snapshot": {"cols": r.cols.unwrap_or(80).max(1), "rows": r.rows.unwrap_or(24).max(1), "init": init},
        "events": events,
    }))
}

pub async fn segment(
    State(app): State<Arc<App>>,
    Seg(name): Seg<String>,
    Params(r): Params<Range>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let shape = Shape {
        idle: r.idle,
        input: r.input,
    }
    .check()?;
    if ![r.shift, r.prev, r.last].iter().all(|v| v.is_finite()) {
        return Err(ApiError::bad("shift/prev/last: expected numbers"));
    }
    let path = known(&app, &name).await?;
    let v = tokio::task::spawn_blocking(move || segment_of(&path, &r, shape))
        .await
        .map_err(io)??;
    Ok((StatusCode::OK, Json(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_time_and_code_and_shortens_pauses() {
        assert_eq!(peek(br#"[1.25,"o","x"]"#), Some((1.25, b'o')));
        assert_eq!(peek(br#"[2, "m", "x"]"#), Some((2.0, b'm')));
        assert_eq!(peek(b"{\"version\":2}"), None);
        let mut c = Clock {
            idle: Some(2.0),
            shift: 0.0,
            prev: 0.0,
            last: 0.0,
        };
        assert_eq!(c.at(1.0), 1.0);
        assert_eq!(c.at(11.0), 3.0);
        assert_eq!(c.at(11.5), 3.5);
    }
}
