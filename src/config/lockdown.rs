//! `[lockdown]` in the config: automatic rules and the webhook they notify,
//! parsed into checked types (every problem reported at once).

use ipnet::IpNet;
use regex::Regex;
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLockdown {
    webhook_url: Option<String>,
    webhook_timeout_secs: Option<u64>,
    webhook_attempts: Option<u32>,
    /// The built-in `flag-ssh-keys` and `flag-crontab` rules (default on).
    default_rules: Option<bool>,
    /// Plain `http://` webhook URLs are refused unless this is set: the body
    /// names users, targets and sources.
    #[serde(default)]
    allow_http_webhooks: bool,
    /// Typed command lines are left out of webhook bodies unless this is set
    /// (they may hold secrets typed on the command line).
    #[serde(default)]
    webhook_include_commands: bool,
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    /// A regular expression matched against each typed shell line and exec command.
    command: Option<String>,
    /// A burst of login failures (any factor) ...
    failures: Option<u32>,
    /// ... within this long ("60s") ...
    within: Option<String>,
    /// ... for one "user" or one "source" ...
    per: Option<String>,
    /// ... counting only failures after a verified first factor ("second",
    /// the default) or every failure, wrong passwords included ("any").
    factor: Option<String>,
    host_key_mismatch: Option<bool>,
    /// Connections from outside these networks.
    source_outside: Option<Vec<String>>,
    action: String,
    /// How long a lock lasts ("1h"); without it, until lifted.
    duration: Option<String>,
    #[serde(default)]
    notify: bool,
}

#[derive(Debug, Clone)]
pub enum Condition {
    Command(Regex),
    Failures {
        count: u32,
        within: Duration,
        per: Per,
        counted: Counted,
    },
    HostKeyMismatch,
    SourceOutside(Vec<IpNet>),
}

/// Where in the login a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No first factor verified yet: anyone who can reach the port and
    /// guess a username can cause it.
    Before,
    /// After a verified password or key on this connection (a wrong code,
    /// or no second factor enrolled): only a holder of the first factor.
    After,
}

/// Which login failures a `failures` rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Only failures after a verified first factor (`factor = "second"`).
    SecondFactor,
    /// Every failure, wrong passwords and keys included (`factor = "any"`).
    Any,
}

impl Counted {
    pub fn counts(self, stage: Stage) -> bool {
        self == Counted::Any || stage == Stage::After
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    User,
    Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// End the session the event happened in (or refuse the connection).
    EndSession,
    LockUser,
    LockTarget,
    LockSource,
    LockAll,
    /// Only audit the firing and notify the webhook: detection.
    Flag,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::EndSession => "end_session",
            Action::LockUser => "lock_user",
            Action::LockTarget => "lock_target",
            Action::LockSource => "lock_source",
            Action::LockAll => "lock_all",
            Action::Flag => "flag",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub condition: Condition,
    pub action: Action,
    pub duration: Option<Duration>,
    pub notify: bool,
}

#[derive(Debug, Clone, Default)]
pub struct LockdownConfig {
    pub rules: Vec<Rule>,
    pub webhook_url: Option<String>,
    pub webhook_timeout: Duration,
    pub webhook_attempts: u32,
    pub webhook_include_commands: bool,
}

impl RawLockdown {
    pub fn check(self, problems: &mut Vec<String>) -> LockdownConfig {
        if let Some(u) = &self.webhook_url {
            if u.starts_with("http://") && !self.allow_http_webhooks {
                problems.push(format!(
                    "lockdown.webhook_url = {u:?}: webhooks must use https:// (set \
                     lockdown.allow_http_webhooks = true to send over plain HTTP, e.g. to a \
                     relay on this host)"
                ));
            } else if !(u.starts_with("https://") || u.starts_with("http://")) {
                problems.push(format!(
                    "lockdown.webhook_url = {u:?}: expected an https:// URL"
                ));
            }
        }
        let mut rules = self
            .rules
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| r.check(i, problems))
            .collect::<Vec<_>>();
        if self.default_rules.unwrap_or(true) {
            // A configured rule of the same name replaces the default one.
            for (name, re) in super::default_rules::all() {
                if rules.iter().any(|r| r.name == name) {
                    continue;
                }
                match Regex::new(&re) {
                    Ok(re) => rules.push(Rule {
                        name: name.into(),
                        condition: Condition::Command(re),
                        action: Action::Flag,
                        duration: None,
                        notify: true,
                    }),
                    Err(e) => problems.push(format!("default rule {name}: {e}")),
                }
            }
        }
        let mut names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            problems.push("lockdown.rule: two rules have the same name".into());
        }
        LockdownConfig {
            rules,
            webhook_url: self.webhook_url,
            webhook_timeout: Duration::from_secs(
                self.webhook_timeout_secs.unwrap_or(5).clamp(1, 60),
            ),
            webhook_attempts: self.webhook_attempts.unwrap_or(4).clamp(1, 10),
            webhook_include_commands: self.webhook_include_commands,
        }
    }
}

impl RawRule {
    fn check(self, i: usize, problems: &mut Vec<String>) -> Option<Rule> {
        let at = format!("lockdown.rule[{i}] ({:?})", self.name);
        let start = problems.len();
        if crate::names::Name::parse(&self.name).is_err() {
            problems.push(format!("{at}: name must use [A-Za-z0-9._-]"));
        }
        let condition = self.condition(&at, problems);
        let action = parse_action(&self.action).unwrap_or_else(|| {
            problems.push(format!(
                "{at}: action {:?} is not one of end_session, lock_user, lock_target, lock_source, lock_all, flag",
                self.action
            ));
            Action::EndSession
        });
        if self.factor.is_some() && self.failures.is_none() {
            problems.push(format!("{at}: factor applies only to a failures rule"));
        }
        let duration = self.duration.as_deref().and_then(|d| {
            super::parse_duration(d)
                .map(Duration::from_secs)
                .map_err(|e| problems.push(format!("{at}: duration: {e}")))
                .ok()
        });
        let condition = condition?;
        if let Err(why) = action_fits(&condition, action) {
            problems.push(format!("{at}: action {}: {why}", action.name()));
        }
        (problems.len() == start).then_some(Rule {
            name: self.name,
            condition,
            action,
            duration,
            notify: self.notify,
        })
    }

    fn condition(&self, at: &str, problems: &mut Vec<String>) -> Option<Condition> {
        let given = [
            self.command.is_some(),
            self.failures.is_some(),
            self.host_key_mismatch == Some(true),
            self.source_outside.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            problems.push(format!(
                "{at}: give exactly one condition: command, failures, host_key_mismatch or source_outside"
            ));
            return None;
        }
        if let Some(c) = &self.command {
            return Regex::new(c)
                .map(Condition::Command)
                .map_err(|e| problems.push(format!("{at}: command is not a valid regex: {e}")))
                .ok();
        }
        if let Some(count) = self.failures {
            return self.failures_condition(count, at, problems);
        }
        if let Some(nets) = &self.source_outside {
            let parsed: Result<Vec<IpNet>, String> = nets.iter().map(|n| parse_cidr(n)).collect();
            return parsed
                .map(Condition::SourceOutside)
                .map_err(|e| problems.push(format!("{at}: source_outside: {e}")))
                .ok();
        }
        Some(Condition::HostKeyMismatch)
    }

    fn failures_condition(
        &self,
        count: u32,
        at: &str,
        problems: &mut Vec<String>,
    ) -> Option<Condition> {
        let within = match self.within.as_deref().map(super::parse_duration) {
            Some(Ok(s)) => Duration::from_secs(s),
            Some(Err(e)) => {
                problems.push(format!("{at}: within: {e}"));
                return None;
            }
            None => Duration::from_secs(60),
        };
        let per = match self.per.as_deref().unwrap_or("user") {
            "user" => Per::User,
            "source" => Per::Source,
            other => {
                problems.push(format!("{at}: per = {other:?}: expected user or source"));
                return None;
            }
        };
        let counted = match self.factor.as_deref().unwrap_or("second") {
            "second" => Counted::SecondFactor,
            "any" => Counted::Any,
            other => {
                problems.push(format!(
                    "{at}: factor = {other:?}: expected \"second\" (failures after a verified first factor) or \"any\""
                ));
                return None;
            }
        };
        if !(2..=10_000).contains(&count) {
            problems.push(format!("{at}: failures must be between 2 and 10000"));
            return None;
        }
        Some(Condition::Failures {
            count,
            within,
            per,
            counted,
        })
    }
}

fn parse_action(s: &str) -> Option<Action> {
    Some(match s {
        "end_session" => Action::EndSession,
        "lock_user" => Action::LockUser,
        "lock_target" => Action::LockTarget,
        "lock_source" => Action::LockSource,
        "lock_all" => Action::LockAll,
        "flag" => Action::Flag,
        _ => return None,
    })
}

/// Whether the action may follow the condition: the facts known when it
/// fires must be enough for it, and what an unauthenticated party controls
/// (wrong passwords for any username, its own address) may refuse or lock
/// sources but never lock a user, end sessions or lock everything — else
/// anyone on the network could lock the staff out in the middle of an
/// incident.
fn action_fits(c: &Condition, a: Action) -> Result<(), String> {
    const NO_USER: &str = "no session or user is known when it fires";
    match (c, a) {
        (Condition::Command(_) | Condition::HostKeyMismatch, _) => Ok(()),
        (Condition::Failures { counted, per, .. }, a) => match a {
            Action::Flag => Ok(()),
            // Counted per user, the failure that completes a burst may be the
            // real user's one typo after an outsider's four: its source is
            // the victim's (an office's NAT), not the sender's.
            Action::LockSource if *counted == Counted::Any && *per == Per::User => Err(
                "factor = \"any\" with per = \"user\" would lock the source of whichever \
                 failure completes the burst, which an outsider can arrange to be the real \
                 user's; use per = \"source\""
                    .into(),
            ),
            Action::LockSource => Ok(()),
            Action::EndSession | Action::LockTarget => Err(format!(
                "a failures rule knows no {} to act on; use lock_user or lock_source",
                if a == Action::LockTarget {
                    "target"
                } else {
                    "session"
                }
            )),
            _ if *counted == Counted::Any => Err(
                "factor = \"any\" counts wrong passwords and keys that anyone can send for any \
                 username, so it may only lock_source; count failures after a verified first \
                 factor (factor = \"second\", the default) to lock a user or everything"
                    .into(),
            ),
            Action::LockUser if *per == Per::Source => {
                Err(format!("per = \"source\": {NO_USER}; use per = \"user\""))
            }
            Action::LockUser | Action::LockAll => Ok(()),
        },
        (Condition::SourceOutside(_), Action::EndSession | Action::LockSource) => Ok(()),
        (Condition::SourceOutside(_), Action::LockAll) => Err(
            "source_outside is decided before anyone logs in, by an address anyone can \
             connect from: it may refuse the connection (end_session) or lock_source, never \
             lock everything"
                .into(),
        ),
        (Condition::SourceOutside(_), _) => {
            Err(format!("source_outside is decided before login: {NO_USER}"))
        }
    }
}

/// Parses `10.0.0.0/24`, `2001:db8::/32` or a bare address (a /32 or /128).
/// An IPv4-mapped form (`::ffff:10.0.0.0/104`, `::ffff:10.0.0.1`) becomes
/// the IPv4 network: clients are canonical from accept on (an IPv4 client
/// of a dual-stack socket is `10.0.0.1`), so the mapped form would never match.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net = match s.parse::<IpNet>() {
        Ok(n) => n.trunc(),
        Err(_) => s
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("{s:?} is not an address or a CIDR network"))?,
    };
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && let Some(len) = v6.prefix_len().checked_sub(96)
        && let Ok(v4net) = ipnet::Ipv4Net::new(v4, len)
    {
        return Ok(IpNet::V4(v4net.trunc()));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LockdownConfig, Vec<String>> {
        let raw: RawLockdown = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut problems = Vec::new();
        let c = raw.check(&mut problems);
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(problems)
        }
    }

    #[test]
    fn good_rules_parse() {
        let c = parse(
            r#"
            webhook_url = "http://127.0.0.1:9/hook"
            allow_http_webhooks = true
            [[rule]]
            name = "rm-root"
            command = 'rm\s+-rf\s+/(\s|$)'
            action = "end_session"
            notify = true
            [[rule]]
            name = "totp-burst"
            failures = 5
            within = "60s"
            action = "lock_user"
            duration = "15m"
            [[rule]]
            name = "hostkey"
            host_key_mismatch = true
            action = "lock_target"
            [[rule]]
            name = "office"
            source_outside = ["10.0.0.0/8"]
            action = "lock_source"
            duration = "1h"
            "#,
        )
        .unwrap();
        // The four above, then the default flagging rules.
        assert_eq!(c.rules.len(), 6);
        assert_eq!(c.rules[4].name, "flag-ssh-keys");
        assert_eq!(c.rules[5].action, Action::Flag);
        assert_eq!(c.rules[1].duration, Some(Duration::from_secs(900)));
        assert!(matches!(&c.rules[0].condition, Condition::Command(r) if r.is_match("rm -rf / ")));
        assert_eq!(c.webhook_attempts, 4);
    }

    #[test]
    fn default_rules_can_be_replaced_or_turned_off() {
        assert!(parse("default_rules = false").unwrap().rules.is_empty());
        let c = parse(
            "[[rule]]\nname = \"flag-crontab\"\ncommand = \"crontab\"\naction = \"end_session\"\n",
        )
        .unwrap();
        let names: Vec<_> = c
            .rules
            .iter()
            .map(|r| (r.name.as_str(), r.action))
            .collect();
        assert_eq!(
            names,
            [
                ("flag-crontab", Action::EndSession),
                ("flag-ssh-keys", Action::Flag)
            ]
        );
    }

    #[test]
    fn every_bad_rule_is_reported() {
        let e = parse(
            r#"
            webhook_url = "ftp://x"
            [[rule]]
            name = "a b"
            command = "("
            action = "explode"
            [[rule]]
            name = "two"
            command = "x"
            failures = 3
            action = "lock_user"
            [[rule]]
            name = "burst"
            failures = 3
            per = "source"
            action = "lock_user"
            "#,
        )
        .unwrap_err();
        let all = e.join("\n");
        for needle in [
            "webhook_url",
            "name must",
            "not a valid regex",
            "explode",
            "exactly one",
            "use per = \"user\"",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    /// What an unauthenticated party controls may lock sources, nothing more.
    #[test]
    fn outsider_conditions_cannot_lock_users_sessions_or_everything() {
        let rule = |cond: &str, action: &str| {
            parse(&format!(
                "[[rule]]\nname = \"r\"\n{cond}\naction = \"{action}\"\n"
            ))
        };
        let any = "failures = 5\nfactor = \"any\"";
        let any_source = "failures = 5\nfactor = \"any\"\nper = \"source\"";
        let outside = "source_outside = [\"10.0.0.0/8\"]";
        for (cond, action) in [
            (any, "lock_user"),
            (any, "lock_all"),
            (any_source, "lock_all"),
            (any, "end_session"),
            (outside, "lock_all"),
            (outside, "lock_user"),
        ] {
            let e = rule(cond, action).unwrap_err().join("\n");
            assert!(e.contains(action), "{cond} {action}: {e}");
            assert!(
                e.contains("anyone") || e.contains("before login") || e.contains("no session"),
                "not a clear reason: {e}"
            );
        }
        let e = rule(any, "lock_source").unwrap_err().join("\n");
        assert!(e.contains("per = \"source\""), "{e}");
        for (cond, action) in [
            (any, "flag"),
            (any_source, "lock_source"),
            (outside, "lock_source"),
            (outside, "end_session"),
            ("failures = 5", "lock_user"),
            ("failures = 5\nfactor = \"second\"", "lock_all"),
        ] {
            assert!(rule(cond, action).is_ok(), "{cond} {action}");
        }
        let c = rule("failures = 5", "lock_user").unwrap();
        let Condition::Failures { counted, .. } = &c.rules[0].condition else {
            panic!("not a failures rule");
        };
        assert_eq!(*counted, Counted::SecondFactor, "the default must be safe");
        assert!(!counted.counts(Stage::Before) && counted.counts(Stage::After));
        assert!(rule("failures = 5\nfactor = \"first\"", "lock_source").is_err());
        assert!(rule("command = \"x\"\nfactor = \"any\"", "end_session").is_err());
    }

    #[test]
    fn webhooks_need_https_unless_http_is_allowed() {
        let e = parse(r#"webhook_url = "http://hooks.example/x""#).unwrap_err();
        let all = e.join("\n");
        assert!(
            all.contains("https://") && all.contains("allow_http_webhooks"),
            "{all}"
        );
        let c =
            parse("webhook_url = \"http://127.0.0.1:9/hook\"\nallow_http_webhooks = true").unwrap();
        assert_eq!(c.webhook_url.as_deref(), Some("http://127.0.0.1:9/hook"));
        assert!(parse(r#"webhook_url = "https://hooks.example/x""#).is_ok());
    }
}
