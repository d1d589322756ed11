//! Signed-in console sessions (`console_sessions`, migration 0015): keyed
//! by the SHA-256 of the cookie value, never the value itself. Idle time is
//! kept in the row (`last_used_at`, Unix ms), so every node and a restarted
//! one enforce the same timeout; sign-out and expiry delete the row.

use super::{Store, StoreError};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionRow {
    /// SHA-256 of the cookie value, hex.
    pub id_sha256: String,
    pub user: String,
    pub role: String,
    pub source: String,
    pub created_ms: i64,
    pub last_used_ms: i64,
}

const COLUMNS: &str = "id_sha256, user_name, role, source, created_at, last_used_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<ConsoleSessionRow, StoreError> {
    Ok(ConsoleSessionRow {
        id_sha256: r.try_get(0)?,
        user: r.try_get(1)?,
        role: r.try_get(2)?,
        source: r.try_get(3)?,
        created_ms: r.try_get(4)?,
        last_used_ms: r.try_get(5)?,
    })
}

impl Store {
    pub async fn console_session_open(&self, s: &ConsoleSessionRow) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO console_sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&s.id_sha256)
        .bind(&s.user)
        .bind(&s.role)
        .bind(&s.source)
        .bind(s.created_ms)
        .bind(s.last_used_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn console_session(
        &self,
        id_sha256: &str,
    ) -> Result<Option<ConsoleSessionRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM console_sessions WHERE id_sha256 = $1"
        ))
        .bind(id_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Restarts the idle clock, unless the row already idled out (at
    /// `idle_before`) or is gone: `false` then.
    pub async fn console_session_touch(
        &self,
        id_sha256: &str,
        now_ms: i64,
        idle_before: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE console_sessions SET last_used_at = $1 \
             WHERE id_sha256 = $2 AND last_used_at >= $3",
        )
        .bind(now_ms)
        .bind(id_sha256)
        .bind(idle_before)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Ends one session; its row if it was there (only one caller gets it).
    pub async fn console_session_close(
        &self,
        id_sha256: &str,
    ) -> Result<Option<ConsoleSessionRow>, StoreError> {
        let row = sqlx::query(&format!(
            "DELETE FROM console_sessions WHERE id_sha256 = $1 RETURNING {COLUMNS}"
        ))
        .bind(id_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Deletes the sessions last used before `idle_before`; returns them
    /// (each to exactly one caller, whichever node prunes first).
    pub async fn console_sessions_expire(
        &self,
        idle_before: i64,
    ) -> Result<Vec<ConsoleSessionRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "DELETE FROM console_sessions WHERE last_used_at < $1 RETURNING {COLUMNS}"
        ))
        .bind(idle_before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }
}

/// Run on SQLite and PostgreSQL by `store::tests`.
#[cfg(test)]
pub(super) async fn exercise_console_sessions(store: &Store) {
    let row = |id: &str, at: i64| ConsoleSessionRow {
        id_sha256: id.to_string(),
        user: "ana".into(),
        role: "auditor".into(),
        source: "127.0.0.1".into(),
        created_ms: at,
        last_used_ms: at,
    };
    store.console_session_open(&row("a", 1_000)).await.unwrap();
    store.console_session_open(&row("b", 5_000)).await.unwrap();
    assert_eq!(
        store.console_session("a").await.unwrap(),
        Some(row("a", 1_000))
    );
    assert!(store.console_session("zz").await.unwrap().is_none());
    // Touched while fresh; not once idle past the cut-off.
    assert!(store.console_session_touch("a", 2_000, 500).await.unwrap());
    assert!(
        !store
            .console_session_touch("a", 9_000, 2_500)
            .await
            .unwrap()
    );
    assert!(!store.console_session_touch("zz", 9_000, 0).await.unwrap());
    // Expiry takes exactly the idle rows, once.
    let gone = store.console_sessions_expire(3_000).await.unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].id_sha256, "a");
    assert!(
        store
            .console_sessions_expire(3_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .console_session_close("b")
            .await
            .unwrap()
            .map(|r| r.user),
        Some("ana".to_string())
    );
    assert!(store.console_session_close("b").await.unwrap().is_none());
}
