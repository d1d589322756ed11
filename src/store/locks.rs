//! Locks (the kill switch) and the epoch row nodes poll to learn of changes.

use super::{Store, StoreError, affected};
use crate::policy::{Lock, LockScope};
use sqlx::Row;
use sqlx::any::AnyRow;

const COLUMNS: &str =
    "id, scope_kind, scope_value, reason, author, created_at, expires_at, lifted_at, lifted_by";

impl Store {
    /// Persists a lock and bumps the epoch in one transaction.
    pub async fn insert_lock(&self, l: &Lock) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO locks (id, scope_kind, scope_value, reason, author, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&l.id)
        .bind(l.scope.kind())
        .bind(l.scope.value())
        .bind(&l.reason)
        .bind(&l.author)
        .bind(l.created_ms)
        .bind(l.expires_ms)
        .execute(&mut *tx)
        .await?;
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lifts a lock still in force; `Missing` if there is none by that id.
    pub async fn lift_lock(&self, id: &str, by: &str, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE locks SET lifted_at = $1, lifted_by = $2 WHERE id = $3 AND lifted_at IS NULL",
        )
        .bind(now_ms)
        .bind(by)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        affected(r.rows_affected(), "lock", id)?;
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Locks not lifted and not expired at `now_ms`.
    pub async fn locks_in_force(&self, now_ms: i64) -> Result<Vec<Lock>, StoreError> {
        let q = format!(
            "SELECT {COLUMNS} FROM locks WHERE lifted_at IS NULL
             AND (expires_at IS NULL OR expires_at > $1) ORDER BY created_at"
        );
        let rows = sqlx::query(&q).bind(now_ms).fetch_all(&self.pool).await?;
        rows.iter().map(lock_from_row).collect()
    }

    /// One lock by id, lifted or not.
    pub async fn lock(&self, id: &str) -> Result<Option<Lock>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM locks WHERE id = $1");
        let row = sqlx::query(&q).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(lock_from_row).transpose()
    }

    /// The most recent locks, lifted and expired ones included.
    pub async fn recent_locks(&self, limit: i64) -> Result<Vec<Lock>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM locks ORDER BY created_at DESC LIMIT $1");
        let rows = sqlx::query(&q).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(lock_from_row).collect()
    }

    /// One session row by id (the kill switch checks it exists and is live).
    pub async fn session(
        &self,
        id: &str,
    ) -> Result<Option<crate::store::SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, user_name, source, target_name, login, started_at, ended_at, end_reason, bytes_up, bytes_down, kind \
             FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(super::session_from_row).transpose()
    }

    pub async fn lock_epoch(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT epoch FROM lock_epoch WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }
}

async fn bump_epoch(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), StoreError> {
    sqlx::query("UPDATE lock_epoch SET epoch = epoch + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    super::notify::announce_locks(tx).await?;
    Ok(())
}

fn lock_from_row(r: &AnyRow) -> Result<Lock, StoreError> {
    let kind: String = r.try_get(1)?;
    let value: String = r.try_get(2)?;
    let scope = LockScope::from_parts(&kind, &value).ok_or_else(|| {
        StoreError::Db(sqlx::Error::Decode(
            format!("lock with an unknown scope {kind:?} {value:?}").into(),
        ))
    })?;
    Ok(Lock {
        id: r.try_get(0)?,
        scope,
        reason: r.try_get(3)?,
        author: r.try_get(4)?,
        created_ms: r.try_get(5)?,
        expires_ms: r.try_get(6)?,
        lifted_ms: r.try_get(7)?,
        lifted_by: r.try_get(8)?,
    })
}
