//! The row form of an audit event: kind, actor, source, subject and a
//! detail object, with untrusted text escaped.

use super::AuditEvent;
use crate::clock::now_ms;
use crate::names::escape_for_log;
use crate::store::AuditRow;
use serde_json::json;

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
            AuditEvent::LoginFailureSummary(s) => s.row_parts(),
            AuditEvent::ForwardSummary {
                user,
                marker,
                totals,
            } => super::rate::summary_row(user, *marker, totals),
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
            AuditEvent::TotpReset { user, actor } => (
                "mfa.totp.reset",
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
                actor,
                user,
                target,
                login,
                secs,
                reason,
            } => (
                "access.requested",
                actor.clone(),
                String::new(),
                id.clone(),
                json!({ "user": user, "target": target, "login": login, "seconds": secs, "reason": reason }),
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
                unsigned_events,
                chain_rebuilt,
            } => (
                "recording.cut_short",
                "portcullis".into(),
                String::new(),
                session.clone(),
                json!({
                    "recording": recording,
                    "events": events,
                    "unsigned_events": unsigned_events,
                    "chain_rebuilt": chain_rebuilt,
                }),
            ),
            AuditEvent::NodeFoundDead {
                node,
                run,
                found_by,
                sessions,
                recordings,
            } => (
                "node.found_dead",
                format!("node:{found_by}"),
                String::new(),
                String::new(),
                json!({ "node": node, "run": run, "found_by": found_by,
                        "sessions": sessions, "recordings": recordings }),
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
            AuditEvent::KekRewrapped {
                actor,
                kek_id,
                count,
            } => (
                "vault.rewrapped",
                actor.clone(),
                String::new(),
                String::new(),
                json!({ "kek_id": kek_id, "count": count }),
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
            AuditEvent::SessionStarted {
                user,
                source,
                target,
                login,
                grant,
                ..
            } => (
                "session.started",
                user.clone(),
                source.clone(),
                target.clone(),
                json!({ "login": login, "grant": grant }),
            ),
            AuditEvent::SessionEnded {
                user,
                target,
                reason,
                bytes_up,
                bytes_down,
                ..
            } => (
                "session.ended",
                user.clone(),
                String::new(),
                target.clone(),
                json!({ "reason": reason, "bytes_up": bytes_up, "bytes_down": bytes_down }),
            ),
            AuditEvent::HostKeyMismatch {
                user,
                target,
                expected,
                seen,
                ..
            } => (
                "upstream.host_key_mismatch",
                user.clone(),
                String::new(),
                target.clone(),
                json!({ "expected": expected, "seen": seen }),
            ),
            AuditEvent::UserAdded {
                user,
                actor,
                password,
                keys,
                service,
            } => admin(
                "user.added",
                actor,
                user,
                json!({ "password": password, "keys": keys, "service": service }),
            ),
            AuditEvent::UserRemoved { user, actor } => {
                admin("user.removed", actor, user, json!({}))
            }
            AuditEvent::UserPasswordChanged {
                user,
                actor,
                cleared,
            } => admin(
                "user.password_changed",
                actor,
                user,
                json!({ "cleared": cleared }),
            ),
            AuditEvent::UserKeyAdded {
                user,
                actor,
                fingerprint,
            } => admin(
                "user.key_added",
                actor,
                user,
                json!({ "fingerprint": fingerprint }),
            ),
            AuditEvent::GroupAdded { group, actor } => {
                admin("group.added", actor, group, json!({}))
            }
            AuditEvent::UserKeyRemoved {
                user,
                actor,
                fingerprint,
            } => admin(
                "user.key_removed",
                actor,
                user,
                json!({ "fingerprint": fingerprint }),
            ),
            AuditEvent::GroupRemoved { group, actor } => {
                admin("group.removed", actor, group, json!({}))
            }
            AuditEvent::GroupMemberRemoved { group, user, actor } => admin(
                "group.member_removed",
                actor,
                group,
                json!({ "user": user }),
            ),
            AuditEvent::TcpTargetAdded {
                target,
                actor,
                host,
                port,
                capture,
            } => admin(
                "target.tcp_added",
                actor,
                target,
                json!({ "host": host, "port": port, "capture": capture }),
            ),
            AuditEvent::GroupMemberAdded { group, user, actor } => {
                admin("group.member_added", actor, group, json!({ "user": user }))
            }
            AuditEvent::TargetAdded {
                target,
                actor,
                host,
                port,
                host_key,
            } => admin(
                "target.added",
                actor,
                target,
                json!({ "host": host, "port": port, "host_key": host_key }),
            ),
            AuditEvent::TargetRemoved { target, actor } => {
                admin("target.removed", actor, target, json!({}))
            }
            AuditEvent::TargetCaptureSet {
                target,
                actor,
                capture,
            } => admin(
                "target.capture_set",
                actor,
                target,
                json!({ "capture_files": capture }),
            ),
            AuditEvent::TargetRecordingSet {
                target,
                actor,
                content,
            } => admin(
                "target.recording_set",
                actor,
                target,
                json!({ "mode": if *content { "full" } else { "metadata" } }),
            ),
            AuditEvent::CredentialSet {
                target,
                login,
                kind,
                actor,
            } => admin(
                "credential.set",
                actor,
                target,
                json!({ "login": login, "kind": kind }),
            ),
            AuditEvent::RecordingSpace { level, free_bytes } => (
                "recording.space",
                "portcullis".into(),
                String::new(),
                String::new(),
                json!({ "level": level, "free_bytes": free_bytes }),
            ),
            AuditEvent::RecordingStorageUnavailable { user, error, .. } => (
                "recording.storage_unavailable",
                "portcullis".into(),
                String::new(),
                user.clone(),
                json!({ "error": error }),
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
            AuditEvent::ForwardOpened(m) => m.row("forward.opened", m.to_json()),
            AuditEvent::ForwardClosed {
                meta,
                duration_ms,
                bytes_up,
                bytes_down,
                reason,
            } => meta.closed_row(*duration_ms, *bytes_up, *bytes_down, reason),
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
            AuditEvent::Console(c) => c.fields(),
            AuditEvent::Idp(e) => e.fields(),
            AuditEvent::Exported {
                evidence,
                actor,
                source,
                session,
                filter,
            } => super::reads::exported(*evidence, actor, source, session, filter),
            AuditEvent::Read(r) => r.fields(),
        };
        AuditRow {
            ts_ms: now_ms(),
            kind: kind.to_string(),
            actor,
            source,
            subject,
            session: self.session().to_string(),
            detail: detail.to_string(),
        }
    }
}

/// An administrative change: who made it, to what.
fn admin(
    kind: &'static str,
    actor: &str,
    subject: &str,
    detail: serde_json::Value,
) -> (&'static str, String, String, String, serde_json::Value) {
    (
        kind,
        actor.to_string(),
        String::new(),
        subject.to_string(),
        detail,
    )
}
