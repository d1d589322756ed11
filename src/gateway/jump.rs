//! ProxyJump terminated at the bastion: `ssh -J alice@bastion root@web01`.
//!
//! The client opens a direct-tcpip channel to `web01:22` on its authenticated
//! connection and speaks SSH inside it. When that destination names an SSH
//! target, no byte is passed through: a nested russh server runs on the
//! channel's byte stream, presents a host certificate for the target signed
//! by the bastion's host CA, accepts the inner login on the strength of the
//! outer one, and from there is an ordinary `Connection` whose session is
//! resolved, dialled, recorded and enforced exactly like `alice+root+web01`.
//! What the destination names and whether the user may jump there now is
//! decided in `session::jump`; this is the russh adapter around it.

use super::handler::Connection;
use super::hostca::{self, HostCa};
use super::shared::Shared;
use crate::registry::KillNote;
use crate::session::jump::Jump;
use crate::session::{self, Session};
use crate::store::TargetRecord;
use futures::FutureExt;
use russh::keys::{Algorithm, PrivateKey};
use russh::server::{Auth, ChannelOpenHandle, Config as SshConfig, Msg};
use russh::{Channel, ChannelOpenFailure, MethodKind, MethodSet};
use std::sync::Arc;
use tracing::{Instrument, Span};

/// The place a channel holds in its connection's cap until it ends.
type Held = tokio::sync::OwnedSemaphorePermit;

/// What nested servers prove themselves with: one of the bastion's host
/// keys, certified per target by the host CA.
pub struct Keys {
    ca: HostCa,
    host_key: PrivateKey,
}

impl Keys {
    /// Prefers an Ed25519 host key; `None` when the bastion has no host key.
    pub fn new(ca: HostCa, host_keys: &[PrivateKey]) -> Option<Keys> {
        let host_key = host_keys
            .iter()
            .find(|k| k.algorithm() == Algorithm::Ed25519)
            .or_else(|| host_keys.first())?
            .clone();
        Some(Keys { ca, host_key })
    }
}

/// The outer connection's identity, carried by a nested connection. Only an
/// authenticated connection can open the channel a nested one runs in.
pub struct Outer {
    user: String,
    via_session: String,
    target: TargetRecord,
}

/// Takes a direct-tcpip open that names an SSH target the user holds a
/// grant on and serves it as a nested connection once the grant allows it
/// now; gives the channel back otherwise (or when the connection is itself
/// nested), for the ordinary forwarding rules and their refusal.
pub(super) async fn dispatch(
    conn: &Connection,
    channel: Channel<Msg>,
    host: &str,
    port: u32,
    reply: ChannelOpenHandle,
    held: Held,
) -> Option<(Channel<Msg>, ChannelOpenHandle, Held)> {
    let outer = match conn.shared.session() {
        Some(s) if conn.jump.is_none() => s,
        _ => return Some((channel, reply, held)),
    };
    let refusal = match session::jump::check(&conn.app, &outer.user, host, port).await {
        Jump::NotSsh => return Some((channel, reply, held)),
        Jump::Serve(target) => {
            let asked = host.to_string();
            let keys = conn.jump_keys.clone();
            let cap = conn.forwards.cap.clone();
            let serve = serve(channel, reply, outer, target, asked, keys, cap);
            // Tracked: a graceful stop waits for its session's end row.
            let tasks = conn.app.tasks.clone();
            let span = conn.shared.span.clone();
            // `map`, not an `async` block: see `Handler::channel_open_session`.
            tasks.spawn(serve.map(move |()| drop(held)).instrument(span));
            return None;
        }
        Jump::Refuse(text) => text,
    };
    reject(reply, refusal).await;
    None
}

/// Runs the nested SSH server for `target` on `channel` until it ends.
pub async fn serve(
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    outer: Arc<Session>,
    target: TargetRecord,
    asked: String,
    keys: Arc<Keys>,
    cap: Arc<super::caps::ChannelCap>,
) {
    let app = outer.app().clone();
    let validity = app.config.jump.cert_validity;
    let config = match config(&app, &keys, &target, &asked) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(target = %target.name, error = %e, "no host certificate; jump refused");
            let msg = format!(
                "portcullis: the bastion cannot present a host certificate for {}",
                target.name
            );
            return reject(reply, msg).await;
        }
    };
    reply.accept().await;
    tracing::info!(user = %outer.user, source = %outer.source, target = %target.name, "jump: serving a nested connection");
    let outer_id = Outer {
        user: outer.user.clone(),
        via_session: outer.id.clone(),
        target,
    };
    // Ends with the outer connection; its own kill ends only itself.
    // A span of its own, inside the outer connection's (the current one).
    let span = Shared::span_for(outer.source, Some(&Span::current()));
    let shared = Arc::new(Shared::new(outer.cancel.child_token(), span.clone()));
    end_with_outer(&shared, outer.kill.clone(), validity);
    // The nested connection's channels count against the outer one's cap.
    let conn = Connection::nested(app.clone(), outer.source, shared, keys, outer_id, cap);
    let stream = super::stream::Killable::new(
        channel.into_stream(),
        conn.cut_token(),
        conn.shared().kill.clone(),
    );
    super::drive(app, config, stream, conn, outer.cancel.clone())
        .instrument(span)
        .await;
}

/// Kills a nested connection when its outer one is killed, for the same
/// reason: its bridges halt at once and its row says why, instead of
/// relaying until the outer transport is gone and ending as "client
/// disconnected". And since OpenSSH checks the host certificate again at
/// every re-key (russh re-keys hourly), it ends, with a message, shortly
/// before its certificate expires instead of failing a re-key.
fn end_with_outer(shared: &Shared, outer: Arc<KillNote>, validity: std::time::Duration) {
    let kill = shared.kill.clone();
    let done = shared.cancel.clone();
    let life = validity.saturating_sub(std::time::Duration::from_secs(60));
    tokio::spawn(async move {
        tokio::select! {
            () = done.cancelled() => {}
            () = outer.killed() => {
                let why = outer.reason().unwrap_or("ended by portcullis");
                kill.kill(why, outer.requested_at().unwrap_or_else(std::time::Instant::now));
            }
            () = tokio::time::sleep(life) => {
                kill.kill("the jump's host certificate expires; connect again", std::time::Instant::now());
            }
        }
    });
}

/// The certificate names only what the client asked for (a target name or
/// configured address the user holds a grant on): a jump by name does not
/// learn the target's internal address.
fn config(
    app: &crate::app::App,
    keys: &Keys,
    target: &TargetRecord,
    asked: &str,
) -> Result<SshConfig, super::GatewayError> {
    let principals = hostca::principals(&[asked]);
    let now = u64::try_from(crate::clock::now_ms() / 1000).unwrap_or(0);
    let valid = app.config.jump.cert_validity.as_secs();
    let cert = keys.ca.certify(
        keys.host_key.public_key(),
        &target.name,
        &principals,
        now,
        valid,
    )?;
    let mut c = super::ssh_config(app, vec![keys.host_key.clone()]);
    c.certificates = vec![cert];
    c.methods = MethodSet::from(
        &[
            MethodKind::None,
            MethodKind::PublicKey,
            MethodKind::Password,
            MethodKind::KeyboardInteractive,
        ][..],
    );
    // The outer connection's keepalives already watch the peer.
    c.keepalive_interval = None;
    Ok(c)
}

async fn reject(reply: ChannelOpenHandle, reason: String) {
    reply
        .reject(ChannelOpenFailure::Other { code: 1, reason })
        .await;
}

impl Connection {
    /// Any method the client tries is accepted: the nested connection exists
    /// only inside an outer one whose user passed every factor, so proving
    /// it again adds nothing. The username only picks the upstream login
    /// (the user's own name: the grant's default); it never picks a user.
    pub(super) async fn jump_auth(&mut self, username: &str) -> Auth {
        let refuse = Auth::Reject {
            proceed_with_methods: Some(MethodSet::empty()),
            partial_success: false,
        };
        let Some(outer) = &self.jump else {
            return refuse;
        };
        if self.shared.session().is_some() {
            return Auth::Accept;
        }
        let via = session::jump::Via {
            user: &outer.user,
            session: &outer.via_session,
            target: &outer.target.name,
        };
        let cancel = self.shared.cancel.clone();
        let nested = session::jump::nested_session(&self.app, via, username, self.peer, cancel);
        let Some(mut session) = nested.await else {
            return refuse;
        };
        self.shared.named(&session);
        let kill = self.shared.kill.clone();
        session::jump::admit_nested(&mut session, kill, &outer.via_session).await;
        let session = Arc::new(session);
        // From login, not from the first channel: a connection that opens
        // channels later (a ControlMaster) must meet the grant of that time.
        session.enforce();
        let _ = self.shared.session.set(session);
        Auth::Accept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_nested_connection_is_ended_before_its_certificate_expires() {
        use std::time::Duration;
        let shared = Shared::new(tokio_util::sync::CancellationToken::new(), Span::none());
        // 50 ms of life: a certificate valid for a minute and 50 ms.
        end_with_outer(&shared, Arc::default(), Duration::from_millis(60_050));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(shared.kill.is_killed());
        assert!(
            shared
                .kill
                .reason()
                .unwrap()
                .contains("certificate expires")
        );
        // A connection that ended first is left alone.
        let gone = Shared::new(tokio_util::sync::CancellationToken::new(), Span::none());
        end_with_outer(&gone, Arc::default(), Duration::from_millis(60_050));
        gone.cancel.cancel();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!gone.kill.is_killed());
    }

    #[tokio::test]
    async fn a_nested_connection_is_killed_with_its_outer_one() {
        let outer: Arc<KillNote> = Arc::default();
        let nested = Shared::new(tokio_util::sync::CancellationToken::new(), Span::none());
        let halt = nested.kill.halt();
        end_with_outer(&nested, outer.clone(), std::time::Duration::from_secs(3600));
        tokio::task::yield_now().await;
        assert!(!nested.kill.is_killed());
        outer.kill("incident 7", std::time::Instant::now());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(halt.is_cancelled());
        assert_eq!(nested.kill.reason(), Some("incident 7"));
        // Not the other way round: a nested kill leaves the outer alone.
        let outer: Arc<KillNote> = Arc::default();
        let nested = Shared::new(tokio_util::sync::CancellationToken::new(), Span::none());
        end_with_outer(&nested, outer.clone(), std::time::Duration::from_secs(3600));
        nested.kill.kill("nested only", std::time::Instant::now());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!outer.is_killed());
    }
}
