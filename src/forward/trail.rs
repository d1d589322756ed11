//! A forward's place in the audit trail and its optional capture: the
//! opening event (fail closed), the closing one with duration and bytes,
//! and the start of the signed capture. No transport here: the gateway
//! calls these around the channels it moves.

use super::{ForwardKind, ForwardMeta};
use crate::app::App;
use crate::audit::{self, AuditEvent};
use crate::bridge::{Counters, Tap};
use crate::ids::new_id;
use crate::recorder::capture::{self, CaptureCtx};
use crate::session::Session;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

pub fn meta(
    s: &Session,
    kind: ForwardKind,
    target: &str,
    destination: String,
    asked: &str,
) -> ForwardMeta {
    ForwardMeta {
        id: new_id(),
        session: s.id.clone(),
        user: s.user.clone(),
        source: s.source.to_string(),
        kind,
        target: target.to_string(),
        destination,
        requested: asked.to_string(),
        via: None,
    }
}

/// Writes the opening event; `false` (fail closed) if it cannot be written.
/// Past the user's cap the forward is summarised instead: the first one
/// writes a durable marker (or is refused), later ones are only counted
/// until the next flush (`audit::rate`).
pub async fn open(app: &App, meta: &ForwardMeta) -> bool {
    if !app.caps.forwards.take(&meta.user, Instant::now()) {
        let first = app
            .caps
            .summary
            .opened(&meta.user, &meta.id, &meta.destination);
        if !first {
            return true;
        }
        let event = AuditEvent::ForwardSummary {
            user: meta.user.clone(),
            marker: true,
            totals: audit::rate::UserForwards {
                count: 1,
                ..Default::default()
            },
        };
        return match audit::record(&app.store, event).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(forward = %meta.id, error = %e, "forward summary not audited; refusing");
                app.caps.summary.closed(&meta.user, &meta.id, 0, 0);
                false
            }
        };
    }
    match audit::record(&app.store, AuditEvent::ForwardOpened(meta.clone())).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(forward = %meta.id, error = %e, "forward not audited; refusing");
            false
        }
    }
}

/// Writes the closing event with duration and bytes.
pub async fn close(
    app: &App,
    meta: ForwardMeta,
    started: Instant,
    counters: &Counters,
    reason: &str,
) {
    let (up, down) = (
        counters.up.load(Ordering::Relaxed),
        counters.down.load(Ordering::Relaxed),
    );
    tracing::info!(forward = %meta.id, user = %meta.user, target = %meta.target, kind = meta.kind.as_str(),
        bytes_up = up, bytes_down = down, reason, "forward closed");
    if app.caps.summary.closed(&meta.user, &meta.id, up, down) {
        return; // summarised: its bytes go in the user's next summary row
    }
    let event = AuditEvent::ForwardClosed {
        meta,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        bytes_up: up,
        bytes_down: down,
        reason: reason.to_string(),
    };
    if let Err(e) = audit::record(&app.store, event).await {
        tracing::error!(error = %e, "audit of a closed forward not written");
    }
}

/// The capture of a forward through an SSH target's connection (`-L` on an
/// `alice+web01` session, `-R`), when that target keeps contents
/// (`target capture NAME on`). Fails closed: a setting that cannot be read
/// or a capture that cannot start refuses the forward.
pub async fn via_target_capture(
    m: &ForwardMeta,
    s: &Session,
    counters: &Arc<Counters>,
    cancel: &CancellationToken,
) -> Result<Option<Tap>, String> {
    let target = m.via.as_deref().unwrap_or(&m.target);
    if !s
        .app()
        .store
        .capture_files(target)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(None);
    }
    start_capture(m, s, counters, cancel).await.map(Some)
}

/// Starts the signed capture of one forwarded connection's bytes.
pub async fn start_capture(
    m: &ForwardMeta,
    s: &Session,
    counters: &Arc<Counters>,
    cancel: &CancellationToken,
) -> Result<Tap, String> {
    let ctx = CaptureCtx {
        app: s.app().clone(),
        meta: m.clone(),
        channel: s.next_channel(),
        counters: counters.clone(),
        cancel: cancel.clone(),
    };
    capture::start(ctx).await.map_err(|e| e.to_string())
}
