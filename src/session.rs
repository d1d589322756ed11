//! One authenticated client connection: what it may reach, its lazily dialled
//! upstream, its row in the sessions table and its entry in the registry.
//!
//! This is the data path of DESIGN.md after authentication: policy decides,
//! the session row is written durably before dialling, the vault opens the
//! credential just before upstream authentication, and the end is recorded.

use crate::app::{App, new_id, now_ms};
use crate::bridge::Counters;
use crate::names::LoginRequest;
use crate::policy::{self, Allow, Permissions};
use crate::registry::LiveSession;
use crate::store::{CredentialKind, SessionEnd, SessionStart, Subject, TargetRecord};
use crate::upstream::{Credential, Dial, Upstream, UpstreamError, UpstreamSink, UpstreamSource};
use crate::vault::{Purpose, Secret};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// What the username asked for, resolved against the store and policy.
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
    app: Arc<App>,
    upstream: OnceCell<Arc<Upstream>>,
    started: AtomicBool,
    end_reason: Mutex<Option<String>>,
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
        let destination = match destination(&app, &user, request, groups).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(user = %user, error = %e, "cannot resolve destination; refusing");
                Destination::Refused(
                    "portcullis: access cannot be decided right now; try again later".into(),
                )
            }
        };
        Session {
            id: new_id(),
            user,
            source,
            destination,
            counters: Arc::new(Counters::default()),
            cancel,
            app,
            upstream: OnceCell::new(),
            started: AtomicBool::new(false),
            end_reason: Mutex::new(None),
        }
    }

    pub fn permissions(&self) -> Permissions {
        match &self.destination {
            Destination::Target { allow, .. } => allow.permissions.clone(),
            // The menu is a local shell-like channel; nothing is forwarded.
            Destination::Menu(_) | Destination::Refused(_) => Permissions {
                port_forwarding: false,
                agent_forwarding: false,
                x11_forwarding: false,
                sftp: false,
                ..Permissions::session_default()
            },
        }
    }

    pub fn channel_budget(&self) -> usize {
        self.app.config.limits.channel_buffer_bytes
    }

    /// Opens a channel on the target, dialling it on first use.
    pub async fn open_channel(&self) -> Result<(UpstreamSource, UpstreamSink), Refusal> {
        let Destination::Target { target, allow } = &self.destination else {
            return Err(Refusal::new("no target selected", "channel without target"));
        };
        let up = self
            .upstream
            .get_or_try_init(|| async { self.dial(target, allow).await.map(Arc::new) })
            .await?;
        up.open_session().await.map_err(|e| {
            Refusal::new(
                format!("the target {} refused a new channel", target.name),
                e.to_string(),
            )
        })
    }

    async fn dial(&self, target: &TargetRecord, allow: &Allow) -> Result<Upstream, Refusal> {
        self.record_start(target, allow).await?;
        let credential = self.credential(target, &allow.login).await?;
        let dial = Dial {
            target: target.name.clone(),
            host: target.host.clone(),
            port: target.port,
            host_key: target.host_key.clone(),
            timeout: self.app.config.upstream_connect_timeout,
        };
        Upstream::connect(&dial, &allow.login, credential)
            .await
            .map_err(|e| refusal_for(&target.name, &allow.login, e))
    }

    /// The session row is durable before any byte goes to the target.
    async fn record_start(&self, target: &TargetRecord, allow: &Allow) -> Result<(), Refusal> {
        if self.started.load(Ordering::SeqCst) {
            return Ok(());
        }
        let start = SessionStart {
            id: self.id.clone(),
            user: self.user.clone(),
            source: self.source.to_string(),
            target: target.name.clone(),
            login: allow.login.clone(),
            started_ms: now_ms(),
        };
        self.app.store.session_started(&start).await.map_err(|e| {
            Refusal::new(
                "the session cannot be recorded, so it is refused",
                format!("session start not written: {e}"),
            )
        })?;
        self.started.store(true, Ordering::SeqCst);
        self.app.registry.insert(LiveSession {
            id: self.id.clone(),
            user: self.user.clone(),
            target: target.name.clone(),
            login: allow.login.clone(),
            source: self.source.to_string(),
            started_ms: start.started_ms,
            cancel: self.cancel.clone(),
        });
        tracing::info!(session = %self.id, user = %self.user, target = %target.name, login = %allow.login,
            grant = %allow.grant_id, via = %allow.via, source = %self.source, "session started");
        Ok(())
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
        let purpose = match rec.kind {
            CredentialKind::Password => Purpose::UpstreamPassword,
            CredentialKind::PrivateKey => Purpose::UpstreamPrivateKey,
        };
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
        if let Ok(mut r) = self.end_reason.lock()
            && r.is_none()
        {
            *r = Some(reason.to_string());
        }
    }

    /// Called once when the client connection is gone.
    pub async fn finish(&self) {
        self.cancel.cancel();
        if let Some(up) = self.upstream.get() {
            up.disconnect("client disconnected").await;
        }
        if !self.started.load(Ordering::SeqCst) {
            return;
        }
        self.app.registry.remove(&self.id);
        let reason = self
            .end_reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
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
        tracing::info!(session = %self.id, reason = %reason, bytes_up = end.bytes_up, bytes_down = end.bytes_down, "session ended");
    }
}

/// The row name a credential's envelope is bound to.
pub fn credential_row(target: &str, login: &str) -> String {
    format!("credential:{target}:{login}")
}

async fn destination(
    app: &App,
    user: &str,
    request: &LoginRequest,
    groups: Vec<String>,
) -> Result<Destination, crate::store::StoreError> {
    let grants: Vec<policy::Grant> = app
        .store
        .grants_for(user, &groups)
        .await?
        .into_iter()
        .map(|g| policy::Grant {
            via: match &g.subject {
                Subject::User(u) => format!("user {u}"),
                Subject::Group(n) => format!("group {n}"),
            },
            id: g.id,
            target: g.target,
            logins: g.logins,
        })
        .collect();
    let Some(req) = &request.target else {
        return Ok(Destination::Menu(policy::reachable_targets(&grants)));
    };
    let Some(target) = app.store.target(req.target.as_str()).await? else {
        return Ok(Destination::Refused(format!(
            "portcullis: there is no target named {}",
            req.target
        )));
    };
    Ok(
        match policy::decide(
            &grants,
            &target.name,
            req.login.as_ref().map(|l| l.as_str()),
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
