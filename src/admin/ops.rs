//! `/health` (no token), `/metrics` (Prometheus text) and the OpenAPI document.

use super::http::ApiError;
use crate::app::App;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use std::fmt::Write as _;
use std::sync::Arc;

pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Whether the recordings directory takes a write right now.
fn recordings_writable(dir: &std::path::Path) -> bool {
    let probe = dir.join(format!(".health-{}", crate::ids::new_id()));
    let ok = std::fs::write(&probe, b"ok").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// How long one health answer is reused: `/health` needs no token, so without
/// this every request (from anyone who reaches the port) would cost a
/// database round trip, an audit read and a file write.
const HEALTH_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The last health answer, per router. The lock is held while a check runs,
/// so requests arriving meanwhile wait for its answer instead of checking too.
#[derive(Debug, Default)]
pub struct HealthCache(tokio::sync::Mutex<Option<(std::time::Instant, bool, serde_json::Value)>>);

/// Green only when the database, the audit store and recording storage all
/// answer; red names which part failed and nothing more (no token needed).
/// Checked at most once a second.
pub async fn health(
    State(app): State<Arc<App>>,
    Extension(cache): Extension<Arc<HealthCache>>,
) -> Response {
    let mut last = cache.0.lock().await;
    let (all, body) = match &*last {
        Some((at, all, body)) if at.elapsed() < HEALTH_TTL => (*all, body.clone()),
        _ => {
            let (all, body) = check_health(&app).await;
            *last = Some((std::time::Instant::now(), all, body.clone()));
            (all, body)
        }
    };
    drop(last);
    let status = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn check_health(app: &App) -> (bool, serde_json::Value) {
    let probe = tokio::time::timeout(std::time::Duration::from_secs(2), app.store.ping());
    let database = !app.db.is_down() && probe.await.is_ok_and(|r| r.is_ok());
    // Red while appends fail (set by every audit::record), not only when reads do.
    let audit = app.store.audit_readable().await.is_ok() && !app.audit_health.is_failing();
    let dir = app.config.recordings_dir.clone();
    let recordings = tokio::task::spawn_blocking(move || recordings_writable(&dir))
        .await
        .unwrap_or(false);
    let word = |ok: bool| if ok { "ok" } else { "failing" };
    let draining = app.draining.load(std::sync::atomic::Ordering::SeqCst);
    let all = database && audit && recordings && !draining;
    let mut body = json!({
        "status": if draining { "draining" } else { word(all) },
        "checks": {"database": word(database), "audit": word(audit), "recordings": word(recordings)},
    });
    // Why, in words an operator acts on (never the error text: it may name
    // the database's address).
    if let Some((since, _)) = app.db.down() {
        let secs = (crate::clock::now_ms() - since).max(0) / 1000;
        body["reason"] = json!(format!(
            "portcullis cannot reach its database (for {secs} s): new logins are refused"
        ));
    }
    (all, body)
}

fn label(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect()
}

/// The kill switch's counters (logins, locks, kills with latency, bytes),
/// then audit events by kind from the store (the same on every node).
pub async fn metrics(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let counts = app.store.metric_counts().await?;
    let locks = app.locks.in_force(crate::clock::now_ms()).len();
    let mut out = app.metrics.render(app.registry.len(), locks);
    let _ = writeln!(
        out,
        "# HELP portcullis_source_blocks Blocked source networks."
    );
    let _ = writeln!(out, "# TYPE portcullis_source_blocks gauge");
    let _ = writeln!(out, "portcullis_source_blocks {}", counts.source_blocks);
    let _ = writeln!(
        out,
        "# HELP portcullis_audit_events_total Audit events by kind."
    );
    let _ = writeln!(out, "# TYPE portcullis_audit_events_total counter");
    for (kind, n) in &counts.audit_kinds {
        let _ = writeln!(
            out,
            "portcullis_audit_events_total{{kind=\"{}\"}} {n}",
            label(kind)
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
