//! Channels that go the other way: `ssh -R` (the target listens, its
//! connections are relayed back to the client) and agent forwarding (the
//! target's agent requests are relayed to the client's agent). Both only
//! for a `USER+TARGET` session whose grant allows them, and only for what
//! this client asked for: a channel the target opens unasked is refused.

use super::forward::{self, Forwards};
use crate::bridge::Counters;
use crate::forward::{ForwardKind, show};
use crate::policy::{ChannelKind, SessionRequest};
use crate::session::{Destination, Session};
use crate::sync::MutexExt;
use crate::upstream::{Incoming, UpstreamSink, UpstreamSource};
use russh::ChannelOpenFailure;
use russh::client::ChannelOpenHandle;
use russh::server::Handle;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
        forward::audit_refusal(&s, &fw, ForwardKind::Remote, &asked, why).await;
        return false;
    }
    if !fw.remote_room() {
        let why = "too many remote forwards on this connection";
        forward::audit_refusal(&s, &fw, ForwardKind::Remote, &asked, why).await;
        return false;
    }
    let up = match s.upstream().await {
        Ok(up) => up,
        Err(r) => {
            forward::audit_refusal(&s, &fw, ForwardKind::Remote, &asked, &r.log).await;
            return false;
        }
    };
    let bound = match up.tcpip_forward(address, *port).await {
        Ok(p) => p,
        Err(e) => {
            let why = format!("the target refused to listen: {e}");
            forward::audit_refusal(&s, &fw, ForwardKind::Remote, &asked, &why).await;
            return false;
        }
    };
    fw.remote
        .lock_or_recover()
        .push((address.to_string(), bound));
    *port = bound;
    tracing::info!(session = %s.id, user = %s.user, address = %crate::names::escape_for_log(address), port = bound,
        "remote forward listening on the target");
    s.enforce();
    start_relay(&s, &fw, handle).await;
    true
}

/// `cancel-tcpip-forward`: passed on for a port this client had opened.
pub async fn cancel(s: Arc<Session>, fw: Arc<Forwards>, address: &str, port: u32) -> bool {
    let known = {
        let mut r = fw.remote.lock_or_recover();
        let before = r.len();
        r.retain(|(_, p)| *p != port);
        r.len() != before
    };
    if !known {
        return false;
    }
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
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                n = rx.recv() => n,
                _ = s.cancel.cancelled() => None,
            };
            let Some(inc) = next else { return };
            tokio::spawn(incoming(s.clone(), fw.clone(), handle.clone(), inc));
        }
    });
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
            let asked = fw
                .remote
                .lock_or_recover()
                .iter()
                .any(|(_, p)| *p == connected_port);
            if !asked || !s.permissions().allows_channel(&ChannelKind::ForwardedTcpip) {
                tracing::warn!(session = %s.id, port = connected_port, "target opened a forwarded channel nobody asked for; refused");
                return deny(reply).await;
            }
            let opened = handle
                .channel_open_forwarded_tcpip(
                    connected_address.clone(),
                    connected_port,
                    originator_address.clone(),
                    originator_port,
                )
                .await;
            let where_ = format!("{} on the target", show(&connected_address, connected_port));
            relay_back(
                s,
                fw,
                handle,
                stream,
                reply,
                opened,
                ForwardKind::Remote,
                where_,
            )
            .await;
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
            relay_back(
                s,
                fw,
                handle,
                stream,
                reply,
                opened,
                ForwardKind::Agent,
                "agent".into(),
            )
            .await;
        }
    }
}

async fn deny(reply: ChannelOpenHandle) {
    reply
        .reject(ChannelOpenFailure::AdministrativelyProhibited)
        .await;
}

#[allow(clippy::too_many_arguments)]
async fn relay_back(
    s: Arc<Session>,
    _fw: Arc<Forwards>,
    handle: Handle,
    stream: (UpstreamSource, UpstreamSink),
    reply: ChannelOpenHandle,
    opened: Result<russh::Channel<russh::server::Msg>, russh::Error>,
    kind: ForwardKind,
    where_: String,
) {
    let Ok(client) = opened else {
        tracing::info!(session = %s.id, kind = kind.as_str(), "the client refused a relayed channel");
        return reply.reject(ChannelOpenFailure::ConnectFailed).await;
    };
    let app = s.app().clone();
    let (tname, _) = s.target_and_login().unwrap_or_default();
    let mut m = forward::meta(&s, kind, &tname, where_.clone(), &where_);
    m.via = Some(tname);
    if !forward::audit_open(&app, &m).await {
        let _ = client.close().await;
        return deny(reply).await;
    }
    let started = Instant::now();
    let counters = Arc::new(Counters::default());
    let cancel = s.cancel.child_token();
    // Agent traffic (keys offered, signatures) is audited, never captured.
    let tap = match kind {
        ForwardKind::Agent => Ok(None),
        _ => forward::via_target_capture(&app, &m, &s, &counters, &cancel).await,
    };
    let tap = match tap {
        Ok(tap) => tap,
        Err(e) => {
            let _ = client.close().await;
            deny(reply).await;
            let why = format!("capture failed: {e}");
            return forward::audit_close(&app, m, started, &counters, &why).await;
        }
    };
    reply.accept().await;
    let why = Mutex::new(None);
    let client = super::channel::split(client, handle, None);
    let reason = forward::relay(
        &s,
        client,
        stream,
        true,
        counters.clone(),
        cancel,
        tap,
        &why,
    )
    .await;
    forward::audit_close(&app, m, started, &counters, &reason).await;
}
