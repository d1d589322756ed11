//! A session's row in the sessions table, from login on: every
//! authenticated connection has one, so every live one shows in
//! `session list` with what it is and can be ended by its id from the CLI
//! and the API (a plain-user connection carrying only forwards or the outer
//! half of `ssh -J` included).

use super::{Destination, Refusal, Session};
use crate::clock::now_ms;
use crate::policy::Allow;
use crate::store::{SessionKind, SessionStart, TargetRecord};
use std::sync::atomic::Ordering;

impl Session {
    /// Writes the row at login: bookkeeping (the login is audited already),
    /// so the connection is listed and can be ended by its id. A
    /// `USER+TARGET` session's start (`session.started`, the storage check)
    /// comes with its first dial, as before (`record_start`).
    pub async fn open_row(&mut self) {
        let (kind, target, login) = match &self.destination {
            Destination::Target { target, allow } => (
                SessionKind::Target,
                target.name.clone(),
                allow.login.clone(),
            ),
            Destination::Menu(_) => (SessionKind::Connection, String::new(), String::new()),
            Destination::Refused(_) => return,
        };
        let start = SessionStart {
            id: self.id.clone(),
            user: self.user.clone(),
            source: self.source.to_string(),
            target,
            login,
            started_ms: now_ms(),
            kind,
        };
        match self.app.store.session_started(&start).await {
            Ok(()) => self.row.store(true, Ordering::SeqCst),
            Err(e) => {
                tracing::error!(session = %self.id, user = %self.user, error = %e, "sessions row not written; refusing");
                self.destination = Destination::Refused(
                    "portcullis: the connection cannot be recorded, so it is refused".into(),
                );
            }
        }
    }

    /// The session row is durable, and recording storage writable, before
    /// any byte goes to the target.
    pub(super) async fn record_start(
        &self,
        target: &TargetRecord,
        allow: &Allow,
    ) -> Result<(), Refusal> {
        if self.recorded.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Below the low-water mark: no new session, live ones go on. Each
        // level change is audited once by the watcher, not per refusal.
        let level = crate::disk::now(&self.app);
        if level != crate::disk::Level::Ok {
            return Err(Refusal::new(
                crate::disk::LOW_REFUSAL,
                format!("recordings disk free space is {level:?}"),
            ));
        }
        if let Err(e) = crate::disk::probe(&self.app.config.recordings_dir) {
            self.audit(crate::audit::AuditEvent::RecordingStorageUnavailable {
                session: self.id.clone(),
                user: self.user.clone(),
                error: e.to_string(),
            })
            .await;
            return Err(Refusal::new(
                "session recording storage is unavailable, so the session is refused",
                format!("recordings dir not writable: {e}"),
            ));
        }
        let start = SessionStart {
            id: self.id.clone(),
            user: self.user.clone(),
            source: self.source.to_string(),
            target: target.name.clone(),
            login: allow.login.clone(),
            started_ms: now_ms(),
            kind: SessionKind::Target,
        };
        // Durable in the audit chain before anything is dialled, or no session.
        let event = crate::audit::AuditEvent::SessionStarted {
            session: self.id.clone(),
            user: self.user.clone(),
            source: start.source.clone(),
            target: target.name.clone(),
            login: allow.login.clone(),
            grant: allow.grant_id.clone(),
        };
        crate::audit::record(&self.app.store, event)
            .await
            .map_err(|e| {
                Refusal::new(
                    "the session cannot be audited, so it is refused",
                    format!("session.started not written: {e}"),
                )
            })?;
        // Written at login (`open_row`); here only for a session without one.
        if !self.row.load(Ordering::SeqCst)
            && let Err(e) = self.app.store.session_started(&start).await
        {
            let reason = "refused: the sessions row could not be written";
            self.audit_end(&target.name, reason, 0, 0).await;
            return Err(Refusal::new(
                "the session cannot be recorded, so it is refused",
                format!("session start not written: {e}"),
            ));
        }
        self.row.store(true, Ordering::SeqCst);
        self.recorded.store(true, Ordering::SeqCst);
        tracing::info!(session = %self.id, user = %self.user, target = %target.name, login = %allow.login,
            grant = %allow.grant_id, via = %allow.via, source = %self.source, "session started");
        Ok(())
    }
}
