//! Users, their keys and passwords, groups and members.

use super::{Ops, OpsError, name};
use crate::audit::AuditEvent;
use crate::clock::now_ms;
use crate::gateway::keys::parse_user_key;
use crate::store::StoreError;
use zeroize::Zeroizing;

/// A user to create. `keys` are OpenSSH public key lines.
pub struct NewUser {
    pub name: String,
    pub password: Option<Zeroizing<String>>,
    pub keys: Vec<String>,
    /// Public key only, exempt from the second factor, never a password.
    pub service: bool,
}

/// What was created: the user's name and the fingerprints of their keys.
#[derive(Debug)]
pub struct AddedUser {
    pub name: String,
    pub fingerprints: Vec<String>,
}

async fn hash(password: Zeroizing<String>) -> Result<String, OpsError> {
    if password.is_empty() {
        return Err(OpsError::invalid("password", "may not be empty"));
    }
    // argon2id is deliberately slow: off the async workers.
    tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
        .await
        .map_err(|e| OpsError::Hash(e.to_string()))?
        .map_err(|e| OpsError::Hash(e.to_string()))
}

fn parse_keys(lines: &[String]) -> Result<Vec<(String, String)>, OpsError> {
    lines
        .iter()
        .map(|l| parse_user_key(l).map_err(|e| OpsError::invalid("public_key", e)))
        .collect()
}

fn missing(kind: &'static str, name: &str) -> OpsError {
    OpsError::Store(StoreError::Missing {
        kind,
        name: name.to_string(),
    })
}

/// Creates a user (and, for a service account, its MFA exemption).
pub async fn add_user(ops: &Ops, new: NewUser) -> Result<AddedUser, OpsError> {
    let n = name("name", &new.name)?;
    let parsed = parse_keys(&new.keys)?;
    if new.service && (new.password.is_some() || parsed.is_empty()) {
        return Err(OpsError::invalid(
            "service",
            "a service account has public keys and no password",
        ));
    }
    if new.password.is_none() && parsed.is_empty() {
        return Err(OpsError::invalid(
            "password or public_keys",
            "a user needs a way to log in",
        ));
    }
    let hashed = match new.password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    ops.store.add_user(&n, hashed.as_deref(), now_ms()).await?;
    for (fp, line) in &parsed {
        ops.store.add_user_key(&n, fp, line).await?;
    }
    let fingerprints: Vec<String> = parsed.into_iter().map(|(fp, _)| fp).collect();
    ops.audit(AuditEvent::UserAdded {
        user: n.clone(),
        actor: ops.actor(),
        password: hashed.is_some(),
        keys: fingerprints.clone(),
        service: new.service,
    })
    .await?;
    if new.service {
        ops.store.set_mfa_exempt(&n, true).await?;
        ops.audit(AuditEvent::MfaExemption {
            user: n.clone(),
            actor: ops.actor(),
            exempt: true,
        })
        .await?;
    }
    Ok(AddedUser {
        name: n,
        fingerprints,
    })
}

pub async fn remove_user(ops: &Ops, user: &str) -> Result<(), OpsError> {
    let n = name("name", user)?;
    ops.store.remove_user(&n).await?;
    ops.audit(AuditEvent::UserRemoved {
        user: n,
        actor: ops.actor(),
    })
    .await
}

/// Sets (`Some`) or clears (`None`) a user's password. A service account
/// cannot have one.
pub async fn set_password(
    ops: &Ops,
    user: &str,
    password: Option<Zeroizing<String>>,
) -> Result<(), OpsError> {
    let n = name("name", user)?;
    let record = ops
        .store
        .user(&n)
        .await?
        .ok_or_else(|| missing("user", &n))?;
    let hashed = match password {
        Some(_) if record.mfa_exempt => {
            return Err(OpsError::invalid(
                "password",
                format!("{n} is a service account and cannot have a password"),
            ));
        }
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    ops.store.set_password(&n, hashed.as_deref()).await?;
    ops.audit(AuditEvent::UserPasswordChanged {
        user: n,
        actor: ops.actor(),
        cleared: hashed.is_none(),
    })
    .await
}

/// Adds one OpenSSH public key line; answers its fingerprint.
pub async fn add_key(ops: &Ops, user: &str, line: &str) -> Result<String, OpsError> {
    let n = name("name", user)?;
    let (fp, line) = parse_user_key(line).map_err(|e| OpsError::invalid("public_key", e))?;
    ops.store.add_user_key(&n, &fp, &line).await?;
    ops.audit(AuditEvent::UserKeyAdded {
        user: n,
        actor: ops.actor(),
        fingerprint: fp.clone(),
    })
    .await?;
    Ok(fp)
}

pub async fn remove_key(ops: &Ops, user: &str, fingerprint: &str) -> Result<(), OpsError> {
    let n = name("name", user)?;
    ops.store.remove_user_key(&n, fingerprint).await?;
    ops.audit(AuditEvent::UserKeyRemoved {
        user: n,
        actor: ops.actor(),
        fingerprint: fingerprint.to_string(),
    })
    .await
}

pub async fn add_group(ops: &Ops, group: &str) -> Result<String, OpsError> {
    let g = name("name", group)?;
    ops.store.add_group(&g).await?;
    ops.audit(AuditEvent::GroupAdded {
        group: g.clone(),
        actor: ops.actor(),
    })
    .await?;
    Ok(g)
}

pub async fn remove_group(ops: &Ops, group: &str) -> Result<(), OpsError> {
    let g = name("name", group)?;
    ops.store.remove_group(&g).await?;
    ops.audit(AuditEvent::GroupRemoved {
        group: g,
        actor: ops.actor(),
    })
    .await
}

pub async fn add_member(ops: &Ops, group: &str, user: &str) -> Result<(), OpsError> {
    let (g, u) = (name("group", group)?, name("user", user)?);
    ops.store.add_member(&g, &u).await?;
    ops.audit(AuditEvent::GroupMemberAdded {
        group: g,
        user: u,
        actor: ops.actor(),
    })
    .await
}

pub async fn remove_member(ops: &Ops, group: &str, user: &str) -> Result<(), OpsError> {
    let (g, u) = (name("group", group)?, name("user", user)?);
    ops.store.remove_member(&g, &u).await?;
    ops.audit(AuditEvent::GroupMemberRemoved {
        group: g,
        user: u,
        actor: ops.actor(),
    })
    .await
}
