//! Automatic lockdown: rules from the config watch what the bastion sees
//! (typed commands, exec commands, login failure bursts, host-key
//! mismatches, connections from outside allowed networks) and act: end the
//! session, or lock a user, target, source or everything. Each firing is
//! audited under the rule's name and may notify a webhook.

use super::{LockSpec, create};
use crate::app::App;
use crate::audit::{self, AuditEvent};
use crate::clock::now_ms;
pub use crate::config::lockdown::Stage;
use crate::config::lockdown::{Action, Condition, Per, Rule};
use crate::policy::LockScope;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("webhook: {0}")]
    Webhook(String),
}

/// Where an event happened; parts not known are `None`.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub session: Option<String>,
    pub user: Option<String>,
    pub target: Option<String>,
    pub source: Option<IpAddr>,
}

fn rules(app: &App) -> &[Rule] {
    &app.config.lockdown.rules
}

/// A typed shell line or an exec command. Returns whether a rule ended the
/// session (an exec is then refused before it reaches the target).
pub async fn on_command(app: &Arc<App>, seen: &Seen, line: &str) -> bool {
    let mut ended = false;
    for rule in rules(app) {
        if let Condition::Command(re) = &rule.condition
            && re.is_match(line)
        {
            let detail = format!("command: {}", crate::names::escape_for_log(line));
            ended |= fire(app, rule, seen, &detail).await;
        }
    }
    ended
}

/// A failed login factor for `user` from `source`, at `stage` of the login.
pub async fn on_failure(app: &Arc<App>, user: &str, source: IpAddr, stage: Stage) {
    for (i, rule) in rules(app).iter().enumerate() {
        let Condition::Failures {
            count,
            within,
            per,
            counted,
        } = &rule.condition
        else {
            continue;
        };
        // The config refuses rules that would let a failure without a first
        // factor lock more than its own source; checked here too, so no mistake
        // in the config's checks can hand outsiders a lockout.
        let outsider_may = match rule.action {
            Action::Flag => true,
            Action::LockSource => *per == Per::Source,
            _ => false,
        };
        if !counted.counts(stage) || (stage == Stage::Before && !outsider_may) {
            continue;
        }
        let key = match per {
            Per::User => user.to_string(),
            Per::Source => source.to_string(),
        };
        if app.rules.burst(i, key, *count, *within, Instant::now()) {
            let seen = Seen {
                user: Some(user.to_string()),
                source: Some(source),
                ..Seen::default()
            };
            let detail = format!("{count} login failures within {}s", within.as_secs());
            fire(app, rule, &seen, &detail).await;
        }
    }
}

pub async fn on_host_key_mismatch(app: &Arc<App>, seen: &Seen) {
    for rule in rules(app) {
        if matches!(rule.condition, Condition::HostKeyMismatch) {
            fire(app, rule, seen, "upstream host key mismatch").await;
        }
    }
}

/// The first rule a new connection from `ip` breaks, if any; the caller
/// drops the connection and calls [`fire_for_source`].
pub fn source_rule(app: &App, ip: IpAddr) -> Option<usize> {
    rules(app).iter().position(|r| match &r.condition {
        Condition::SourceOutside(nets) => !nets.iter().any(|n| n.contains(&ip)),
        _ => false,
    })
}

pub async fn fire_for_source(app: &Arc<App>, rule: usize, ip: IpAddr) {
    let Some(rule) = rules(app).get(rule) else {
        return;
    };
    // Anyone can connect from outside: never more than the source (the
    // config refuses such rules; this holds should its checks be wrong).
    if !matches!(rule.action, Action::EndSession | Action::LockSource) {
        return;
    }
    let seen = Seen {
        source: Some(ip),
        ..Seen::default()
    };
    fire(
        app,
        rule,
        &seen,
        "connection from outside the allowed networks",
    )
    .await;
}

/// Acts, audits, notifies. Returns whether the session was ended.
async fn fire(app: &Arc<App>, rule: &Rule, seen: &Seen, detail: &str) -> bool {
    app.metrics.rules_fired.inc();
    let reason = format!("rule {}: {detail}", rule.name);
    let author = format!("rule:{}", rule.name);
    let expires_ms = rule
        .duration
        .map(|d| now_ms() + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2));
    let scope = match rule.action {
        Action::EndSession => seen.session.clone().map(LockScope::Session),
        Action::LockUser => seen.user.clone().map(LockScope::User),
        Action::LockTarget => seen.target.clone().map(LockScope::Target),
        Action::LockSource => seen
            .source
            .map(|ip| LockScope::Source(ipnet::IpNet::from(ip))),
        Action::LockAll => Some(LockScope::All),
        Action::Flag => None,
    };
    // The firing is audited before its effect, so the trail reads cause
    // then effect and nobody who sees the session end can miss why.
    tracing::warn!(rule = %rule.name, action = rule.action.name(), detail, "lockdown rule fired");
    let event = AuditEvent::RuleFired {
        rule: rule.name.clone(),
        subject: subject_text(seen),
        source: seen.source.map(|s| s.to_string()).unwrap_or_default(),
        action: rule.action.name().into(),
        detail: detail.into(),
    };
    if let Err(e) = audit::record(&app.store, event).await {
        tracing::error!(rule = %rule.name, error = %e, "audit of a rule firing not written");
    }
    let mut lock_id = None;
    let mut ended = false;
    if let Some(scope) = scope {
        ended = matches!(scope, LockScope::Session(_));
        let spec = LockSpec {
            scope,
            reason: reason.clone(),
            author,
            expires_ms,
        };
        match create(app, spec).await {
            Ok(o) => lock_id = Some(o.lock.id),
            Err(e) => tracing::error!(rule = %rule.name, error = %e, "rule action failed"),
        }
    }
    if rule.notify {
        notify(app, rule, seen, detail, lock_id);
    }
    ended
}

fn subject_text(seen: &Seen) -> String {
    [
        seen.user.as_deref().map(|u| format!("user {u}")),
        seen.target.as_deref().map(|t| format!("target {t}")),
        seen.session.as_deref().map(|s| format!("session {s}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ")
}

fn notify(app: &Arc<App>, rule: &Rule, seen: &Seen, detail: &str, lock: Option<String>) {
    let Some(url) = app.config.lockdown.webhook_url.clone() else {
        return;
    };
    let include = app.config.lockdown.webhook_include_commands;
    let body = webhook_body(rule, seen, detail, lock, include, now_ms());
    let name = rule.name.clone();
    let Ok(permit) = app.rules.deliveries.clone().try_acquire_owned() else {
        app.metrics.webhooks_failed.inc();
        tracing::error!(rule = %name, "too many webhook deliveries in flight; notification dropped");
        return;
    };
    let app = app.clone();
    tokio::spawn(async move {
        let attempts = app.config.lockdown.webhook_attempts;
        if let Err(e) = super::webhook::deliver(&app, &url, &body, attempts).await {
            app.metrics.webhooks_failed.inc();
            tracing::error!(rule = %name, error = %e, "webhook notification failed");
            let event = AuditEvent::WebhookFailed {
                rule: name,
                attempts,
                error: e.to_string(),
            };
            let _ = audit::record(&app.store, event).await;
        }
        drop(permit);
    });
}

/// What a webhook receives. A command rule's detail is the typed line, which
/// may hold a password typed as an argument: it leaves the bastion only when
/// `lockdown.webhook_include_commands` says so.
fn webhook_body(
    rule: &Rule,
    seen: &Seen,
    detail: &str,
    lock: Option<String>,
    include_commands: bool,
    at_ms: i64,
) -> serde_json::Value {
    let detail = if matches!(rule.condition, Condition::Command(_)) && !include_commands {
        "command: [redacted; set lockdown.webhook_include_commands = true to include it]"
    } else {
        detail
    };
    serde_json::json!({
        "event": "portcullis.rule.fired",
        "rule": rule.name,
        "action": rule.action.name(),
        "user": seen.user,
        "target": seen.target,
        "session": seen.session,
        "source": seen.source.map(|s| s.to_string()),
        "detail": detail,
        "lock": lock,
        "at_ms": at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock_state::Rules;
    use std::time::Duration;

    #[test]
    fn a_burst_fires_once_per_window() {
        let r = Rules::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        let at = |s| t0 + Duration::from_secs(s);
        assert!(!r.burst(0, "alice".into(), 3, w, at(0)));
        assert!(!r.burst(0, "alice".into(), 3, w, at(1)));
        assert!(!r.burst(0, "bob".into(), 3, w, at(1)), "keys are apart");
        assert!(r.burst(0, "alice".into(), 3, w, at(2)));
        assert!(
            !r.burst(0, "alice".into(), 3, w, at(3)),
            "the window restarted"
        );
        // Old failures fall out of the window.
        assert!(!r.burst(1, "x".into(), 2, w, at(0)));
        assert!(!r.burst(1, "x".into(), 2, w, at(100)));
    }

    #[test]
    fn typed_commands_leave_only_when_asked() {
        let rule = Rule {
            name: "mysql-pw".into(),
            condition: Condition::Command(regex::Regex::new("mysql").unwrap()),
            action: Action::EndSession,
            duration: None,
            notify: true,
        };
        let seen = Seen::default();
        let detail = "command: mysql -psecret-pw";
        let body = webhook_body(&rule, &seen, detail, None, false, 1).to_string();
        assert!(!body.contains("secret-pw"), "{body}");
        assert!(body.contains("redacted"), "{body}");
        let body = webhook_body(&rule, &seen, detail, None, true, 1).to_string();
        assert!(body.contains("secret-pw"), "{body}");
    }
}
