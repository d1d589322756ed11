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
    /// Writes the row at login. A `USER+TARGET` session's is its start
    /// (audited, storage checked: see `record_start`); a refusal there is
    /// shown on the first channel, as a lock's is. A plain `USER`
    /// connection's row is bookkeeping: its login is already audited.
    pub async fn open_row(&mut self) {
        let outcome = match &self.destination {
            Destination::Target { target, allow } => self.record_start(target, allow).await,
            Destination::Menu(_) => self.record_connection().await,
            Destination::Refused(_) => return,
        };
        if let Err(refusal) = outcome {
            tracing::warn!(session = %self.id, user = %self.user, error = %refusal.log, "session refused at login");
            self.destination = Destination::Refused(refusal.user);
        }
    }

    async fn record_connection(&self) -> Result<(), Refusal> {
        let start = SessionStart {
            id: self.id.clone(),
            user: self.user.clone(),
            source: self.source.to_string(),
            target: String::new(),
            login: String::new(),
            started_ms: now_ms(),
            kind: SessionKind::Connection,
        };
        self.app.store.session_started(&start).await.map_err(|e| {
            Refusal::new(
                "the connection cannot be recorded, so it is refused",
                format!("connection row not written: {e}"),
            )
        })?;
        self.recorded.store(true, Ordering::SeqCst);
        Ok(())
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
        let probe = self
            .app
            .config
            .recordings_dir
            .join(format!(".probe-{}", self.id));
        if let Err(e) = std::fs::write(&probe, b"probe").and_then(|_| std::fs::remove_file(&probe))
        {
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
        if let Err(e) = self.app.store.session_started(&start).await {
            let reason = "refused: the sessions row could not be written";
            self.audit_end(&target.name, reason, 0, 0).await;
            return Err(Refusal::new(
                "the session cannot be recorded, so it is refused",
                format!("session start not written: {e}"),
            ));
        }
        self.recorded.store(true, Ordering::SeqCst);
        tracing::info!(session = %self.id, user = %self.user, target = %target.name, login = %allow.login,
            grant = %allow.grant_id, via = %allow.via, source = %self.source, "session started");
        Ok(())
    }
}
