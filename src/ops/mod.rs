//! One door for every change. Users, keys, groups, targets and credentials
//! are validated, stored and audited here, once; the CLI (`cli/`) and the
//! admin API (`admin/`) only translate their input and output, so a change
//! made through either writes the same rows and the same domain audit event
//! (`user.added`, `target.added`, `credential.set` …). A console or a SCIM
//! endpoint is one more adapter over these functions, not a new write path.
//!
//! The API additionally records `api.write` (the request as received, before
//! the operation, so a refused request is on record too); that row is about
//! the HTTP door, not the change.
//!
//! MFA enrolment (`mfa`, a CLI door only so far) and API tokens (`tokens`)
//! are operations here too. Grants (`crate::grants`), access requests
//! (`crate::grants::jit`) and locks (`crate::lockdown`) were already shared
//! by both doors and keep their homes.

pub mod idp;
pub mod mfa;
pub mod sso;
mod targets;
pub mod tokens;
mod users;

pub use mfa::{Enrolment, begin_totp, confirm_totp, remove_totp};
pub use targets::{
    NewCredential, NewSshTarget, NewTcpTarget, Secret, add_ssh_target, add_tcp_target,
    remove_target, set_capture, set_credential, set_recording,
};
pub use tokens::{Scope, TokenInfo, create_token, list_tokens, revoke_token};
pub use users::{
    AddedUser, NewUser, add_group, add_key, add_member, add_user, remove_group, remove_key,
    remove_member, remove_user, set_password,
};

use crate::store::{Store, StoreError};

/// Who makes a change, as the audit trail names them (`cli:NAME(uid N)`,
/// `api:TOKEN/ID`).
#[derive(Clone, Debug)]
pub struct Actor(pub String);

/// Where a change happens and on whose behalf.
#[derive(Clone, Debug)]
pub struct Ops {
    pub store: Store,
    pub actor: Actor,
}

impl Ops {
    pub fn new(store: Store, actor: impl Into<String>) -> Ops {
        Ops {
            store,
            actor: Actor(actor.into()),
        }
    }

    fn actor(&self) -> String {
        self.actor.0.clone()
    }

    /// Appends the change's audit event; the change is done, so a failing
    /// audit is reported as such (the caller answers an error, the operator
    /// sees that the trail lacks the row).
    async fn audit(&self, event: crate::audit::AuditEvent) -> Result<(), OpsError> {
        crate::audit::record(&self.store, event)
            .await
            .map_err(OpsError::Audit)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Bad input: the field it concerns, then why.
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    /// Exists / does not exist and database failures, as the store said.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the change was made but its audit event could not be written: {0}")]
    Audit(StoreError),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl OpsError {
    pub(crate) fn invalid(field: &'static str, why: impl Into<String>) -> OpsError {
        OpsError::Invalid {
            field,
            why: why.into(),
        }
    }
}

/// A bastion name (user, group, target, login), or `Invalid` naming `field`.
pub(crate) fn name(field: &'static str, value: &str) -> Result<String, OpsError> {
    crate::names::Name::parse(value)
        .map(|n| n.to_string())
        .map_err(|e| OpsError::invalid(field, e.to_string()))
}

#[cfg(test)]
mod tests;
