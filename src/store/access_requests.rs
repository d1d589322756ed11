//! Just-in-time access requests (`access_requests`): filed, listed, decided.

use super::{AccessRequest, GrantRecord, Store, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;

const COLUMNS: &str = "id, user_name, target_name, login, duration_secs, reason, state, requested_at, decided_by, decided_at, grant_id";

fn request_from_row(r: &AnyRow) -> Result<AccessRequest, StoreError> {
    Ok(AccessRequest {
        id: r.try_get(0)?,
        user: r.try_get(1)?,
        target: r.try_get(2)?,
        login: r.try_get(3)?,
        duration_secs: r.try_get(4)?,
        reason: r.try_get(5)?,
        state: r.try_get(6)?,
        requested_ms: r.try_get(7)?,
        decided_by: r.try_get(8)?,
        decided_ms: r.try_get(9)?,
        grant_id: r.try_get(10)?,
    })
}

impl Store {
    pub async fn add_request(&self, q: &AccessRequest) -> Result<(), StoreError> {
        self.require("targets", "target", &q.target).await?;
        sqlx::query(&format!("INSERT INTO access_requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"))
            .bind(&q.id)
            .bind(&q.user)
            .bind(&q.target)
            .bind(&q.login)
            .bind(q.duration_secs)
            .bind(&q.reason)
            .bind(&q.state)
            .bind(q.requested_ms)
            .bind(&q.decided_by)
            .bind(q.decided_ms)
            .bind(&q.grant_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM access_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(request_from_row).transpose()
    }

    pub async fn list_requests(
        &self,
        state: Option<&str>,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let rows = match state {
            Some(st) => sqlx::query(&format!(
                "SELECT {COLUMNS} FROM access_requests WHERE state = $1 ORDER BY requested_at, id"
            ))
            .bind(st)
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM access_requests ORDER BY requested_at, id"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(request_from_row).collect()
    }

    /// Moves a pending request to `state`; with a grant, creates it in the
    /// same transaction. Returns false if it was no longer pending.
    pub async fn decide_request(
        &self,
        id: &str,
        state: &str,
        by: &str,
        now_ms: i64,
        grant: Option<&GrantRecord>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE access_requests SET state = $1, decided_by = $2, decided_at = $3, grant_id = $4 WHERE id = $5 AND state = 'pending'",
        )
        .bind(state)
        .bind(by)
        .bind(now_ms)
        .bind(grant.map(|g| g.id.clone()))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(g) = grant {
            Self::insert_grant(&mut tx, g, now_ms).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
