//! Typed audit events. Every event names who, what, from where, about what,
//! and why; no secret, password or code is ever a field.
//!
//! Events are appended to a keyed hash chain (`chain`): each row carries the
//! previous row's hash and its own HMAC under a key the database never sees,
//! so a database writer alone cannot edit, drop, reorder or forge rows
//! unnoticed (`verify`). The store refuses UPDATE and DELETE on the table.

mod chain;
pub mod console;
mod event;
pub mod failures;
mod forward;
mod query;
pub mod rate;
mod reads;
mod row;
pub mod stream;
mod verify;

pub use chain::{ChainKey, canonical};
pub use event::{AuditEvent, IdpEvent};
pub use forward::{ForwardKind, ForwardMeta};
pub use query::{AuditEntry, AuditQuery, MAX_LIMIT, export, parse_time, query};
pub use reads::{ReadEvent, ReadKind};
pub use verify::{Problem, ProblemKind, Report, verify};

/// Whether audit appends are failing (for `/health`); shared by every clone
/// of the store and reachable as `app.audit_health`.
pub type Health = crate::store::AuditHealth;

use crate::names::escape_for_log;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read the audit chain key file {path}: {source}")]
    ReadKey {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create the audit chain key file {path}: {source}")]
    WriteKey {
        path: String,
        source: std::io::Error,
    },
    #[error("the audit chain key file {path} must hold exactly 32 bytes")]
    BadKey { path: String },
    #[error(
        "the audit chain key file {path} is readable by group or others (mode {mode:o}); chmod 600 it"
    )]
    KeyPermissions { path: String, mode: u32 },
    #[error("invalid audit query: {0}")]
    BadQuery(String),
    #[error("audit export: {0}")]
    Io(#[from] std::io::Error),
    #[error("audit stream: {0}")]
    Stream(String),
}

/// Appends `event` to the chain; durable when this returns `Ok`. Callers
/// that must fail closed (login, session start) refuse on `Err`.
pub async fn record(store: &Store, event: AuditEvent) -> Result<(), StoreError> {
    let r = store.append_audit(&event.to_row()).await;
    store.audit_health().note(r.is_ok());
    r.map(|_| ())
}

/// [`record`], but an event the database cannot take for now (an outage,
/// on a serving node on PostgreSQL) is kept and appended when it answers:
/// for what already happened and must be told (a lock, a kill), never for
/// a write that must come first (a login, a session start).
pub async fn record_or_defer(store: &Store, event: AuditEvent) -> Result<(), StoreError> {
    store.append_audit_or_defer(&event.to_row()).await
}

/// Loads (creating on first use) the chain key and makes `store` seal every
/// audit row with it; events written before the chain existed join it.
pub async fn open_chain(store: Store, key_file: &std::path::Path) -> Result<Store, AuditError> {
    let key = ChainKey::load_or_create(key_file)?;
    Ok(store.attach_audit(std::sync::Arc::new(key)).await?)
}

/// The operator running an admin command, for the audit trail.
pub fn cli_actor() -> String {
    let uid = nix::unistd::getuid();
    format!("cli:{}(uid {uid})", escape_for_log(&cli_account()))
}

/// The OS account running the CLI: from the process's real uid and the
/// system's account database, never from $USER or $SUDO_USER (those are
/// whatever the caller set). Under sudo this is root, which is who acted on
/// the database. `?` when the uid has no account.
pub fn cli_account() -> String {
    match nix::unistd::User::from_uid(nix::unistd::getuid()) {
        Ok(Some(u)) => u.name,
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_usernames_are_escaped() {
        let r = AuditEvent::LoginFailures {
            username_sent: "evil\n\x1b[2Jroot".into(),
            source: "10.0.0.1".into(),
            factor: "password".into(),
            count: 3,
        }
        .to_row();
        assert!(
            !r.actor.contains('\n') && !r.actor.contains('\x1b'),
            "{}",
            r.actor
        );
        assert_eq!(r.kind, "login.failures");
        assert!(r.detail.contains("\"count\":3"));
    }
}
