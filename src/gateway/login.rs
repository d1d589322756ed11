//! The authentication flow: first factor (public key or password), then a
//! TOTP code over keyboard-interactive, all bound to one username.
//!
//! russh's own rejection delay is off (it would also delay a partial
//! success); rejections here are padded to `REJECT_DELAY` from the start of
//! the attempt instead, and a partial success answers at once.

use super::handler::Connection;
use crate::audit::{self, AuditEvent};
use crate::auth::budget::Budget;
use crate::auth::login::{self as shared, Code};
use crate::auth::totp;
use crate::lockdown::rules::Stage;
use crate::names::{LoginRequest, escape_for_log, parse_login};
use crate::session::{Destination, Session};
use crate::store::UserRecord;
use bytes::Bytes;
use russh::server::{Auth, Response};
use russh::{MethodKind, MethodSet};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const REJECT_DELAY: Duration = Duration::from_millis(500);

/// Public key and password; keyboard-interactive too when an `[[sso.ssh]]`
/// rule makes SSO someone's only interactive factor (`gateway::sso`).
pub fn first_factor_methods(config: &crate::config::Config) -> MethodSet {
    let only = config
        .sso
        .ssh
        .iter()
        .any(|r| r.mode == crate::config::SshMode::Only);
    if only {
        MethodSet::from(
            &[
                MethodKind::PublicKey,
                MethodKind::Password,
                MethodKind::KeyboardInteractive,
            ][..],
        )
    } else {
        MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..])
    }
}

fn second_factor_methods() -> MethodSet {
    MethodSet::from(&[MethodKind::KeyboardInteractive][..])
}

/// A first factor that succeeded on this connection, for this username.
pub struct FirstFactor {
    pub username: String,
    pub request: LoginRequest,
    pub record: UserRecord,
    pub method: &'static str,
    /// Set when a code was refused unchecked (budget spent): the next
    /// prompt says how long until codes are checked again.
    pub budget_wait: Option<Duration>,
    /// Set when the last code was right but already used (the enrollment's
    /// confirmation code, a replay): the next prompt says to wait for the
    /// next one. Only ever said past the first factor.
    pub code_used: bool,
    /// Set when an `[[sso.ssh]]` rule makes SSO this user's second factor.
    pub sso: Option<super::sso::SsoFactor>,
}

/// The code prompt after a right but already used code.
const USED_PROMPT: &str = "This code was already used; wait for the next one.\nVerification code: ";

impl Connection {
    /// A first factor is verified already (a key): a password now is a
    /// client (paramiko, Ansible's paramiko plugin) sending the code as a
    /// password. It is neither checked nor counted; the answer names the
    /// second factor only, and the client asks for the code through it.
    pub(super) fn password_after_key(&self, user: &str) -> Option<Auth> {
        let f = self.first_factor.as_ref()?;
        (f.username == user).then(|| Auth::Reject {
            proceed_with_methods: Some(second_factor_methods()),
            partial_success: false,
        })
    }

    /// A change of username mid-authentication starts over.
    pub(super) fn bind_username(&mut self, user: &str) {
        if self
            .first_factor
            .as_ref()
            .is_some_and(|f| f.username != user)
        {
            tracing::info!(source = %self.peer, "username changed during authentication; starting over");
            self.first_factor = None;
            if let Some(slot) = &self.preauth {
                slot.first_factor(None);
            }
        }
    }

    /// Parses the username; malformed ones are refused before any lookup.
    pub(super) fn parse(&self, user: &str) -> Option<LoginRequest> {
        match parse_login(user) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::info!(source = %self.peer, username = %escape_for_log(user), reason = %e, "malformed username refused");
                None
            }
        }
    }

    pub(super) async fn lookup(&self, req: &LoginRequest) -> Option<UserRecord> {
        match self.app.store.user(req.user.as_str()).await {
            Ok(u) => u,
            Err(e) => {
                // Fail closed: no store, no login. An unreachable database
                // is an outage from now on: the connection is told why.
                if crate::store::unreachable(&e) {
                    self.app.db.failed(&e.to_string(), crate::clock::now_ms());
                }
                tracing::error!(error = %e, "user lookup failed; refusing login");
                None
            }
        }
    }

    /// Checked before any hashing or lookup.
    pub(super) fn throttled(&self, req: &LoginRequest) -> bool {
        shared::throttled(&self.app.throttle, req.user.as_str(), self.peer.ip())
    }

    pub(super) async fn rejected(&self, start: Instant) -> Auth {
        tokio::time::sleep_until((start + REJECT_DELAY).into()).await;
        Auth::Reject {
            proceed_with_methods: Some(first_factor_methods(&self.app.config)),
            partial_success: false,
        }
    }

    pub(super) async fn failed(
        &mut self,
        req: &LoginRequest,
        factor: &'static str,
        stage: Stage,
        start: Instant,
    ) -> Auth {
        tracing::info!(source = %self.peer, username = %req, factor, "login failed");
        self.note_failure(req, factor, stage);
        self.rejected(start).await
    }

    /// Feeds a failed factor to the throttle, the metrics and the lockdown
    /// rules (in their own task: a rule's lock must not delay the answer).
    /// `stage` tells the rules whether the failure needed a verified first
    /// factor: only those may lock a user, since anyone can send a wrong
    /// password for any username. The web console does the same.
    pub(super) fn note_failure(&self, req: &LoginRequest, factor: &'static str, stage: Stage) {
        let (user, ip) = (req.user.as_str().to_string(), self.peer.ip());
        shared::failed(&self.app.throttle, &self.app.metrics, &user, ip, factor);
        if !self.app.config.lockdown.rules.is_empty() {
            let app = self.app.clone();
            tokio::spawn(async move {
                crate::lockdown::rules::on_failure(&app, &user, ip, stage).await
            });
        }
    }

    /// After a verified first factor: done for exempt service accounts (public
    /// key only), otherwise ask for the code. No TOTP enrolled means no login.
    pub(super) async fn first_factor_ok(
        &mut self,
        user: &str,
        req: LoginRequest,
        rec: UserRecord,
        method: &'static str,
        start: Instant,
    ) -> Auth {
        if rec.mfa_exempt {
            if method == "publickey" {
                return self
                    .accept(req, rec, "publickey (service account, MFA exempt)")
                    .await;
            }
            return self
                .failed(&req, "password-on-service-account", Stage::After, start)
                .await;
        }
        let sso = super::sso::second_factor_provider(&self.app, &rec);
        let totp = match &sso {
            // SSO replaces the code: no TOTP needed.
            Some(_) => Ok(Some(())),
            None => self
                .app
                .store
                .totp(req.user.as_str())
                .await
                .map(|t| t.map(|_| ())),
        };
        match totp {
            Ok(Some(())) => {
                let rec_name = rec.name.clone();
                self.first_factor = Some(FirstFactor {
                    username: user.to_string(),
                    request: req,
                    record: rec,
                    method,
                    budget_wait: None,
                    code_used: false,
                    sso: sso.map(super::sso::SsoFactor::new),
                });
                // A pre-auth flood now cuts others before this connection.
                if let Some(slot) = &self.preauth
                    && !slot.first_factor(Some(&rec_name))
                {
                    tracing::info!(source = %self.peer, user = %rec_name, "many connections of this user at the code prompt; this one stays cuttable");
                }
                Auth::Reject {
                    proceed_with_methods: Some(second_factor_methods()),
                    partial_success: true,
                }
            }
            Ok(None) => {
                tracing::warn!(source = %self.peer, user = %req.user, "no second factor enrolled; login refused");
                self.failed(&req, "mfa-not-enrolled", Stage::After, start)
                    .await
            }
            Err(e) => {
                tracing::error!(error = %e, "TOTP lookup failed; refusing login");
                self.rejected(start).await
            }
        }
    }

    pub(super) async fn second_factor(
        &mut self,
        user: &str,
        response: Option<Response<'_>>,
    ) -> Auth {
        let start = Instant::now();
        let bound = self
            .first_factor
            .as_ref()
            .is_some_and(|f| f.username == user);
        if !bound {
            // Keyboard-interactive is a first factor only for SSO-only users.
            return match self.sso_only(user).await {
                Some(ff) => self.sso_factor(ff, response).await,
                None => self.rejected(start).await,
            };
        }
        if self.first_factor.as_ref().is_some_and(|f| f.sso.is_some())
            && let Some(ff) = self.first_factor.take()
        {
            return self.sso_factor(ff, response).await;
        }
        let Some(response) = response else {
            let instructions = match self
                .first_factor
                .as_mut()
                .and_then(|f| f.budget_wait.take())
            {
                Some(w) => Cow::Owned(format!(
                    "Too many wrong codes for this account: codes are checked again in about {} s.\n",
                    w.as_secs().max(1)
                )),
                None => Cow::Borrowed(""),
            };
            // In the prompt, not the instructions: OpenSSH shows a prompt
            // at every log level, instructions only at the default one.
            let used = self.first_factor.as_mut().is_some_and(|f| {
                let used = f.code_used;
                f.code_used = false;
                used
            });
            let prompt = if used {
                USED_PROMPT
            } else {
                "Verification code: "
            };
            return Auth::Partial {
                name: Cow::Borrowed(""),
                instructions,
                prompts: Cow::Owned(vec![(Cow::Borrowed(prompt), false)]),
            };
        };
        // At most two answers are looked at, whatever count the client claimed.
        let answers: Vec<Bytes> = response.take(2).collect();
        let Some(mut ff) = self.first_factor.take() else {
            return self.rejected(start).await;
        };
        // The user's place is taken before the code is looked at, under one
        // lock: parallel connections holding the first factor cannot outrun
        // the budget, and a refused code is never evaluated.
        // Keyed by the account, whatever name and source the client used.
        let user = ff.record.name.clone();
        let reservation = match self.app.mfa_budget.reserve(&user, Instant::now()) {
            Budget::Check(r) => r,
            Budget::Wait(wait) => {
                tracing::warn!(source = %self.peer, user = %user, wait_secs = wait.as_secs(), "second-factor budget spent for this user; code not checked");
                self.app
                    .throttle
                    .tally(&user, self.peer.ip(), "totp-budget");
                ff.budget_wait = Some(wait);
                // This code was not looked at: nothing may be said about it.
                ff.code_used = false;
                self.first_factor = Some(ff);
                return self.code_rejected(start).await;
            }
        };
        let code = if answers.len() == 1 && answers[0].len() <= totp::MAX_ANSWER_LEN {
            shared::check_code(&self.app.store, &self.app.vault, &user, &answers[0]).await
        } else {
            Code::Wrong
        };
        if matches!(code, Code::Right) {
            self.app.mfa_budget.refund(reservation);
            let factors = format!("{}+totp", ff.method);
            return self.accept(ff.request, ff.record, &factors).await;
        }
        // A used code is a failure like any other (its place in the budget
        // stays taken); only the next prompt differs.
        ff.code_used = matches!(code, Code::Used);
        let req = ff.request.clone();
        self.first_factor = Some(ff);
        tracing::info!(source = %self.peer, username = %req, factor = "totp", "login failed");
        self.note_failure(&req, "totp", Stage::After);
        self.code_rejected(start).await
    }

    /// A wrong or unchecked code: padded like every rejection; the code
    /// prompt may be asked again on this connection.
    pub(super) async fn code_rejected(&self, start: Instant) -> Auth {
        tokio::time::sleep_until((start + REJECT_DELAY).into()).await;
        Auth::Reject {
            proceed_with_methods: Some(second_factor_methods()),
            partial_success: false,
        }
    }

    /// Every factor passed: audit (durably, or no login), then resolve the destination.
    pub(super) async fn accept(
        &mut self,
        req: LoginRequest,
        user: UserRecord,
        factors: &str,
    ) -> Auth {
        let event = AuditEvent::LoginSucceeded {
            user: req.user.to_string(),
            username_sent: req.to_string(),
            source: self.peer.to_string(),
            factors: factors.to_string(),
        };
        if let Err(e) = audit::record(&self.app.store, event).await {
            tracing::error!(error = %e, "audit write failed; refusing login");
            return self.rejected(Instant::now()).await;
        }
        self.app.throttle.success(req.user.as_str(), self.peer.ip());
        let mut session = Session::resolve(
            self.app.clone(),
            &req,
            user.groups,
            self.peer,
            self.shared.cancel.clone(),
        )
        .await;
        self.shared.named(&session);
        session.kill = self.shared.kill.clone();
        if let Err(refusal) = session.lock_check() {
            self.locked(&session, &refusal.user).await;
            session.destination = Destination::Refused(refusal.user);
        } else {
            self.app.metrics.logins_ok.inc();
        }
        // Its row from login on, so it can be listed and ended by its id.
        session.open_row().await;
        session.register();
        tracing::info!(source = %self.peer, user = %req.user, request = %req, factors, "login succeeded");
        let session = Arc::new(session);
        // From login, not from the first channel: a connection that opens
        // channels later (a ControlMaster) must meet the grant of that time.
        session.enforce();
        let _ = self.shared.session.set(session);
        self.preauth = None;
        self.first_factor = None;
        Auth::Accept
    }

    /// A lock covers this login: the user is let in only to read why.
    async fn locked(&self, session: &Session, text: &str) {
        self.app.metrics.logins_locked.inc();
        tracing::warn!(source = %self.peer, user = %session.user, "login refused by a lock");
        let event = AuditEvent::AccessLocked {
            user: session.user.clone(),
            source: self.peer.to_string(),
            target: session.target_and_login().map(|t| t.0).unwrap_or_default(),
            lock: text.to_string(),
        };
        if let Err(e) = audit::record(&self.app.store, event).await {
            tracing::error!(error = %e, "audit of a locked login not written");
        }
    }
}
