//! `GET /sessions/{id}/live`: a read-only view following one recording of
//! a session as it is written, as newline-delimited JSON. The file is read
//! by `castfile::follow` (shared with `portcullis recording watch`), output
//! goes through the same terminal filter as `replay`, and the stream ends
//! when the trailer is written or the session is gone.
//!
//! Lines: `{"type":"start","recording","cols","rows","time"}` once, then
//! events `{"t":SECONDS,"o"|"m"|"r":TEXT}` (several per line batch), a
//! `{"type":"ping"}` every 10 s and `{"type":"end","reason"}` last.
//!
//! The console's cookie must come with its CSRF header here although this
//! is a GET (only the console's own script can open a stream), and every
//! console stream is audited as a `console.action` before it starts, and
//! every stream, console or token, as `session.watched` (fail closed). Streams are
//! capped in total and per caller.

use super::console::guard;
use super::http::{ApiError, Params, Seg, validate_name};
use super::tokens::Caller;
use crate::app::App;
use crate::audit::console::ConsoleEvent;
use crate::audit::{self, AuditEvent, ReadEvent, ReadKind};
use crate::castfile::follow::{Follower, Status};
use crate::castfile::term::{TermFilter, visible};
use crate::castfile::{Event, EventKind};
use crate::store::RecordingRow;
use crate::sync::MutexExt;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Live streams open at once on this node, and per caller.
pub const MAX_STREAMS: usize = 32;
pub const MAX_PER_CALLER: usize = 4;
/// How much of a long recording is sent first (the screen's recent past).
const BACKLOG: u64 = 256 * 1024;
/// Poll spacing: short after output, growing to the cap while idle.
const POLL_MIN: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(40);
const PING: Duration = Duration::from_secs(10);
/// A recording with no trailer whose session is gone (a failed
/// recording, a crash sealed later): the stream ends after this quiet.
const GONE_QUIET: Duration = Duration::from_secs(3);

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveParams {
    /// `<session>-<channel>`; the session's newest open recording if absent.
    #[serde(default)]
    recording: Option<String>,
}

/// Open streams by caller id.
static OPEN: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

/// A place among the open streams, given back on drop.
struct Slot(String);

impl Slot {
    fn take(caller: &str) -> Option<Slot> {
        let mut open = OPEN.lock_or_recover();
        let map = open.get_or_insert_with(HashMap::new);
        let total: usize = map.values().sum();
        let mine = map.get(caller).copied().unwrap_or(0);
        if total >= MAX_STREAMS || mine >= MAX_PER_CALLER {
            return None;
        }
        *map.entry(caller.to_string()).or_insert(0) += 1;
        Some(Slot(caller.to_string()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = OPEN.lock_or_recover();
        if let Some(map) = open.as_mut()
            && let Some(n) = map.get_mut(&self.0)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.0);
            }
        }
    }
}

/// A read of a session's recorded output (live, replay, download) by a
/// console user or a token, appended to the audit chain before anything is
/// sent: if it cannot be written the read is refused.
pub async fn audit_read(
    app: &App,
    caller: &Caller,
    source: String,
    how: ReadKind,
    session: &str,
    recording: &str,
) -> Result<(), ApiError> {
    let event = AuditEvent::Read(ReadEvent {
        how,
        actor: caller.actor(),
        source,
        session: session.to_string(),
        recording: recording.to_string(),
    });
    audit::record(&app.store, event)
        .await
        .map_err(|e| ApiError::internal("audit of the read (nothing is sent without it)", e))
}

fn pick(rows: &[RecordingRow], want: Option<&str>) -> Option<RecordingRow> {
    if let Some(w) = want {
        return rows.iter().find(|r| r.name == w).cloned();
    }
    rows.iter()
        .filter(|r| r.state == "open")
        .max_by_key(|r| (r.started_ms, r.channel))
        .or_else(|| rows.iter().max_by_key(|r| (r.started_ms, r.channel)))
        .cloned()
}

pub async fn live(
    State(app): State<Arc<App>>,
    Seg(id): Seg<String>,
    Params(q): Params<LiveParams>,
    req: Request,
) -> Result<Response, ApiError> {
    validate_name("id", &id)?;
    if let Some(r) = &q.recording {
        validate_name("recording", r)?;
    }
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "not signed in"))?;
    let from = guard::source(&req);
    let from_ip = from.clone();
    let path = req.uri().path().to_string();
    let console_action = if caller.console {
        // A GET passes the guard without CSRF; a stream of terminal output
        // is opened only by the console's script, which holds the token.
        let presented = guard::Presented::of(&req);
        let s = guard::signed_in(&app, &presented).await?;
        guard::unlocked(&app, &s)?;
        if !presented.csrf_ok(&s) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token",
            ));
        }
        Some(AuditEvent::Console(ConsoleEvent::Action {
            user: s.user,
            source: from,
            method: "GET".into(),
            path,
        }))
    } else {
        None
    };
    drop(req);
    app.store
        .session(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {id:?} does not exist")))?;
    let slot = Slot::take(&caller.id).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many live views open (at most {MAX_PER_CALLER} each, {MAX_STREAMS} in all)"
            ),
        )
    })?;
    // A live session's channel may not have its recording yet (no shell yet).
    let deadline = Instant::now() + Duration::from_secs(10);
    let rec = loop {
        let rows = app.store.recordings_of(&id).await?;
        if let Some(r) = pick(&rows, q.recording.as_deref()) {
            break r;
        }
        if app.registry.get(&id).is_none() || Instant::now() > deadline {
            return Err(ApiError::not_found(match &q.recording {
                Some(r) => format!("recording {r:?} is not one of this session's"),
                None => "this session has no recording".into(),
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if let Some(event) = console_action {
        audit::record(&app.store, event)
            .await
            .map_err(|e| ApiError::internal("audit of the live view", e))?;
    }
    // Every watcher, console or token, is in the audit trail before the
    // first byte: no record, no stream.
    audit_read(&app, &caller, from_ip, ReadKind::Live, &id, &rec.name).await?;
    super::sessions::readable_here(&app, &rec.name).await?;
    let cast = app.config.recordings_dir.join(format!("{}.cast", rec.name));
    let follower = Follower::open(&cast).map_err(|e| ApiError::internal("the recording", e))?;
    let (tx, rx) = mpsc::channel::<axum::body::Bytes>(16);
    let app2 = app.clone();
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        follow(&app2, &id, &rec.name, follower, &tx);
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8"),
            // Proxies must not hold the stream back.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

fn line(v: serde_json::Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// What an event becomes on the stream; `None` for what the view does not show.
fn event_json(ev: &Event, filter: &mut TermFilter, buf: &mut String) -> Option<serde_json::Value> {
    let t = (ev.time * 1000.0).round() / 1000.0;
    match ev.kind {
        EventKind::Output => {
            buf.clear();
            filter.push(&ev.data, buf);
            (!buf.is_empty()).then(|| json!({"t": t, "o": buf}))
        }
        EventKind::Marker => Some(json!({"t": t, "m": visible(&ev.data)})),
        EventKind::Resize => Some(json!({"t": t, "r": ev.data})),
        // Keystrokes: what the target echoed is already in the output.
        EventKind::Input => None,
    }
}

/// Runs on a blocking thread until the recording is sealed, the session
/// is gone and quiet, or the viewer went away.
fn follow(app: &App, id: &str, name: &str, mut f: Follower, tx: &mpsc::Sender<axum::body::Bytes>) {
    let send = |s: String| tx.blocking_send(axum::body::Bytes::from(s)).is_ok();
    let mut filter = TermFilter::new();
    let (mut buf, mut events) = (String::new(), Vec::new());
    if let Err(e) = f.skip_to_near_end(BACKLOG) {
        tracing::warn!(recording = %name, error = %e, "live view: unreadable recording");
        send(line(
            json!({"type": "end", "reason": "the recording cannot be read"}),
        ));
        return;
    }
    let (mut started, mut wait) = (false, POLL_MIN);
    let (mut last_data, mut last_sent) = (Instant::now(), Instant::now());
    let reason = loop {
        if tx.is_closed() {
            return;
        }
        events.clear();
        let status = match f.poll(&mut events, 4096) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(recording = %name, error = %e, "live view: unreadable recording");
                break "the recording cannot be read";
            }
        };
        let mut out = String::new();
        if !started && let Some(h) = f.header() {
            started = true;
            out.push_str(&line(
                json!({"type": "start", "recording": name, "session": id,
                "cols": if h.width == 0 { 80 } else { h.width },
                "rows": if h.height == 0 { 24 } else { h.height }, "timestamp": h.timestamp}),
            ));
        }
        for ev in &events {
            if let Some(v) = event_json(ev, &mut filter, &mut buf) {
                out.push_str(&line(v));
            }
        }
        if !out.is_empty() {
            if !send(out) {
                return;
            }
            last_sent = Instant::now();
        }
        match status {
            Status::Sealed => break "the recording is finished",
            Status::More => continue,
            Status::Idle => {}
        }
        if !events.is_empty() {
            last_data = Instant::now();
            wait = POLL_MIN;
        } else {
            wait = (wait * 2).min(POLL_MAX);
            if last_data.elapsed() > GONE_QUIET && app.registry.get(id).is_none() {
                break "the session has ended";
            }
        }
        if last_sent.elapsed() > PING {
            if !send(line(json!({"type": "ping"}))) {
                return;
            }
            last_sent = Instant::now();
        }
        std::thread::sleep(wait);
    };
    send(line(json!({"type": "end", "reason": reason})));
}
