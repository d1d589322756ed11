//! Plain rows passed in and out of the store.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    /// PHC string (argon2id); `None` means password login is disabled.
    pub password_hash: Option<String>,
    /// Service accounts only: public key alone, no second factor, no password.
    pub mfa_exempt: bool,
    /// OpenSSH one-line public keys.
    pub public_keys: Vec<String>,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub name: String,
    pub has_password: bool,
    pub key_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRecord {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Pinned host key, OpenSSH one-line form.
    pub host_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Password,
    PrivateKey,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Password => "password",
            CredentialKind::PrivateKey => "private-key",
        }
    }

    pub fn parse(s: &str) -> Option<CredentialKind> {
        match s {
            "password" => Some(CredentialKind::Password),
            "private-key" => Some(CredentialKind::PrivateKey),
            _ => None,
        }
    }
}

/// A sealed credential; opening it needs the vault.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    pub kind: CredentialKind,
    pub sealed: String,
}

impl std::fmt::Debug for CredentialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialRecord")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
}

impl Subject {
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::User(_) => "user",
            Subject::Group(_) => "group",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Subject::User(n) | Subject::Group(n) => n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub id: String,
    pub subject: Subject,
    pub target: String,
    /// Allowed upstream logins; the first is the default.
    pub logins: Vec<String>,
    pub valid_from_ms: Option<i64>,
    pub valid_until_ms: Option<i64>,
    pub max_session_secs: Option<i64>,
    /// IANA zone the windows are written in.
    pub time_zone: String,
    /// `mon-fri 08:00-18:00; ...`, empty for "any time".
    pub windows: String,
    /// Comma-separated permission names (see `policy::PERMISSION_NAMES`).
    pub permissions: String,
    pub exec_allow: Vec<String>,
    pub exec_deny: Vec<String>,
    /// `admin`, or `jit:<request id>` for an approved access request.
    pub origin: String,
}

impl GrantRecord {
    /// No time limits, default permissions.
    pub fn standing(id: &str, subject: Subject, target: &str, logins: &[&str]) -> GrantRecord {
        GrantRecord {
            id: id.into(),
            subject,
            target: target.into(),
            logins: logins.iter().map(|s| s.to_string()).collect(),
            valid_from_ms: None,
            valid_until_ms: None,
            max_session_secs: None,
            time_zone: "UTC".into(),
            windows: String::new(),
            permissions: "pty,shell,exec,sftp".into(),
            exec_allow: Vec::new(),
            exec_deny: Vec::new(),
            origin: "admin".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    pub id: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub duration_secs: i64,
    pub reason: String,
    /// `pending`, `approved`, `denied`.
    pub state: String,
    pub requested_ms: i64,
    pub decided_by: Option<String>,
    pub decided_ms: Option<i64>,
    pub grant_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    pub id: String,
    pub user: String,
    pub source: String,
    pub target: String,
    pub login: String,
    pub started_ms: i64,
    pub kind: SessionKind,
}

/// What a sessions row is: a `USER+TARGET` connection or a plain `USER`
/// one (menu, TCP forwards, the outer half of `ssh -J`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Target,
    Connection,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Target => "target",
            SessionKind::Connection => "connection",
        }
    }

    /// Unknown kinds (a newer node's) read as targets, the old default.
    pub fn parse(s: &str) -> SessionKind {
        match s {
            "connection" => SessionKind::Connection,
            _ => SessionKind::Target,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    pub ended_ms: i64,
    pub reason: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub user: String,
    pub source: String,
    pub target: String,
    pub login: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub kind: SessionKind,
}
