//! Pure access decisions: which grant lets a user reach a target as a login,
//! and which channels and requests a session may use.
//!
//! No I/O, no async, no clock: everything a decision needs is passed in, so
//! every rule is a table-driven unit test. Time windows (a later issue) take
//! `now` as an argument here too.

mod gate;

pub use gate::{ChannelKind, Permissions, SessionRequest, env_allowed};

/// A grant as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    /// Whom the grant names, for explanations ("group ops").
    pub via: String,
    pub target: String,
    /// Allowed upstream logins; the first is the default.
    pub logins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    pub grant_id: String,
    pub via: String,
    pub login: String,
    pub permissions: Permissions,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Deny {
    #[error("you have no grant for target {target}")]
    NoGrant { target: String },
    #[error("your grants for {target} do not include login {login} (allowed: {allowed})")]
    LoginNotAllowed {
        target: String,
        login: String,
        allowed: String,
    },
}

/// Decides access to `target` with an optional explicit `login`, given the
/// grants that apply to the user (directly or through a group).
pub fn decide(grants: &[Grant], target: &str, login: Option<&str>) -> Result<Allow, Deny> {
    let matching: Vec<&Grant> = grants
        .iter()
        .filter(|g| g.target == target && !g.logins.is_empty())
        .collect();
    if matching.is_empty() {
        return Err(Deny::NoGrant {
            target: target.to_string(),
        });
    }
    let chosen = match login {
        None => matching
            .first()
            .and_then(|g| g.logins.first().map(|l| (*g, l.clone()))),
        Some(l) => matching
            .iter()
            .find(|g| g.logins.iter().any(|x| x == l))
            .map(|g| (*g, l.to_string())),
    };
    match chosen {
        Some((g, login)) => Ok(Allow {
            grant_id: g.id.clone(),
            via: g.via.clone(),
            login,
            permissions: Permissions::session_default(),
        }),
        None => {
            let mut allowed: Vec<&str> = matching
                .iter()
                .flat_map(|g| g.logins.iter().map(String::as_str))
                .collect();
            allowed.sort_unstable();
            allowed.dedup();
            Err(Deny::LoginNotAllowed {
                target: target.to_string(),
                login: login.unwrap_or_default().to_string(),
                allowed: allowed.join(", "),
            })
        }
    }
}

/// Targets the user may reach, for the menu shown to a plain `USER` login.
pub fn reachable_targets(grants: &[Grant]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for g in grants {
        match out.iter_mut().find(|(t, _)| *t == g.target) {
            Some((_, logins)) => {
                for l in &g.logins {
                    if !logins.contains(l) {
                        logins.push(l.clone());
                    }
                }
            }
            None => out.push((g.target.clone(), g.logins.clone())),
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(id: &str, target: &str, logins: &[&str]) -> Grant {
        Grant {
            id: id.into(),
            via: format!("user alice ({id})"),
            target: target.into(),
            logins: logins.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn decision_table() {
        let grants = [
            g("g1", "web01", &["deploy", "root"]),
            g("g2", "db01", &["postgres"]),
            g("g3", "web01", &["admin"]),
        ];
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Result<(&'a str, &'a str), &'a str>,
        );
        let cases: [Case; 6] = [
            ("web01", None, Ok(("g1", "deploy"))),
            ("web01", Some("root"), Ok(("g1", "root"))),
            ("web01", Some("admin"), Ok(("g3", "admin"))),
            ("db01", None, Ok(("g2", "postgres"))),
            (
                "web01",
                Some("postgres"),
                Err("do not include login postgres (allowed: admin, deploy, root)"),
            ),
            ("mail01", None, Err("no grant for target mail01")),
        ];
        for (target, login, want) in cases {
            let got = decide(&grants, target, login);
            match (got, want) {
                (Ok(a), Ok((id, l))) => {
                    assert_eq!((a.grant_id.as_str(), a.login.as_str()), (id, l))
                }
                (Err(d), Err(msg)) => assert!(d.to_string().contains(msg), "{d}"),
                (got, want) => panic!("{target} {login:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn grant_with_no_logins_grants_nothing() {
        assert!(decide(&[g("g1", "web01", &[])], "web01", None).is_err());
    }

    #[test]
    fn menu_merges_grants() {
        let m = reachable_targets(&[
            g("a", "web01", &["x"]),
            g("b", "db01", &["y"]),
            g("c", "web01", &["z", "x"]),
        ]);
        assert_eq!(
            m,
            vec![
                ("db01".into(), vec!["y".into()]),
                ("web01".into(), vec!["x".into(), "z".into()])
            ]
        );
    }
}
