//! The typed audit events: who, what, from where, about what, and why. No
//! secret, password or code is ever a field. Their row form is in `row.rs`.

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
    /// Forwards past the user's cap (`rate`): the durable marker written
    /// before the first is dialled, or the flush's summary.
    ForwardSummary {
        user: String,
        marker: bool,
        totals: super::rate::UserForwards,
    },
    /// One row of a flush's bounded failure summary (`failures`).
    LoginFailureSummary(super::failures::Summary),
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
    /// A new secret replaced an enrolled one (a lost device): the old one
    /// stopped working.
    TotpReset {
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
        /// Who asked: the user over ssh, or the CLI account asking for them.
        actor: String,
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
        /// Sealed by recovery past the last signed checkpoint.
        unsigned_events: u64,
        /// The `.chain` file was gone and recovery started a new one.
        chain_rebuilt: bool,
    },
    /// A node's run stopped its heartbeat (or this node's own earlier run
    /// ended without a clean stop): `found_by` closed what it held, once.
    NodeFoundDead {
        node: String,
        run: String,
        found_by: String,
        sessions: usize,
        recordings: usize,
    },
    RecordingsPruned {
        actor: String,
        count: usize,
        older_than_days: u64,
    },
    /// Sealed secrets re-wrapped under the current key-encryption key.
    KekRewrapped {
        actor: String,
        kek_id: String,
        count: usize,
    },
    /// Written, durably, before the upstream is dialled.
    SessionStarted {
        session: String,
        user: String,
        source: String,
        target: String,
        login: String,
        grant: String,
    },
    SessionEnded {
        session: String,
        user: String,
        target: String,
        reason: String,
        bytes_up: u64,
        bytes_down: u64,
    },
    /// The target presented another key than the pinned one; fingerprints only.
    HostKeyMismatch {
        session: String,
        user: String,
        target: String,
        expected: String,
        seen: String,
    },
    UserAdded {
        user: String,
        actor: String,
        password: bool,
        keys: Vec<String>,
        service: bool,
    },
    UserRemoved {
        user: String,
        actor: String,
    },
    /// Never the password or its hash: only whether one is set now.
    UserPasswordChanged {
        user: String,
        actor: String,
        cleared: bool,
    },
    UserKeyAdded {
        user: String,
        actor: String,
        fingerprint: String,
    },
    UserKeyRemoved {
        user: String,
        actor: String,
        fingerprint: String,
    },
    GroupAdded {
        group: String,
        actor: String,
    },
    GroupRemoved {
        group: String,
        actor: String,
    },
    GroupMemberAdded {
        group: String,
        user: String,
        actor: String,
    },
    GroupMemberRemoved {
        group: String,
        user: String,
        actor: String,
    },
    TargetAdded {
        target: String,
        actor: String,
        host: String,
        port: u16,
        host_key: String,
    },
    TcpTargetAdded {
        target: String,
        actor: String,
        host: String,
        port: u16,
        capture: bool,
    },
    TargetRemoved {
        target: String,
        actor: String,
    },
    TargetCaptureSet {
        target: String,
        actor: String,
        capture: bool,
    },
    TargetRecordingSet {
        target: String,
        actor: String,
        content: bool,
    },
    /// Never the secret: the kind of credential and where it applies.
    CredentialSet {
        target: String,
        login: String,
        kind: String,
        actor: String,
    },
    /// Recording storage was not writable when a session wanted to start.
    /// The recordings disk's free space crossed a mark (ok, low, hard).
    RecordingSpace {
        level: String,
        free_bytes: u64,
    },
    RecordingStorageUnavailable {
        session: String,
        user: String,
        error: String,
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
    ForwardOpened(super::ForwardMeta),
    /// The same connection at its end, with its duration and bytes.
    ForwardClosed {
        meta: super::ForwardMeta,
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
    /// The web console: sign-in, sign-out, refusals and actions.
    Console(super::console::ConsoleEvent),
    /// Changes only the IdP makes (SCIM): `user.deactivated|reactivated|
    /// idp_updated`, `group.idp_updated`. Creations, removals and members
    /// are the same events as an administrator's.
    Idp(IdpEvent),
    /// A download of audit rows or of a session's evidence bundle
    /// (console or API), recorded before the first byte is sent.
    Exported {
        evidence: bool,
        actor: String,
        source: String,
        /// The session of an evidence bundle; '' for the audit log.
        session: String,
        /// The filters of an audit export.
        filter: serde_json::Value,
    },
    /// A session's terminal output read (console or API): a live view
    /// (`session.watched`), a replay (`recording.replayed`) or a download
    /// of the cast (`recording.downloaded`). Written before the first byte
    /// is sent; if it cannot be, nothing is.
    Read(super::reads::ReadEvent),
}

impl AuditEvent {
    /// The session an event belongs to, if any (its own column, for queries).
    pub fn session(&self) -> &str {
        // Exhaustive on purpose: a new event that belongs to a session must
        // be placed here, or it will not compile.
        match self {
            AuditEvent::SessionStarted { session, .. }
            | AuditEvent::SessionEnded { session, .. }
            | AuditEvent::HostKeyMismatch { session, .. }
            | AuditEvent::SessionEndedByPolicy { session, .. }
            | AuditEvent::RecordingFailed { session, .. }
            | AuditEvent::RecordingCutShort { session, .. }
            | AuditEvent::RecordingStorageUnavailable { session, .. }
            | AuditEvent::SessionTerminated { session, .. }
            | AuditEvent::ForwardRefused { session, .. }
            | AuditEvent::AgentForwarded { session, .. }
            | AuditEvent::Exported { session, .. }
            | AuditEvent::JumpOpened {
                via_session: session,
                ..
            } => session,
            AuditEvent::Read(r) => &r.session,
            AuditEvent::ForwardOpened(meta) | AuditEvent::ForwardClosed { meta, .. } => {
                &meta.session
            }
            AuditEvent::LoginSucceeded { .. }
            | AuditEvent::LoginFailures { .. }
            | AuditEvent::ForwardSummary { .. }
            | AuditEvent::LoginFailureSummary(..)
            | AuditEvent::LoginThrottled { .. }
            | AuditEvent::TotpEnrolled { .. }
            | AuditEvent::TotpRemoved { .. }
            | AuditEvent::TotpReset { .. }
            | AuditEvent::MfaExemption { .. }
            | AuditEvent::SourceBlocked { .. }
            | AuditEvent::SourceUnblocked { .. }
            | AuditEvent::GrantAdded { .. }
            | AuditEvent::GrantRemoved { .. }
            | AuditEvent::AccessRequested { .. }
            | AuditEvent::AccessDecided { .. }
            | AuditEvent::RecordingsPruned { .. }
            | AuditEvent::NodeFoundDead { .. }
            | AuditEvent::KekRewrapped { .. }
            | AuditEvent::UserAdded { .. }
            | AuditEvent::UserRemoved { .. }
            | AuditEvent::UserPasswordChanged { .. }
            | AuditEvent::UserKeyAdded { .. }
            | AuditEvent::UserKeyRemoved { .. }
            | AuditEvent::GroupAdded { .. }
            | AuditEvent::GroupRemoved { .. }
            | AuditEvent::GroupMemberAdded { .. }
            | AuditEvent::GroupMemberRemoved { .. }
            | AuditEvent::TargetAdded { .. }
            | AuditEvent::TcpTargetAdded { .. }
            | AuditEvent::TargetRemoved { .. }
            | AuditEvent::TargetCaptureSet { .. }
            | AuditEvent::TargetRecordingSet { .. }
            | AuditEvent::CredentialSet { .. }
            | AuditEvent::RecordingSpace { .. }
            | AuditEvent::LockCreated { .. }
            | AuditEvent::LockLifted { .. }
            | AuditEvent::AccessLocked { .. }
            | AuditEvent::RuleFired { .. }
            | AuditEvent::WebhookFailed { .. }
            | AuditEvent::ApiTokenCreated { .. }
            | AuditEvent::ApiTokenRevoked { .. }
            | AuditEvent::ApiWrite { .. }
            // Console sign-ins and requests: the SSH session a request acts
            // on is in its path (e.g. a terminate), not its own.
            | AuditEvent::Idp(..)
            | AuditEvent::Console(..) => "",
        }
    }
}

/// What only identity provisioning does to a user or group.
#[derive(Debug, Clone)]
pub enum IdpEvent {
    /// Deprovisioned (`active: false` or DELETE): the lock raised for it.
    UserDeactivated {
        user: String,
        actor: String,
        lock: String,
    },
    /// Reactivated: the deprovisioning lock lifted (`None`: none in force).
    UserReactivated {
        user: String,
        actor: String,
        lock: Option<String>,
    },
    /// IdP attributes changed (names only, never values).
    UserUpdated {
        user: String,
        actor: String,
        changed: Vec<String>,
    },
    GroupUpdated {
        group: String,
        actor: String,
        changed: Vec<String>,
    },
    /// A sign-in at an OpenID Provider accepted (`sso.signed_in`): for the
    /// console or an SSH link, with the IdP's subject.
    SsoSignedIn {
        user: String,
        provider: String,
        subject: String,
        purpose: String,
        source: String,
    },
    /// A sign-in at an OpenID Provider refused (`sso.refused`) and why.
    SsoRefused {
        user: String,
        provider: String,
        purpose: String,
        source: String,
        reason: String,
    },
}

impl IdpEvent {
    /// (kind, actor, source, subject, detail) of the audit row.
    pub(super) fn fields(&self) -> (&'static str, String, String, String, serde_json::Value) {
        use serde_json::json;
        let row = |kind, actor: &String, subject: &String, detail| {
            (kind, actor.clone(), String::new(), subject.clone(), detail)
        };
        match self {
            IdpEvent::UserDeactivated { user, actor, lock } => {
                row("user.deactivated", actor, user, json!({ "lock": lock }))
            }
            IdpEvent::UserReactivated { user, actor, lock } => {
                row("user.reactivated", actor, user, json!({ "lock": lock }))
            }
            IdpEvent::UserUpdated {
                user,
                actor,
                changed,
            } => row(
                "user.idp_updated",
                actor,
                user,
                json!({ "changed": changed }),
            ),
            IdpEvent::GroupUpdated {
                group,
                actor,
                changed,
            } => row(
                "group.idp_updated",
                actor,
                group,
                json!({ "changed": changed }),
            ),
            IdpEvent::SsoSignedIn {
                user,
                provider,
                subject,
                purpose,
                source,
            } => (
                "sso.signed_in",
                format!("sso:{provider}"),
                source.clone(),
                user.clone(),
                json!({ "provider": provider, "subject": subject, "purpose": purpose }),
            ),
            IdpEvent::SsoRefused {
                user,
                provider,
                purpose,
                source,
                reason,
            } => (
                "sso.refused",
                format!("sso:{provider}"),
                source.clone(),
                user.clone(),
                json!({ "provider": provider, "purpose": purpose, "reason": reason }),
            ),
        }
    }
}
