//! Just-in-time access: a user asks for a target for a while, with a reason;
//! a member of the approvers group (never the requester) approves or denies;
//! an approval becomes a grant that expires on its own. Every step is audited.

use crate::audit::{self, AuditEvent};
use crate::clock::now_ms;
use crate::ids::new_id;
use crate::names::Name;
use crate::store::{AccessRequest, GrantRecord, Store, StoreError, Subject};

#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("{0}")]
    Invalid(String),
    #[error("request {0} does not exist")]
    Unknown(String),
    #[error("request {0} was already decided")]
    AlreadyDecided(String),
    #[error("you cannot approve or deny your own request")]
    SelfApproval,
    #[error("{0} is not in the approvers group {1:?}")]
    NotApprover(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parses `90s`, `15m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Result<u64, JitError> {
    crate::config::parse_duration(s).map_err(JitError::Invalid)
}

/// Whom a request is for, and who made it (the user over ssh; the CLI's OS
/// account when an administrator asks on a user's behalf).
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub user: &'a str,
    pub actor: &'a str,
}

pub async fn request(
    store: &Store,
    by: Requester<'_>,
    target: &str,
    login: &str,
    duration_secs: u64,
    max_secs: u64,
    reason: &str,
) -> Result<AccessRequest, JitError> {
    let user = by.user;
    for n in [user, target, login] {
        Name::parse(n).map_err(|e| JitError::Invalid(format!("{n:?}: {e}")))?;
    }
    if duration_secs > max_secs {
        return Err(JitError::Invalid(format!(
            "at most {max_secs} s may be requested"
        )));
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 500 {
        return Err(JitError::Invalid(
            "a reason (1 to 500 characters) is required".into(),
        ));
    }
    let q = AccessRequest {
        id: new_id()[..10].to_string(),
        user: user.into(),
        target: target.into(),
        login: login.into(),
        duration_secs: i64::try_from(duration_secs).unwrap_or(i64::MAX),
        reason: reason.into(),
        state: "pending".into(),
        requested_ms: now_ms(),
        decided_by: None,
        decided_ms: None,
        grant_id: None,
    };
    store.add_request(&q).await?;
    audit::record(
        store,
        AuditEvent::AccessRequested {
            id: q.id.clone(),
            actor: by.actor.into(),
            user: user.into(),
            target: target.into(),
            login: login.into(),
            secs: duration_secs,
            reason: reason.into(),
        },
    )
    .await?;
    Ok(q)
}

/// Who decides a request, as the caller authenticated them.
#[derive(Debug, Clone, Copy)]
pub enum Approver<'a> {
    /// A bastion user (the `ssh bastion approve` menu): must be a member of
    /// the approvers group.
    Member(&'a str),
    /// An administrator: the CLI (the OS account that holds the database)
    /// or an `admin` API token. Both can add grants directly, so group
    /// membership adds nothing; the decision is recorded as `actor`, and
    /// `name` (the account or token name) may not be the requester's.
    Admin { actor: &'a str, name: &'a str },
}

impl Approver<'_> {
    /// How the decision is recorded.
    fn recorded(&self) -> &str {
        match self {
            Approver::Member(n) => n,
            Approver::Admin { actor, .. } => actor,
        }
    }
}

async fn is_approver(store: &Store, user: &str, group: &str) -> Result<bool, JitError> {
    Ok(store.groups_of(user).await?.iter().any(|g| g == group))
}

/// The pending requests, for a member of the approvers group only: who
/// asks for what, and why, is not for every user to read.
pub async fn pending_for(
    store: &Store,
    user: &str,
    approvers_group: &str,
) -> Result<Vec<AccessRequest>, JitError> {
    if !is_approver(store, user, approvers_group).await? {
        return Err(JitError::NotApprover(user.into(), approvers_group.into()));
    }
    Ok(store.list_requests(Some("pending")).await?)
}

/// Approves (`approve = true`) or denies a pending request.
pub async fn decide(
    store: &Store,
    id: &str,
    by: Approver<'_>,
    approvers_group: &str,
    approve: bool,
) -> Result<Option<GrantRecord>, JitError> {
    let q = store
        .request(id)
        .await?
        .ok_or_else(|| JitError::Unknown(id.into()))?;
    let name = match by {
        Approver::Member(n) | Approver::Admin { name: n, .. } => n,
    };
    if q.user == name {
        return Err(JitError::SelfApproval);
    }
    if let Approver::Member(user) = by
        && !is_approver(store, user, approvers_group).await?
    {
        return Err(JitError::NotApprover(user.into(), approvers_group.into()));
    }
    let approver = by.recorded();
    let now = now_ms();
    let grant = approve.then(|| GrantRecord {
        valid_from_ms: Some(now),
        valid_until_ms: Some(now.saturating_add(q.duration_secs.saturating_mul(1000))),
        origin: format!("jit:{}", q.id),
        ..GrantRecord::standing(
            &new_id()[..12],
            Subject::User(q.user.clone()),
            &q.target,
            &[q.login.as_str()],
        )
    });
    let state = if approve { "approved" } else { "denied" };
    if !store
        .decide_request(id, state, approver, now, grant.as_ref())
        .await?
    {
        return Err(JitError::AlreadyDecided(id.into()));
    }
    audit::record(
        store,
        AuditEvent::AccessDecided {
            id: id.into(),
            approver: approver.into(),
            approved: approve,
            grant: grant.as_ref().map(|g| g.id.clone()),
        },
    )
    .await?;
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("2h").unwrap(), 7200);
        assert_eq!(parse_duration("1d").unwrap(), 86400);
        for bad in ["", "h", "2", "2w", "-1h", "0m", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
