//! `GET /sessions/{id}/activity`: what happened in one session, for the
//! console's detail page — its channels (one per recording: kind and
//! command, from the recording's own header), its forwards (the
//! `forward.opened`/`forward.closed` audit rows carrying the session id),
//! its file operations (the SFTP and scp/rsync markers of its transfer
//! recordings) and its audit events. All of it is data the bastion recorded
//! from untrusted peers: the page shows it as text.

use super::http::{ApiError, Seg, validate_name};
use crate::app::App;
use crate::audit::{self, AuditEntry, AuditQuery};
use crate::castfile::term::visible;
use crate::castfile::{ChannelKind, EventKind, parse_header, parse_line};
use crate::store::RecordingRow;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, Read};
use std::path::Path;
use std::sync::Arc;

/// File operations listed per recording at most (the rest are counted).
const MAX_OPS: usize = 1000;
/// Audit rows of one session listed at most.
const MAX_AUDIT: usize = 2000;
/// Bytes of one recording read for its markers at most.
const MAX_SCAN: u64 = 64 << 20;

/// A recording's header facts and, for a transfer, its file operations.
struct Channel {
    kind: Option<String>,
    command: Option<String>,
    transfer: bool,
    ops: Vec<Value>,
    more_ops: u64,
}

/// `sftp upload /p 1000 bytes blake3 …` → (op, path, bytes); scp/rsync
/// summaries (`upload: 14 bytes …`) have no path of their own.
fn file_op(text: &str) -> Option<(String, String, Option<u64>)> {
    let bytes = text
        .split(' ')
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[1] == "bytes" || w[1] == "bytes,")
        .and_then(|w| w[0].parse::<u64>().ok());
    if let Some(rest) = text.strip_prefix("sftp ") {
        let (op, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        // Paths are one word, or quoted when they hold spaces or quotes.
        let path = if let Some(q) = rest.strip_prefix('"') {
            let mut end = None;
            let mut esc = false;
            for (i, c) in q.char_indices() {
                match c {
                    '\\' if !esc => esc = true,
                    '"' if !esc => {
                        end = Some(i);
                        break;
                    }
                    _ => esc = false,
                }
            }
            format!("\"{}\"", &q[..end.unwrap_or(q.len())])
        } else {
            rest.split(' ')
                .next()
                .unwrap_or("")
                .trim_end_matches(':')
                .to_string()
        };
        return Some((op.to_string(), path, bytes));
    }
    for dir in ["upload", "download"] {
        if let Some(rest) = text.strip_prefix(dir).and_then(|r| r.strip_prefix(": ")) {
            return Some((
                dir.to_string(),
                String::new(),
                bytes.or_else(|| rest.split(' ').next().and_then(|n| n.parse().ok())),
            ));
        }
    }
    None
}

fn read_channel(path: &Path) -> std::io::Result<Channel> {
    let f = std::fs::File::open(path)?;
    let mut r = std::io::BufReader::new(f).take(MAX_SCAN);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let meta = parse_header(line.trim_end())
        .ok()
        .and_then(|h| h.portcullis);
    let (kind, command) = match &meta {
        Some(m) => (
            Some(
                match m.kind {
                    ChannelKind::Shell => "shell",
                    ChannelKind::Exec => "exec",
                    ChannelKind::Subsystem => "subsystem",
                }
                .to_string(),
            ),
            m.command.clone(),
        ),
        None => (None, None),
    };
    let transfer = match (&meta, command.as_deref()) {
        (Some(m), Some(c)) if m.kind == ChannelKind::Subsystem => c == "sftp",
        (Some(m), Some(c)) if m.kind == ChannelKind::Exec => matches!(
            crate::policy::classify_exec(c.as_bytes()),
            crate::policy::ExecKind::Transfer(_)
        ),
        _ => false,
    };
    let mut ch = Channel {
        kind,
        command,
        transfer,
        ops: Vec::new(),
        more_ops: 0,
    };
    if !transfer {
        return Ok(ch);
    }
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        // Markers only: `[t, "m", "…"]`.
        if !buf
            .windows(5)
            .take(40)
            .any(|w| w == b"\"m\", " || w == b", \"m\"")
        {
            continue;
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            continue;
        };
        let Ok(ev) = parse_line(text.trim_end()) else {
            continue;
        };
        if ev.kind != EventKind::Marker {
            continue;
        }
        let Some((op, path, bytes)) = file_op(&ev.data) else {
            continue;
        };
        if ch.ops.len() >= MAX_OPS {
            ch.more_ops += 1;
            continue;
        }
        ch.ops.push(
            json!({"t": ev.time, "op": visible(&op), "path": visible(&path),
                           "bytes": bytes, "text": visible(&ev.data)}),
        );
    }
    Ok(ch)
}

fn forwards(rows: &[AuditEntry]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for r in rows {
        let d = &r.detail;
        let id = d["id"].as_str().unwrap_or("").to_string();
        match r.kind.as_str() {
            "forward.opened" => out.push(json!({
                "id": id, "kind": d["kind"], "destination": d["destination"],
                "requested": d["requested"], "target": d["target"], "via": d["via"],
                "opened": r.time, "closed": null, "bytes_up": null, "bytes_down": null,
                "duration_ms": null, "reason": null,
            })),
            "forward.closed" => {
                let i = match out.iter().position(|f| f["id"] == id.as_str()) {
                    Some(i) => i,
                    None => {
                        out.push(json!({"id": id, "kind": d["kind"],
                            "destination": d["destination"], "requested": d["requested"],
                            "target": d["target"], "via": d["via"], "opened": null}));
                        out.len() - 1
                    }
                };
                let f = &mut out[i];
                f["closed"] = json!(r.time);
                for k in ["bytes_up", "bytes_down", "duration_ms", "reason"] {
                    f[k] = d[k].clone();
                }
            }
            _ => {}
        }
    }
    out
}

/// The session's audit rows, oldest first, paged through the chain query.
async fn audit_of(app: &App, id: &str) -> Result<(Vec<AuditEntry>, bool), ApiError> {
    let mut q = AuditQuery {
        session: Some(id.to_string()),
        limit: Some(1000),
        ..AuditQuery::default()
    };
    let mut all = Vec::new();
    loop {
        let rows = audit::query(&app.store, &q)
            .await
            .map_err(|e| ApiError::internal("audit query", e))?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            break;
        };
        let full = rows.len() == 1000;
        all.extend(rows);
        if all.len() >= MAX_AUDIT {
            all.truncate(MAX_AUDIT);
            return Ok((all, true));
        }
        if !full {
            break;
        }
        q.after_seq = Some(last);
    }
    Ok((all, false))
}

pub async fn activity(
    State(app): State<Arc<App>>,
    Seg(id): Seg<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    validate_name("id", &id)?;
    if app.store.session(&id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "session {id:?} does not exist"
        )));
    }
    let recs: Vec<RecordingRow> = app.store.recordings_of(&id).await?;
    let dir = app.config.recordings_dir.clone();
    let names: Vec<(String, i64, String, i64)> = recs
        .iter()
        .map(|r| (r.name.clone(), r.channel, r.kind.clone(), r.started_ms))
        .collect();
    let read = tokio::task::spawn_blocking(move || {
        names
            .into_iter()
            .map(|(name, channel, kind, started)| {
                let ch = read_channel(&dir.join(format!("{name}.cast")));
                (name, channel, kind, started, ch)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::internal("reading the recordings", e))?;
    let mut channels = Vec::new();
    let mut files = Vec::new();
    for (name, channel, row_kind, started, ch) in read {
        match ch {
            Ok(ch) => {
                channels.push(json!({"recording": name, "channel": channel,
                    "kind": ch.kind.unwrap_or(row_kind), "command": ch.command.as_deref().map(visible),
                    "started_ms": started, "transfer": ch.transfer}));
                if ch.transfer {
                    files.push(json!({"recording": name, "ops": ch.ops, "more": ch.more_ops}));
                }
            }
            Err(e) => {
                tracing::warn!(recording = %name, error = %e, "recording not readable for the detail page");
                channels.push(
                    json!({"recording": name, "channel": channel, "kind": row_kind,
                    "command": null, "started_ms": started, "transfer": false,
                    "problem": "recording file not readable"}),
                );
            }
        }
    }
    let (events, cut) = audit_of(&app, &id).await?;
    let fwd = forwards(&events);
    Ok((
        StatusCode::OK,
        Json(
            json!({"id": id, "channels": channels, "forwards": fwd, "files": files,
                    "audit": events, "audit_truncated": cut}),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::file_op;

    #[test]
    fn file_operations_from_markers() {
        assert_eq!(
            file_op("sftp upload /tmp/a 1000 bytes blake3 ab"),
            Some(("upload".into(), "/tmp/a".into(), Some(1000)))
        );
        assert_eq!(
            file_op(r#"sftp remove "/tmp/sym link""#),
            Some(("remove".into(), "\"/tmp/sym link\"".into(), None))
        );
        assert_eq!(
            file_op("sftp list /d/: 3 entries"),
            Some(("list".into(), "/d/".into(), None))
        );
        assert_eq!(
            file_op("download: 2 bytes blake3 x"),
            Some(("download".into(), String::new(), Some(2)))
        );
        assert_eq!(file_op("exec: scp -t ."), None);
    }
}
