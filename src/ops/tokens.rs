//! API bearer tokens: `pcat_<id>_<secret>`, a 256-bit random secret of which
//! the store keeps only the SHA-256. Created, listed and revoked here for
//! both doors (`portcullis token ...`, `/api/v1/tokens`), audited as
//! `api.token.created` / `api.token.revoked`; checking a presented token is
//! the API's (`admin::tokens::authenticate`).

use super::{Ops, OpsError};
use crate::audit::AuditEvent;
use crate::clock::now_ms;
use crate::ids::new_id;
use crate::store::{Store, TokenRow};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const PREFIX: &str = "pcat_";
const ID_LEN: usize = 16;
const SECRET_LEN: usize = 64;

/// What a token may do; see `admin::routes` for the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything.
    Admin,
    /// Read-only: every GET, never a write, never a secret.
    Auditor,
    /// Locks, sessions (list, get, terminate) and health.
    Killswitch,
    /// SCIM provisioning at `/scim/v2` only; no `/api/v1` route.
    Scim,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Auditor => "auditor",
            Scope::Killswitch => "killswitch",
            Scope::Scim => "scim",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "admin" => Some(Scope::Admin),
            "auditor" => Some(Scope::Auditor),
            "killswitch" => Some(Scope::Killswitch),
            "scim" => Some(Scope::Scim),
            _ => None,
        }
    }
}

/// A token as listed: no secret, no hash.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub created_ms: i64,
    pub created_by: String,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

impl From<TokenRow> for TokenInfo {
    fn from(t: TokenRow) -> TokenInfo {
        TokenInfo {
            id: t.id,
            name: t.name,
            scope: t.scope,
            created_ms: t.created_ms,
            created_by: t.created_by,
            expires_ms: t.expires_ms,
            revoked_ms: t.revoked_ms,
        }
    }
}

pub(crate) fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates a token; the returned text is the only copy of the secret.
pub async fn create_token(
    ops: &Ops,
    name: &str,
    scope: Scope,
    expires_in_secs: Option<u64>,
) -> Result<(TokenInfo, Zeroizing<String>), OpsError> {
    let name = super::name("name", name)?;
    let now = now_ms();
    let expires_ms = expires_in_secs
        .map(|s| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX))
        .map(|ms| now.saturating_add(ms));
    let id = new_id()[..ID_LEN].to_string();
    // Two 128-bit ids from the OS generator: 256 random bits.
    let secret = Zeroizing::new(format!("{}{}", new_id(), new_id()));
    let row = TokenRow {
        id: id.clone(),
        name: name.clone(),
        scope: scope.as_str().to_string(),
        secret_sha256: digest(&secret),
        created_ms: now,
        created_by: ops.actor(),
        expires_ms,
        revoked_ms: None,
    };
    ops.store.add_token(&row).await?;
    let event = AuditEvent::ApiTokenCreated {
        id: id.clone(),
        name,
        scope: scope.as_str().to_string(),
        actor: ops.actor(),
        expires_ms,
    };
    ops.audit(event).await?;
    let text = Zeroizing::new(format!("{PREFIX}{id}_{}", secret.as_str()));
    Ok((row.into(), text))
}

/// Revokes token `id` (`Store(Missing)` when no active token has it).
pub async fn revoke_token(ops: &Ops, id: &str) -> Result<(), OpsError> {
    ops.store.revoke_token(id, now_ms()).await?;
    let event = AuditEvent::ApiTokenRevoked {
        id: id.to_string(),
        actor: ops.actor(),
    };
    ops.audit(event).await
}

/// Every token, revoked and expired ones included; never a secret.
pub async fn list_tokens(store: &Store) -> Result<Vec<TokenInfo>, OpsError> {
    Ok(store
        .list_tokens()
        .await?
        .into_iter()
        .map(TokenInfo::from)
        .collect())
}

/// Splits `pcat_<id>_<secret>`; `None` for anything else.
pub fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_ok(id, ID_LEN) && hex_ok(secret, SECRET_LEN)).then_some((id, secret))
}

/// Equal-length comparison whose time does not depend on where bytes differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape_is_strict() {
        let id = "0123456789abcdef";
        let secret = "a".repeat(64);
        assert_eq!(
            split(&format!("pcat_{id}_{secret}")),
            Some((id, secret.as_str()))
        );
        for bad in [
            String::new(),
            format!("pcat_{id}"),
            format!("pcat_{id}_{}", "a".repeat(63)),
            format!("pcat_{id}_{}g", "a".repeat(63)),
            format!("PCAT_{id}_{secret}"),
            format!("pcat_{id}x_{secret}"),
        ] {
            assert!(split(&bad).is_none(), "{bad}");
        }
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
