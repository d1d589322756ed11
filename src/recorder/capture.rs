//! Content capture of a forwarded connection (per target, `--capture`).
//!
//! The raw bytes go into a recording with the same integrity chain and
//! signed trailer as session recordings (`portcullis verify` checks it):
//! each chunk is a marker event `> BASE64` (client to destination) or
//! `< BASE64` (destination to client), so binary protocols survive intact
//! and the cast stays valid asciicast. Fail closed: a capture that cannot
//! be written ends the forward.

use crate::app::App;
use crate::audit::{self, AuditEvent, ForwardMeta};
use crate::bridge::{Counters, Direction, Frame, Tap, Tapped};
use crate::castfile::{ChannelKind, Header, RecordingWriter, SessionMeta, TrailerInfo};
use crate::clock::now_ms;
use crate::store::RecordingRow;
use base64::Engine;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const QUEUE: usize = 256;

/// Why a capture could not start; the texts are those the forward reports.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("capture: {0}")]
    Capture(String),
}

/// What the capture needs to know about its forward.
pub struct CaptureCtx {
    pub app: Arc<App>,
    pub meta: ForwardMeta,
    /// The session's channel number: the recording is `<session>-<channel>`.
    pub channel: u32,
    pub counters: Arc<Counters>,
    /// Cancelled (ending the forward) if the capture fails.
    pub cancel: CancellationToken,
}

/// Creates the recording (before any byte moves) and starts its writer.
pub async fn start(ctx: CaptureCtx) -> Result<Tap, CaptureError> {
    // A captured forward is a new recording: refused below the low-water mark.
    let level = crate::disk::now(&ctx.app);
    if level != crate::disk::Level::Ok {
        return Err(CaptureError::Capture(format!(
            "recordings disk free space is {level:?}"
        )));
    }
    let name = format!("{}-{}", ctx.meta.session, ctx.channel);
    let m = &ctx.meta;
    let header = Header {
        width: 80,
        height: 24,
        timestamp: now_ms() / 1000,
        env: Default::default(),
        title: Some(format!(
            "{} forward to {} ({})",
            m.user, m.target, m.destination
        )),
        portcullis: Some(SessionMeta {
            session: m.session.clone(),
            user: m.user.clone(),
            target: m.target.clone(),
            login: String::new(),
            channel: ctx.channel,
            kind: ChannelKind::Subsystem,
            command: Some(format!("tcp-forward {} {}", m.kind.as_str(), m.destination)),
        }),
    };
    let dir = ctx.app.config.recordings_dir.clone();
    let key = ctx.app.audit_key.clone();
    let n = name.clone();
    let writer =
        tokio::task::spawn_blocking(move || RecordingWriter::create(&dir, &n, &header, &key))
            .await
            .map_err(|e| CaptureError::Capture(e.to_string()))?
            .map_err(|e| CaptureError::Capture(e.to_string()))?;
    let row = RecordingRow::open(&name, &m.session, ctx.channel, "forward", now_ms());
    ctx.app.store.recording_started(&row).await?;
    let (tx, rx) = crate::bridge::tap_queue(QUEUE);
    let tasks = ctx.app.tasks.clone();
    tasks.spawn(tracing::Instrument::in_current_span(run(
        ctx, name, writer, rx,
    )));
    Ok(Tap {
        tx,
        up_data: Arc::new(AtomicBool::new(true)),
    })
}

async fn run(ctx: CaptureCtx, name: String, mut w: RecordingWriter, mut rx: crate::bridge::TapRx) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut dirty = false;
    let outcome: Result<(), String> = loop {
        tokio::select! {
            t = rx.recv() => match t {
                Some(t) => {
                    dirty = true;
                    if let Err(e) = chunk(&mut w, start, t) { break Err(e) }
                }
                None => break Ok(()),
            },
            _ = tick.tick(), if dirty => {
                dirty = false;
                if let Err(e) = checkpoint(&ctx, &name, &mut w, "open").await { break Err(e) }
            }
        }
    };
    drop(rx);
    let result = match outcome {
        Ok(()) => seal(&ctx, &name, w).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::error!(forward = %ctx.meta.id, recording = %name, error = %e, "capture failed; ending the forward");
        ctx.cancel.cancel();
        let _ = ctx
            .app
            .store
            .recording_checkpoint(&name, 0, 0, "", now_ms(), "failed")
            .await;
        let event = AuditEvent::RecordingFailed {
            session: ctx.meta.session.clone(),
            recording: name,
            error: e,
        };
        if let Err(err) = audit::record(&ctx.app.store, event).await {
            tracing::error!(error = %err, "audit write failed too");
        }
    }
}

fn chunk(w: &mut RecordingWriter, start: Instant, t: Tapped) -> Result<(), String> {
    let Frame::Data(b) = &t.frame else {
        return Ok(());
    };
    let arrow = if t.dir == Direction::Up { '>' } else { '<' };
    let time = t.at.saturating_duration_since(start).as_secs_f64();
    // 32 KiB encode to 43.7 KB: one event line each, never split by the writer.
    for piece in b.chunks(32 * 1024) {
        let text = format!(
            "{arrow} {}",
            base64::engine::general_purpose::STANDARD.encode(piece)
        );
        w.marker(time, &text).map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn checkpoint(
    ctx: &CaptureCtx,
    name: &str,
    w: &mut RecordingWriter,
    state: &str,
) -> Result<(), String> {
    let cp = tokio::task::block_in_place(|| w.checkpoint(now_ms())).map_err(|e| e.to_string())?;
    ctx.app
        .store
        .recording_checkpoint(
            name,
            cp.events as i64,
            cp.cast_bytes as i64,
            &cp.sha256,
            now_ms(),
            state,
        )
        .await
        .map_err(|e| e.to_string())
}

async fn seal(ctx: &CaptureCtx, name: &str, w: RecordingWriter) -> Result<(), String> {
    let info = TrailerInfo {
        bytes_up: ctx.counters.up.load(Ordering::Relaxed),
        bytes_down: ctx.counters.down.load(Ordering::Relaxed),
        end_reason: "forward closed".into(),
        ended_at_ms: now_ms(),
    };
    crate::recorder::seal(&ctx.app.store, name, w, &info).await
}
