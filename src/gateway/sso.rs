//! SSO as the SSH second factor (issue 18), for users an `[[sso.ssh]]`
//! rule names: after their public key, keyboard-interactive shows a
//! one-time link to the bastion's own page (in the prompt itself: `ssh -q`
//! hides the instructions) and a short code; the answer (Enter) waits until
//! the browser's sign-in at the IdP completed the link, failed, or the link
//! expired — never longer. The link is bound to this connection (only it
//! holds the link's receiver) and to this user (the callback compares the
//! IdP's username with it). A failed or expired link is a failed factor,
//! counted like a wrong code, under the same per-user second-factor budget;
//! the next prompt says why and shows a fresh link.

use super::handler::Connection;
use super::login::FirstFactor;
use crate::audit::{self, AuditEvent, IdpEvent};
use crate::auth::budget::Budget;
use crate::config::SshMode;
use crate::lockdown::rules::Stage;
use crate::sso::links::LinkState;
use crate::store::UserRecord;
use russh::server::{Auth, Response};
use std::borrow::Cow;
use std::time::Instant;
use tokio::sync::watch;

const EXPIRED: &str = "the sign-in link expired";

/// A link this connection showed and waits on.
pub struct Waiting {
    token: String,
    url: String,
    code: String,
    rx: watch::Receiver<LinkState>,
    deadline: Instant,
}

/// The SSO state of a first factor whose user signs in with an IdP.
pub struct SsoFactor {
    pub provider: String,
    waiting: Option<Waiting>,
    /// Why the last link failed, for the next prompt.
    failed: Option<String>,
}

impl SsoFactor {
    pub fn new(provider: String) -> SsoFactor {
        SsoFactor {
            provider,
            waiting: None,
            failed: None,
        }
    }
}

/// The provider of the `[[sso.ssh]]` rule naming this user: after a
/// public key SSO replaces TOTP (for an SSO-only user too, should they
/// present a key).
pub fn second_factor_provider(app: &crate::app::App, rec: &UserRecord) -> Option<String> {
    app.config
        .sso
        .ssh_rule(&rec.name, &rec.groups)
        .map(|r| r.provider.clone())
}

impl Connection {
    /// Keyboard-interactive with no first factor: a user whose rule makes
    /// SSO the only interactive factor starts here (throttled like any
    /// first factor); anyone else is refused.
    pub(super) async fn sso_only(&mut self, user: &str) -> Option<FirstFactor> {
        if !self
            .app
            .config
            .sso
            .ssh
            .iter()
            .any(|r| r.mode == SshMode::Only)
        {
            return None;
        }
        let req = self.parse(user)?;
        if self.throttled(&req) {
            return None;
        }
        let rec = self.lookup(&req).await?;
        let rule = self.app.config.sso.ssh_rule(&rec.name, &rec.groups)?;
        if rule.mode != SshMode::Only || rec.mfa_exempt {
            return None;
        }
        Some(FirstFactor {
            username: user.to_string(),
            request: req,
            sso: Some(SsoFactor::new(rule.provider.clone())),
            record: rec,
            method: "",
            budget_wait: None,
            code_used: false,
        })
    }

    /// The keyboard-interactive round of a user whose second factor is SSO.
    pub(super) async fn sso_factor(
        &mut self,
        mut ff: FirstFactor,
        response: Option<Response<'_>>,
    ) -> Auth {
        let start = Instant::now();
        let Some(mut sso) = ff.sso.take() else {
            self.first_factor = Some(ff);
            return self.rejected(start).await;
        };
        if response.is_none() {
            let expired = sso
                .waiting
                .as_ref()
                .is_none_or(|w| Instant::now() >= w.deadline);
            if expired {
                if let Some(w) = sso.waiting.take() {
                    self.app.sso.link_forget(&w.token);
                }
                let i =
                    self.app
                        .sso
                        .issue_link(&sso.provider, &ff.record.name, &self.peer.to_string());
                sso.waiting = Some(Waiting {
                    token: i.token,
                    url: i.url,
                    code: i.code,
                    rx: i.rx,
                    deadline: Instant::now() + self.app.config.sso.link_ttl,
                });
                self.shared.sso_pending();
            }
            let Some(w) = sso.waiting.as_ref() else {
                return self.rejected(start).await;
            };
            let why = sso
                .failed
                .take()
                .map(|f| format!("SSO sign-in failed: {f}\n"))
                .unwrap_or_default();
            let mins = self.app.config.sso.link_ttl.as_secs().div_ceil(60);
            let instructions = format!(
                "{why}Sign in with {p}: open the link below in a browser, check that it shows the code {c}, \
                 and sign in. The link works once, for {mins} minute(s).\n",
                p = sso.provider,
                c = w.code
            );
            let prompt = format!(
                "{why}Open {url} (code {c}), sign in, then press Enter: ",
                url = w.url,
                c = w.code
            );
            ff.sso = Some(sso);
            self.first_factor = Some(ff);
            return Auth::Partial {
                name: Cow::Borrowed("Single sign-on"),
                instructions: Cow::Owned(instructions),
                prompts: Cow::Owned(vec![(Cow::Owned(prompt), true)]),
            };
        }
        let Some(mut w) = sso.waiting.take() else {
            // An answer to a prompt never shown: nothing to wait for.
            ff.sso = Some(sso);
            self.first_factor = Some(ff);
            return self.code_rejected(start).await;
        };
        let user = ff.record.name.clone();
        let reservation = match self.app.mfa_budget.reserve(&user, Instant::now()) {
            Budget::Check(r) => r,
            Budget::Wait(wait) => {
                tracing::warn!(source = %self.peer, user = %user, wait_secs = wait.as_secs(), "second-factor budget spent for this user; SSO not waited for");
                self.app.throttle.tally(&user, self.peer.ip(), "sso-budget");
                self.app.sso.link_forget(&w.token);
                sso.failed = Some(format!(
                    "too many failed sign-ins for this account: try again in about {} s",
                    wait.as_secs().max(1)
                ));
                ff.sso = Some(sso);
                self.first_factor = Some(ff);
                return self.code_rejected(start).await;
            }
        };
        let outcome = tokio::time::timeout_at(w.deadline.into(), async {
            w.rx.wait_for(|s| !matches!(s, LinkState::Waiting))
                .await
                .map(|s| s.clone())
        })
        .await;
        let state = match outcome {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => LinkState::Failed(EXPIRED.into()),
            Err(_) => {
                self.app.sso.link_forget(&w.token);
                LinkState::Failed(EXPIRED.into())
            }
        };
        let only = ff.method.is_empty();
        match state {
            LinkState::Done(id) if id.username == user => {
                self.app.mfa_budget.refund(reservation);
                let event = AuditEvent::Idp(IdpEvent::SsoSignedIn {
                    user: user.clone(),
                    provider: id.provider.clone(),
                    subject: id.subject.clone(),
                    purpose: "ssh".into(),
                    source: self.peer.to_string(),
                });
                if let Err(e) = audit::record(&self.app.store, event).await {
                    tracing::error!(error = %e, "audit write failed; refusing login");
                    return self.rejected(start).await;
                }
                // The sign-in applied the IdP's groups: grants from now.
                let rec = match self.app.store.user(&user).await {
                    Ok(Some(r)) => r,
                    _ => return self.rejected(start).await,
                };
                let factors = match ff.method {
                    "" => format!("sso:{}", id.provider),
                    m => format!("{m}+sso:{}", id.provider),
                };
                tracing::info!(source = %self.peer, user = %user, provider = %id.provider, subject = %id.subject, "SSO sign-in completed");
                self.accept(ff.request, rec, &factors).await
            }
            other => {
                let why = match other {
                    LinkState::Failed(f) => f,
                    _ => "the sign-in was for another user".into(),
                };
                tracing::info!(source = %self.peer, username = %ff.request, factor = "sso", reason = %why, "login failed");
                let req = ff.request.clone();
                // Anyone can let an SSO-only user's link expire: that
                // spends nothing of theirs and cannot lock them.
                let stage = if only { Stage::Before } else { Stage::After };
                if only && why == EXPIRED {
                    self.app.mfa_budget.refund(reservation);
                }
                sso.failed = Some(why);
                ff.sso = Some(sso);
                self.first_factor = Some(ff);
                self.note_failure(&req, "sso", stage);
                self.code_rejected(start).await
            }
        }
    }
}
