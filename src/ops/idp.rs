//! Users and groups the organisation's IdP provisions (SCIM): the same
//! changes as an administrator's, written through the same store rows and
//! audited with the same kinds (`user.added|removed`, `group.added|removed|
//! member_added|member_removed`), plus what only the IdP does: attribute
//! updates and (de)activation (`audit::IdpEvent`).
//!
//! Deprovisioning marks the user inactive first (no group grant reaches an
//! inactive user: `Store::groups_of`), then raises a lock on the user
//! through `lockdown::create`, which ends their live sessions through the
//! registry; reactivation lifts only that lock. Local users (no
//! `provisioned_by`) are out of reach: none of these functions takes one.

use super::{Ops, OpsError};
use crate::app::App;
use crate::audit::{AuditEvent, IdpEvent};
use crate::clock::now_ms;
use crate::ids::new_id;
use crate::lockdown::{self, Lifter, LockError, LockSpec};
use crate::policy::LockScope;
use crate::store::{ScimGroupRow, ScimUserRow, StoreError};
use serde_json::Value;

/// The reason on every deprovisioning lock (users see it when refused).
pub const DEPROVISION_REASON: &str = "deprovisioned by the identity provider (SCIM)";

/// A user as the IdP describes it; `resource` holds its SCIM attributes.
#[derive(Debug, Clone)]
pub struct IdpUser {
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub resource: Value,
}

/// A group as the IdP describes it; `members` are SCIM user ids.
#[derive(Debug, Clone)]
pub struct IdpGroup {
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Vec<String>,
    pub resource: Value,
}

/// The bastion name for an IdP name: kept when it is one already, else
/// every byte outside `[A-Za-z0-9._-]` becomes `_` (`alice@example.com` →
/// `alice_example.com`).
pub fn bastion_name(field: &'static str, idp: &str) -> Result<String, OpsError> {
    let mut s: String = idp
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    while s.starts_with('-') {
        s.replace_range(..1, "_");
    }
    super::name(field, &s)
}

fn fail_lock(e: LockError) -> OpsError {
    match e {
        LockError::Store(s) | LockError::NotPersisted(s, _) | LockError::NotAudited(s) => {
            OpsError::Store(s)
        }
        other => OpsError::invalid("active", other.to_string()),
    }
}

/// The SCIM row of a provisioned user, refusing anything that is not one.
async fn provisioned(ops: &Ops, id: &str) -> Result<ScimUserRow, OpsError> {
    let missing = || {
        OpsError::Store(StoreError::Missing {
            kind: "SCIM user",
            name: id.to_string(),
        })
    };
    let row = ops.store.scim_user(id).await?.ok_or_else(missing)?;
    // A local user never has a SCIM row; this is the second fence.
    match ops.store.user_provisioned_by(&row.user_name).await? {
        Some(p) if p == "scim" => Ok(row),
        _ => Err(missing()),
    }
}

/// Creates an IdP user: no password, no key (added by an administrator or
/// a later sign-in), marked provisioned; `user.added` as for the CLI.
pub async fn provision_user(app: &App, ops: &Ops, u: IdpUser) -> Result<ScimUserRow, OpsError> {
    let name = bastion_name("userName", &u.user_name)?;
    let now = now_ms();
    let mut row = ScimUserRow {
        id: new_id(),
        user_name: name.clone(),
        scim_key: u.user_name.to_lowercase(),
        external_id: u.external_id,
        resource: u.resource.to_string(),
        active: true,
        lock_id: None,
        created_ms: now,
        updated_ms: now,
        version: 1,
    };
    ops.store.add_scim_user(&row).await?;
    ops.audit(AuditEvent::UserAdded {
        user: name,
        actor: ops.actor(),
        password: false,
        keys: Vec::new(),
        service: false,
    })
    .await?;
    if !u.active {
        deactivate(app, ops, &mut row).await?;
    }
    Ok(row)
}

/// Replaces an IdP user's attributes; a change of `active` deprovisions or
/// reactivates. The bastion name stays the one given at creation.
pub async fn update_user(
    app: &App,
    ops: &Ops,
    id: &str,
    u: IdpUser,
) -> Result<ScimUserRow, OpsError> {
    let mut row = provisioned(ops, id).await?;
    let before: Value = serde_json::from_str(&row.resource).unwrap_or(Value::Null);
    let changed = changed_attributes(&before, &u.resource);
    row.scim_key = u.user_name.to_lowercase();
    row.external_id = u.external_id;
    row.resource = u.resource.to_string();
    row.updated_ms = now_ms();
    row.version += 1;
    ops.store.update_scim_user(&row).await?;
    if !changed.is_empty() {
        ops.audit(AuditEvent::Idp(IdpEvent::UserUpdated {
            user: row.user_name.clone(),
            actor: ops.actor(),
            changed,
        }))
        .await?;
    }
    match (row.active, u.active) {
        (true, false) => deactivate(app, ops, &mut row).await?,
        (false, true) => reactivate(app, ops, &mut row).await?,
        _ => {}
    }
    Ok(row)
}

/// Deletes an IdP user: deprovisioned first (lock, sessions ended), then
/// removed as `user remove` would (`user.removed`). The lock stays, so a
/// later user of the same name starts locked until an administrator lifts it.
pub async fn remove_user(app: &App, ops: &Ops, id: &str) -> Result<(), OpsError> {
    let mut row = provisioned(ops, id).await?;
    if row.active {
        deactivate(app, ops, &mut row).await?;
    }
    super::remove_user(ops, &row.user_name).await
}

async fn deactivate(app: &App, ops: &Ops, row: &mut ScimUserRow) -> Result<(), OpsError> {
    // Inactive first: from here no group grant reaches the user.
    row.active = false;
    ops.store.update_scim_user(row).await?;
    let spec = LockSpec {
        scope: LockScope::User(row.user_name.clone()),
        reason: DEPROVISION_REASON.to_string(),
        author: ops.actor(),
        expires_ms: None,
    };
    let lock = lockdown::create(app, spec).await.map_err(fail_lock)?;
    row.lock_id = Some(lock.lock.id.clone());
    ops.store.update_scim_user(row).await?;
    ops.audit(AuditEvent::Idp(IdpEvent::UserDeactivated {
        user: row.user_name.clone(),
        actor: ops.actor(),
        lock: lock.lock.id,
    }))
    .await
}

async fn reactivate(app: &App, ops: &Ops, row: &mut ScimUserRow) -> Result<(), OpsError> {
    let actor = ops.actor();
    if let Some(id) = &row.lock_id {
        // Only the lock deprovisioning raised, by its recorded id: an
        // administrator's own lock on the user stays.
        let by = Lifter {
            actor: &actor,
            admin: true,
        };
        lockdown::lift(app, id, by).await.map_err(fail_lock)?;
    }
    let lock = row.lock_id.take();
    row.active = true;
    ops.store.update_scim_user(row).await?;
    ops.audit(AuditEvent::Idp(IdpEvent::UserReactivated {
        user: row.user_name.clone(),
        actor,
        lock,
    }))
    .await
}

/// Top-level attribute names whose values differ (never the values).
fn changed_attributes(before: &Value, after: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<String> = b
        .keys()
        .chain(a.keys())
        .filter(|k| k.as_str() != "active" && b.get(*k) != a.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The bastion names of SCIM user ids; an id that is not a provisioned
/// user is refused (SCIM cannot put a local user in a group).
async fn member_names(ops: &Ops, ids: &[String]) -> Result<Vec<String>, OpsError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let row = provisioned(ops, id)
            .await
            .map_err(|_| OpsError::invalid("members", format!("no user has id {id:?}")))?;
        if !out.contains(&row.user_name) {
            out.push(row.user_name);
        }
    }
    Ok(out)
}

/// Creates an IdP group (`group.added`) and its members (`group.member_added`).
pub async fn provision_group(ops: &Ops, g: IdpGroup) -> Result<ScimGroupRow, OpsError> {
    let name = bastion_name("displayName", &g.display_name)?;
    let members = member_names(ops, &g.members).await?;
    let now = now_ms();
    let row = ScimGroupRow {
        id: new_id(),
        group_name: name.clone(),
        display_key: g.display_name.to_lowercase(),
        external_id: g.external_id,
        resource: g.resource.to_string(),
        created_ms: now,
        updated_ms: now,
        version: 1,
    };
    ops.store.add_scim_group(&row).await?;
    ops.audit(AuditEvent::GroupAdded {
        group: name.clone(),
        actor: ops.actor(),
    })
    .await?;
    for m in members {
        super::add_member(ops, &name, &m).await?;
    }
    Ok(row)
}

/// Replaces an IdP group's attributes and its provisioned members (members
/// an administrator added who are not IdP users are left alone).
pub async fn update_group(ops: &Ops, id: &str, g: IdpGroup) -> Result<ScimGroupRow, OpsError> {
    let mut row = ops
        .store
        .scim_group(id)
        .await?
        .ok_or_else(|| missing_group(id))?;
    let wanted = member_names(ops, &g.members).await?;
    let before: Value = serde_json::from_str(&row.resource).unwrap_or(Value::Null);
    let changed: Vec<String> = changed_attributes(&before, &g.resource)
        .into_iter()
        .filter(|k| k != "members")
        .collect();
    row.display_key = g.display_name.to_lowercase();
    row.external_id = g.external_id;
    row.resource = g.resource.to_string();
    row.updated_ms = now_ms();
    row.version += 1;
    ops.store.update_scim_group(&row).await?;
    if !changed.is_empty() {
        ops.audit(AuditEvent::Idp(IdpEvent::GroupUpdated {
            group: row.group_name.clone(),
            actor: ops.actor(),
            changed,
        }))
        .await?;
    }
    let current = ops.store.members_of(&row.group_name).await?;
    for m in &current {
        let idp = matches!(ops.store.user_provisioned_by(m).await?, Some(p) if p == "scim");
        if idp && !wanted.contains(m) {
            super::remove_member(ops, &row.group_name, m).await?;
        }
    }
    for m in &wanted {
        if !current.contains(m) {
            super::add_member(ops, &row.group_name, m).await?;
        }
    }
    Ok(row)
}

/// Removes an IdP group as `group remove` would (`group.removed`).
pub async fn remove_group(ops: &Ops, id: &str) -> Result<(), OpsError> {
    let row = ops
        .store
        .scim_group(id)
        .await?
        .ok_or_else(|| missing_group(id))?;
    super::remove_group(ops, &row.group_name).await
}

fn missing_group(id: &str) -> OpsError {
    OpsError::Store(StoreError::Missing {
        kind: "SCIM group",
        name: id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::bastion_name;

    #[test]
    fn idp_names_become_bastion_names() {
        for (idp, want) in [
            ("carol", "carol"),
            ("dana@example.com", "dana_example.com"),
            ("Ops Team", "Ops_Team"),
            ("-x", "_x"),
            ("a+b", "a_b"),
        ] {
            assert_eq!(bastion_name("f", idp).unwrap(), want, "{idp}");
        }
        for bad in ["", ".", "..", &"a".repeat(65)] {
            assert!(bastion_name("f", bad).is_err(), "{bad:?}");
        }
    }
}
