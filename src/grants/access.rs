//! From stored grants to policy's view of them, and the decision for a user
//! at a time. Invalid stored rules make a grant grant nothing (fail closed).

use crate::policy::{self, ExecRules, Grant, Permissions, Schedule};
use crate::store::{GrantRecord, Store, StoreError, Subject};
use crate::sync::MutexExt;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

/// How long one read of a user's groups and grants serves the re-checks of
/// all their live sessions on this node. Every live session re-decides every
/// 2 s (`session::watch`); read per session, 10,000 idle sessions were 10,000
/// queries a second, most of two cores at rest. A revocation is seen up to
/// this much later.
pub const SHARED_FOR: Duration = Duration::from_millis(500);

/// Each user's groups and grants as last read for re-checks, read at most
/// once per [`SHARED_FOR`] (one read at a time per user; the others wait
/// for it). A failed read is not kept.
#[derive(Default)]
pub struct Recent {
    users: Mutex<HashMap<String, Arc<Slot>>>,
}

type Slot = tokio::sync::Mutex<Option<(tokio::time::Instant, Arc<[Grant]>)>>;

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recent").finish_non_exhaustive()
    }
}

impl Recent {
    /// Re-decides a live session with the grants as read at most
    /// [`SHARED_FOR`] ago.
    pub async fn redecide(
        &self,
        store: &Store,
        user: &str,
        target: &str,
        login: &str,
        started: Timestamp,
    ) -> Result<Result<policy::Allow, policy::Deny>, StoreError> {
        let grants = self.grants(store, user).await?;
        Ok(policy::decide(&grants, target, Some(login), now(), started))
    }

    async fn grants(&self, store: &Store, user: &str) -> Result<Arc<[Grant]>, StoreError> {
        let slot = self
            .users
            .lock_or_recover()
            .entry(user.to_string())
            .or_default()
            .clone();
        let mut held = slot.lock().await;
        if let Some((at, grants)) = held.as_ref()
            && at.elapsed() < SHARED_FOR
        {
            return Ok(grants.clone());
        }
        let groups = store.groups_of(user).await?;
        let grants: Arc<[Grant]> = grants_for(store, user, &groups).await?.into();
        *held = Some((tokio::time::Instant::now(), grants.clone()));
        Ok(grants)
    }
}
