//! The russh `Handler`: translates callbacks into auth, policy and session calls.

use super::channel;
use super::channel::reject;
use super::limits::Slot;
use super::login::{FirstFactor, first_factor_methods};
use super::menu;
use super::session_channel;
use super::shared::Shared;
use crate::app::App;
use crate::lockdown::rules::Stage;
use crate::policy::SessionRequest;
use crate::session::Destination;
use futures::FutureExt;
use russh::server::{
    Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Response, Session as SshSession,
    VerifiedPublicKey,
};
use russh::{Channel, ChannelId, Pty, Sig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub struct Connection {
    pub(super) app: Arc<App>,
    pub(super) peer: SocketAddr,
    pub(super) shared: Arc<Shared>,
    /// Held until authentication succeeds: counts against the pre-auth caps.
    pub(super) preauth: Option<Slot>,
    /// Set once a first factor verified; bound to its username.
    pub(super) first_factor: Option<FirstFactor>,
    cut: CancellationToken,
    /// For ProxyJump connections opened through this one.
    pub(super) jump_keys: Arc<super::jump::Keys>,
    /// Set when this connection runs nested in another's channel (ProxyJump).
    pub(super) jump: Option<super::jump::Outer>,
    pub(super) forwards: Arc<super::forwards::Forwards>,
    /// Per open session channel: where the handler's decisions go to the
    /// channel's bridge, which forwards only what was decided yes.
    pub(super) verdicts: HashMap<ChannelId, channel::VerdictTx>,
    /// Session channels accepted only to tell the user why they are refused.
    pub(super) refused: Arc<session_channel::Refused>,
}

impl Connection {
    pub fn new(
        app: Arc<App>,
        peer: SocketAddr,
        slot: Slot,
        jump_keys: Arc<super::jump::Keys>,
    ) -> Connection {
        let l = &app.config.limits;
        let cap = super::caps::ChannelCap::new(l.max_channels_per_connection);
        let forwards = super::forwards::Forwards::new(cap, l.max_remote_forwards_per_connection);
        Connection {
            shared: Arc::new(Shared::new(
                CancellationToken::new(),
                Shared::span_for(peer, None),
            )),
            cut: slot.cut.clone(),
            preauth: Some(slot),
            first_factor: None,
            jump_keys,
            jump: None,
            forwards: Arc::new(forwards),
            app,
            peer,
            verdicts: HashMap::new(),
            refused: Arc::default(),
        }
    }

    /// A connection inside an outer one's channel (ProxyJump), from the
    /// outer client's address.
    pub(super) fn nested(
        app: Arc<App>,
        peer: SocketAddr,
        shared: Arc<Shared>,
        jump_keys: Arc<super::jump::Keys>,
        outer: super::jump::Outer,
        cap: Arc<super::caps::ChannelCap>,
    ) -> Connection {
        let max_remote = app.config.limits.max_remote_forwards_per_connection;
        Connection {
            forwards: Arc::new(super::forwards::Forwards::new(cap, max_remote)),
            app,
            peer,
            shared,
            cut: CancellationToken::new(),
            preauth: None,
            first_factor: None,
            jump_keys,
            jump: Some(outer),
            verdicts: HashMap::new(),
            refused: Arc::default(),
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Cancelled to cut this connection's transport (eviction, grace, kill).
    pub fn cut_token(&self) -> CancellationToken {
        self.cut.clone()
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

impl Handler for Connection {
    type Error = russh::Error;

    // The authentication callbacks run their future boxed (`Box::pin`):
    // russh awaits each callback inside its session loop, whose state
    // machine is otherwise as large as the largest callback future, for
    // the whole life of the connection, idle or not (issue 20: memory per
    // idle session). Logins pay one allocation each; `data` stays inline.

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        let span = self.shared.span.clone();
        Box::pin(
            async {
                if self.jump.is_some() {
                    return Ok(self.jump_auth(user).await);
                }
                // The probe every OpenSSH client sends first: answered at once.
                self.bind_username(user);
                Ok(Auth::Reject {
                    proceed_with_methods: Some(first_factor_methods(&self.app.config)),
                    partial_success: false,
                })
            }
            .instrument(span),
        )
        .await
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let span = self.shared.span.clone();
        Box::pin(
            async {
                if self.jump.is_some() {
                    return Ok(self.jump_auth(user).await);
                }
                let start = Instant::now();
                if let Some(answer) = self.password_after_key(user) {
                    return Ok(answer);
                }
                self.bind_username(user);
                let Some(req) = self.parse(user) else {
                    return Ok(self.rejected(start).await);
                };
                if self.throttled(&req) {
                    return Ok(self.rejected(start).await);
                }
                let rec = self.lookup(&req).await;
                let stored = rec.as_ref().and_then(|r| r.password_hash.clone());
                let ok = match self.app.passwords.verify(stored, password).await {
                    Ok(ok) => ok,
                    Err(e) => {
                        tracing::warn!(source = %self.peer, error = %e, "password check shed");
                        false
                    }
                };
                Ok(match (ok, rec) {
                    (true, Some(rec)) => {
                        self.first_factor_ok(user, req, rec, "password", start)
                            .await
                    }
                    _ => self.failed(&req, "password", Stage::Before, start).await,
                })
            }
            .instrument(span),
        )
        .await
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let span = self.shared.span.clone();
        Box::pin(
            async {
                if self.jump.is_some() {
                    return Ok(Auth::Accept);
                }
                // Only tells the client whether signing is worth it; proves nothing
                // and changes no state.
                let start = Instant::now();
                let Some(req) = self.parse(user) else {
                    return Ok(self.rejected(start).await);
                };
                if self.throttled(&req) {
                    return Ok(self.rejected(start).await);
                }
                // An offer to sign with SHA-1 (`ssh-rsa`) gets no PK_OK.
                let known = super::keys::strong_signature(offer.algorithm)
                    && self.lookup(&req).await.is_some_and(|u| {
                        super::keys::matches_any(offer.public_key, &u.public_keys)
                    });
                Ok(if known {
                    Auth::Accept
                } else {
                    self.rejected(start).await
                })
            }
            .instrument(span),
        )
        .await
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let span = self.shared.span.clone();
        Box::pin(
            async {
                if self.jump.is_some() {
                    return Ok(self.jump_auth(user).await);
                }
                // russh calls this only after the signature verified.
                let start = Instant::now();
                self.bind_username(user);
                let Some(req) = self.parse(user) else {
                    return Ok(self.rejected(start).await);
                };
                if self.throttled(&req) {
                    return Ok(self.rejected(start).await);
                }
                Ok(match self.lookup(&req).await {
                    Some(rec)
                        if super::keys::strong_signature(key.algorithm)
                            && super::keys::matches_any(key.public_key, &rec.public_keys) =>
                    {
                        self.first_factor_ok(user, req, rec, "publickey", start)
                            .await
                    }
                    _ => self.failed(&req, "publickey", Stage::Before, start).await,
                })
            }
            .instrument(span),
        )
        .await
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let span = self.shared.span.clone();
        Box::pin(
            async {
                if self.jump.is_some() {
                    return Ok(self.jump_auth(user).await);
                }
                self.bind_username(user);
                Ok(self.second_factor(user, response).await)
            }
            .instrument(span),
        )
        .await
    }

    // A channel's task is spawned as `future.map(...)`, not as an `async`
    // block awaiting it: such a block holds the future twice (as a capture
    // and as the future awaited) for the channel's whole life.
    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        let Some(s) = self.shared.session() else {
            return Ok(());
        };
        let held = match self.forwards.cap.take(&self.peer.to_string()) {
            Ok(p) => p,
            Err(full) => {
                reply.reject(full).await;
                return Ok(());
            }
        };
        // Refused without dialling the target; told on the accepted channel.
        let refused = self.refused.clone();
        if let Some(text) = session_channel::refusal_before_dial(&s) {
            let refuse = session_channel::refuse(refused, channel, reply, text);
            let span = self.shared.span.clone();
            tokio::spawn(refuse.map(move |()| drop(held)).instrument(span));
            return Ok(());
        }
        let handle = session.handle();
        let (tx, rx) = channel::verdicts();
        self.verdicts.insert(channel.id(), tx);
        if let Destination::Menu(targets) = s.destination.clone() {
            reply.accept().await;
            let (src, sink) = channel::split(channel, handle, Some(rx));
            let serve = menu::serve(src, sink, s.clone(), targets);
            let span = self.shared.span.clone();
            tokio::spawn(serve.map(move |()| drop(held)).instrument(span));
        } else {
            let bridge = session_channel::bridge_channel(s, channel, reply, handle, rx, refused);
            let span = self.shared.span.clone();
            tokio::spawn(bridge.map(move |()| drop(held)).instrument(span));
        }
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        // No session (not authenticated): dropping `reply` refuses the channel.
        let Some(s) = self.shared.session() else {
            return Ok(());
        };
        if let Err(refusal) = s.lock_check() {
            return reject(reply, refusal.user).await;
        }
        let held = match self.forwards.cap.take(&self.peer.to_string()) {
            Ok(p) => p,
            Err(full) => {
                reply.reject(full).await;
                return Ok(());
            }
        };
        // An SSH target is served by a nested server (ProxyJump), never as raw bytes.
        let (host, port) = (host_to_connect, port_to_connect);
        let Some((channel, reply, held)) =
            super::jump::dispatch(self, channel, host, port, reply, held).await
        else {
            return Ok(());
        };
        let req = super::forwards::Requested {
            host: host_to_connect.to_string(),
            port: port_to_connect,
            originator: originator_address.to_string(),
            originator_port,
        };
        let fw = self.forwards.clone();
        let forward = super::forward::direct_tcpip(s, fw, channel, reply, session.handle(), req);
        let span = self.shared.span.clone();
        tokio::spawn(forward.map(move |()| drop(held)).instrument(span));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.gate(channel, SessionRequest::Pty, session).await?;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        // Not carried: the bastion neither forwards nor records X11, so the
        // request is refused whatever the grant says.
        tracing::info!(source = %self.peer, "x11 forwarding refused (not supported)");
        session.channel_failure(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        _value: &str,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.gate(channel, SessionRequest::Env(name), session)
            .await?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.gate(channel, SessionRequest::Shell, session).await?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.gate(channel, SessionRequest::Exec(data), session)
            .await?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.gate(channel, SessionRequest::Subsystem(name), session)
            .await?;
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        if self.shared.session().is_some() {
            session.channel_success(channel)?;
        }
        Ok(())
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        session: &mut SshSession,
    ) -> Result<bool, Self::Error> {
        let allowed = self
            .gate(channel, SessionRequest::AgentForward, session)
            .await?;
        tracing::debug!(?channel, allowed, "agent forwarding requested");
        if let (true, Some(s)) = (allowed, self.shared.session()) {
            let fw = self.forwards.clone();
            let on = super::remote::agent_on(s, fw, session.handle());
            tokio::spawn(on.instrument(self.shared.span.clone()));
        }
        Ok(allowed)
    }

    /// Data of a TCP forward goes straight to its destination from here
    /// (`forward::upload`); every other channel reads its own queue.
    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        if let Some(up) = self.forwards.upload(channel) {
            up.push(data).await;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        if let Some(up) = self.forwards.upload(channel) {
            up.eof();
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        if let Some(up) = self.forwards.take_upload(channel) {
            up.close();
        }
        self.verdicts.remove(&channel);
        self.refused.remove(channel);
        Ok(())
    }

    async fn signal(
        &mut self,
        _channel: ChannelId,
        _signal: Sig,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut SshSession,
    ) -> Result<bool, Self::Error> {
        let Some(s) = self.shared.session() else {
            return Ok(false);
        };
        let fw = self.forwards.clone();
        // Waits for the target's answer: OpenSSH sends this once per -R at login.
        let limit = self.app.config.upstream_connect_timeout * 2;
        let listen = super::remote::listen(s, fw, session.handle(), address, port);
        let listen = listen.instrument(self.shared.span.clone());
        Ok(tokio::time::timeout(limit, listen).await.unwrap_or(false))
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut SshSession,
    ) -> Result<bool, Self::Error> {
        let Some(s) = self.shared.session() else {
            return Ok(false);
        };
        let cancel = super::remote::cancel(s, self.forwards.clone(), address, port);
        let limit = self.app.config.upstream_connect_timeout;
        let cancel = cancel.instrument(self.shared.span.clone());
        Ok(tokio::time::timeout(limit, cancel).await.unwrap_or(false))
    }
}
