//! Every sealed secret (credentials and TOTP secrets), read and replaced
//! together by a key-encryption-key rotation.

use super::{CredentialKind, Store, StoreError};
use sqlx::Row;

/// Where a sealed secret lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedRow {
    Credential {
        target: String,
        login: String,
        kind: CredentialKind,
    },
    Totp {
        user: String,
    },
}

/// A sealed secret and its row.
#[derive(Clone)]
pub struct Sealed {
    pub row: SealedRow,
    pub sealed: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("row", &self.row)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Every credential and TOTP secret, sealed.
    pub async fn sealed_secrets(&self) -> Result<Vec<Sealed>, StoreError> {
        let mut out = Vec::new();
        let rows = sqlx::query(
            "SELECT target_name, login, kind, sealed FROM credentials ORDER BY target_name, login",
        )
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            let kind: String = r.try_get(2)?;
            // An unknown kind is not a credential the bastion would use.
            let Some(kind) = CredentialKind::parse(&kind) else {
                continue;
            };
            out.push(Sealed {
                row: SealedRow::Credential {
                    target: r.try_get(0)?,
                    login: r.try_get(1)?,
                    kind,
                },
                sealed: r.try_get(3)?,
            });
        }
        let rows = sqlx::query("SELECT user_name, sealed FROM totp ORDER BY user_name")
            .fetch_all(&self.pool)
            .await?;
        for r in &rows {
            out.push(Sealed {
                row: SealedRow::Totp {
                    user: r.try_get(0)?,
                },
                sealed: r.try_get(1)?,
            });
        }
        Ok(out)
    }

    /// Replaces a sealed secret only if it is still `old` (an administrator
    /// may have set a new one meanwhile); whether it was replaced.
    pub async fn replace_sealed(
        &self,
        row: &SealedRow,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let r = match row {
            SealedRow::Credential { target, login, .. } => {
                sqlx::query(
                    "UPDATE credentials SET sealed = $1 WHERE target_name = $2 AND login = $3 AND sealed = $4",
                )
                .bind(new)
                .bind(target)
                .bind(login)
                .bind(old)
                .execute(&self.pool)
                .await?
            }
            SealedRow::Totp { user } => {
                sqlx::query("UPDATE totp SET sealed = $1 WHERE user_name = $2 AND sealed = $3")
                    .bind(new)
                    .bind(user)
                    .bind(old)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(r.rows_affected() == 1)
    }
}
