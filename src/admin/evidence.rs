//! Downloads for auditors, each audited as an export before the first
//! byte: the audit log as JSON lines (streamed, a page of the chain at a
//! time) and a session's evidence bundle (`recorder::evidence`, a tar
//! streamed member by member).

use super::http::{ApiError, Params, Seg, validate_name};
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

/// One piece of a bundle: bytes made here, or a file sent as it is (its
/// length at open: a file that grows is sent as it was).
enum Part {
    Bytes(String, Vec<u8>),
    File(String, std::path::PathBuf),
}

/// `GET /sessions/{id}/evidence`: the session's evidence bundle (see
/// `recorder::evidence`), streamed as a tar; audited before the first byte.
pub async fn session_bundle(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Seg(id): Seg<String>,
) -> Result<Response, ApiError> {
    validate_name("id", &id)?;
    let s = app
        .store
        .session(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {id:?} does not exist")))?;
    if app.registry.get(&id).is_some() || s.ended_ms.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the session is still live: its recordings are not sealed yet",
        ));
    }
    let recs = app.store.recordings_of(&id).await?;
    let dir = app.config.recordings_dir.clone();
    let mut reports = Vec::new();
    for r in &recs {
        reports.push(super::sessions::verified(&app, r.clone()).await?);
    }
    let mut audit_lines = String::new();
    let mut q = AuditQuery {
        session: Some(id.clone()),
        limit: Some(MAX_LIMIT),
        ..AuditQuery::default()
    };
    loop {
        let rows = audit::query(&app.store, &q).await.map_err(bad_query)?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            break;
        };
        for r in &rows {
            audit_lines.push_str(&r.to_json_line());
            audit_lines.push('\n');
        }
        q.after_seq = Some(last);
    }
    let now = crate::clock::now_ms();
    let mut parts = vec![
        Part::Bytes(
            "audit-key.pub".into(),
            format!(
                "{}\n",
                crate::castfile::public_base64(&app.audit_key.verifying_key())
            )
            .into_bytes(),
        ),
        Part::Bytes("audit.jsonl".into(), audit_lines.into_bytes()),
        Part::Bytes(
            "verify.json".into(),
            format!("{:#}\n", json!({"recordings": reports})).into_bytes(),
        ),
    ];
    for r in &recs {
        for ext in ["cast", "chain"] {
            parts.push(Part::File(
                format!("recordings/{}.{ext}", r.name),
                dir.join(format!("{}.{ext}", r.name)),
            ));
        }
    }
    let head = json!({
        "format": "portcullis-evidence-v1",
        "created_ms": now,
        "created_by": caller.actor(),
        "session": {"id": s.id, "user": s.user, "target": s.target, "login": s.login,
                    "source": s.source, "kind": s.kind.as_str(), "started_ms": s.started_ms,
                    "ended_ms": s.ended_ms, "end_reason": s.end_reason},
        "recordings": recs.iter().map(|r| json!({"name": r.name, "channel": r.channel, "kind": r.kind,
            "events": r.events, "sha256": r.sha256, "state": r.state})).collect::<Vec<_>>(),
    });
    let event = AuditEvent::Exported {
        evidence: true,
        actor: caller.actor(),
        source: source(from),
        session: id.clone(),
        filter: json!({}),
    };
    audit::record(&app.store, event)
        .await
        .map_err(|e| ApiError::internal("audit of the export", e))?;
    let (tx, rx) = futures::channel::mpsc::channel::<std::io::Result<axum::body::Bytes>>(4);
    tokio::spawn(async move {
        let mut tx = tx;
        if let Err(e) = send_bundle(&mut tx, parts, head, now).await {
            use futures::SinkExt;
            // Ends the body early: the download is visibly short.
            let _ = tx.send(Err(e)).await;
        }
    });
    let disposition = format!("attachment; filename=\"portcullis-evidence-{id}.tar\"");
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        axum::body::Body::from_stream(rx),
    )
        .into_response())
}

type Tx = futures::channel::mpsc::Sender<std::io::Result<axum::body::Bytes>>;

/// Members in order, hashing what is sent; the manifest (with every
/// member's SHA-256) last, then the end blocks.
async fn send_bundle(
    tx: &mut Tx,
    parts: Vec<Part>,
    mut manifest: serde_json::Value,
    now_ms: i64,
) -> std::io::Result<()> {
    use crate::recorder::evidence as ev;
    use futures::SinkExt;
    use sha2::Digest;
    use tokio::io::AsyncReadExt;
    let mtime = u64::try_from(now_ms / 1000).unwrap_or(0);
    let gone = || std::io::Error::other("the client went away");
    let fmt = |e: ev::EvidenceError| std::io::Error::other(e.to_string());
    let mut digests = serde_json::Map::new();
    for part in parts {
        match part {
            Part::Bytes(name, data) => {
                digests.insert(name.clone(), json!(ev::sha256_hex(&data)));
                let m = ev::member(&name, &data, mtime).map_err(fmt)?;
                tx.send(Ok(m.into())).await.map_err(|_| gone())?;
            }
            Part::File(name, path) => {
                let file = tokio::fs::File::open(&path).await?;
                let len = file.metadata().await?.len();
                let h = ev::header(&name, len, mtime).map_err(fmt)?;
                tx.send(Ok(h.to_vec().into())).await.map_err(|_| gone())?;
                let mut reader = file.take(len);
                let mut sha = sha2::Sha256::new();
                let mut sent = 0u64;
                loop {
                    let mut buf = vec![0u8; 64 * 1024];
                    let n = reader.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    buf.truncate(n);
                    sha.update(&buf);
                    sent += n as u64;
                    tx.send(Ok(buf.into())).await.map_err(|_| gone())?;
                }
                if sent != len {
                    return Err(std::io::Error::other(format!("{name} shrank while sent")));
                }
                let pad = vec![0u8; ev::padding(len)];
                tx.send(Ok(pad.into())).await.map_err(|_| gone())?;
                digests.insert(name, json!(hex::encode(sha.finalize())));
            }
        }
    }
    manifest["files"] = serde_json::Value::Object(digests);
    let m =
        ev::member("manifest.json", format!("{manifest:#}\n").as_bytes(), mtime).map_err(fmt)?;
    tx.send(Ok(m.into())).await.map_err(|_| gone())?;
    tx.send(Ok(ev::end().to_vec().into()))
        .await
        .map_err(|_| gone())?;
    Ok(())
}
