//! One authenticated client connection: what it may reach, its lazily dialled
//! upstream, its row in the sessions table and its entry in the registry.
//!
//! This is the data path of DESIGN.md after authentication: policy decides,
//! the session row is written durably before dialling, the vault opens the
//! credential just before upstream authentication, and the end is recorded.

use crate::app::App;
use crate::bridge::Counters;
use crate::clock::now_ms;
use crate::grants::access;
use crate::ids::new_id;
use crate::names::LoginRequest;
use crate::policy::{self, Allow, Permissions};
use crate::registry::{KillNote, LiveSession};
use crate::store::{CredentialKind, SessionEnd, TargetRecord};
use crate::sync::MutexExt;
use crate::upstream::{Credential, Dial, Upstream, UpstreamError, UpstreamSink, UpstreamSource};
use crate::vault::{Purpose, Secret};
use bytes::Bytes;
use jiff::Timestamp;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

mod enforce;
pub mod jump;
mod lease;
pub mod live;
mod row;
pub mod watch;

pub use enforce::StoreGrants;
pub use lease::Lease;

/// What the username asked for, resolved against the store and policy.
// One per connection, built once at login.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Destination {
    /// Plain `USER`: show the targets the user may reach.
    Menu(Vec<(String, Vec<String>)>),
    /// A target the user may not reach; the message is safe to show.
    Refused(String),
    Target {
        target: TargetRecord,
        allow: Allow,
    },
}

pub struct Session {
    pub id: String,
    pub user: String,
    pub source: SocketAddr,
    pub destination: Destination,
    pub counters: Arc<Counters>,
    pub cancel: CancellationToken,
    /// When the user logged in; the maximum session length counts from here.
    pub started: Timestamp,
    /// Notices for the user's terminals (deadline warnings); every bridge listens.
    pub notices: broadcast::Sender<Bytes>,
    /// Set by the kill switch: why this session was ended, and when.
    pub kill: Arc<KillNote>,
    enforcing: AtomicBool,
    channels: std::sync::atomic::AtomicU32,
    app: Arc<App>,
    upstream: OnceCell<Arc<Upstream>>,
    /// `session.started` is audited (the first dial): the end is too.
    recorded: AtomicBool,
    /// The sessions row exists (from login, `row.rs`): its end is written.
    row: AtomicBool,
    end_reason: Mutex<Option<String>>,
    /// The registry entry, from `register` to `finish`.
    lease: Mutex<Option<Lease>>,
    /// What the grant allows now: the login-time decision, replaced by each
    /// re-check (`enforce`), so a narrowed grant holds for every new channel
    /// and request of a live connection, ControlMaster included.
    current: Mutex<Permissions>,
}

/// A refusal: `user` is shown to the client, `log` goes to the bastion's log.
#[derive(Debug)]
pub struct Refusal {
    pub user: String,
    pub log: String,
}

impl Refusal {
    fn new(user: impl Into<String>, log: impl Into<String>) -> Refusal {
        Refusal {
            user: format!("portcullis: {}", user.into()),
            log: log.into(),
        }
    }
}

impl Session {
    /// Resolves the requested destination. Store errors refuse (fail closed).
    pub async fn resolve(
        app: Arc<App>,
        request: &LoginRequest,
        groups: Vec<String>,
        source: SocketAddr,
        cancel: CancellationToken,
    ) -> Session {
        let user = request.user.as_str().to_string();
        let started = access::now();
        let destination = match destination(&app, &user, request, groups, started).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(user = %user, error = %e, "cannot resolve destination; refusing");
                Destination::Refused(
                    "portcullis: access cannot be decided right now; try again later".into(),
                )
            }
        };
        let current = Mutex::new(login_permissions(&destination));
        Session {
            id: new_id(),
            user,
            source,
            destination,
            counters: Arc::new(Counters::default()),
            cancel,
            started,
            notices: broadcast::channel(16).0,
            kill: Arc::default(),
            enforcing: AtomicBool::new(false),
            channels: std::sync::atomic::AtomicU32::new(0),
            app,
            upstream: OnceCell::new(),
            recorded: AtomicBool::new(false),
            row: AtomicBool::new(false),
            end_reason: Mutex::new(None),
            lease: Mutex::new(None),
            current,
        }
    }

    /// What the session may do now (see `current`).
    pub fn permissions(&self) -> Permissions {
        self.current.lock_or_recover().clone()
    }

    /// Takes a re-check's permissions for every later channel and request.
    pub fn set_permissions(&self, now: Permissions) {
        let mut p = self.current.lock_or_recover();
        if *p != now {
            tracing::info!(session = %self.id, from = %p.names(), to = %now.names(), "grant changed; new permissions apply");
            *p = now;
        }
    }

    /// Numbers this session's channels for their recordings.
    pub fn next_channel(&self) -> u32 {
        self.channels.fetch_add(1, Ordering::SeqCst)
    }

    /// Target name and login, once a target was chosen.
    pub fn target_and_login(&self) -> Option<(String, String)> {
        match &self.destination {
            Destination::Target { target, allow } => {
                Some((target.name.clone(), allow.login.clone()))
            }
            _ => None,
        }
    }

    pub fn end_reason(&self) -> Option<String> {
        self.end_reason.lock_or_recover().clone()
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    pub fn channel_budget(&self) -> usize {
        self.app.config.limits.channel_buffer_bytes
    }

    /// The target's connection, dialled on first use.
    pub async fn upstream(&self) -> Result<Arc<Upstream>, Refusal> {
        let Destination::Target { target, allow } = &self.destination else {
            return Err(Refusal::new("no target selected", "channel without target"));
        };
        self.upstream
            .get_or_try_init(|| async { self.dial(target, allow).await.map(Arc::new) })
            .await
            .cloned()
    }

    /// Opens a channel on the target, dialling it on first use.
    pub async fn open_channel(&self) -> Result<(UpstreamSource, UpstreamSink), Refusal> {
        let up = self.upstream().await?;
        let Destination::Target { target, .. } = &self.destination else {
            return Err(Refusal::new("no target selected", "channel without target"));
        };
        up.open_session().await.map_err(|e| {
            Refusal::new(
                format!("the target {} refused a new channel", target.name),
                e.to_string(),
            )
        })
    }

    async fn dial(&self, target: &TargetRecord, allow: &Allow) -> Result<Upstream, Refusal> {
        self.lock_check()?;
        self.record_start(target, allow).await?;
        let credential = self.credential(target, &allow.login).await?;
        let dial = Dial {
            target: target.name.clone(),
            host: target.host.clone(),
            port: target.port,
            host_key: target.host_key.clone(),
            timeout: self.app.config.upstream_connect_timeout,
        };
        let up = Upstream::connect(&dial, &allow.login, credential).await;
        if let Err(UpstreamError::HostKeyMismatch { expected, seen, .. }) = &up {
            self.audit(crate::audit::AuditEvent::HostKeyMismatch {
                session: self.id.clone(),
                user: self.user.clone(),
                target: target.name.clone(),
                expected: expected.clone(),
                seen: seen.clone(),
            })
            .await;
            let (app, seen) = (self.app.clone(), self.seen());
            tokio::spawn(
                async move { crate::lockdown::rules::on_host_key_mismatch(&app, &seen).await },
            );
        }
        up.map_err(|e| refusal_for(&target.name, &allow.login, e))
    }

    async fn audit_end(&self, target: &str, reason: &str, up: u64, down: u64) {
        self.audit(crate::audit::AuditEvent::SessionEnded {
            session: self.id.clone(),
            user: self.user.clone(),
            target: target.to_string(),
            reason: reason.to_string(),
            bytes_up: up,
            bytes_down: down,
        })
        .await;
    }

    /// Best effort, for events after the fact (the outcome is decided already).
    async fn audit(&self, event: crate::audit::AuditEvent) {
        if let Err(e) = crate::audit::record_or_defer(&self.app.store, event).await {
            tracing::error!(session = %self.id, error = %e, "audit event not written");
        }
    }

    async fn credential(&self, target: &TargetRecord, login: &str) -> Result<Credential, Refusal> {
        let missing = || {
            Refusal::new(
                format!(
                    "no credential is stored for login {login} on {}; ask an administrator",
                    target.name
                ),
                format!("no credential for {login}@{}", target.name),
            )
        };
        let rec = self
            .app
            .store
            .credential(&target.name, login)
            .await
            .map_err(|e| Refusal::new("the credential store is unavailable", e.to_string()))?
            .ok_or_else(missing)?;
        let row = credential_row(&target.name, login);
        let purpose = credential_purpose(rec.kind);
        let plain = self
            .app
            .vault
            .open(purpose, &row, &rec.sealed)
            .map_err(|e| {
                Refusal::new(
                    format!(
                        "the credential for {login} on {} cannot be used; ask an administrator",
                        target.name
                    ),
                    format!("vault: {e}"),
                )
            })?;
        let text = String::from_utf8(plain.expose().clone()).map_err(|_| {
            Refusal::new(
                "the stored credential is damaged",
                "credential is not UTF-8",
            )
        })?;
        Ok(match rec.kind {
            CredentialKind::Password => Credential::Password(Secret::new(text)),
            CredentialKind::PrivateKey => Credential::PrivateKey(Secret::new(text)),
        })
    }

    pub fn set_end_reason(&self, reason: &str) {
        let mut r = self.end_reason.lock_or_recover();
        if r.is_none() {
            *r = Some(reason.to_string());
        }
    }

    /// Enters the session in the registry, where the kill switch finds it;
    /// `finish` takes it out.
    pub fn register(&self) {
        let (target, login) = self.target_and_login().unwrap_or_default();
        let lease = Lease::open(
            &self.app,
            LiveSession {
                id: self.id.clone(),
                user: self.user.clone(),
                target,
                login,
                source: self.source.to_string(),
                source_ip: self.source.ip(),
                started_ms: self.started.as_millisecond(),
                cancel: self.cancel.clone(),
                kill: self.kill.clone(),
                notices: Some(self.notices.clone()),
                bytes: self.counters.clone(),
                kind: match self.destination {
                    Destination::Target { .. } => "target",
                    _ => "connection",
                },
            },
        );
        *self.lease.lock_or_recover() = Some(lease);
    }

    /// This session as the lockdown rules see it.
    pub fn seen(&self) -> crate::lockdown::Seen {
        crate::lockdown::Seen {
            session: Some(self.id.clone()),
            user: Some(self.user.clone()),
            target: self.target_and_login().map(|t| t.0),
            source: Some(self.source.ip()),
        }
    }

    /// How a relay of this session stops: `end` ends it; the kill switch
    /// halts it at the instant of the kill (see [`crate::bridge::Stop`]).
    pub fn relay_stop(&self, end: CancellationToken) -> crate::bridge::Stop {
        crate::bridge::Stop {
            end,
            halt: self.kill.halt(),
        }
    }

    /// Refuses if a lock covers this session now (checked at login, before
    /// dialling and on every new channel).
    pub fn lock_check(&self) -> Result<(), Refusal> {
        let (target, _) = self.target_and_login().unwrap_or_default();
        let subject = policy::Subject {
            user: Some(&self.user),
            target: (!target.is_empty()).then_some(target.as_str()),
            source: self.source.ip(),
            session: Some(&self.id),
        };
        crate::lockdown::check(&self.app, &subject).map_err(|text| Refusal {
            log: format!("locked: {text}"),
            user: text,
        })
    }

    /// Called once when the client connection is gone.
    pub async fn finish(&self) {
        self.cancel.cancel();
        drop(self.lease.lock_or_recover().take());
        if let Some(why) = self.kill.reason() {
            self.set_end_reason(&format!("killed: {why}"));
        }
        if let Some(up) = self.upstream.get() {
            up.disconnect("client disconnected").await;
        }
        self.app
            .metrics
            .bytes_up
            .add(self.counters.up.load(Ordering::Relaxed));
        self.app
            .metrics
            .bytes_down
            .add(self.counters.down.load(Ordering::Relaxed));
        if !self.row.load(Ordering::SeqCst) {
            return;
        }
        let reason = self
            .end_reason
            .lock_or_recover()
            .clone()
            .unwrap_or_else(|| "client disconnected".into());
        let end = SessionEnd {
            ended_ms: now_ms(),
            reason: reason.clone(),
            bytes_up: self.counters.up.load(Ordering::Relaxed),
            bytes_down: self.counters.down.load(Ordering::Relaxed),
        };
        if let Err(e) = self.app.store.session_ended(&self.id, &end).await {
            tracing::error!(session = %self.id, error = %e, "session end not written");
        }
        // A row without a start (a plain connection, a session that never
        // dialled) is bookkeeping: its login is what the audit trail holds.
        if let Some((target, _)) = self.target_and_login()
            && self.recorded.load(Ordering::SeqCst)
        {
            self.audit_end(&target, &reason, end.bytes_up, end.bytes_down)
                .await;
        }
        tracing::info!(session = %self.id, reason = %reason, bytes_up = end.bytes_up, bytes_down = end.bytes_down, "session ended");
    }
}

/// What a destination allows at login.
fn login_permissions(destination: &Destination) -> Permissions {
    match destination {
        Destination::Target { allow, .. } => allow.permissions.clone(),
        // The menu is a local shell-like channel; nothing is forwarded.
        Destination::Menu(_) | Destination::Refused(_) => Permissions {
            pty: true,
            shell: true,
            exec: true,
            ..Permissions::none()
        },
    }
}

/// The row name a credential's envelope is bound to.
pub fn credential_row(target: &str, login: &str) -> String {
    format!("credential:{target}:{login}")
}

/// The purpose a credential's envelope is bound to.
pub fn credential_purpose(kind: CredentialKind) -> Purpose {
    match kind {
        CredentialKind::Password => Purpose::UpstreamPassword,
        CredentialKind::PrivateKey => Purpose::UpstreamPrivateKey,
    }
}

async fn destination(
    app: &App,
    user: &str,
    request: &LoginRequest,
    groups: Vec<String>,
    now: Timestamp,
) -> Result<Destination, crate::store::StoreError> {
    let grants = access::grants_for(&app.store, user, &groups).await?;
    let Some(req) = &request.target else {
        return Ok(Destination::Menu(policy::reachable_targets(&grants)));
    };
    // A target the user holds no grant on is refused exactly like one that
    // does not exist, so the refusal is no directory of target names.
    let no_grant = || {
        Destination::Refused(format!(
            "portcullis: {}",
            policy::Deny::NoGrant {
                target: req.target.as_str().to_string()
            }
        ))
    };
    let Some(target) = app.store.target(req.target.as_str()).await? else {
        return Ok(no_grant());
    };
    if !grants.iter().any(|g| g.target == target.name) {
        return Ok(no_grant());
    }
    if app.store.target_kind(&target.name).await? == Some(crate::store::TargetKind::Tcp) {
        return Ok(Destination::Refused(format!(
            "portcullis: {} is a TCP target; reach it with ssh -L, -W or -D through the bastion",
            target.name
        )));
    }
    Ok(
        match policy::decide(
            &grants,
            &target.name,
            req.login.as_ref().map(|l| l.as_str()),
            now,
            now,
        ) {
            Ok(allow) => Destination::Target { target, allow },
            Err(deny) => Destination::Refused(format!("portcullis: {deny}")),
        },
    )
}

fn refusal_for(target: &str, login: &str, e: UpstreamError) -> Refusal {
    let log = e.to_string();
    let user = match e {
        UpstreamError::Unreachable { .. } | UpstreamError::Timeout(_) => {
            format!("target {target} is unreachable")
        }
        UpstreamError::HostKeyMismatch { .. } => format!(
            "the host key of {target} does not match the pinned key; the session was refused and the mismatch logged"
        ),
        UpstreamError::AuthRejected { .. } => {
            format!(
                "the bastion could not log in to {target} as {login} (credential rejected); ask an administrator"
            )
        }
        UpstreamError::BadCredential(_) | UpstreamError::BadPin(_) => {
            format!("the bastion's configuration for {target} is invalid; ask an administrator")
        }
        UpstreamError::Protocol(_) => format!("the connection to {target} failed"),
    };
    Refusal::new(user, log)
}

#[cfg(test)]
pub(crate) mod tests;
