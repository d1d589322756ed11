//! The kill switch: creating a lock persists it, then ends every matching
//! live session through the registry, then audits. Every node keeps the locks
//! in force in memory so logins, dials and channel opens decide without I/O,
//! and polls the store's lock epoch so a lock made elsewhere (the CLI, another
//! node) takes effect within one poll.

use crate::app::App;
use crate::audit::{self, AuditEvent};
use crate::clock::now_ms;
use crate::ids::new_id;
use crate::policy::{Lock, LockScope, Subject};
use crate::store::StoreError;
use std::sync::atomic::Ordering;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the lock could not be stored ({0}); it holds on this node only until restart")]
    NotPersisted(StoreError, Box<LockOutcome>),
    #[error("locks cannot be read: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the lift could not be audited ({0}); the lock stays")]
    NotAudited(StoreError),
    #[error("no session or forward has id {0:?} (see `portcullis session list`)")]
    NoSuchSession(String),
    #[error("session {0:?} has already ended")]
    AlreadyEnded(String),
}

/// Who lifts a lock, and whether they may lift any lock or only their own.
#[derive(Debug, Clone, Copy)]
pub struct Lifter<'a> {
    pub actor: &'a str,
    /// An admin (the `admin` scope, or the CLI, which holds the database).
    pub admin: bool,
}

/// What a caller asks for.
#[derive(Debug, Clone)]
pub struct LockSpec {
    pub scope: LockScope,
    pub reason: String,
    pub author: String,
    pub expires_ms: Option<i64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LockOutcome {
    pub lock: Lock,
    /// Live sessions on this node ended by the lock.
    pub ended: Vec<String>,
}

/// The text a killed user sees and the end reason recorded.
pub fn kill_reason(l: &Lock) -> String {
    format!("locked by {} ({}): {}", l.author, l.scope, l.reason)
}

fn validate(spec: &LockSpec) -> Result<(), LockError> {
    let name_ok = |v: &str| crate::names::Name::parse(v).is_ok();
    match &spec.scope {
        LockScope::User(v) | LockScope::Target(v) if !name_ok(v) => {
            return Err(LockError::Invalid(format!("{v:?} is not a valid name")));
        }
        LockScope::Session(v) if v.is_empty() || !v.chars().all(|c| c.is_ascii_hexdigit()) => {
            return Err(LockError::Invalid(format!("{v:?} is not a session id")));
        }
        _ => {}
    }
    if spec.reason.trim().is_empty() || spec.reason.len() > 500 {
        return Err(LockError::Invalid(
            "a reason of 1 to 500 characters is required".into(),
        ));
    }
    if spec.expires_ms.is_some_and(|e| e <= now_ms()) {
        return Err(LockError::Invalid("the expiry is in the past".into()));
    }
    Ok(())
}

/// Persists a lock, ends the live sessions it covers, audits both.
pub async fn create(app: &App, spec: LockSpec) -> Result<LockOutcome, LockError> {
    let t0 = Instant::now();
    validate(&spec)?;
    let lock = Lock {
        id: new_id(),
        scope: spec.scope,
        reason: spec.reason,
        author: spec.author,
        created_ms: now_ms(),
        expires_ms: spec.expires_ms,
        lifted_ms: None,
        lifted_by: None,
    };
    let stored = app.store.insert_lock(&lock).await;
    // Stored or not, this node enforces it: failing closed means locking
    // more. One the database could not take waits to be written.
    match &stored {
        Err(e) if crate::store::unreachable(e) => app.locks.add_pending(lock.clone()),
        _ => app.locks.add(lock.clone()),
    }
    let ended = enforce_one(app, &lock, t0).await;
    app.metrics.locks_created.inc();
    let outcome = LockOutcome { lock, ended };
    audit_lock(app, &outcome).await;
    match stored {
        Ok(()) => Ok(outcome),
        Err(e) => {
            tracing::error!(error = %e, lock = %outcome.lock.id, "lock not persisted; enforced on this node");
            Err(LockError::NotPersisted(e, Box::new(outcome)))
        }
    }
}

/// Kills the live sessions a lock covers. The first sessions' disconnects
/// go out while later ones are still being killed: between batches the task
/// yields, so the session loops queued so far flush (and their clients can
/// act) instead of waiting for the whole registry to be walked.
async fn enforce_one(app: &App, lock: &Lock, at: Instant) -> Vec<String> {
    let now = now_ms();
    let why = kill_reason(lock);
    let doomed = app
        .registry
        .doomed(|s| (lock.in_force(now) && lock.scope.covers(&s.subject())).then(|| why.clone()));
    let mut killed = Vec::with_capacity(doomed.len());
    for (i, d) in doomed.into_iter().enumerate() {
        if i > 0 && i % KILL_BATCH == 0 {
            tokio::task::yield_now().await;
        }
        if d.note.kill(&d.why, at) {
            killed.push(d.id);
        }
    }
    app.metrics.kills.add(killed.len() as u64);
    killed
}

/// Sessions killed between yields: 16 to 64 measured alike at 1,000 live
/// sessions; walking all of them first left the second core idle.
const KILL_BATCH: usize = 64;

async fn audit_lock(app: &App, o: &LockOutcome) {
    let l = &o.lock;
    let event = AuditEvent::LockCreated {
        id: l.id.clone(),
        scope: l.scope.to_string(),
        reason: l.reason.clone(),
        author: l.author.clone(),
        expires_ms: l.expires_ms,
        ended: o.ended.clone(),
    };
    if let Err(e) = audit::record_or_defer(&app.store, event).await {
        tracing::error!(error = %e, lock = %l.id, "audit of a lock not written");
    }
}

/// Writes the locks made here while the database was unreachable; the
/// count written. Stops at the first that still cannot be written.
pub async fn store_pending(app: &App) -> Result<usize, LockError> {
    let mut n = 0;
    for l in app.locks.pending() {
        match app.store.insert_lock(&l).await {
            // `Exists`: the insert went through before its answer was lost.
            Ok(()) | Err(StoreError::Exists { .. }) => {}
            Err(StoreError::Db(e))
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) => {}
            Err(e) if crate::store::unreachable(&e) => return Err(e.into()),
            // Refused for another reason: it stays in force here (and is
            // tried again), and does not hold back the others.
            Err(e) => {
                tracing::error!(lock = %l.id, error = %e, "lock made during the outage refused by the database; in force on this node only");
                continue;
            }
        }
        app.locks.stored(&l.id);
        tracing::warn!(lock = %l.id, scope = %l.scope, "lock made during the database outage stored");
        n += 1;
    }
    Ok(n)
}

/// Lifts a lock; `false` if no lock in force has that id. A non-admin may
/// lift only a lock it made itself (a kill-switch token cannot undo an
/// admin's lockdown). The lift is audited before it is written, and not
/// written if the audit fails: a lock nobody can account for lifting stays.
pub async fn lift(app: &App, id: &str, by: Lifter<'_>) -> Result<bool, LockError> {
    let Some(lock) = app.store.lock(id).await? else {
        return Ok(false);
    };
    if lock.lifted_ms.is_some() {
        return Ok(false);
    }
    if !by.admin && lock.author != by.actor {
        tracing::warn!(lock = %id, actor = %by.actor, author = %lock.author, "lift refused: not an admin nor the lock's author");
        return Err(LockError::Forbidden(format!(
            "lock {id} was made by {}: only an admin or its author may lift it",
            lock.author
        )));
    }
    let event = AuditEvent::LockLifted {
        id: id.to_string(),
        actor: by.actor.to_string(),
    };
    audit::record(&app.store, event)
        .await
        .map_err(LockError::NotAudited)?;
    match app.store.lift_lock(id, by.actor, now_ms()).await {
        Ok(()) => {}
        // Lifted by someone else since it was read: lifted all the same.
        Err(StoreError::Missing { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    refresh(app).await?;
    Ok(true)
}

/// The most recent locks, lifted and expired ones included.
pub async fn list(app: &App) -> Result<Vec<Lock>, LockError> {
    Ok(app.store.recent_locks(1000).await?)
}

/// Reloads the locks in force when the store's epoch moved, and ends the
/// live sessions they cover. Run every few hundred milliseconds.
pub async fn refresh(app: &App) -> Result<usize, LockError> {
    let epoch = app.store.lock_epoch().await?;
    if epoch == app.locks.epoch.load(Ordering::SeqCst) && epoch != 0 {
        return Ok(0);
    }
    let t0 = Instant::now();
    let locks = app.store.locks_in_force(now_ms()).await?;
    app.locks.replace(locks.clone(), epoch);
    let mut ended = 0;
    for l in &locks {
        ended += enforce_one(app, l, t0).await.len();
    }
    Ok(ended)
}

/// Whether a connection may go on; `Err` carries the user-facing refusal.
pub fn check(app: &App, s: &Subject<'_>) -> Result<(), String> {
    match app.locks.covering(s, now_ms()) {
        None => Ok(()),
        Some(l) => Err(format!("portcullis: access is {}", kill_reason(&l))),
    }
}
