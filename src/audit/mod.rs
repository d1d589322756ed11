//! Typed audit events. Every event names who, what, from where, about what,
//! and why; no secret, password or code is ever a field.
//!
//! Events are appended through the store; chaining them (each row carrying the
//! previous row's keyed hash) is the audit issue's work.

use crate::app::{new_id, now_ms};
use crate::names::escape_for_log;
use crate::store::{AuditRow, Store, StoreError};
use serde_json::json;

#[derive(Debug, Clone)]
pub enum AuditEvent {
    LoginSucceeded {
        user: String,
        username_sent: String,
        source: String,
        factors: String,
    },
    /// Failures since the last summary, per user, address and factor.
    LoginFailures {
        username_sent: String,
        source: String,
        factor: String,
        count: u32,
    },
    LoginThrottled {
        username_sent: String,
        source: String,
        reason: String,
    },
    TotpEnrolled {
        user: String,
        actor: String,
    },
    TotpRemoved {
        user: String,
        actor: String,
    },
    MfaExemption {
        user: String,
        actor: String,
        exempt: bool,
    },
    SourceBlocked {
        cidr: String,
        actor: String,
        reason: String,
    },
    SourceUnblocked {
        cidr: String,
        actor: String,
    },
    GrantAdded {
        id: String,
        actor: String,
        summary: String,
    },
    GrantRemoved {
        id: String,
        actor: String,
    },
    AccessRequested {
        id: String,
        user: String,
        target: String,
        login: String,
        secs: u64,
        reason: String,
    },
    AccessDecided {
        id: String,
        approver: String,
        approved: bool,
        grant: Option<String>,
    },
    SessionEndedByPolicy {
        session: String,
        user: String,
        reason: String,
    },
    RecordingFailed {
        session: String,
        recording: String,
        error: String,
    },
    RecordingCutShort {
        session: String,
        recording: String,
        events: u64,
    },
    RecordingsPruned {
        actor: String,
        count: usize,
        older_than_days: u64,
    },
    LockCreated {
        id: String,
        scope: String,
        reason: String,
        author: String,
        expires_ms: Option<i64>,
        ended: Vec<String>,
    },
    LockLifted {
        id: String,
        actor: String,
    },
    /// A login or channel refused because a lock covers it.
    AccessLocked {
        user: String,
        source: String,
        target: String,
        lock: String,
    },
    RuleFired {
        rule: String,
        subject: String,
        source: String,
        action: String,
        detail: String,
    },
    WebhookFailed {
        rule: String,
        attempts: u32,
        error: String,
    },
    /// An SSH connection nested in an authenticated one (ProxyJump) was
    /// accepted for `target`; the session it then opens is audited as usual.
    JumpOpened {
        user: String,
        source: String,
        target: String,
        login_sent: String,
        via_session: String,
    },
    ApiTokenCreated {
        id: String,
        name: String,
        scope: String,
        actor: String,
        expires_ms: Option<i64>,
    },
    ApiTokenRevoked {
        id: String,
        actor: String,
    },
    /// A write through the admin API, recorded before it is carried out.
    ApiWrite {
        actor: String,
        source: String,
        method: String,
        path: String,
    },
    /// A live session ended on request (admin API).
    SessionTerminated {
        session: String,
        actor: String,
        reason: String,
    },
    /// A forwarded connection, written durably before the destination is dialled.
    ForwardOpened(crate::forward::ForwardMeta),
    /// The same connection at its end, with its duration and bytes.
    ForwardClosed {
        meta: crate::forward::ForwardMeta,
        duration_ms: u64,
        bytes_up: u64,
        bytes_down: u64,
        reason: String,
    },
    /// A forwarding request the gate refused.
    ForwardRefused {
        session: String,
        user: String,
        source: String,
        kind: String,
        requested: String,
        reason: String,
    },
    /// Agent forwarding turned on for a session channel (allowed by the grant).
    AgentForwarded {
        session: String,
        user: String,
        source: String,
        target: String,
    },
}

impl AuditEvent {
    pub fn to_row(&self) -> AuditRow {
        let (kind, actor, source, subject, detail) = match self {
            AuditEvent::LoginSucceeded {
                user,
                username_sent,
                source,
                factors,
            } => (
                "login.succeeded",
                user.clone(),
                source.clone(),
                escape_for_log(username_sent),
                json!({ "factors": factors }),
            ),
            AuditEvent::LoginFailures {
                username_sent,
                source,
                factor,
                count,
            } => (
                "login.failures",
                escape_for_log(username_sent),
                source.clone(),
                escape_for_log(username_sent),
                json!({ "factor": factor, "count": count }),
            ),
            AuditEvent::LoginThrottled {
                username_sent,
                source,
                reason,
            } => (
                "login.throttled",
                escape_for_log(username_sent),
                source.clone(),
                escape_for_log(username_sent),
                json!({ "reason": reason }),
            ),
            AuditEvent::TotpEnrolled { user, actor } => (
                "mfa.totp.enrolled",
                actor.clone(),
                String::new(),
                user.clone(),
                json!({}),
            ),
            AuditEvent::TotpRemoved { user, actor } => (
                "mfa.totp.removed",
                actor.clone(),
                String::new(),
                user.clone(),
                json!({}),
            ),
            AuditEvent::MfaExemption {
                user,
                actor,
                exempt,
            } => (
                "mfa.exemption",
                actor.clone(),
                String::new(),
                user.clone(),
                json!({ "exempt": exempt }),
            ),
            AuditEvent::SourceBlocked {
                cidr,
                actor,
                reason,
            } => (
                "source.blocked",
                actor.clone(),
                String::new(),
                cidr.clone(),
                json!({ "reason": reason }),
            ),
            AuditEvent::SourceUnblocked { cidr, actor } => (
                "source.unblocked",
                actor.clone(),
                String::new(),
                cidr.clone(),
                json!({}),
            ),
            AuditEvent::GrantAdded { id, actor, summary } => (
                "grant.added",
                actor.clone(),
                String::new(),
                id.clone(),
                json!({ "grant": summary }),
            ),
            AuditEvent::GrantRemoved { id, actor } => (
                "grant.removed",
                actor.clone(),
                String::new(),
                id.clone(),
                json!({}),
            ),
            AuditEvent::AccessRequested {
                id,
                user,
                target,
                login,
                secs,
                reason,
            } => (
                "access.requested",
                user.clone(),
                String::new(),
                id.clone(),
                json!({ "target": target, "login": login, "seconds": secs, "reason": reason }),
            ),
            AuditEvent::AccessDecided {
                id,
                approver,
                approved,
                grant,
            } => (
                if *approved {
                    "access.approved"
                } else {
                    "access.denied"
                },
                approver.clone(),
                String::new(),
                id.clone(),
                json!({ "grant": grant }),
            ),
            AuditEvent::RecordingFailed {
                session,
                recording,
                error,
            } => (
                "recording.failed",
                "portcullis".into(),
                String::new(),
                session.clone(),
                json!({ "recording": recording, "error": error }),
            ),
            AuditEvent::RecordingCutShort {
                session,
                recording,
                events,
            } => (
                "recording.cut_short",
                "portcullis".into(),
                String::new(),
                session.clone(),
                json!({ "recording": recording, "events": events }),
            ),
            AuditEvent::RecordingsPruned {
                actor,
                count,
                older_than_days,
            } => (
                "recordings.pruned",
                actor.clone(),
                String::new(),
                String::new(),
                json!({ "count": count, "older_than_days": older_than_days }),
            ),
            AuditEvent::SessionEndedByPolicy {
                session,
                user,
                reason,
            } => (
                "session.ended_by_policy",
                "portcullis".into(),
                String::new(),
                session.clone(),
                json!({ "user": user, "reason": reason }),
            ),
            AuditEvent::LockCreated {
                id,
                scope,
                reason,
                author,
                expires_ms,
                ended,
            } => (
                "lock.created",
                author.clone(),
                String::new(),
                scope.clone(),
                json!({ "lock": id, "reason": reason, "expires_ms": expires_ms, "sessions_ended": ended }),
            ),
            AuditEvent::LockLifted { id, actor } => (
                "lock.lifted",
                actor.clone(),
                String::new(),
                id.clone(),
                json!({}),
            ),
            AuditEvent::AccessLocked {
                user,
                source,
                target,
                lock,
            } => (
                "access.locked",
                user.clone(),
                source.clone(),
                target.clone(),
                json!({ "lock": lock }),
            ),
            AuditEvent::RuleFired {
                rule,
                subject,
                source,
                action,
                detail,
            } => (
                "rule.fired",
                format!("rule:{}", escape_for_log(rule)),
                source.clone(),
                escape_for_log(subject),
                json!({ "action": action, "detail": detail }),
            ),
            AuditEvent::WebhookFailed {
                rule,
                attempts,
                error,
            } => (
                "webhook.failed",
                format!("rule:{}", escape_for_log(rule)),
                String::new(),
                String::new(),
                json!({ "attempts": attempts, "error": error }),
            ),
            AuditEvent::JumpOpened {
                user,
                source,
                target,
                login_sent,
                via_session,
            } => (
                "jump.opened",
                user.clone(),
                source.clone(),
                target.clone(),
                json!({ "login_sent": escape_for_log(login_sent), "via_session": via_session }),
            ),
            AuditEvent::ApiTokenCreated {
                id,
                name,
                scope,
                actor,
                expires_ms,
            } => (
                "api.token.created",
                actor.clone(),
                String::new(),
                id.clone(),
                json!({ "name": name, "scope": scope, "expires_ms": expires_ms }),
            ),
            AuditEvent::ApiTokenRevoked { id, actor } => (
                "api.token.revoked",
                actor.clone(),
                String::new(),
                id.clone(),
                json!({}),
            ),
            AuditEvent::ApiWrite {
                actor,
                source,
                method,
                path,
            } => (
                "api.write",
                actor.clone(),
                source.clone(),
                escape_for_log(path),
                json!({ "method": method }),
            ),
            AuditEvent::SessionTerminated {
                session,
                actor,
                reason,
            } => (
                "session.terminated",
                actor.clone(),
                String::new(),
                session.clone(),
                json!({ "reason": reason }),
            ),
            AuditEvent::ForwardOpened(m) => (
                "forward.opened",
                m.user.clone(),
                m.source.clone(),
                m.target.clone(),
                m.to_json(),
            ),
            AuditEvent::ForwardClosed {
                meta,
                duration_ms,
                bytes_up,
                bytes_down,
                reason,
            } => {
                let mut d = meta.to_json();
                d["duration_ms"] = json!(duration_ms);
                d["bytes_up"] = json!(bytes_up);
                d["bytes_down"] = json!(bytes_down);
                d["reason"] = json!(reason);
                (
                    "forward.closed",
                    meta.user.clone(),
                    meta.source.clone(),
                    meta.target.clone(),
                    d,
                )
            }
            AuditEvent::ForwardRefused {
                session,
                user,
                source,
                kind,
                requested,
                reason,
            } => (
                "forward.refused",
                user.clone(),
                source.clone(),
                escape_for_log(requested),
                json!({ "session": session, "kind": kind, "requested": escape_for_log(requested), "reason": reason }),
            ),
            AuditEvent::AgentForwarded {
                session,
                user,
                source,
                target,
            } => (
                "agent.forwarded",
                user.clone(),
                source.clone(),
                target.clone(),
                json!({ "session": session }),
            ),
        };
        AuditRow {
            id: new_id(),
            ts_ms: now_ms(),
            kind: kind.to_string(),
            actor,
            source,
            subject,
            detail: detail.to_string(),
        }
    }
}

pub async fn record(store: &Store, event: AuditEvent) -> Result<(), StoreError> {
    store.append_audit(&event.to_row()).await
}

/// The operator running an admin command, for the audit trail.
pub fn cli_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{}", escape_for_log(&user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_usernames_are_escaped() {
        let r = AuditEvent::LoginFailures {
            username_sent: "evil\n\x1b[2Jroot".into(),
            source: "10.0.0.1".into(),
            factor: "password".into(),
            count: 3,
        }
        .to_row();
        assert!(
            !r.actor.contains('\n') && !r.actor.contains('\x1b'),
            "{}",
            r.actor
        );
        assert_eq!(r.kind, "login.failures");
        assert!(r.detail.contains("\"count\":3"));
    }
}
