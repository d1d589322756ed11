//! A live thing with no terminal of its own (a forward, a `-R` listener,
//! an agent channel) under the one lifecycle: its registry entry
//! ([`Lease`]), the kill switch cancelling it, and the one watcher
//! ([`watch`]) ending it at its grant's deadline or within seconds of a
//! revocation. Its owner relays until the token is cancelled, then calls
//! [`Live::finish`] for the reason to audit.

use super::watch::{self, Needs};
use super::{Lease, Session, StoreGrants};
use crate::bridge::Counters;
use crate::clock::now_ms;
use crate::grants::access;
use crate::policy::{ChannelKind, EndCause, Permissions};
use crate::registry::LiveSession;
use crate::sync::MutexExt;
use jiff::Timestamp;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What is opened and what its grant must keep allowing.
pub struct Spec {
    /// Its id in the registry and the audit trail.
    pub id: String,
    /// "forward", "remote-forward", "remote-listener", "agent".
    pub kind: &'static str,
    /// The grant's target and login.
    pub target: String,
    pub login: String,
    pub deadline: Option<(Timestamp, EndCause)>,
    /// The channel kind the grant must keep allowing, and its name.
    pub channel: Option<(ChannelKind, &'static str)>,
    /// Its byte counters, shared with its relay (listed live).
    pub bytes: Arc<Counters>,
}

pub struct Live {
    lease: Lease,
    cancel: CancellationToken,
    why: Arc<Mutex<Option<String>>>,
    watcher: JoinHandle<()>,
    span: tracing::Span,
}

impl Live {
    /// Enters the thing in the registry under `s`'s user and source and
    /// starts its watcher; `cancel` ends it (a kill or the watcher cancel it).
    pub fn open(s: &Session, spec: Spec, cancel: CancellationToken) -> Live {
        let app = s.app();
        let span = tracing::info_span!("live", id = %spec.id, kind = spec.kind,
            session = %s.id, user = %s.user, target = %spec.target, source = %s.source);
        let lease = Lease::open(
            app,
            LiveSession {
                id: spec.id.clone(),
                user: s.user.clone(),
                target: spec.target.clone(),
                login: spec.login.clone(),
                source: s.source.to_string(),
                source_ip: s.source.ip(),
                started_ms: now_ms(),
                cancel: cancel.clone(),
                kill: Arc::default(),
                notices: None,
                kind: spec.kind,
                bytes: spec.bytes,
            },
        );
        lease.cancel_on_kill();
        let why = Arc::new(Mutex::new(None));
        let grants = StoreGrants {
            app: app.clone(),
            user: s.user.clone(),
            target: spec.target,
            login: spec.login,
            started: s.started,
        };
        let needs = Needs {
            deadline: spec.deadline,
            channel: spec.channel,
            what: "this forward",
        };
        let ender = Ender {
            why: why.clone(),
            cancel: cancel.clone(),
        };
        let watched = cancel.clone();
        let watcher = tokio::spawn(
            async move { watch::watch(needs, &grants, &ender, &watched, access::now).await }
                .instrument(span.clone()),
        );
        Live {
            lease,
            cancel,
            why,
            watcher,
            span,
        }
    }

    /// Its span (id, kind, session, user, target, source): its relay runs
    /// in it, so its lines are found with its session's.
    pub fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    /// Where the watcher leaves its reason for ending the thing.
    pub fn why(&self) -> &Mutex<Option<String>> {
        &self.why
    }

    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Stops the watcher, leaves the registry; the reason to audit: the
    /// kill's, else the watcher's, else `otherwise`.
    pub fn finish(self, otherwise: String) -> String {
        self.cancel.cancel();
        self.watcher.abort();
        let otherwise = self.why.lock_or_recover().clone().unwrap_or(otherwise);
        self.lease.end_reason(otherwise)
    }
}

/// The registry lists a live thing's bytes from the counters its bridge
/// or relay adds to (relaxed loads, at listing time only).
impl crate::registry::Moved for Counters {
    fn moved(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.up.load(Relaxed), self.down.load(Relaxed))
    }
}

/// Ends a thing for the watcher: no terminal to warn, the reason kept for
/// the close audit, the token cancelled.
struct Ender {
    why: Arc<Mutex<Option<String>>>,
    cancel: CancellationToken,
}

impl watch::Holder for Ender {
    fn warn(&self, _text: &str) {}

    fn narrowed(&self, _now: Permissions) {}

    async fn end(&self, reason: String, _text: String) {
        tracing::info!(reason = %reason, "ending by policy");
        *self.why.lock_or_recover() = Some(reason);
        self.cancel.cancel();
    }
}
