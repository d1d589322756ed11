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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    pub id: String,
    pub user: String,
    pub source: String,
    pub target: String,
    pub login: String,
    pub started_ms: i64,
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
}
