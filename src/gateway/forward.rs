//! The russh side of port forwarding: direct-tcpip dispatch, the TCP
//! forwarder, forwards through a target's SSH connection, and the audit of
//! each forwarded connection. Decisions come from `forward::resolve` and
//! `policy`; this file only moves channels.

use super::channel;
use crate::app::App;
use crate::audit::{self, AuditEvent};
use crate::bridge::{self, ChannelEnd, Counters, FrameSink, FrameSource, Tap};
use crate::forward::capture::{self, CaptureCtx};
use crate::forward::resolve::{self, Resolved};
use crate::forward::upload::Upload;
use crate::forward::{ForwardKind, ForwardMeta, show};
use crate::ids::new_id;
use crate::policy::ChannelKind;
use crate::session::{Destination, Session};
use crate::sync::MutexExt;
use russh::server::{ChannelOpenHandle, Handle, Msg};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Refusals audited per connection; past this they are only logged, so a
/// SOCKS client scanning ports cannot flood the audit table.
const AUDITED_REFUSALS: u32 = 32;

/// Per-connection forwarding state.
pub struct Forwards {
    /// Channels this connection (and any nested in it) may hold open.
    pub(super) cap: Arc<super::caps::ChannelCap>,
    /// `-R` listeners this connection may hold.
    max_remote: usize,
    refusals: AtomicU32,
    /// Ports the target listens on for this client (`ssh -R`), as granted.
    pub(super) remote: Mutex<Vec<(String, u32)>>,
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

/// Entry point for every direct-tcpip channel. Runs on its own task: the
/// channel is answered only once the destination is connected or refused.
pub async fn direct_tcpip(
    s: Arc<Session>,
    fw: Arc<Forwards>,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    handle: Handle,
    req: Requested,
) {
    let kind = ForwardKind::of_direct(&req.originator, req.originator_port);
    let asked = show(&req.host, req.port);
    match &s.destination {
        Destination::Refused(_) => {
            let why = "portcullis: port forwarding is not allowed on this connection";
            refuse(&s, &fw, reply, kind, &asked, 1, why).await;
        }
        // `alice+web01 -L`: the target connects, as OpenSSH would.
        Destination::Target { .. } => via_upstream(s, fw, channel, reply, handle, req).await,
        Destination::Menu(_) => {
            let resolved =
                resolve::resolve(&s.app().store, &s.user, s.started, &req.host, req.port).await;
            match resolved {
                Ok(Resolved::Tcp { target, allow }) => {
                    let client = (channel, handle);
                    super::tcp_forward::to_tcp_target(s, &fw, client, reply, req, target, allow)
                        .await
                }
                Ok(Resolved::Ssh(target)) => {
                    // SSH targets named by name or configured host were
                    // taken by `jump::dispatch` before this; what reaches
                    // here named one by address only: never raw bytes.
                    let _ = (&channel, &handle);
                    let why = format!(
                        "portcullis: {asked} is the SSH target {}; jump to it by name (ssh -J)",
                        target.name
                    );
                    refuse(&s, &fw, reply, kind, &asked, 1, &why).await;
                }
                Ok(Resolved::Refused(why)) => refuse(&s, &fw, reply, kind, &asked, 1, &why).await,
                Err(e) => {
                    tracing::error!(session = %s.id, error = %e, "cannot decide a forward; refusing");
                    let why = "portcullis: access cannot be decided right now; try again later";
                    refuse(&s, &fw, reply, kind, &asked, 1, why).await;
                }
            }
        }
    }
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

pub fn meta(
    s: &Session,
    kind: ForwardKind,
    target: &str,
    destination: String,
    asked: &str,
) -> ForwardMeta {
    ForwardMeta {
        id: new_id(),
        session: s.id.clone(),
        user: s.user.clone(),
        source: s.source.to_string(),
        kind,
        target: target.to_string(),
        destination,
        requested: asked.to_string(),
        via: None,
    }
}

/// Writes the opening event; `false` (fail closed) if it cannot be written.
/// Past the user's cap the forward is summarised instead: the first one
/// writes a durable marker (or is refused), later ones are only counted
/// until the next flush (`audit::rate`).
pub async fn audit_open(app: &App, meta: &ForwardMeta) -> bool {
    if !app.caps.forwards.take(&meta.user, Instant::now()) {
        let first = app
            .caps
            .summary
            .opened(&meta.user, &meta.id, &meta.destination);
        if !first {
            return true;
        }
        let event = AuditEvent::ForwardSummary {
            user: meta.user.clone(),
            marker: true,
            totals: audit::rate::UserForwards {
                count: 1,
                ..Default::default()
            },
        };
        return match audit::record(&app.store, event).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(forward = %meta.id, error = %e, "forward summary not audited; refusing");
                app.caps.summary.closed(&meta.user, &meta.id, 0, 0);
                false
            }
        };
    }
    match audit::record(&app.store, AuditEvent::ForwardOpened(meta.clone())).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(forward = %meta.id, error = %e, "forward not audited; refusing");
            false
        }
    }
}

/// Writes the closing event with duration and bytes.
pub async fn audit_close(
    app: &App,
    meta: ForwardMeta,
    started: Instant,
    counters: &Counters,
    reason: &str,
) {
    let (up, down) = (
        counters.up.load(Ordering::Relaxed),
        counters.down.load(Ordering::Relaxed),
    );
    tracing::info!(forward = %meta.id, user = %meta.user, target = %meta.target, kind = meta.kind.as_str(),
        bytes_up = up, bytes_down = down, reason, "forward closed");
    if app.caps.summary.closed(&meta.user, &meta.id, up, down) {
        return; // summarised: its bytes go in the user's next summary row
    }
    let event = AuditEvent::ForwardClosed {
        meta,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        bytes_up: up,
        bytes_down: down,
        reason: reason.to_string(),
    };
    if let Err(e) = audit::record(&app.store, event).await {
        tracing::error!(error = %e, "audit of a closed forward not written");
    }
}

/// A consumer that takes nothing for this long while its forward's budget
/// is full is stuck; the forward ends so the SSH connection does not.
pub const STALL: Duration = Duration::from_secs(2);

/// Relays one accepted channel to its far side until either closes or the
/// token is cancelled; returns why it ended. `far_is_ssh`: the far side is
/// a channel of the target's SSH connection, which a stopped reader would
/// block too (a TCP destination only slows down).
#[allow(clippy::too_many_arguments)]
pub async fn relay<CS: FrameSource, S: FrameSource, K: FrameSink>(
    s: &Session,
    client: (CS, channel::ClientSink),
    far: (S, K),
    far_is_ssh: bool,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    tap: Option<Tap>,
    why: &Mutex<Option<String>>,
) -> String {
    let stall = bridge::Stall {
        up: Some(STALL),
        down: far_is_ssh.then_some(STALL),
    };
    let end = bridge::run_forward(
        client,
        far,
        s.channel_budget(),
        stall,
        counters,
        cancel,
        tap,
    )
    .await;
    let set = why.lock_or_recover().clone();
    match (set, end) {
        (Some(w), _) => w,
        (None, ChannelEnd::Stalled) => stall_reason(),
        (None, ChannelEnd::Cancelled) => "ended by portcullis".into(),
        (None, ChannelEnd::Closed) => "closed".into(),
    }
}

pub(super) fn stall_reason() -> String {
    format!(
        "stalled: nothing consumed for {} s with the buffer full",
        STALL.as_secs()
    )
}

/// `alice+web01 -L/-W`: a direct-tcpip opened on the target's connection
/// (the target resolves and connects, as with OpenSSH), if the grant for
/// web01 allows local forwarding.
async fn via_upstream(
    s: Arc<Session>,
    fw: Arc<Forwards>,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    handle: Handle,
    req: Requested,
) {
    let kind = ForwardKind::of_direct(&req.originator, req.originator_port);
    let asked = show(&req.host, req.port);
    if !s.permissions().allows_channel(&ChannelKind::DirectTcpip) {
        let why = "portcullis: port forwarding is not allowed by your grant";
        return refuse(&s, &fw, reply, kind, &asked, 1, why).await;
    }
    let (tname, _) = s.target_and_login().unwrap_or_default();
    let up = match s.upstream().await {
        Ok(up) => up,
        Err(r) => {
            tracing::warn!(session = %s.id, error = %r.log, "forward refused");
            return refuse(&s, &fw, reply, kind, &asked, 2, &r.user).await;
        }
    };
    let app = s.app().clone();
    let mut m = meta(&s, kind, &tname, asked.clone(), &asked);
    m.via = Some(tname.clone());
    if !audit_open(&app, &m).await {
        let why = "portcullis: forwarding cannot be audited right now, so it is refused";
        return refuse(&s, &fw, reply, kind, &asked, 1, why).await;
    }
    let started = Instant::now();
    let counters = Arc::new(Counters::default());
    let far = match up
        .open_direct_tcpip(&req.host, req.port, &req.originator, req.originator_port)
        .await
    {
        Ok(far) => far,
        Err(e) => {
            let reason = format!("portcullis: {tname} could not connect to {asked}");
            reply
                .reject(ChannelOpenFailure::Other { code: 2, reason })
                .await;
            return audit_close(
                &app,
                m,
                started,
                &counters,
                &format!("refused by the target: {e}"),
            )
            .await;
        }
    };
    let cancel = s.cancel.child_token();
    let tap = match via_target_capture(&app, &m, &s, &counters, &cancel).await {
        Ok(tap) => tap,
        Err(e) => {
            let reason = "portcullis: the forward cannot be recorded, so it is refused".into();
            reply
                .reject(ChannelOpenFailure::Other { code: 1, reason })
                .await;
            return audit_close(&app, m, started, &counters, &format!("capture failed: {e}")).await;
        }
    };
    reply.accept().await;
    s.enforce();
    let why = Mutex::new(None);
    let client = channel::split(channel, handle, None);
    let reason = relay(&s, client, far, true, counters.clone(), cancel, tap, &why).await;
    audit_close(&app, m, started, &counters, &reason).await;
}

/// The capture of a forward through an SSH target's connection (`-L` on an
/// `alice+web01` session, `-R`), when that target keeps contents
/// (`target capture NAME on`). Fails closed: a setting that cannot be read
/// or a capture that cannot start refuses the forward.
pub async fn via_target_capture(
    app: &Arc<App>,
    m: &ForwardMeta,
    s: &Session,
    counters: &Arc<Counters>,
    cancel: &CancellationToken,
) -> Result<Option<Tap>, String> {
    let target = m.via.as_deref().unwrap_or(&m.target);
    if !app
        .store
        .capture_files(target)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(None);
    }
    start_capture(app, m, s, counters, cancel).await.map(Some)
}

/// Starts the signed capture of one forwarded connection's bytes.
pub(super) async fn start_capture(
    app: &Arc<App>,
    m: &ForwardMeta,
    s: &Session,
    counters: &Arc<Counters>,
    cancel: &CancellationToken,
) -> Result<Tap, String> {
    let ctx = CaptureCtx {
        app: app.clone(),
        meta: m.clone(),
        channel: s.next_channel(),
        counters: counters.clone(),
        cancel: cancel.clone(),
    };
    capture::start(ctx).await.map_err(|e| e.to_string())
}
