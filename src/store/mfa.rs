//! TOTP secrets, MFA exemptions and source blocks.

use super::{Store, StoreError, affected};
use sqlx::Row;

#[derive(Clone, PartialEq, Eq)]
pub struct TotpRecord {
    pub sealed: String,
    pub last_step: i64,
}

impl std::fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRecord")
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceBlock {
    pub cidr: String,
    pub reason: String,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
}

impl Store {
    pub async fn set_mfa_exempt(&self, user: &str, exempt: bool) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE users SET mfa_exempt = $1 WHERE name = $2")
            .bind(i64::from(exempt))
            .bind(user)
            .execute(&self.pool)
            .await?;
        affected(r.rows_affected(), "user", user)
    }

    pub async fn totp(&self, user: &str) -> Result<Option<TotpRecord>, StoreError> {
        let row = sqlx::query("SELECT sealed, last_step FROM totp WHERE user_name = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(TotpRecord {
                sealed: r.try_get(0)?,
                last_step: r.try_get(1)?,
            })
        })
        .transpose()
    }

    /// Replaces the user's TOTP secret; `last_step` is the step of the code
    /// that confirmed enrollment, so that code cannot also log in.
    pub async fn set_totp(
        &self,
        user: &str,
        sealed: &str,
        last_step: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM totp WHERE user_name = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO totp (user_name, sealed, last_step, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(user)
        .bind(sealed)
        .bind(last_step)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_totp(&self, user: &str) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM totp WHERE user_name = $1")
            .bind(user)
            .execute(&self.pool)
            .await?;
        affected(r.rows_affected(), "TOTP enrollment for", user)
    }

    /// Atomically moves `last_step` forward to `step`. Exactly one of several
    /// concurrent claims of the same step succeeds; a step at or before the
    /// last accepted one never does (a code is accepted once).
    pub async fn claim_totp_step(&self, user: &str, step: i64) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE totp SET last_step = $1 WHERE user_name = $2 AND last_step < $1")
                .bind(step)
                .bind(user)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn add_source_block(&self, b: &SourceBlock) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM source_blocks WHERE cidr = $1")
            .bind(&b.cidr)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO source_blocks (cidr, reason, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(&b.cidr)
            .bind(&b.reason)
            .bind(b.created_ms)
            .bind(b.expires_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_source_block(&self, cidr: &str) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM source_blocks WHERE cidr = $1")
            .bind(cidr)
            .execute(&self.pool)
            .await?;
        affected(r.rows_affected(), "source block", cidr)
    }

    pub async fn source_blocks(&self) -> Result<Vec<SourceBlock>, StoreError> {
        let rows = sqlx::query(
            "SELECT cidr, reason, created_at, expires_at FROM source_blocks ORDER BY cidr",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceBlock {
                    cidr: r.try_get(0)?,
                    reason: r.try_get(1)?,
                    created_ms: r.try_get(2)?,
                    expires_ms: r.try_get(3)?,
                })
            })
            .collect()
    }
}
