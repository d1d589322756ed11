//! Grants and what decides with them, beside the pure `policy/`: adding a
//! grant from its written form (what `grant add` and the admin API accept:
//! validation, the stored record, and the audit event) here, the decision
//! for a user at a time from the stored grants ([`access`]) and just-in-time
//! access requests ([`jit`]).

pub mod access;
pub mod jit;

use crate::audit::{self, AuditEvent};
use crate::clock::now_ms;
use crate::ids::new_id;
use crate::names::Name;
use crate::policy::{ExecRules, Permissions, Schedule};
use crate::store::{GrantRecord, Store, StoreError, Subject};

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A grant as written by an operator; every field is checked by `add`.
#[derive(Debug, Clone, Default)]
pub struct GrantSpec {
    pub user: Option<String>,
    pub group: Option<String>,
    pub target: String,
    pub logins: Vec<String>,
    /// RFC 3339 instants.
    pub from: Option<String>,
    pub until: Option<String>,
    /// A duration from now (90s, 15m, 2h, 1d); exclusive with `until`.
    pub for_: Option<String>,
    pub window: Option<String>,
    pub tz: String,
    pub max_session: Option<String>,
    pub allow: String,
    pub exec_allow: Vec<String>,
    pub exec_deny: Vec<String>,
}

pub const DEFAULT_ALLOW: &str = "pty,shell,exec,sftp";

fn invalid(s: impl Into<String>) -> GrantError {
    GrantError::Invalid(s.into())
}

fn instant(field: &str, s: &str) -> Result<i64, GrantError> {
    let t: jiff::Timestamp = s
        .parse()
        .map_err(|_| invalid(format!("{field}: {s:?} is not an RFC 3339 instant")))?;
    Ok(t.as_millisecond())
}

fn secs(field: &str, s: &str) -> Result<i64, GrantError> {
    let v = jit::parse_duration(s).map_err(|e| invalid(format!("{field}: {e}")))?;
    i64::try_from(v).map_err(|_| invalid(format!("{field}: too long")))
}

/// Checks `spec` and builds the record (id fresh, not stored).
pub fn build(spec: &GrantSpec, now: i64) -> Result<GrantRecord, GrantError> {
    let subject = match (&spec.user, &spec.group) {
        (Some(u), None) => Subject::User(u.clone()),
        (None, Some(g)) => Subject::Group(g.clone()),
        _ => return Err(invalid("give exactly one of user or group")),
    };
    Name::parse(subject.name()).map_err(|e| invalid(format!("{}: {e}", subject.kind())))?;
    Name::parse(&spec.target).map_err(|e| invalid(format!("target: {e}")))?;
    if spec.logins.is_empty() {
        return Err(invalid("logins: at least one login is required"));
    }
    for l in &spec.logins {
        Name::parse(l).map_err(|e| invalid(format!("logins: {l:?}: {e}")))?;
    }
    Permissions::parse(&spec.allow).map_err(|e| invalid(format!("allow: {e}")))?;
    // A pattern the matcher cannot read would either never match (an allow
    // list that silently admits nothing) or, worse, a deny pattern that never
    // fires; refuse it where the operator can still fix it.
    for (field, list) in [
        ("exec_allow", &spec.exec_allow),
        ("exec_deny", &spec.exec_deny),
    ] {
        for p in list {
            ExecRules::check_pattern(p).map_err(|e| invalid(format!("{field}: {e}")))?;
        }
    }
    let windows = spec.window.clone().unwrap_or_default();
    if !windows.trim().is_empty() {
        Schedule::parse(&spec.tz, &windows).map_err(|e| invalid(format!("window: {e}")))?;
    } else {
        jiff::tz::TimeZone::get(&spec.tz)
            .map_err(|_| invalid(format!("tz: unknown time zone {:?}", spec.tz)))?;
    }
    let valid_until_ms = match (&spec.until, &spec.for_) {
        (Some(_), Some(_)) => return Err(invalid("give until or for, not both")),
        (Some(u), None) => Some(instant("until", u)?),
        (None, Some(d)) => Some(now.saturating_add(secs("for", d)?.saturating_mul(1000))),
        (None, None) => None,
    };
    let logins: Vec<&str> = spec.logins.iter().map(String::as_str).collect();
    Ok(GrantRecord {
        valid_from_ms: spec
            .from
            .as_deref()
            .map(|f| instant("from", f))
            .transpose()?,
        valid_until_ms,
        max_session_secs: spec
            .max_session
            .as_deref()
            .map(|m| secs("max_session", m))
            .transpose()?,
        time_zone: spec.tz.clone(),
        windows,
        permissions: spec.allow.clone(),
        exec_allow: spec.exec_allow.clone(),
        exec_deny: spec.exec_deny.clone(),
        ..GrantRecord::standing(&new_id()[..12], subject, &spec.target, &logins)
    })
}

/// Validates, stores and audits a grant.
pub async fn add(store: &Store, spec: &GrantSpec, actor: &str) -> Result<GrantRecord, GrantError> {
    let now = now_ms();
    let g = build(spec, now)?;
    store.add_grant(&g, now).await?;
    audit::record(
        store,
        AuditEvent::GrantAdded {
            id: g.id.clone(),
            actor: actor.to_string(),
            summary: describe(&g),
        },
    )
    .await?;
    Ok(g)
}

/// Removes and audits a grant.
pub async fn remove(store: &Store, id: &str, actor: &str) -> Result<(), GrantError> {
    store.remove_grant(id).await?;
    audit::record(
        store,
        AuditEvent::GrantRemoved {
            id: id.to_string(),
            actor: actor.to_string(),
        },
    )
    .await?;
    Ok(())
}

/// One line a person reads: who, where, as whom, and every limit.
pub fn describe(g: &GrantRecord) -> String {
    let ts = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let mut s = format!(
        "{} {} -> {} as {} [{}]",
        g.subject.kind(),
        g.subject.name(),
        g.target,
        g.logins.join(","),
        g.permissions
    );
    if !g.windows.is_empty() {
        s.push_str(&format!(" window \"{}\" {}", g.windows, g.time_zone));
    }
    if let Some(f) = g.valid_from_ms {
        s.push_str(&format!(" from {}", ts(f)));
    }
    if let Some(u) = g.valid_until_ms {
        s.push_str(&format!(" until {}", ts(u)));
    }
    if let Some(m) = g.max_session_secs {
        s.push_str(&format!(" max-session {m}s"));
    }
    if !g.exec_allow.is_empty() {
        s.push_str(&format!(" exec-allow {:?}", g.exec_allow));
    }
    if !g.exec_deny.is_empty() {
        s.push_str(&format!(" exec-deny {:?}", g.exec_deny));
    }
    if g.origin != "admin" {
        s.push_str(&format!(" ({})", g.origin));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> GrantSpec {
        GrantSpec {
            user: Some("alice".into()),
            target: "web01".into(),
            logins: vec!["deploy".into()],
            tz: "UTC".into(),
            allow: DEFAULT_ALLOW.into(),
            ..GrantSpec::default()
        }
    }

    #[test]
    fn exec_patterns_are_checked_where_the_grant_is_written() {
        let mut ok = spec();
        ok.exec_allow = vec!["pg_isready *".into(), "uptime".into()];
        ok.exec_deny = vec!["rm".into()];
        assert!(build(&ok, 0).is_ok());
        for (allow, deny) in [
            (vec!["echo 'x".to_string()], vec![]),
            (vec![], vec!["rm\nx".to_string()]),
            (vec!["".to_string()], vec![]),
            (vec![], vec!["echo x\\".to_string()]),
        ] {
            let mut bad = spec();
            bad.exec_allow = allow.clone();
            bad.exec_deny = deny.clone();
            let err = build(&bad, 0).expect_err("an unreadable pattern must be refused");
            let field = if allow.is_empty() {
                "exec_deny"
            } else {
                "exec_allow"
            };
            assert!(err.to_string().contains(field), "{err}");
        }
    }
}
