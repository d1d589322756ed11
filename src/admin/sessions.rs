//! Sessions (live and recent, terminate), recordings (metadata, download,
//! verify) and the audit log (filters and paging).

use super::bodies::Terminate;
use super::http::{ApiError, OptBody, Params, Seg, validate_name};
use super::tokens::Caller;
use crate::app::App;
use crate::audit;
use crate::registry::LiveSession;
use crate::store::{RecordingRow, SessionRecord};
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use std::sync::Arc;

type Res = Result<(StatusCode, Json<Value>), ApiError>;

fn live_json(s: &LiveSession) -> Value {
    let (up, down) = s.bytes_moved();
    json!({"id": s.id, "kind": s.kind, "user": s.user, "target": s.target, "login": s.login,
           "source": s.source, "started_ms": s.started_ms, "bytes_up": up, "bytes_down": down})
}

fn session_json(s: &SessionRecord, live: bool) -> Value {
    json!({"id": s.id, "kind": s.kind.as_str(), "user": s.user, "target": s.target,
           "login": s.login, "source": s.source, "started_ms": s.started_ms, "ended_ms": s.ended_ms,
           "end_reason": s.end_reason, "bytes_up": s.bytes_up, "bytes_down": s.bytes_down,
           "live": live})
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    session: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    since_ms: Option<i64>,
    #[serde(default)]
    until_ms: Option<i64>,
}

impl ListParams {
    /// The page asked for, or `None` for the original listing.
    fn page(&self) -> Result<Option<crate::store::SessionPage>, ApiError> {
        use crate::store::{SessionPage, SessionSort};
        let paged = self.offset.is_some()
            || self.sort.is_some()
            || self.dir.is_some()
            || self.user.is_some()
            || self.target.is_some()
            || self.kind.is_some()
            || self.since_ms.is_some()
            || self.until_ms.is_some();
        if !paged {
            return Ok(None);
        }
        let sort = match self.sort.as_deref() {
            None => SessionSort::default(),
            Some(s) => SessionSort::parse(s).ok_or_else(|| {
                ApiError::bad("sort: expected started, ended, user, target, kind or bytes")
            })?,
        };
        let ascending = match self.dir.as_deref() {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(_) => return Err(ApiError::bad("dir: expected asc or desc")),
        };
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            return Err(ApiError::bad("offset: expected 0 or more"));
        }
        let text = |what: &str, v: &Option<String>| -> Result<Option<String>, ApiError> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(t) if t.len() <= 128 => Ok(Some(t.to_string())),
                Some(_) => Err(ApiError::bad(format!("{what}: at most 128 characters"))),
            }
        };
        Ok(Some(SessionPage {
            user: text("user", &self.user)?,
            target: text("target", &self.target)?,
            kind: text("kind", &self.kind)?,
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            sort,
            ascending,
            limit: limit(self.limit)?,
            offset,
        }))
    }
}

fn limit(l: Option<i64>) -> Result<i64, ApiError> {
    match l {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad("limit: expected between 1 and 1000")),
    }
}

/// `GET /sessions`: `{live, recent}` as before; with any of the paging
/// parameters (`offset`, `sort`, `dir`, `user`, `target`, `kind`,
/// `since_ms`, `until_ms`), `recent` is that page of the whole table,
/// filtered and sorted in the store, and `total` / `offset` are added.
pub async fn list(State(app): State<Arc<App>>, Params(q): Params<ListParams>) -> Res {
    let mut live = app.registry.list();
    live.sort_by(|a, b| a.started_ms.cmp(&b.started_ms).then(a.id.cmp(&b.id)));
    let page = q.page()?;
    let (recent, total) = match &page {
        None => (app.store.list_sessions(limit(q.limit)?).await?, None),
        Some(p) => {
            let (rows, total) = app.store.page_sessions(p).await?;
            (rows, Some(total))
        }
    };
    // Other nodes' live sessions are live too, with the node holding them.
    let here = app.node.as_ref().map(|n| n.node.clone());
    let elsewhere = match &app.node {
        Some(me) => app.store.live_elsewhere(&me.run).await?,
        None => Vec::new(),
    };
    let mut live_ids: Vec<&str> = live.iter().map(|s| s.id.as_str()).collect();
    live_ids.extend(elsewhere.iter().map(|(s, _)| s.id.as_str()));
    let recent: Vec<Value> = recent
        .iter()
        .map(|s| {
            let mut v = session_json(s, live_ids.contains(&s.id.as_str()));
            if let Some((_, node)) = elsewhere.iter().find(|(e, _)| e.id == s.id) {
                v["node"] = json!(node);
            }
            v
        })
        .collect();
    let mut live: Vec<Value> = live
        .iter()
        .map(|s| {
            let mut v = live_json(s);
            v["node"] = json!(here);
            v
        })
        .collect();
    live.extend(elsewhere.iter().map(|(s, node)| {
        let mut v = session_json(s, true);
        v["node"] = json!(node);
        v
    }));
    let mut v = json!({"live": live, "recent": recent});
    if let (Some(p), Some(total)) = (page, total) {
        v["total"] = json!(total);
        v["offset"] = json!(p.offset);
    }
    Ok((StatusCode::OK, Json(v)))
}

pub async fn get(State(app): State<Arc<App>>, Seg(id): Seg<String>) -> Res {
    validate_name("id", &id)?;
    let live = app.registry.list().iter().any(|s| s.id == id);
    let s = app
        .store
        .session(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {id:?} does not exist")))?;
    let mut v = session_json(&s, live);
    let recs: Vec<Value> = app
        .store
        .recordings_of(&id)
        .await?
        .iter()
        .map(recording_json)
        .collect();
    v["recordings"] = json!(recs);
    Ok((StatusCode::OK, Json(v)))
}

/// Ends one session through the kill switch (a session lock, so the node
/// holding it ends it too), which closes both legs and audits the kill.
pub async fn terminate(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(id): Seg<String>,
    OptBody(body): OptBody<Terminate>,
) -> Res {
    validate_name("id", &id)?;
    let reason = body
        .reason
        .unwrap_or_else(|| "terminated by an administrator".into());
    let here = app.registry.get(&id).is_some();
    let what = crate::lockdown::terminate(&app, &id, &caller.actor(), &reason).await?;
    let kind = match what {
        crate::lockdown::Terminated::Session { .. } => "session",
        crate::lockdown::Terminated::Forward => "forward",
    };
    Ok((
        StatusCode::OK,
        Json(
            json!({"id": id, "kind": kind, "terminated": true, "live_here": here, "reason": reason}),
        ),
    ))
}

fn recording_json(r: &RecordingRow) -> Value {
    json!({"name": r.name, "session": r.session_id, "channel": r.channel, "kind": r.kind,
           "started_ms": r.started_ms, "events": r.events, "cast_bytes": r.cast_bytes,
           "sha256": r.sha256, "checkpoint_ms": r.checkpoint_ms, "state": r.state})
}

pub async fn list_recordings(State(app): State<Arc<App>>, Params(q): Params<Limit>) -> Res {
    if let Some(s) = &q.session {
        validate_name("session", s)?;
    }
    let rows = app
        .store
        .list_recordings(q.session.as_deref(), limit(q.limit)?)
        .await?;
    let v: Vec<Value> = rows.iter().map(recording_json).collect();
    Ok((StatusCode::OK, Json(json!(v))))
}

/// The recording's row; its name is checked before it becomes a path.
async fn known(app: &App, name: &str) -> Result<RecordingRow, ApiError> {
    validate_name("name", name)?;
    app.store
        .recording(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("recording {name:?} does not exist")))
}

/// Read and sent a chunk at a time: a recording can be gigabytes, and
/// several downloads at once must not hold them in memory.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// Audited first (`recording.downloaded`, fail closed).
pub async fn download(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(from): ConnectInfo<std::net::SocketAddr>,
    Seg(name): Seg<String>,
) -> Result<Response, ApiError> {
    use tokio::io::AsyncReadExt;
    let r = known(&app, &name).await?;
    let source = from.ip().to_canonical().to_string();
    super::live::audit_read(
        &app,
        &caller,
        source,
        crate::audit::ReadKind::Download,
        &r.session_id,
        &r.name,
    )
    .await?;
    readable_here(&app, &r.name).await?;
    let path = app.config.recordings_dir.join(format!("{}.cast", r.name));
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::internal("reading the recording", e))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal("reading the recording", e))?
        .len();
    // The length at open: a live recording grows, and the body must match
    // the Content-Length promised.
    let reader = Some(file.take(len));
    let chunks = futures::stream::unfold(reader, |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0u8; DOWNLOAD_CHUNK];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), Some(reader)))
            }
            // Ends the body early; the client sees a short download.
            Err(e) => Some((Err(e), None)),
        }
    });
    let disposition = format!("attachment; filename=\"{}.cast\"", r.name);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-asciicast".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response())
}

/// The same check as `portcullis verify`: chain, checkpoints, signed trailer.
pub async fn verify(State(app): State<Arc<App>>, Seg(name): Seg<String>) -> Res {
    let r = known(&app, &name).await?;
    Ok((StatusCode::OK, Json(verified(&app, r).await?)))
}

/// A recording checked as `portcullis verify` does, against the database
/// too (the row's session and stored digest), as the API reports it.
/// A recording whose file is not in this node's recordings directory:
/// the error names where it is and why it cannot be read here (issue 19:
/// never a word that suggests tampering).
pub(super) async fn readable_here(app: &App, name: &str) -> Result<(), ApiError> {
    let cast = app.config.recordings_dir.join(format!("{name}.cast"));
    if tokio::fs::try_exists(&cast).await.unwrap_or(false) {
        return Ok(());
    }
    let expiry = i64::try_from(app.config.cluster.node_expiry.as_millis()).unwrap_or(i64::MAX);
    let mine = app.node.as_ref().map(|n| n.node.as_str());
    let text = match app.store.recording_node(name).await? {
        Some((node, _, _)) if Some(node.as_str()) == mine => format!(
            "recording {name} is not in this node's recordings directory (it was written here: moved or deleted?)"
        ),
        Some((node, state, beat)) => {
            let how = if state == "up" && beat >= crate::clock::now_ms() - expiry {
                "which is up"
            } else {
                "which is unreachable"
            };
            format!(
                "recording {name} is on node {node}, {how}; this node cannot read it (give the nodes one shared recordings_dir)"
            )
        }
        None => format!("recording {name} is not in this node's recordings directory"),
    };
    Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, text))
}

pub(super) async fn verified(app: &App, r: RecordingRow) -> Result<Value, ApiError> {
    readable_here(app, &r.name).await?;
    let dir = app.config.recordings_dir.clone();
    let key = app.audit_key.verifying_key();
    let witness = crate::recorder::witness_of(&r);
    let cast = dir.join(format!("{}.cast", r.name));
    let report = tokio::task::spawn_blocking(move || {
        crate::castfile::verify_witnessed(
            &cast,
            &cast.with_extension("chain"),
            &key,
            Some(&witness),
        )
    })
    .await
    .map_err(|e| ApiError::internal("verification", e))?
    .map_err(|e| ApiError::internal("verification", e))?;
    Ok(json!({
        "name": r.name, "ok": report.ok, "events": report.events,
        "cast_bytes": report.cast_bytes, "checkpoints": report.checkpoints,
        "signed_checkpoints": report.signed_checkpoints,
        "session": report.session, "cut_short": report.cut_short,
        "unsigned_events": report.unsigned_events, "chain_rebuilt": report.chain_rebuilt,
        "end_reason": report.end_reason, "problem": report.problem,
    }))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    #[serde(default)]
    since_ms: Option<i64>,
    /// Inclusive.
    #[serde(default)]
    until_ms: Option<i64>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    /// The `next` cursor of the previous page (the last `seq` seen).
    #[serde(default)]
    after: Option<String>,
}

/// Events of the hash chain, oldest first; each as `audit export` writes it.
pub async fn audit_query(State(app): State<Arc<App>>, Params(p): Params<AuditParams>) -> Res {
    let limit = limit(p.limit)?;
    let after_seq = p
        .after
        .as_deref()
        .map(|a| a.parse::<i64>())
        .transpose()
        .map_err(|_| ApiError::bad("after: expected the next cursor of a previous page"))?;
    let q = audit::AuditQuery {
        since: p.since_ms,
        until: p.until_ms.map(|u| u.saturating_add(1)),
        kind: p.kind,
        actor: p.actor,
        subject: p.subject,
        session: p.session,
        limit: u32::try_from(limit).ok(),
        after_seq,
    };
    let events = audit::query(&app.store, &q).await.map_err(|e| match e {
        audit::AuditError::BadQuery(m) => ApiError::bad(&m),
        e => ApiError::internal("audit query", e),
    })?;
    let next = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok((
        StatusCode::OK,
        Json(json!({"events": events, "next": next})),
    ))
}
