//! A live session's deadline and grants, watched while it lasts (see
//! `watch`): warnings ahead of the end, the end on time, and an end within
//! seconds of a revocation or a grant change that no longer allows it.

use super::watch::{self, Holder, Needs, Recheck};
use super::{Destination, Session};
use crate::app::App;
use crate::grants::access;
use crate::policy::{Allow, Deny, Permissions};
use bytes::Bytes;
use jiff::Timestamp;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The grants in the store, decided again for one user, target and login.
pub struct StoreGrants {
    pub app: Arc<App>,
    pub user: String,
    pub target: String,
    pub login: String,
    /// When the user logged in; the maximum session length counts from here.
    pub started: Timestamp,
}

impl Recheck for StoreGrants {
    async fn recheck(&self) -> Result<Result<Allow, Deny>, String> {
        let (store, started) = (&self.app.store, self.started);
        self.app
            .recent_grants
            .redecide(store, &self.user, &self.target, &self.login, started)
            .await
            .map_err(|e| e.to_string())
    }
}

impl Session {
    /// Watches the session's deadline and its grants while it lives.
    pub fn enforce(self: &Arc<Self>) {
        if self.enforcing.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(tracing::Instrument::in_current_span(enforce(self.clone())));
    }

    pub(super) fn notify(&self, text: &str) {
        let _ = self
            .notices
            .send(Bytes::from(format!("\r\nportcullis: {text}\r\n")));
    }

    async fn end(&self, reason: &str, text: &str) {
        tracing::info!(session = %self.id, user = %self.user, reason, "ending session");
        self.notify(text);
        self.set_end_reason(reason);
        let event = crate::audit::AuditEvent::SessionEndedByPolicy {
            session: self.id.clone(),
            user: self.user.clone(),
            reason: reason.to_string(),
        };
        if let Err(e) = crate::audit::record(&self.app.store, event).await {
            // The session ends regardless; the sessions row still carries the reason.
            tracing::error!(session = %self.id, error = %e, "audit of a policy end not written");
        }
        // Let the notice reach the terminal before the channels close.
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.cancel.cancel();
    }
}

impl Holder for Session {
    fn warn(&self, text: &str) {
        self.notify(text);
    }

    fn narrowed(&self, now: Permissions) {
        self.set_permissions(now);
    }

    async fn end(&self, reason: String, text: String) {
        Session::end(self, &reason, &text).await;
    }
}

async fn enforce(s: Arc<Session>) {
    let Destination::Target { target, allow } = &s.destination else {
        return;
    };
    let grants = StoreGrants {
        app: s.app.clone(),
        user: s.user.clone(),
        target: target.name.clone(),
        login: allow.login.clone(),
        started: s.started,
    };
    let needs = Needs {
        deadline: allow.deadline,
        channel: None,
        what: "this session",
    };
    watch::watch(needs, &grants, s.as_ref(), &s.cancel, access::now).await;
}
