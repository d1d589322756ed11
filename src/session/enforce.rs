//! A live session's deadline and grants, watched while it lasts: warnings
//! ahead of the end, the end on time, and an end within seconds of a
//! revocation or a grant change that no longer allows it.

use super::{Destination, Session};
use crate::access;
use crate::policy;
use bytes::Bytes;
use jiff::Timestamp;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Session {
    /// Watches the session's deadline and its grants while it lives: warns
    /// the user ahead of the end, ends it on time, and ends it within seconds
    /// when its grant is revoked or changed so that it no longer allows it.
    pub fn enforce(self: &Arc<Self>) {
        if self.enforcing.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(enforce(self.clone()));
    }

    fn notify(&self, text: &str) {
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

/// Warnings this far ahead of the deadline.
const WARN_AT: [Duration; 2] = [Duration::from_secs(300), Duration::from_secs(60)];
const RECHECK: Duration = Duration::from_secs(2);

async fn enforce(s: Arc<Session>) {
    let Destination::Target { target, allow } = &s.destination else {
        return;
    };
    let mut deadline = allow.deadline;
    let mut warned = [false; WARN_AT.len()];
    let mut last_check = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = s.cancel.cancelled() => return,
        }
        // The known deadline first: at a window's end the re-check would
        // also refuse, but the user should be told the real cause.
        if let Some((at, cause)) = deadline {
            let left = at.duration_since(access::now());
            if left <= jiff::SignedDuration::ZERO {
                let text = format!("this session has ended: {}", cause.describe());
                return s.end(cause.describe(), &text).await;
            }
            warn_once(&s, &mut warned, left.unsigned_abs(), at, cause);
        }
        if last_check.elapsed() >= RECHECK {
            last_check = std::time::Instant::now();
            match access::redecide(&s.app.store, &s.user, &target.name, &allow.login, s.started)
                .await
            {
                Ok(Ok(a)) => {
                    deadline = a.deadline;
                    s.set_permissions(a.permissions);
                }
                Ok(Err(deny)) => {
                    let text = format!("access withdrawn: {deny}; this session ends now");
                    return s.end(&format!("grant withdrawn: {deny}"), &text).await;
                }
                // Keep the last decision through a store hiccup; the deadline still holds.
                Err(e) => tracing::warn!(session = %s.id, error = %e, "cannot re-check grants"),
            }
        }
    }
}

/// One notice per threshold crossed, the most urgent only.
fn warn_once(
    s: &Session,
    warned: &mut [bool],
    left: Duration,
    at: Timestamp,
    cause: policy::EndCause,
) {
    let Some(i) = WARN_AT.iter().rposition(|w| left <= *w) else {
        return;
    };
    if warned[i] {
        return;
    }
    warned[..=i].iter_mut().for_each(|x| *x = true);
    s.notify(&format!(
        "this session ends in {} s: {} at {at}",
        left.as_secs(),
        cause.describe()
    ));
}
