//! Ending one live thing by its id, for every door (CLI, API): a session
//! (any authenticated connection: each has its row from login on) or a
//! single live thing of it (a forward, a `-R` listener, an agent channel:
//! its own registry entry; a forwarded connection and a `-R` listener are
//! known to other processes through their `forward.opened` audit row). The end goes through a session
//! lock, so the node holding it ends it within the lock refresh.

use super::locks::{LockError, LockSpec, create};
use crate::app::App;
use crate::audit::{self, AuditEvent, AuditQuery};
use crate::clock::now_ms;
use crate::policy::LockScope;

/// What was asked to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Terminated {
    /// A sessions row that is live: its user and target (empty for a plain
    /// connection).
    Session { user: String, target: String },
    /// A forward, `-R` listener or agent channel, live on some node.
    Forward,
}

/// Ends session or forward `id`; `session.terminated` names who and why.
pub async fn terminate(
    app: &App,
    id: &str,
    actor: &str,
    reason: &str,
) -> Result<Terminated, LockError> {
    let what = find(app, id).await?;
    let spec = LockSpec {
        scope: LockScope::Session(id.to_string()),
        reason: reason.to_string(),
        author: actor.to_string(),
        // Long enough for every node to see it; an id never comes back.
        expires_ms: Some(now_ms() + 24 * 3600 * 1000),
    };
    match create(app, spec).await {
        Ok(_) => {}
        // Not stored for want of the database, but in force here (and
        // written when it answers): the kill happened.
        Err(LockError::NotPersisted(e, _)) if crate::store::unreachable(&e) => {}
        Err(e) => return Err(e),
    }
    let event = AuditEvent::SessionTerminated {
        session: id.to_string(),
        actor: actor.to_string(),
        reason: reason.to_string(),
    };
    if let Err(e) = audit::record_or_defer(&app.store, event).await {
        // The kill itself is audited by the lock (lock.created names it).
        tracing::error!(error = %e, session = %id, "audit of a termination not written");
    }
    Ok(what)
}

async fn find(app: &App, id: &str) -> Result<Terminated, LockError> {
    let row = match app.store.session(id).await {
        // No database: what this node holds can still be ended.
        Err(e) if crate::store::unreachable(&e) => match app.registry.get(id) {
            Some(s) if s.kind == "target" || s.kind == "connection" => {
                return Ok(Terminated::Session {
                    user: s.user,
                    target: s.target,
                });
            }
            Some(_) => return Ok(Terminated::Forward),
            None => return Err(e.into()),
        },
        r => r?,
    };
    if let Some(s) = row {
        if s.ended_ms.is_some() {
            return Err(LockError::AlreadyEnded(id.to_string()));
        }
        return Ok(Terminated::Session {
            user: s.user,
            target: s.target,
        });
    }
    if app.registry.get(id).is_some() || open_forward(app, id).await? {
        return Ok(Terminated::Forward);
    }
    Err(LockError::NoSuchSession(id.to_string()))
}

/// Whether the audit trail holds `forward.opened` for `id` and no
/// `forward.closed` (the newest 1000 forward events are looked at).
async fn open_forward(app: &App, id: &str) -> Result<bool, LockError> {
    let q = AuditQuery {
        kind: Some("forward".into()),
        limit: Some(1000),
        ..Default::default()
    };
    let rows = audit::query(&app.store, &q)
        .await
        .map_err(|e| LockError::Invalid(format!("audit trail unreadable: {e}")))?;
    let mine = |e: &&audit::AuditEntry| e.detail["id"].as_str() == Some(id);
    let opened = rows.iter().filter(mine).any(|e| e.kind == "forward.opened");
    let closed = rows.iter().filter(mine).any(|e| e.kind == "forward.closed");
    Ok(opened && !closed)
}
