//! Forwards to TCP targets (`-L`/`-D`/`-W` on a plain `alice` session):
//! checked, audited, dialled at the configured address, optionally
//! captured, then relayed with the client's bytes written inline
//! (`forward::upload`) and the grant watched while the forward lives.

use super::channel;
use super::forward::{
    Forwards, Requested, STALL, audit_close, audit_open, meta, relay, stall_reason, start_capture,
};
use crate::access;
use crate::bridge::Counters;
use crate::clock::now_ms;
use crate::forward::upload::Upload;
use crate::forward::{ForwardKind, show, tcp};
use crate::policy::{Allow, ChannelKind};
use crate::registry::LiveSession;
use crate::session::watch::{self, Needs};
use crate::session::{Lease, Session, StoreGrants};
use crate::store::KindedTarget;
use crate::sync::MutexExt;
use russh::server::{ChannelOpenHandle, Handle, Msg};
use russh::{Channel, ChannelOpenFailure};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Runs the relay and the upload's drainer together until the relay ends:
/// the destination may close first, and then nothing is left to drain.
async fn relay_with_drain(relayed: impl Future<Output = String>, up: &Upload) -> String {
    let drain = up.drain();
    tokio::pin!(relayed, drain);
    let mut drained = false;
    let reason = loop {
        tokio::select! {
            reason = &mut relayed => break reason,
            _ = &mut drain, if !drained => drained = true,
        }
    };
    // What the client sent before the end still goes out, as the bridge's
    // queue would have, for at most the stall time.
    if !drained {
        up.close();
        let _ = tokio::time::timeout(STALL, &mut drain).await;
    }
    // A `push` waiting for room must not hold the connection's loop.
    up.stop();
    reason
}

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
    let m = meta(
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
    if !audit_open(&app, &m).await {
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
            return audit_close(&app, m, started, &counters, &format!("unreachable: {e}")).await;
        }
        Err(_) => {
            reject(
                reply,
                2,
                format!("portcullis: target {} did not answer in time", t.name),
            )
            .await;
            return audit_close(&app, m, started, &counters, "connect timed out").await;
        }
    };
    let _ = stream.set_nodelay(true);
    let cancel = s.cancel.child_token();
    let tap = if target.capture {
        match start_capture(&app, &m, &s, &counters, &cancel).await {
            Ok(tap) => Some(tap),
            Err(e) => {
                let why = "portcullis: the forward cannot be recorded, so it is refused";
                reject(reply, 1, why.into()).await;
                return audit_close(&app, m, started, &counters, &format!("capture failed: {e}"))
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
            return audit_close(&app, m, started, &counters, "duplicate channel").await;
        }
        Far::Inline(source, close, up)
    };
    reply.accept().await;
    // Its own registry entry: a kill of the user, the target or this
    // forward's id ends it; the session's token ends it with the connection.
    let lease = Lease::open(
        &app,
        LiveSession {
            id: m.id.clone(),
            user: s.user.clone(),
            target: t.name.clone(),
            login: "-".into(),
            source: s.source.to_string(),
            source_ip: s.source.ip(),
            started_ms: now_ms(),
            cancel: cancel.clone(),
            kill: Arc::default(),
            notices: None,
            kind: "forward",
        },
    );
    lease.cancel_on_kill();
    let why = Arc::new(Mutex::new(None));
    let grants = StoreGrants {
        app: app.clone(),
        user: s.user.clone(),
        target: t.name.clone(),
        login: allow.login.clone(),
        started: s.started,
    };
    let needs = Needs {
        deadline: allow.deadline,
        channel: Some((ChannelKind::DirectTcpip, "port forwarding")),
        what: "this forward",
    };
    let ender = Ender {
        why: why.clone(),
        cancel: cancel.clone(),
    };
    let watched = cancel.clone();
    let watcher =
        tokio::spawn(
            async move { watch::watch(needs, &grants, &ender, &watched, access::now).await },
        );
    let reason = match far {
        Far::Bridged(stream) => {
            let client = channel::split(channel, handle, None);
            let far = tcp::split(stream);
            let c = cancel.clone();
            relay(&s, client, far, false, counters.clone(), c, tap, &why).await
        }
        Far::Inline(source, close, up) => {
            // The channel's own queue is dropped: russh's sends to it then
            // fail at once, and the handler feeds `up` instead.
            let (unread, sink) = channel::split(channel, handle, None);
            drop(unread);
            let client = (up.frames(), sink);
            let relayed = relay(
                &s,
                client,
                (source, close),
                false,
                counters.clone(),
                cancel.clone(),
                None,
                &why,
            );
            let reason = relay_with_drain(relayed, &up).await;
            fw.take_upload(id);
            if up.stalled() { stall_reason() } else { reason }
        }
    };
    // Ends the kill watch above (a child token: the session is untouched).
    cancel.cancel();
    watcher.abort();
    let reason = lease.end_reason(reason);
    drop(lease);
    audit_close(&app, m, started, &counters, &reason).await;
}

/// Ends a forward for the watcher: no terminal to warn, the reason kept
/// for the close audit, the relay cancelled.
struct Ender {
    why: Arc<Mutex<Option<String>>>,
    cancel: CancellationToken,
}

impl watch::Holder for Ender {
    fn warn(&self, _text: &str) {}

    fn narrowed(&self, _now: crate::policy::Permissions) {}

    async fn end(&self, reason: String, _text: String) {
        *self.why.lock_or_recover() = Some(reason);
        self.cancel.cancel();
    }
}
