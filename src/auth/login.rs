//! The sign-in steps every door shares (the SSH gateway and the web
//! console): the throttle verdict, what a failed factor counts, and the
//! TOTP check that claims its time step. One implementation, so a console
//! sign-in meets exactly the limits and bookkeeping of an SSH login.
//! (The lockdown rules a failure also feeds need the whole `App`; each door
//! hands the failure to `lockdown::rules::on_failure` itself.)

use super::throttle::{Throttle, Verdict};
use super::totp;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::vault::{Purpose, Vault};
use std::net::IpAddr;
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
pub fn throttled(throttle: &Throttle, user: &str, ip: IpAddr) -> bool {
    match throttle.check(user, ip, Instant::now()) {
        Verdict::Allow => false,
        v => {
            tracing::info!(source = %ip, user, verdict = ?v, "login attempt throttled");
            throttle.throttled(user, ip);
            true
        }
    }
}

/// Counts a failed factor in the throttle (and its failure summaries) and the metrics.
pub fn failed(
    throttle: &Throttle,
    metrics: &Metrics,
    user: &str,
    ip: IpAddr,
    factor: &'static str,
) {
    throttle.failure(user, ip, factor, Instant::now());
    metrics.logins_failed.inc();
}

/// Verifies the code and claims its time step atomically: a code is accepted once.
pub async fn check_code(store: &Store, vault: &Vault, user: &str, answer: &[u8]) -> Code {
    let Ok(answer) = std::str::from_utf8(answer) else {
        return Code::Wrong;
    };
    let rec = match store.totp(user).await {
        Ok(Some(r)) => r,
        _ => return Code::Wrong,
    };
    let Ok(secret) = vault.open(Purpose::TotpSecret, &totp::row(user), &rec.sealed) else {
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
    match store.claim_totp_step(user, step).await {
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
