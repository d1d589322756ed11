//! Channels that go the other way: `ssh -R` (the target listens, its
//! connections are relayed back to the client) and agent forwarding (the
//! target's agent requests are relayed to the client's agent). Both only
//! for a `USER+TARGET` session whose grant allows them, and only for what
//! this client asked for: a channel the target opens unasked is refused.

use super::forward::via_target_spec;
use super::forwards::{Forwards, Listener, audit_refusal};
use crate::bridge::Counters;
use crate::forward::relay::relay;
use crate::forward::{ForwardKind, show, trail};
use crate::policy::{ChannelKind, SessionRequest};
use crate::session::live::Live;
use crate::session::{Destination, Session};
use crate::sync::MutexExt;
use crate::upstream::{Incoming, UpstreamSink, UpstreamSource};
use russh::ChannelOpenFailure;
use russh::client::ChannelOpenHandle;
use russh::server::Handle;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Answers a `tcpip-forward` request: asks the target to listen when the
/// grant allows remote forwarding; returns whether it does (and the port).
pub async fn listen(
    s: Arc<Session>,
    fw: Arc<Forwards>,
    handle: Handle,
    address: &str,
    port: &mut u32,
) -> bool {
    let asked = show(address, *port);
    let allowed = matches!(s.destination, Destination::Target { .. })
        && s.permissions().allows_channel(&ChannelKind::ForwardedTcpip);
    if !allowed {
        let why = "remote port forwarding is not allowed by your grant";
        audit_refusal(&s, &fw, ForwardKind::Remote, &asked, why).await;
        return false;
    }
    if !fw.remote_room() {
        let why = "too many remote forwards on this connection";
        audit_refusal(&s, &fw, ForwardKind::Remote, &asked, why).await;
        return false;
    }
    let up = match s.upstream().await {
        Ok(up) => up,
        Err(r) => {
            audit_refusal(&s, &fw, ForwardKind::Remote, &asked, &r.log).await;
            return false;
        }
    };
    let bound = match up.tcpip_forward(address, *port).await {
        Ok(p) => p,
        Err(e) => {
            let why = format!("the target refused to listen: {e}");
            audit_refusal(&s, &fw, ForwardKind::Remote, &asked, &why).await;
            return false;
        }
    };
    *port = bound;
    s.enforce();
    let listening = Listening {
        address: address.to_string(),
        port: bound,
        asked,
    };
    if !hold_listener(&s, &fw, listening).await {
        let _ = up.cancel_tcpip_forward(address, bound).await;
        return false;
    }
    start_relay(&s, &fw, handle).await;
    true
}

/// Where the target listens, and what the client asked for.
struct Listening {
    address: String,
    port: u32,
    asked: String,
}

/// A `-R` listener is a live thing of its own (kind "remote-listener"):
/// listed, ended by its id, by the kill switch or by its grant; its end
/// stops the target listening and ends the connections through it. Its
/// `forward.opened` row (kind "remote-listener", fail closed: `false` if it
/// cannot be written) lets any process (the CLI) find it by its id.
async fn hold_listener(s: &Arc<Session>, fw: &Arc<Forwards>, l: Listening) -> bool {
    let Listening {
        address,
        port,
        asked,
    } = l;
    let app = s.app().clone();
    let (tname, _) = s.target_and_login().unwrap_or_default();
    let on_target = format!("{} on the target", show(&address, port));
    let mut m = trail::meta(s, ForwardKind::RemoteListener, &tname, on_target, &asked);
    m.via = Some(tname);
    if !trail::open(&app, &m).await {
        return false;
    }
    let started = Instant::now();
    tracing::info!(session = %s.id, user = %s.user, listener = %m.id, address = %crate::names::escape_for_log(&address), port,
        "remote forward listening on the target");
    let cancel = s.cancel.child_token();
    fw.remote.lock_or_recover().push(Listener {
        port,
        cancel: cancel.clone(),
    });
    let spec = via_target_spec(
        s,
        &m.id,
        "remote-listener",
        Some(ChannelKind::ForwardedTcpip),
        Arc::default(),
    );
    let live = Live::open(s, spec, cancel.clone());
    let (s, fw) = (s.clone(), fw.clone());
    let ended = async move {
        cancel.cancelled().await;
        let reason = live.finish("cancelled by the client".into());
        // Still listed: not the client's cancel, so the target is told here.
        if fw.drop_listener(port).is_some()
            && !s.cancel.is_cancelled()
            && let Ok(up) = s.upstream().await
        {
            let _ = up.cancel_tcpip_forward(&address, port).await;
        }
        tracing::info!(reason = %reason, port, "remote forward listener ended");
        trail::close(&app, m, started, &Counters::default(), &reason).await;
    };
    tokio::spawn(ended.in_current_span());
    true
}

/// `cancel-tcpip-forward`: passed on for a port this client had opened.
pub async fn cancel(s: Arc<Session>, fw: Arc<Forwards>, address: &str, port: u32) -> bool {
    let Some(listener) = fw.drop_listener(port) else {
        return false;
    };
    listener.cancel.cancel();
    match s.upstream().await {
        Ok(up) => up.cancel_tcpip_forward(address, port).await.is_ok(),
        Err(_) => false,
    }
}

/// Agent forwarding was allowed on a session channel: relay the target's
/// agent channels from now on, and say so in the audit trail.
pub async fn agent_on(s: Arc<Session>, fw: Arc<Forwards>, handle: Handle) {
    if fw.agent.swap(true, Ordering::SeqCst) {
        return;
    }
    let (target, _) = s.target_and_login().unwrap_or_default();
    let event = crate::audit::AuditEvent::AgentForwarded {
        session: s.id.clone(),
        user: s.user.clone(),
        source: s.source.to_string(),
        target,
    };
    if let Err(e) = crate::audit::record(&s.app().store, event).await {
        tracing::error!(session = %s.id, error = %e, "audit of agent forwarding not written");
    }
    start_relay(&s, &fw, handle).await;
}

async fn start_relay(s: &Arc<Session>, fw: &Arc<Forwards>, handle: Handle) {
    if fw.relaying.swap(true, Ordering::SeqCst) {
        return;
    }
    let Ok(up) = s.upstream().await else { return };
    let Some(mut rx) = up.take_incoming() else {
        return;
    };
    let (s, fw) = (s.clone(), fw.clone());
    let relay = async move {
        loop {
            let next = tokio::select! {
                n = rx.recv() => n,
                _ = s.cancel.cancelled() => None,
            };
            let Some(inc) = next else { return };
            let inc = incoming(s.clone(), fw.clone(), handle.clone(), *inc);
            tokio::spawn(inc.in_current_span());
        }
    };
    tokio::spawn(relay.in_current_span());
}

async fn incoming(s: Arc<Session>, fw: Arc<Forwards>, handle: Handle, inc: Incoming) {
    // The target's channels count against the client connection's cap too:
    // a user's shell on the target could otherwise open them without end.
    let Ok(_held) = fw.cap.take(&s.source.to_string()) else {
        let reply = match inc {
            Incoming::ForwardedTcpip { reply, .. } | Incoming::Agent { reply, .. } => reply,
        };
        return deny(reply).await;
    };
    match inc {
        Incoming::ForwardedTcpip {
            stream,
            reply,
            connected_address,
            connected_port,
            originator_address,
            originator_port,
        } => {
            let listener = fw.listener(connected_port);
            let allowed = s.permissions().allows_channel(&ChannelKind::ForwardedTcpip);
            let Some(parent) = listener.filter(|_| allowed) else {
                tracing::warn!(session = %s.id, port = connected_port, "target opened a forwarded channel nobody asked for; refused");
                return deny(reply).await;
            };
            let opened = handle
                .channel_open_forwarded_tcpip(
                    connected_address.clone(),
                    connected_port,
                    originator_address.clone(),
                    originator_port,
                )
                .await;
            let where_ = format!("{} on the target", show(&connected_address, connected_port));
            let back = Back {
                kind: ForwardKind::Remote,
                where_,
                parent,
            };
            relay_back(s, handle, stream, reply, opened, back).await;
        }
        Incoming::Agent { stream, reply } => {
            let allowed = fw.agent.load(Ordering::SeqCst)
                && s.permissions()
                    .allows_request(&SessionRequest::AgentForward);
            if !allowed {
                tracing::warn!(session = %s.id, "target opened an agent channel without agent forwarding; refused");
                return deny(reply).await;
            }
            let opened = handle.channel_open_agent().await;
            let back = Back {
                kind: ForwardKind::Agent,
                where_: "agent".into(),
                parent: s.cancel.clone(),
            };
            relay_back(s, handle, stream, reply, opened, back).await;
        }
    }
}

async fn deny(reply: ChannelOpenHandle) {
    reply
        .reject(ChannelOpenFailure::AdministrativelyProhibited)
        .await;
}

/// A channel the target opened, as it is relayed back: what it is, where,
/// and the token whose end ends it (its listener's, or the session's).
struct Back {
    kind: ForwardKind,
    where_: String,
    parent: CancellationToken,
}

async fn relay_back(
    s: Arc<Session>,
    handle: Handle,
    stream: (UpstreamSource, UpstreamSink),
    reply: ChannelOpenHandle,
    opened: Result<russh::Channel<russh::server::Msg>, russh::Error>,
    back: Back,
) {
    let Back {
        kind,
        where_,
        parent,
    } = back;
    let Ok(client) = opened else {
        tracing::info!(session = %s.id, kind = kind.as_str(), "the client refused a relayed channel");
        return reply.reject(ChannelOpenFailure::ConnectFailed).await;
    };
    let app = s.app().clone();
    let (tname, _) = s.target_and_login().unwrap_or_default();
    let mut m = trail::meta(&s, kind, &tname, where_.clone(), &where_);
    m.via = Some(tname);
    if !trail::open(&app, &m).await {
        let _ = client.close().await;
        return deny(reply).await;
    }
    let started = Instant::now();
    let counters = Arc::new(Counters::default());
    let cancel = parent.child_token();
    // Agent traffic (keys offered, signatures) is audited, never captured.
    let (tap, live_kind, channel) = match kind {
        ForwardKind::Agent => (Ok(None), "agent", None),
        _ => (
            trail::via_target_capture(&m, &s, &counters, &cancel).await,
            "remote-forward",
            Some(ChannelKind::ForwardedTcpip),
        ),
    };
    let tap = match tap {
        Ok(tap) => tap,
        Err(e) => {
            let _ = client.close().await;
            deny(reply).await;
            let why = format!("capture failed: {e}");
            return trail::close(&app, m, started, &counters, &why).await;
        }
    };
    reply.accept().await;
    let live = Live::open(
        &s,
        via_target_spec(&s, &m.id, live_kind, channel, counters.clone()),
        cancel.clone(),
    );
    let client = super::channel::split(client, handle, None);
    let budget = s.channel_budget();
    let relayed = relay(
        client,
        stream,
        budget,
        true,
        counters.clone(),
        s.relay_stop(cancel),
        tap,
        live.why(),
    );
    let reason = relayed.instrument(live.span()).await;
    let reason = live.finish(reason);
    trail::close(&app, m, started, &counters, &reason).await;
}
