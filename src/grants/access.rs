//! From stored grants to policy's view of them, and the decision for a user
//! at a time. Invalid stored rules make a grant grant nothing (fail closed).

use crate::policy::{self, ExecRules, Grant, Permissions, Schedule};
use crate::store::{GrantRecord, Store, StoreError, Subject};
use jiff::Timestamp;
use std::time::Duration;

pub fn to_policy(g: GrantRecord) -> Option<Grant> {
    let schedule = if g.windows.trim().is_empty() {
        None
    } else {
        match Schedule::parse(&g.time_zone, &g.windows) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(grant = %g.id, error = %e, "grant has an invalid window; it grants nothing");
                return None;
            }
        }
    };
    let mut permissions = match Permissions::parse(&g.permissions) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(grant = %g.id, error = %e, "grant has invalid permissions; it grants nothing");
            return None;
        }
    };
    permissions.exec_rules = ExecRules {
        allow: g.exec_allow,
        deny: g.exec_deny,
    };
    let ts = |ms: Option<i64>| ms.and_then(|m| Timestamp::from_millisecond(m).ok());
    Some(Grant {
        via: match &g.subject {
            Subject::User(u) => format!("user {u}"),
            Subject::Group(n) => format!("group {n}"),
        },
        id: g.id,
        target: g.target,
        logins: g.logins,
        valid_from: ts(g.valid_from_ms),
        valid_until: ts(g.valid_until_ms),
        schedule,
        max_session: g
            .max_session_secs
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs),
        permissions,
    })
}

/// Every grant that applies to `user` directly or through `groups`.
pub async fn grants_for(
    store: &Store,
    user: &str,
    groups: &[String],
) -> Result<Vec<Grant>, StoreError> {
    Ok(store
        .grants_for(user, groups)
        .await?
        .into_iter()
        .filter_map(to_policy)
        .collect())
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

/// Re-decides a live session with the grants as they are now.
pub async fn redecide(
    store: &Store,
    user: &str,
    target: &str,
    login: &str,
    started: Timestamp,
) -> Result<Result<policy::Allow, policy::Deny>, StoreError> {
    let groups = store.groups_of(user).await?;
    let grants = grants_for(store, user, &groups).await?;
    Ok(policy::decide(&grants, target, Some(login), now(), started))
}
