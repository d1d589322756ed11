//! The API's side of bearer tokens: who a presented token is (`Caller`),
//! checked by id and compared in constant time. Creating, listing and
//! revoking them is an operation shared with the CLI (`ops::tokens`); the
//! functions here only adapt it to the API's errors.

pub use crate::ops::tokens::{Scope, TokenInfo};
use crate::ops::tokens::{ct_eq, digest, split};
use crate::ops::{Ops, OpsError};
use crate::store::{Store, StoreError};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OpsError> for TokenError {
    fn from(e: OpsError) -> TokenError {
        match e {
            OpsError::Store(s) | OpsError::Audit(s) => TokenError::Store(s),
            other => TokenError::Invalid(other.to_string()),
        }
    }
}

/// The identity behind a request that presented a valid token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    /// A web console session of the bastion user `name`, not a token.
    pub console: bool,
}

impl Caller {
    /// How the caller is named in the audit trail.
    pub fn actor(&self) -> String {
        if self.console {
            return format!("console:{}", self.name);
        }
        format!("api:{}/{}", self.name, self.id)
    }
}

/// Creates a token as `actor` (`ops::tokens::create_token`); the returned
/// text is the only copy of the secret.
pub async fn create(
    store: &Store,
    name: &str,
    scope: Scope,
    expires_in_secs: Option<u64>,
    actor: &str,
) -> Result<(TokenInfo, Zeroizing<String>), TokenError> {
    let ops = Ops::new(store.clone(), actor);
    Ok(crate::ops::tokens::create_token(&ops, name, scope, expires_in_secs).await?)
}

pub async fn revoke(store: &Store, id: &str, actor: &str) -> Result<(), TokenError> {
    let ops = Ops::new(store.clone(), actor);
    Ok(crate::ops::tokens::revoke_token(&ops, id).await?)
}

pub async fn list(store: &Store) -> Result<Vec<TokenInfo>, TokenError> {
    Ok(crate::ops::tokens::list_tokens(store).await?)
}

/// Why a presented token is refused (all become 401; the reason is logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Unknown,
    Revoked,
    Expired,
}

/// Checks a presented token. `Err(Store)` means undecidable: refuse.
pub async fn authenticate(
    store: &Store,
    token: &str,
    now_ms: i64,
) -> Result<Result<Caller, Refusal>, StoreError> {
    let Some((id, secret)) = split(token) else {
        return Ok(Err(Refusal::Malformed));
    };
    let Some(row) = store.token(id).await? else {
        return Ok(Err(Refusal::Unknown));
    };
    if !ct_eq(digest(secret).as_bytes(), row.secret_sha256.as_bytes()) {
        return Ok(Err(Refusal::Unknown));
    }
    if row.revoked_ms.is_some() {
        return Ok(Err(Refusal::Revoked));
    }
    if row.expires_ms.is_some_and(|e| e <= now_ms) {
        return Ok(Err(Refusal::Expired));
    }
    let Some(scope) = Scope::parse(&row.scope) else {
        return Ok(Err(Refusal::Unknown));
    };
    Ok(Ok(Caller {
        id: row.id,
        name: row.name,
        scope,
        console: false,
    }))
}
