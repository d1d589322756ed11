//! Locks as policy sees them: what a lock covers, and whether it covers a
//! given connection at a given time. Pure: `now` is passed in.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What a lock covers. Serialized as `{"kind":"user","value":"alice"}` or
/// `{"kind":"all"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    content = "value",
    rename_all = "lowercase",
    deny_unknown_fields
)]
pub enum LockScope {
    User(String),
    Target(String),
    Source(IpNet),
    Session(String),
    All,
}

impl LockScope {
    pub fn kind(&self) -> &'static str {
        match self {
            LockScope::User(_) => "user",
            LockScope::Target(_) => "target",
            LockScope::Source(_) => "source",
            LockScope::Session(_) => "session",
            LockScope::All => "all",
        }
    }

    /// The scope's value as stored: a name, a network, a session id, or ''.
    pub fn value(&self) -> String {
        match self {
            LockScope::User(v) | LockScope::Target(v) | LockScope::Session(v) => v.clone(),
            LockScope::Source(n) => n.to_string(),
            LockScope::All => String::new(),
        }
    }

    /// Rebuilds a scope from its stored parts; `None` if they do not make one.
    pub fn from_parts(kind: &str, value: &str) -> Option<LockScope> {
        Some(match kind {
            "user" => LockScope::User(value.to_string()),
            "target" => LockScope::Target(value.to_string()),
            "source" => LockScope::Source(value.parse::<IpNet>().ok()?.trunc()),
            "session" => LockScope::Session(value.to_string()),
            "all" => LockScope::All,
            _ => return None,
        })
    }

    /// Whether this scope covers the subject.
    pub fn covers(&self, s: &Subject<'_>) -> bool {
        match self {
            LockScope::User(u) => s.user == Some(u.as_str()),
            LockScope::Target(t) => s.target == Some(t.as_str()),
            LockScope::Source(net) => net.contains(&s.source),
            LockScope::Session(id) => s.session == Some(id.as_str()),
            LockScope::All => true,
        }
    }
}

impl std::fmt::Display for LockScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockScope::All => f.write_str("everything"),
            other => write!(f, "{} {}", other.kind(), other.value()),
        }
    }
}

/// What is being let in: parts not yet known (the target before one is
/// chosen, the user before login) are `None` and never match a lock on them.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user: Option<&'a str>,
    pub target: Option<&'a str>,
    pub source: IpAddr,
    pub session: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub id: String,
    pub scope: LockScope,
    pub reason: String,
    pub author: String,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub lifted_ms: Option<i64>,
    pub lifted_by: Option<String>,
}

impl Lock {
    pub fn in_force(&self, now_ms: i64) -> bool {
        self.lifted_ms.is_none() && self.expires_ms.is_none_or(|e| e > now_ms)
    }

    /// The first lock in force at `now_ms` that covers the subject.
    pub fn first_covering<'a>(locks: &'a [Lock], s: &Subject<'_>, now_ms: i64) -> Option<&'a Lock> {
        locks
            .iter()
            .find(|l| l.in_force(now_ms) && l.scope.covers(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(scope: LockScope, expires: Option<i64>) -> Lock {
        Lock {
            id: "l".into(),
            scope,
            reason: "r".into(),
            author: "a".into(),
            created_ms: 0,
            expires_ms: expires,
            lifted_ms: None,
            lifted_by: None,
        }
    }

    fn subject<'a>(user: Option<&'a str>, target: Option<&'a str>, ip: &str) -> Subject<'a> {
        Subject {
            user,
            target,
            source: ip.parse().unwrap(),
            session: Some("s1"),
        }
    }

    #[test]
    fn scopes_cover_what_they_name() {
        let s = subject(Some("alice"), Some("web01"), "10.1.2.3");
        let cases = [
            (LockScope::User("alice".into()), true),
            (LockScope::User("bob".into()), false),
            (LockScope::Target("web01".into()), true),
            (LockScope::Target("web02".into()), false),
            (LockScope::Source("10.1.0.0/16".parse().unwrap()), true),
            (LockScope::Source("10.2.0.0/16".parse().unwrap()), false),
            (LockScope::Session("s1".into()), true),
            (LockScope::Session("s2".into()), false),
            (LockScope::All, true),
        ];
        for (scope, want) in cases {
            assert_eq!(scope.covers(&s), want, "{scope}");
        }
    }

    #[test]
    fn unknown_parts_never_match_a_named_lock() {
        let s = subject(None, None, "10.1.2.3");
        assert!(!LockScope::User("alice".into()).covers(&s));
        assert!(!LockScope::Target("web01".into()).covers(&s));
        assert!(LockScope::All.covers(&s));
    }

    #[test]
    fn expiry_and_lifting_end_a_lock() {
        let s = subject(Some("alice"), None, "::1");
        let mut l = lock(LockScope::User("alice".into()), Some(100));
        assert!(Lock::first_covering(std::slice::from_ref(&l), &s, 99).is_some());
        assert!(Lock::first_covering(std::slice::from_ref(&l), &s, 100).is_none());
        l.expires_ms = None;
        l.lifted_ms = Some(5);
        assert!(Lock::first_covering(&[l], &s, 0).is_none());
    }

    #[test]
    fn scopes_round_trip_through_parts_and_json() {
        for scope in [
            LockScope::User("alice".into()),
            LockScope::Source("10.0.0.0/8".parse().unwrap()),
            LockScope::All,
        ] {
            assert_eq!(
                LockScope::from_parts(scope.kind(), &scope.value()),
                Some(scope.clone())
            );
            let j = serde_json::to_string(&scope).unwrap();
            assert_eq!(serde_json::from_str::<LockScope>(&j).unwrap(), scope);
        }
        assert_eq!(
            serde_json::to_string(&LockScope::User("a".into())).unwrap(),
            r#"{"kind":"user","value":"a"}"#
        );
        assert_eq!(
            serde_json::to_string(&LockScope::All).unwrap(),
            r#"{"kind":"all"}"#
        );
        assert!(LockScope::from_parts("source", "nope").is_none());
        assert!(LockScope::from_parts("planet", "x").is_none());
    }
}
