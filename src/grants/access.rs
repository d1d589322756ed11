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
    users: Mutex<Users>,
}

/// The slots, and how many were left after the last prune: a slot is made
/// per user re-checked, and the users whose sessions have ended are dropped
/// when the map has doubled since (amortised O(1) per slot made), so it
/// holds about the users live on this node, not every user seen since it
/// started.
#[derive(Default)]
struct Users {
    slots: HashMap<String, Arc<Slot>>,
    kept: usize,
}

/// Below this many slots the map is never pruned.
const PRUNE_FROM: usize = 64;

impl Users {
    fn slot(&mut self, user: &str) -> Arc<Slot> {
        if let Some(slot) = self.slots.get(user) {
            return slot.clone();
        }
        if self.slots.len() >= PRUNE_FROM.max(2 * self.kept) {
            self.prune();
        }
        let slot = Arc::<Slot>::default();
        self.slots.insert(user.to_string(), slot.clone());
        slot
    }

    /// Drops the slots nobody is reading whose grants are no longer fresh
    /// (a user with no live session here stops re-checking).
    fn prune(&mut self) {
        self.slots.retain(|_, slot| {
            Arc::strong_count(slot) > 1
                || slot.try_lock().map_or(true, |held| {
                    held.as_ref()
                        .is_some_and(|(at, _)| at.elapsed() < SHARED_FOR)
                })
        });
        self.kept = self.slots.len();
    }
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
        let slot = self.users.lock_or_recover().slot(user);
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

    #[cfg(test)]
    pub(crate) fn users_held(&self) -> usize {
        self.users.lock_or_recover().slots.len()
    }
}
