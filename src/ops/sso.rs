//! What a finished SSO sign-in changes, through the same operations as an
//! administrator's: an unknown user created as the IdP's (only where the
//! provider allows it), and the membership of every group the provider's
//! mapping manages set to what the IdP says now — so a group removed at
//! the IdP takes its access away at the next sign-in. Audited as
//! `sso:<provider>`.

use super::{Ops, OpsError, name};
use crate::audit::AuditEvent;
use crate::clock::now_ms;
use crate::store::UserRecord;

/// The IdP's answer as plain data.
pub struct SignIn<'a> {
    pub provider: &'a str,
    pub username: &'a str,
    /// The bastion groups the IdP's groups map to.
    pub groups: &'a [String],
    /// Every bastion group the mapping manages.
    pub managed: &'a [String],
    pub create_users: bool,
}

/// Why a sign-in is refused here.
pub enum Outcome {
    Ready(UserRecord),
    /// Not a bastion user, and the provider does not create users.
    Unknown,
}

pub async fn apply_sign_in(ops: &Ops, s: &SignIn<'_>) -> Result<Outcome, OpsError> {
    let user = name("user", s.username)?;
    let mut rec = ops.store.user(&user).await?;
    if rec.is_none() {
        if !s.create_users {
            return Ok(Outcome::Unknown);
        }
        ops.store.add_oidc_user(&user, now_ms()).await?;
        ops.audit(AuditEvent::UserAdded {
            user: user.clone(),
            actor: ops.actor(),
            password: false,
            keys: Vec::new(),
            service: false,
        })
        .await?;
        rec = ops.store.user(&user).await?;
    }
    let Some(mut rec) = rec else {
        return Ok(Outcome::Unknown);
    };
    let mut changed = false;
    for g in s.managed {
        let member = rec.groups.contains(g);
        let should = s.groups.contains(g);
        let r = if should && !member {
            super::add_member(ops, g, &user).await
        } else if member && !should {
            super::remove_member(ops, g, &user).await
        } else {
            continue;
        };
        match r {
            Ok(()) => changed = true,
            Err(OpsError::Store(e)) => {
                // A mapped group that does not exist (yet) grants nothing.
                tracing::warn!(group = %g, user = %user, error = %e, "SSO group mapping not applied");
            }
            Err(e) => return Err(e),
        }
    }
    if changed && let Some(r) = ops.store.user(&user).await? {
        rec = r;
    }
    Ok(Outcome::Ready(rec))
}
