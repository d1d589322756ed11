//! Forwards to TCP targets (`-L`/`-D`/`-W` on a plain `alice` session):
//! checked, audited, dialled at the configured address, optionally
//! captured, then relayed with the client's bytes written inline
//! (`forward::upload`) and the grant watched while the forward lives.

use super::channel;
use super::forwards::{Forwards, Requested};
use crate::bridge::Counters;
use crate::forward::relay::{STALL, relay, with_drain};
use crate::forward::upload::Upload;
use crate::forward::{ForwardKind, show, tcp, trail};
use crate::policy::{Allow, ChannelKind};
use crate::session::Session;
use crate::session::live::{Live, Spec};
use crate::store::KindedTarget;
use russh::server::{ChannelOpenHandle, Handle, Msg};
use russh::{Channel, ChannelOpenFailure};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// A TCP forward's destination: behind the bridge both ways (when its bytes
/// are captured), or with the client's bytes written by the handler.
enum Far {
    Bridged(tokio::net::TcpStream),
    Inline(tcp::TcpSource, tcp::CloseSink, Arc<Upload>),
}

pub(super) async fn to_tcp_target(
    s: Arc<Session>,
    fw: &Forwards,
    (channel, handle): (Channel<Msg>, Handle),
    reply: ChannelOpenHandle,
    req: Requested,
    target: KindedTarget,
    allow: Allow,
) {
    let app = s.app().clone();
    let t = &target.target;
    let kind = ForwardKind::of_direct(&req.originator, req.originator_port);
    let m = trail::meta(
        &s,
        kind,
        &t.name,
        format!("{}:{}", t.host, t.port),
        &show(&req.host, req.port),
    );
    let reject = |reply: ChannelOpenHandle, code: u32, reason: String| async move {
        reply
            .reject(ChannelOpenFailure::Other { code, reason })
            .await;
    };
    let subject = crate::policy::Subject {
        user: Some(&s.user),
        target: Some(&t.name),
        source: s.source.ip(),
        session: Some(&s.id),
    };
    if let Err(text) = crate::lockdown::check(&app, &subject) {
        return reject(reply, 1, text).await;
    }
    if !trail::open(&app, &m).await {
        let why = "portcullis: forwarding cannot be audited right now, so it is refused";
        return reject(reply, 1, why.into()).await;
    }
    let started = Instant::now();
    let counters = Arc::new(Counters::default());
    // The configured host:port, never the client's string.
    let dial = tokio::net::TcpStream::connect((t.host.as_str(), t.port));
    let stream = match tokio::time::timeout(app.config.upstream_connect_timeout, dial).await {
        Ok(Ok(st)) => st,
        Ok(Err(e)) => {
            reject(
                reply,
                2,
                format!("portcullis: target {} is unreachable", t.name),
            )
            .await;
            return trail::close(&app, m, started, &counters, &format!("unreachable: {e}")).await;
        }
        Err(_) => {
            reject(
                reply,
                2,
                format!("portcullis: target {} did not answer in time", t.name),
            )
            .await;
            return trail::close(&app, m, started, &counters, "connect timed out").await;
        }
    };
    let _ = stream.set_nodelay(true);
    let cancel = s.cancel.child_token();
    let tap = if target.capture {
        match trail::start_capture(&m, &s, &counters, &cancel).await {
            Ok(tap) => Some(tap),
            Err(e) => {
                let why = "portcullis: the forward cannot be recorded, so it is refused";
                reject(reply, 1, why.into()).await;
                return trail::close(&app, m, started, &counters, &format!("capture failed: {e}"))
                    .await;
            }
        }
    } else {
        None
    };
    let id = channel.id();
    // Without a capture the client's bytes skip the bridge (see
    // `forward::upload`); registered before the client may send any.
    let far = if tap.is_some() {
        Far::Bridged(stream)
    } else {
        let (source, wr, close) = tcp::split_for_upload(stream);
        let up = Upload::new(
            wr,
            s.channel_budget(),
            STALL,
            counters.clone(),
            cancel.clone(),
        );
        if !fw.add_upload(id, up.clone()) {
            reject(reply, 1, "portcullis: channel already forwarded".into()).await;
            return trail::close(&app, m, started, &counters, "duplicate channel").await;
        }
        Far::Inline(source, close, up)
    };
    reply.accept().await;
    // Its own registry entry: a kill of the user, the target or this
    // forward's id ends it; the session's token ends it with the connection.
    let spec = Spec {
        id: m.id.clone(),
        kind: "forward",
        target: t.name.clone(),
        login: allow.login.clone(),
        deadline: allow.deadline,
        channel: Some((ChannelKind::DirectTcpip, "port forwarding")),
        bytes: counters.clone(),
    };
    let live = Live::open(&s, spec, cancel.clone());
    let budget = s.channel_budget();
    let span = live.span();
    let relayed = async {
        match far {
            Far::Bridged(stream) => {
                let client = channel::split(channel, handle, None);
                let far = tcp::split(stream);
                let c = s.relay_stop(cancel.clone());
                relay(
                    client,
                    far,
                    budget,
                    false,
                    counters.clone(),
                    c,
                    tap,
                    live.why(),
                )
                .await
            }
            Far::Inline(source, close, up) => {
                // The channel's own queue is dropped: russh's sends to it then
                // fail at once, and the handler feeds `up` instead.
                let (unread, sink) = channel::split(channel, handle, None);
                drop(unread);
                let client = (up.frames(), sink);
                let relayed = relay(
                    client,
                    (source, close),
                    budget,
                    false,
                    counters.clone(),
                    s.relay_stop(cancel.clone()),
                    None,
                    live.why(),
                );
                let reason = with_drain(relayed, &up).await;
                fw.take_upload(id);
                reason
            }
        }
    };
    let reason = relayed.instrument(span).await;
    let reason = live.finish(reason);
    trail::close(&app, m, started, &counters, &reason).await;
}
