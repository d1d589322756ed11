//! The russh side of port forwarding: direct-tcpip dispatch and forwards
//! through a target's SSH connection. Decisions come from
//! `forward::resolve` and `policy`, the audit, capture and relay from
//! `forward::{trail, relay}`, the lifecycle from `session::live`; this file
//! only moves channels.

use super::channel;
use super::forwards::{Forwards, Requested, refuse};
use crate::bridge::Counters;
use crate::forward::relay::relay;
use crate::forward::resolve::{self, Resolved};
use crate::forward::{ForwardKind, show, trail};
use crate::policy::ChannelKind;
use crate::session::live::{Live, Spec};
use crate::session::{Destination, Session};
use russh::Channel;
use russh::ChannelOpenFailure;
use russh::server::{ChannelOpenHandle, Handle, Msg};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

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
    let mut m = trail::meta(&s, kind, &tname, asked.clone(), &asked);
    m.via = Some(tname.clone());
    if !trail::open(s.app(), &m).await {
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
            let why = format!("refused by the target: {e}");
            return trail::close(s.app(), m, started, &counters, &why).await;
        }
    };
    let cancel = s.cancel.child_token();
    let tap = match trail::via_target_capture(&m, &s, &counters, &cancel).await {
        Ok(tap) => tap,
        Err(e) => {
            let reason = "portcullis: the forward cannot be recorded, so it is refused".into();
            reply
                .reject(ChannelOpenFailure::Other { code: 1, reason })
                .await;
            let why = format!("capture failed: {e}");
            return trail::close(s.app(), m, started, &counters, &why).await;
        }
    };
    reply.accept().await;
    s.enforce();
    let live = Live::open(
        &s,
        via_target_spec(
            &s,
            &m.id,
            "forward",
            Some(ChannelKind::DirectTcpip),
            counters.clone(),
        ),
        cancel.clone(),
    );
    let client = channel::split(channel, handle, None);
    let budget = s.channel_budget();
    let relayed = relay(
        client,
        far,
        budget,
        true,
        counters.clone(),
        s.relay_stop(cancel),
        tap,
        live.why(),
    );
    let reason = relayed.instrument(live.span()).await;
    let reason = live.finish(reason);
    trail::close(s.app(), m, started, &counters, &reason).await;
}

/// The lifecycle of a live thing through the session's SSH target: the
/// target's grant, with `channel` still allowed.
pub(super) fn via_target_spec(
    s: &Session,
    id: &str,
    kind: &'static str,
    channel: Option<ChannelKind>,
    bytes: Arc<Counters>,
) -> Spec {
    let (target, login, deadline) = match &s.destination {
        Destination::Target { target, allow } => {
            (target.name.clone(), allow.login.clone(), allow.deadline)
        }
        _ => Default::default(),
    };
    let named = |c: ChannelKind| match c {
        ChannelKind::ForwardedTcpip => (c, "remote port forwarding"),
        _ => (c, "port forwarding"),
    };
    Spec {
        id: id.to_string(),
        kind,
        target,
        login,
        deadline,
        channel: channel.map(named),
        bytes,
    }
}
