//! What a connection's task, its russh handler and the kill switch share:
//! the session once logged in, the cancel token, the kill note and the
//! connection's span.

use crate::session::Session;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;
use tracing::Span;
use tracing::field::Empty;

/// State the connection task shares with the handler russh owns.
pub struct Shared {
    pub(super) session: OnceLock<Arc<Session>>,
    pub(super) cancel: CancellationToken,
    /// The kill switch's note for this connection's session.
    pub(super) kill: Arc<crate::registry::KillNote>,
    /// The connection's span: its source from the start, its user, target
    /// and session id from login on; every task of the connection runs in
    /// it, so one session's log lines can be found together.
    pub(super) span: Span,
    /// Set once this connection showed an SSO link: the login grace time
    /// is extended by the link's lifetime.
    sso_waiting: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub(super) fn new(cancel: CancellationToken, span: Span) -> Shared {
        Shared {
            session: OnceLock::new(),
            cancel,
            kill: Arc::default(),
            span,
            sso_waiting: Default::default(),
        }
    }

    pub(super) fn sso_pending(&self) {
        self.sso_waiting
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn sso_waiting(&self) -> bool {
        self.sso_waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A connection's span, its identity fields filled at login (`named`).
    pub(super) fn span_for(source: SocketAddr, parent: Option<&Span>) -> Span {
        let parent = parent.and_then(Span::id);
        tracing::info_span!(parent: parent, "conn", source = %source,
            user = Empty, target = Empty, session = Empty)
    }

    /// Names the session in the connection's span, before it is used.
    pub(super) fn named(&self, s: &Session) {
        self.span.record("session", s.id.as_str());
        self.span.record("user", s.user.as_str());
        if let Some((target, _)) = s.target_and_login() {
            self.span.record("target", target.as_str());
        }
    }

    pub fn session(&self) -> Option<Arc<Session>> {
        self.session.get().cloned()
    }

    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }
}
