//! `[jump]`: how far the host CA is trusted and how long its certificates live.

use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJump {
    host_patterns: Option<Vec<String>>,
    cert_hours: Option<u64>,
}

/// The validated `[jump]` section.
#[derive(Debug, Clone)]
pub struct JumpConfig {
    /// known_hosts patterns `host-ca show` prints instead of the list of
    /// target names and addresses (e.g. `*.corp.example`). Empty: the list.
    pub host_patterns: Vec<String>,
    /// How long a host certificate for a nested connection is valid. OpenSSH
    /// checks it again at every re-key, so a nested connection ends by then.
    pub cert_validity: Duration,
}

impl RawJump {
    pub(super) fn check(self, problems: &mut Vec<String>) -> JumpConfig {
        let host_patterns = self.host_patterns.unwrap_or_default();
        for p in &host_patterns {
            if let Err(why) = pattern_problem(p) {
                problems.push(format!("jump.host_patterns: {p:?} {why}"));
            }
        }
        let hours = self.cert_hours.unwrap_or(8);
        if !(1..=24).contains(&hours) {
            problems.push(format!(
                "jump.cert_hours = {hours}: expected between 1 and 24"
            ));
        }
        JumpConfig {
            host_patterns,
            cert_validity: Duration::from_secs(hours.clamp(1, 24) * 3600),
        }
    }
}

/// A pattern must name a domain: a CA trusted for `*` (or `*.*`) could
/// vouch for any host the user ever connects to, github.com included.
fn pattern_problem(p: &str) -> Result<(), &'static str> {
    if p.is_empty() || p.len() > 253 {
        return Err("must be 1 to 253 characters");
    }
    if !p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*' | '?' | '[' | ']' | ':'))
    {
        return Err(
            "may hold only letters, digits, '.', '-', '*', '?', '[', ']' and ':' (one pattern per entry, no negation)",
        );
    }
    // The part after the last wildcard must hold a dot and a name: a fixed
    // domain such as `.corp.example`, or an exact host name.
    let fixed = p.rsplit(['*', '?']).next().unwrap_or("");
    let has_wildcard = fixed.len() != p.len();
    let labels = fixed.split('.').filter(|l| !l.is_empty()).count();
    if has_wildcard && (!fixed.starts_with('.') || labels < 2) {
        return Err(
            "is too wide: a wildcard may only stand for the first labels of a fixed domain with at least two labels, such as *.corp.example",
        );
    }
    if !fixed.chars().any(|c| c.is_ascii_alphanumeric()) {
        return Err("names no host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::pattern_problem;

    #[test]
    fn only_domain_patterns_pass() {
        for ok in [
            "*.corp.example",
            "web01",
            "10.0.0.5",
            "db?.corp.example",
            "[10.0.0.5]:2222",
        ] {
            assert_eq!(pattern_problem(ok), Ok(()), "{ok}");
        }
        for bad in [
            "*",
            "*.*",
            "?*",
            "*.com",
            "*example.com",
            "!x",
            "a,b",
            "",
            "* x",
            ".",
        ] {
            assert!(pattern_problem(bad).is_err(), "{bad}");
        }
    }
}
