//! `[console]`: which groups give which console role, and how long an idle
//! console session lives.

use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    auditor_group: Option<String>,
    responder_group: Option<String>,
    admin_group: Option<String>,
    idle_timeout_secs: Option<u64>,
}

/// The validated `[console]` section.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Members may read, replay and verify.
    pub auditor_group: String,
    /// Members may also terminate sessions and set locks.
    pub responder_group: String,
    /// Members may do everything the admin API allows.
    pub admin_group: String,
    /// A console session unused this long is signed out.
    pub idle_timeout: Duration,
}

impl RawConsole {
    pub(super) fn check(self, problems: &mut Vec<String>) -> ConsoleConfig {
        let mut group = |key: &str, v: Option<String>, default: &str| {
            let g = v.unwrap_or_else(|| default.to_string());
            if crate::names::Name::parse(&g).is_err() {
                problems.push(format!("console.{key} = {g:?}: not a valid group name"));
            }
            g
        };
        let auditor_group = group("auditor_group", self.auditor_group, "auditors");
        let responder_group = group("responder_group", self.responder_group, "responders");
        let admin_group = group("admin_group", self.admin_group, "admins");
        let secs = self.idle_timeout_secs.unwrap_or(15 * 60);
        if !(60..=24 * 3600).contains(&secs) {
            problems.push(format!(
                "console.idle_timeout_secs = {secs}: expected between 60 and 86400"
            ));
        }
        ConsoleConfig {
            auditor_group,
            responder_group,
            admin_group,
            idle_timeout: Duration::from_secs(secs.clamp(60, 24 * 3600)),
        }
    }
}
