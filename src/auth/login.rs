//! The sign-in steps every door shares (the SSH gateway and the web
//! console): the throttle verdict, what a failed factor feeds, and the TOTP
//! check that claims its time step. One implementation, so a console
//! sign-in meets exactly the limits and bookkeeping of an SSH login.

use super::throttle::Verdict;
use super::totp;
use crate::app::App;
use crate::lockdown::rules::Stage;
use crate::vault::Purpose;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// A checked code: right (its time step now claimed), right but its step
/// already used, or wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Right,
    Used,
    Wrong,
}

/// Checked before any hashing or lookup; a refusal is counted as throttled.
pub fn throttled(app: &App, user: &str, ip: IpAddr) -> bool {
    match app.throttle.check(user, ip, Instant::now()) {
        Verdict::Allow => false,
        v => {
            tracing::info!(source = %ip, user, verdict = ?v, "login attempt throttled");
            app.throttle.throttled(user, ip);
            true
        }
    }
}

/// Feeds a failed factor to the throttle, the metrics and the lockdown
/// rules (in their own task: a rule's lock must not delay the answer).
/// `stage` tells the rules whether the failure needed a verified first
/// factor: only those may lock a user, since anyone can send a wrong
/// password for any username.
pub fn note_failure(app: &Arc<App>, user: &str, ip: IpAddr, factor: &'static str, stage: Stage) {
    app.throttle.failure(user, ip, factor, Instant::now());
    app.metrics.logins_failed.inc();
    if !app.config.lockdown.rules.is_empty() {
        let (app, user) = (app.clone(), user.to_string());
        tokio::spawn(
            async move { crate::lockdown::rules::on_failure(&app, &user, ip, stage).await },
        );
    }
}

/// Verifies the code and claims its time step atomically: a code is accepted once.
pub async fn check_code(app: &App, user: &str, answer: &[u8]) -> Code {
    let Ok(answer) = std::str::from_utf8(answer) else {
        return Code::Wrong;
    };
    let rec = match app.store.totp(user).await {
        Ok(Some(r)) => r,
        _ => return Code::Wrong,
    };
    let Ok(secret) = app
        .vault
        .open(Purpose::TotpSecret, &totp::row(user), &rec.sealed)
    else {
        tracing::error!(user, "TOTP secret cannot be opened; refusing");
        return Code::Wrong;
    };
    let now = u64::try_from(crate::clock::now_ms() / 1000).unwrap_or(0);
    let Ok(Some(step)) = totp::verify(secret.expose(), answer, now) else {
        return Code::Wrong;
    };
    let Ok(step) = i64::try_from(step) else {
        return Code::Wrong;
    };
    match app.store.claim_totp_step(user, step).await {
        Ok(true) => Code::Right,
        Ok(false) => {
            tracing::info!(user, "TOTP code already used (replay refused)");
            Code::Used
        }
        Err(e) => {
            tracing::error!(error = %e, "TOTP step not recorded; refusing");
            Code::Wrong
        }
    }
}
