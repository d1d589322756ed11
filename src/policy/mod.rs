//! Pure access decisions: which grant lets a user reach a target as a login,
//! until when, and which channels and requests a session may use.
//!
//! No I/O, no async, no clock: `now` and the session's start are passed in, so
//! every rule is a table-driven unit test.

pub mod command;
mod exec;
mod gate;
pub mod lock;
mod shell;
pub mod window;

pub use command::{ExecKind, Transfer, classify as classify_exec};
pub use exec::{ExecRefusal, ExecRules, PatternError, glob};
pub use gate::{ChannelKind, PERMISSION_NAMES, Permissions, SessionRequest, env_allowed};
pub use lock::{Lock, LockScope, Subject};
pub use shell::ShellError;
pub use window::{Schedule, WindowError};

use jiff::Timestamp;
use std::time::Duration;

/// A grant as policy sees it.
#[derive(Debug, Clone)]
pub struct Grant {
    pub id: String,
    /// Whom the grant names, for explanations ("group ops").
    pub via: String,
    pub target: String,
    /// Allowed upstream logins; the first is the default.
    pub logins: Vec<String>,
    pub valid_from: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    pub schedule: Option<Schedule>,
    pub max_session: Option<Duration>,
    pub permissions: Permissions,
}

impl Grant {
    /// A grant with no time limits and the default permissions.
    pub fn standing(id: &str, via: &str, target: &str, logins: &[&str]) -> Grant {
        Grant {
            id: id.into(),
            via: via.into(),
            target: target.into(),
            logins: logins.iter().map(|s| s.to_string()).collect(),
            valid_from: None,
            valid_until: None,
            schedule: None,
            max_session: None,
            permissions: Permissions::session_default(),
        }
    }
}

/// Why a session must end at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    WindowCloses,
    GrantExpires,
    MaxSessionLength,
}

impl EndCause {
    pub fn describe(self) -> &'static str {
        match self {
            EndCause::WindowCloses => "the access window closes",
            EndCause::GrantExpires => "the grant expires",
            EndCause::MaxSessionLength => "the maximum session length is reached",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Allow {
    pub grant_id: String,
    pub via: String,
    pub login: String,
    pub permissions: Permissions,
    /// The earliest of window end, grant expiry and start + max length.
    pub deadline: Option<(Timestamp, EndCause)>,
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
    #[error("access to {target} is outside your time window; it opens next at {next}")]
    OutsideWindow { target: String, next: String },
    #[error("access to {target} is outside your time window (no opening in the next week)")]
    NeverOpens { target: String },
    #[error("your grant for {target} is valid from {from}")]
    NotYetValid { target: String, from: String },
    #[error("your grant for {target} expired at {until}")]
    Expired { target: String, until: String },
}

/// Why one grant does not allow access now, ranked so the most useful
/// explanation wins (the soonest opening first).
fn check(
    g: &Grant,
    now: Timestamp,
    started: Timestamp,
) -> Result<Option<(Timestamp, EndCause)>, (u8, Timestamp, Deny)> {
    let target = g.target.clone();
    if let Some(from) = g.valid_from
        && now < from
    {
        return Err((
            1,
            from,
            Deny::NotYetValid {
                target,
                from: from.to_string(),
            },
        ));
    }
    if let Some(until) = g.valid_until
        && now >= until
    {
        return Err((
            3,
            until,
            Deny::Expired {
                target,
                until: until.to_string(),
            },
        ));
    }
    let mut deadline: Option<(Timestamp, EndCause)> =
        g.valid_until.map(|u| (u, EndCause::GrantExpires));
    if let Some(s) = &g.schedule {
        match s.open_until(now) {
            Some(end) => deadline = earliest(deadline, Some((end, EndCause::WindowCloses))),
            None => {
                return Err(match s.next_open(now) {
                    Some(next) => (
                        0,
                        next,
                        Deny::OutsideWindow {
                            target,
                            next: s.show(next),
                        },
                    ),
                    None => (2, now, Deny::NeverOpens { target }),
                });
            }
        }
    }
    if let Some(max) = g.max_session {
        let end = jiff::SignedDuration::try_from(max)
            .ok()
            .and_then(|d| started.checked_add(d).ok());
        if let Some(end) = end {
            if now >= end {
                return Err((
                    3,
                    end,
                    Deny::Expired {
                        target,
                        until: format!("{end} (maximum session length)"),
                    },
                ));
            }
            deadline = earliest(deadline, Some((end, EndCause::MaxSessionLength)));
        }
    }
    Ok(deadline)
}

fn earliest(
    a: Option<(Timestamp, EndCause)>,
    b: Option<(Timestamp, EndCause)>,
) -> Option<(Timestamp, EndCause)> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.0 < x.0 { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Decides access to `target` as `login` (or the default login) at `now`,
/// for a session that started at `started` (`now` for a new login).
/// Among several grants that allow it, the one whose deadline is latest wins.
pub fn decide(
    grants: &[Grant],
    target: &str,
    login: Option<&str>,
    now: Timestamp,
    started: Timestamp,
) -> Result<Allow, Deny> {
    let for_target: Vec<&Grant> = grants
        .iter()
        .filter(|g| g.target == target && !g.logins.is_empty())
        .collect();
    if for_target.is_empty() {
        return Err(Deny::NoGrant {
            target: target.to_string(),
        });
    }
    let candidates: Vec<(&Grant, String)> = match login {
        None => for_target
            .iter()
            .map(|g| (*g, g.logins[0].clone()))
            .collect(),
        Some(l) => for_target
            .iter()
            .filter(|g| g.logins.iter().any(|x| x == l))
            .map(|g| (*g, l.to_string()))
            .collect(),
    };
    if candidates.is_empty() {
        let mut allowed: Vec<&str> = for_target
            .iter()
            .flat_map(|g| g.logins.iter().map(String::as_str))
            .collect();
        allowed.sort_unstable();
        allowed.dedup();
        return Err(Deny::LoginNotAllowed {
            target: target.to_string(),
            login: login.unwrap_or_default().to_string(),
            allowed: allowed.join(", "),
        });
    }
    let mut best: Option<Allow> = None;
    let mut why_not: Option<(u8, Timestamp, Deny)> = None;
    for (g, login) in candidates {
        match check(g, now, started) {
            Ok(deadline) => {
                let better = match &best {
                    None => true,
                    Some(b) => match (b.deadline, deadline) {
                        (Some(_), None) => true,
                        (Some(x), Some(y)) => y.0 > x.0,
                        _ => false,
                    },
                };
                if better {
                    best = Some(Allow {
                        grant_id: g.id.clone(),
                        via: g.via.clone(),
                        login,
                        permissions: g.permissions.clone(),
                        deadline,
                    });
                }
            }
            Err(reason) => {
                if why_not
                    .as_ref()
                    .is_none_or(|w| (reason.0, reason.1) < (w.0, w.1))
                {
                    why_not = Some(reason);
                }
            }
        }
    }
    match (best, why_not) {
        (Some(a), _) => Ok(a),
        (None, Some((_, _, deny))) => Err(deny),
        (None, None) => Err(Deny::NoGrant {
            target: target.to_string(),
        }),
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
mod tests;
