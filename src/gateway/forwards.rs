//! What the forwarding adapters share, so none imports another: the
//! connection's forwarding state, a direct-tcpip request as sent, and the
//! refusal (a channel-open failure plus its audit).

use crate::audit::{self, AuditEvent};
use crate::forward::ForwardKind;
use crate::forward::upload::Upload;
use crate::session::Session;
use crate::sync::MutexExt;
use russh::server::ChannelOpenHandle;
use russh::{ChannelId, ChannelOpenFailure};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Refusals audited per connection; past this they are only logged, so a
/// SOCKS client scanning ports cannot flood the audit table.
const AUDITED_REFUSALS: u32 = 32;

/// A `-R` listener this client asked for: the port the target listens on, and
/// the token that ends it and every connection through it.
pub struct Listener {
    pub port: u32,
    pub cancel: CancellationToken,
}

/// Per-connection forwarding state.
pub struct Forwards {
    /// Channels this connection (and any nested in it) may hold open.
    pub(super) cap: Arc<super::caps::ChannelCap>,
    /// `-R` listeners this connection may hold.
    max_remote: usize,
    refusals: AtomicU32,
    /// Ports the target listens on for this client (`ssh -R`), as granted.
    pub(super) remote: Mutex<Vec<Listener>>,
    /// The relay of target-opened channels is running.
    pub(super) relaying: AtomicBool,
    /// Agent forwarding was asked for and allowed on this connection.
    pub(super) agent: AtomicBool,
    /// TCP forwards whose client data the handler writes itself.
    uploads: Mutex<HashMap<ChannelId, Arc<Upload>>>,
}

impl Forwards {
    pub(super) fn new(cap: Arc<super::caps::ChannelCap>, max_remote: u32) -> Forwards {
        Forwards {
            cap,
            max_remote: usize::try_from(max_remote).unwrap_or(usize::MAX),
            refusals: AtomicU32::new(0),
            remote: Mutex::default(),
            relaying: AtomicBool::new(false),
            agent: AtomicBool::new(false),
            uploads: Mutex::default(),
        }
    }

    /// Whether another `-R` listener fits.
    pub(super) fn remote_room(&self) -> bool {
        self.remote.lock_or_recover().len() < self.max_remote
    }

    /// The token of the live listener on `port`, if this client asked for it.
    pub(super) fn listener(&self, port: u32) -> Option<CancellationToken> {
        self.remote
            .lock_or_recover()
            .iter()
            .find(|l| l.port == port && !l.cancel.is_cancelled())
            .map(|l| l.cancel.clone())
    }

    /// Takes the listener on `port` out (cancelled by the client or ended).
    pub(super) fn drop_listener(&self, port: u32) -> Option<Listener> {
        let mut r = self.remote.lock_or_recover();
        let at = r.iter().position(|l| l.port == port)?;
        Some(r.remove(at))
    }

    pub(super) fn upload(&self, id: ChannelId) -> Option<Arc<Upload>> {
        let map = self.uploads.lock_or_recover();
        if map.is_empty() {
            return None;
        }
        map.get(&id).cloned()
    }

    pub(super) fn take_upload(&self, id: ChannelId) -> Option<Arc<Upload>> {
        self.uploads.lock_or_recover().remove(&id)
    }

    pub(super) fn add_upload(&self, id: ChannelId, up: Arc<Upload>) -> bool {
        match self.uploads.lock_or_recover().entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(up);
                true
            }
        }
    }
}

/// A direct-tcpip request as the client sent it (untrusted).
pub struct Requested {
    pub host: String,
    pub port: u32,
    pub originator: String,
    pub originator_port: u32,
}

/// Refuses a forwarding request: a channel-open failure the client prints,
/// an audit event (the first few per connection) and a log line.
pub async fn refuse(
    s: &Session,
    fw: &Forwards,
    reply: ChannelOpenHandle,
    kind: ForwardKind,
    asked: &str,
    code: u32,
    why: &str,
) {
    reply
        .reject(ChannelOpenFailure::Other {
            code,
            reason: why.to_string(),
        })
        .await;
    audit_refusal(s, fw, kind, asked, why).await;
}

pub async fn audit_refusal(s: &Session, fw: &Forwards, kind: ForwardKind, asked: &str, why: &str) {
    tracing::info!(session = %s.id, user = %s.user, source = %s.source, kind = kind.as_str(),
        requested = %asked, reason = %why, "forward refused");
    if fw.refusals.fetch_add(1, Ordering::Relaxed) >= AUDITED_REFUSALS {
        return;
    }
    let event = AuditEvent::ForwardRefused {
        session: s.id.clone(),
        user: s.user.clone(),
        source: s.source.to_string(),
        kind: kind.as_str().into(),
        requested: asked.to_string(),
        reason: why.to_string(),
    };
    if let Err(e) = audit::record(&s.app().store, event).await {
        tracing::error!(session = %s.id, error = %e, "audit of a refused forward not written");
    }
}
