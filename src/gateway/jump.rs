//! ProxyJump terminated at the bastion: `ssh -J alice@bastion root@web01`.
//!
//! The client opens a direct-tcpip channel to `web01:22` on its authenticated
//! connection and speaks SSH inside it. When that destination names an SSH
//! target, no byte is passed through: a nested russh server runs on the
//! channel's byte stream, presents a host certificate for the target signed
//! by the bastion's host CA, accepts the inner login on the strength of the
//! outer one, and from there is an ordinary `Connection` whose session is
//! resolved, dialled, recorded and enforced exactly like `alice+root+web01`.

use super::handler::{Connection, Shared};
use super::hostca::{self, HostCa};
use crate::audit::{self, AuditEvent};
use crate::names::{LoginRequest, Name, TargetRequest, escape_for_log};
use crate::session::Session;
use crate::store::{StoreError, TargetRecord};
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

/// What a direct-tcpip destination names.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Not an SSH target: the ordinary forwarding rules apply.
    NotSsh,
    Target(TargetRecord),
    /// An address several SSH targets share; the message says what to do.
    Ambiguous(String),
}

/// A target by name (on port 22 or its own port), else by its configured
/// host and port. An exact-case name beats a case-folded one.
pub fn pick(candidates: Vec<TargetRecord>, host: &str, port: u32) -> Lookup {
    let by_name = |exact: bool| {
        candidates.iter().find(|t| {
            let same = if exact {
                t.name == host
            } else {
                t.name.eq_ignore_ascii_case(host)
            };
            same && (port == 22 || port == u32::from(t.port))
        })
    };
    if let Some(t) = by_name(true).or_else(|| by_name(false)) {
        return Lookup::Target(t.clone());
    }
    let at: Vec<&TargetRecord> = candidates
        .iter()
        .filter(|t| t.host.eq_ignore_ascii_case(host) && port == u32::from(t.port))
        .collect();
    match at.as_slice() {
        [] => Lookup::NotSsh,
        [t] => Lookup::Target((*t).clone()),
        many => Lookup::Ambiguous(format!(
            "portcullis: {}:{port} is the address of several targets ({}); jump to one by name",
            escape_for_log(host),
            many.iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The SSH target `host:port` names among those `user` holds a grant on.
/// Targets without a grant are not candidates at all, so a destination
/// the user may not reach is "not a target" exactly like one that does not
/// exist: the same refusal text, no nested handshake, no certificate.
pub async fn find(
    app: &crate::app::App,
    user: &str,
    host: &str,
    port: u32,
) -> Result<(Lookup, Vec<crate::policy::Grant>), StoreError> {
    // Names and hosts are short; anything longer names no target.
    if host.is_empty() || host.len() > 255 {
        return Ok((Lookup::NotSsh, Vec::new()));
    }
    let groups = app.store.groups_of(user).await?;
    let grants = crate::grants::access::grants_for(&app.store, user, &groups).await?;
    let granted: Vec<TargetRecord> = app
        .store
        .targets_named_or_at(host)
        .await?
        .into_iter()
        .filter(|t| {
            grants
                .iter()
                .any(|g| g.target == t.name && !g.logins.is_empty())
        })
        .collect();
    Ok((pick(granted, host, port), grants))
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
    let refusal = match find(&conn.app, &outer.user, host, port).await {
        Ok((Lookup::NotSsh, _)) => return Some((channel, reply, held)),
        Ok((Lookup::Target(target), grants)) => {
            // Decided before the channel is accepted: a grant outside its
            // window is refused here, by a user who knows the target. The
            // login is known only inside; that is decided there.
            let now = crate::grants::access::now();
            match crate::policy::decide(&grants, &target.name, None, now, now) {
                Ok(_) => {
                    let asked = host.to_string();
                    let keys = conn.jump_keys.clone();
                    let cap = conn.forwards.cap.clone();
                    let serve = serve(channel, reply, outer, target, asked, keys, cap);
                    // Tracked: a graceful stop waits for its session's end row.
                    let tasks = conn.app.tasks.clone();
                    let span = conn.shared.span.clone();
                    tasks.spawn(async move { (serve.await, drop(held)) }.instrument(span));
                    return None;
                }
                Err(deny) => format!("portcullis: {deny}"),
            }
        }
        Ok((Lookup::Ambiguous(msg), _)) => msg,
        Err(e) => {
            // Fail closed: an SSH target must never be reached as raw bytes.
            tracing::error!(error = %e, "cannot look up a jump destination; refusing");
            "portcullis: the destination cannot be checked right now; try again later".into()
        }
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
    expire_with_certificate(&shared, validity);
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

/// OpenSSH checks the host certificate again at every re-key (russh
/// re-keys hourly), so a nested connection ends, with a message, shortly
/// before its certificate expires instead of failing a re-key.
fn expire_with_certificate(shared: &Shared, validity: std::time::Duration) {
    let kill = shared.kill.clone();
    let done = shared.cancel.clone();
    let life = validity.saturating_sub(std::time::Duration::from_secs(60));
    tokio::spawn(async move {
        tokio::select! {
            () = done.cancelled() => {}
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
        let Some(req) = self.jump_request(outer, username) else {
            return refuse;
        };
        let groups = match self.app.store.user(&outer.user).await {
            Ok(Some(rec)) => rec.groups,
            Ok(None) => {
                tracing::warn!(user = %outer.user, "jump: user no longer exists; refused");
                return refuse;
            }
            Err(e) => {
                tracing::error!(error = %e, "jump: user lookup failed; refused");
                return refuse;
            }
        };
        let event = AuditEvent::JumpOpened {
            user: outer.user.clone(),
            source: self.peer.to_string(),
            target: outer.target.name.clone(),
            login_sent: username.to_string(),
            via_session: outer.via_session.clone(),
        };
        if let Err(e) = audit::record(&self.app.store, event).await {
            tracing::error!(error = %e, "audit write failed; jump refused");
            return refuse;
        }
        let mut session = Session::resolve(
            self.app.clone(),
            &req,
            groups,
            self.peer,
            self.shared.cancel.clone(),
        )
        .await;
        // Locks hold for the nested session as for a direct one: the user
        // gets in only to read why, and the kill switch finds it by target.
        self.shared.named(&session);
        session.kill = self.shared.kill.clone();
        if let Err(refusal) = session.lock_check() {
            session.destination = crate::session::Destination::Refused(refusal.user);
        }
        // Its row from login on, so it can be listed and ended by its id.
        session.open_row().await;
        session.register();
        tracing::info!(source = %self.peer, user = %outer.user, request = %req, via = %outer.via_session,
            "jump: nested login accepted");
        let session = Arc::new(session);
        // From login, not from the first channel: a connection that opens
        // channels later (a ControlMaster) must meet the grant of that time.
        session.enforce();
        let _ = self.shared.session.set(session);
        Auth::Accept
    }

    fn jump_request(&self, outer: &Outer, username: &str) -> Option<LoginRequest> {
        let login = if username == outer.user {
            None
        } else {
            match Name::parse(username) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::info!(source = %self.peer, username = %escape_for_log(username), reason = %e,
                        "jump: malformed login refused");
                    return None;
                }
            }
        };
        let parsed =
            Name::parse(&outer.user).and_then(|u| Ok((u, Name::parse(&outer.target.name)?)));
        let (user, target) = match parsed {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(user = %outer.user, target = %outer.target.name, reason = %e, "jump: stored name unusable");
                return None;
            }
        };
        Some(LoginRequest {
            user,
            target: Some(TargetRequest { target, login }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, host: &str, port: u16) -> TargetRecord {
        TargetRecord {
            name: name.into(),
            host: host.into(),
            port,
            host_key: String::new(),
        }
    }

    #[tokio::test]
    async fn a_nested_connection_is_ended_before_its_certificate_expires() {
        use std::time::Duration;
        let shared = Shared::new(tokio_util::sync::CancellationToken::new(), Span::none());
        // 50 ms of life: a certificate valid for a minute and 50 ms.
        expire_with_certificate(&shared, Duration::from_millis(60_050));
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
        expire_with_certificate(&gone, Duration::from_millis(60_050));
        gone.cancel.cancel();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!gone.kill.is_killed());
    }

    #[test]
    fn names_and_addresses_select_targets() {
        let all = || {
            vec![
                t("web01", "10.0.0.5", 2222),
                t("WEB01", "10.0.0.6", 22),
                t("db", "10.0.0.7", 22),
                t("db2", "10.0.0.7", 22),
            ]
        };
        let name = |l: Lookup| match l {
            Lookup::Target(t) => t.name,
            other => panic!("{other:?}"),
        };
        // By name: port 22 (what `ssh -J` sends) or the target's own port.
        assert_eq!(name(pick(all(), "web01", 22)), "web01");
        assert_eq!(name(pick(all(), "web01", 2222)), "web01");
        assert_eq!(name(pick(all(), "WEB01", 22)), "WEB01");
        assert_eq!(name(pick(vec![t("Web9", "h", 22)], "web9", 22)), "Web9");
        // A name on another port is not that target's SSH service.
        assert_eq!(pick(all(), "web01", 80), Lookup::NotSsh);
        // By configured address and port.
        assert_eq!(name(pick(all(), "10.0.0.5", 2222)), "web01");
        assert_eq!(pick(all(), "10.0.0.5", 22), Lookup::NotSsh);
        assert!(matches!(
            pick(all(), "10.0.0.7", 22),
            Lookup::Ambiguous(m) if m.contains("db, db2")
        ));
        assert_eq!(pick(all(), "intranet", 443), Lookup::NotSsh);
    }
}
