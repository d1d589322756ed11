//! TOTP enrolment, reset and removal: the user checked, the secret sealed
//! with the vault and stored only once a current code confirms it, and the
//! domain event (`mfa.totp.enrolled`, `mfa.totp.reset`, `mfa.totp.removed`)
//! written as the actor. The door shows the secret (the CLI as a QR code)
//! and asks for the code; nothing else is decided there.

use super::{Ops, OpsError, name};
use crate::audit::AuditEvent;
use crate::auth::totp;
use crate::clock::now_ms;
use crate::vault::{Purpose, Vault};
use zeroize::Zeroizing;

/// A secret generated for a user, not stored until [`confirm_totp`].
pub struct Enrolment {
    user: String,
    replace: bool,
    secret: Zeroizing<[u8; totp::SECRET_BYTES]>,
}

impl Enrolment {
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The `otpauth://` URI an authenticator app scans.
    pub fn uri(&self) -> Zeroizing<String> {
        Zeroizing::new(totp::uri("portcullis", &self.user, self.secret.as_ref()))
    }

    /// The secret in base32, for entering by hand.
    pub fn base32(&self) -> Zeroizing<String> {
        Zeroizing::new(totp::base32(self.secret.as_ref()))
    }

    /// The code an authenticator app shows now.
    #[cfg(test)]
    pub(crate) fn code_now(&self) -> String {
        let now = u64::try_from(now_ms() / 1000).unwrap_or(0);
        totp::code_at(self.secret.as_ref(), now).expect("a valid secret")
    }
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment")
            .field("user", &self.user)
            .field("replace", &self.replace)
            .finish_non_exhaustive()
    }
}

/// Starts an enrolment (`replace`: a reset of an enrolled user). Refused
/// for an unknown user, a service account, or (not replacing) a user who
/// is already enrolled.
pub async fn begin_totp(ops: &Ops, user: &str, replace: bool) -> Result<Enrolment, OpsError> {
    let user = name("user", user)?;
    let Some(rec) = ops.store.user(&user).await? else {
        return Err(OpsError::invalid(
            "user",
            format!("{user:?} does not exist"),
        ));
    };
    if rec.mfa_exempt {
        let why = format!("{user} is a service account (MFA exempt, public key only)");
        return Err(OpsError::invalid("user", why));
    }
    if !replace && ops.store.totp(&user).await?.is_some() {
        let why = format!("{user} is already enrolled; a reset replaces the secret");
        return Err(OpsError::invalid("user", why));
    }
    Ok(Enrolment {
        user,
        replace,
        secret: Zeroizing::new(totp::generate_secret()),
    })
}

/// Stores the enrolment once `code` is current for its secret (its time
/// step is claimed: the same code cannot log in). A wrong code changes
/// nothing.
pub async fn confirm_totp(
    ops: &Ops,
    vault: &Vault,
    e: Enrolment,
    code: &str,
) -> Result<(), OpsError> {
    let now = u64::try_from(now_ms() / 1000).unwrap_or(0);
    let step = totp::verify(e.secret.as_ref(), code.trim(), now)
        .map_err(|err| OpsError::invalid("code", err.to_string()))?;
    let Some(step) = step else {
        let why = "that code does not match; nothing was changed (check the device clock)";
        return Err(OpsError::invalid("code", why));
    };
    let sealed = vault.seal(Purpose::TotpSecret, &totp::row(&e.user), e.secret.as_ref());
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    ops.store.set_totp(&e.user, &sealed, step, now_ms()).await?;
    let (user, actor) = (e.user.clone(), ops.actor());
    let event = if e.replace {
        AuditEvent::TotpReset { user, actor }
    } else {
        AuditEvent::TotpEnrolled { user, actor }
    };
    ops.audit(event).await
}

/// Removes the enrolment: the user cannot log in until enrolled again.
pub async fn remove_totp(ops: &Ops, user: &str) -> Result<(), OpsError> {
    let user = name("user", user)?;
    ops.store.remove_totp(&user).await?;
    let actor = ops.actor();
    ops.audit(AuditEvent::TotpRemoved { user, actor }).await
}
