//! Downloads for auditors: the audit log as JSON lines (streamed, a page of
//! the chain at a time), audited as an export before the first byte.

use super::http::{ApiError, Params};
use super::tokens::Caller;
use crate::app::App;
use crate::audit::{self, AuditEvent, AuditQuery, MAX_LIMIT};
use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since_ms: Option<i64>,
    /// Inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session: Option<String>,
}

fn source(from: SocketAddr) -> String {
    from.ip().to_canonical().to_string()
}

/// Every event matching the filters, oldest first, one JSON object a line
/// (as `portcullis audit export` writes them).
pub async fn audit_export(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Params(p): Params<ExportParams>,
) -> Result<Response, ApiError> {
    let empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let q = AuditQuery {
        since: p.since_ms,
        until: p.until_ms.map(|u| u.saturating_add(1)),
        kind: empty(p.kind.clone()),
        actor: empty(p.actor.clone()),
        subject: empty(p.subject.clone()),
        session: empty(p.session.clone()),
        limit: Some(MAX_LIMIT),
        after_seq: None,
    };
    // A bad filter is refused before anything is audited or sent.
    let first = audit::query(&app.store, &q).await.map_err(bad_query)?;
    let event = AuditEvent::Exported {
        evidence: false,
        actor: caller.actor(),
        source: source(from),
        session: String::new(),
        filter: json!(p),
    };
    audit::record(&app.store, event)
        .await
        .map_err(|e| ApiError::internal("audit of the export", e))?;
    let state = Some((app, q, Some(first)));
    let pages = futures::stream::unfold(state, |state| async move {
        let (app, mut q, first) = state?;
        let rows = match first {
            Some(rows) => rows,
            None => match audit::query(&app.store, &q).await {
                Ok(rows) => rows,
                // Ends the body early: the download is visibly short.
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
            },
        };
        let last = rows.last()?.seq;
        let mut chunk = String::new();
        for r in &rows {
            chunk.push_str(&r.to_json_line());
            chunk.push('\n');
        }
        q.after_seq = Some(last);
        Some((Ok(axum::body::Bytes::from(chunk)), Some((app, q, None))))
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"portcullis-audit.jsonl\"",
            ),
        ],
        axum::body::Body::from_stream(pages),
    )
        .into_response())
}

fn bad_query(e: audit::AuditError) -> ApiError {
    match e {
        audit::AuditError::BadQuery(m) => ApiError::bad(&m),
        e => ApiError::internal("audit query", e),
    }
}
