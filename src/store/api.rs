//! Rows the HTTPS admin API needs beyond what the CLI uses: API tokens,
//! removals, single-row lookups and the counters behind `/metrics`.

use super::{Store, StoreError, affected};
use sqlx::Row;

/// An API token as stored: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub secret_sha256: String,
    pub created_ms: i64,
    pub created_by: String,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// Counters for `/metrics`, read from durable rows so every node agrees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricCounts {
    /// (audit kind, rows) for every kind present.
    pub audit_kinds: Vec<(String, i64)>,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub source_blocks: i64,
}

const TOKEN_COLUMNS: &str =
    "id, name, scope, secret_sha256, created_at, created_by, expires_at, revoked_at";

fn token_from_row(r: &sqlx::any::AnyRow) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        scope: r.try_get(2)?,
        secret_sha256: r.try_get(3)?,
        created_ms: r.try_get(4)?,
        created_by: r.try_get(5)?,
        expires_ms: r.try_get(6)?,
        revoked_ms: r.try_get(7)?,
    })
}

impl Store {
    pub async fn add_token(&self, t: &TokenRow) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.scope)
        .bind(&t.secret_sha256)
        .bind(t.created_ms)
        .bind(&t.created_by)
        .bind(t.expires_ms)
        .bind(t.revoked_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Marks a token revoked; a second revocation is `Missing`.
    pub async fn revoke_token(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        let r = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        affected(r.rows_affected(), "active token", id)
    }

    pub async fn list_groups(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let groups = sqlx::query("SELECT name FROM user_groups ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let members = sqlx::query(
            "SELECT group_name, user_name FROM group_members ORDER BY group_name, user_name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for g in &groups {
            out.push((g.try_get(0)?, Vec::new()));
        }
        for m in &members {
            let g: String = m.try_get(0)?;
            if let Some(entry) = out.iter_mut().find(|(n, _)| *n == g) {
                entry.1.push(m.try_get(1)?);
            }
        }
        Ok(out)
    }

    pub async fn remove_group(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for q in [
            "DELETE FROM group_members WHERE group_name = $1",
            "DELETE FROM grants WHERE subject_kind = 'group' AND subject = $1",
        ] {
            sqlx::query(q).bind(name).execute(&mut *tx).await?;
        }
        let r = sqlx::query("DELETE FROM user_groups WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        affected(r.rows_affected(), "group", name)?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_member(&self, group: &str, user: &str) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM group_members WHERE group_name = $1 AND user_name = $2")
            .bind(group)
            .bind(user)
            .execute(&self.pool)
            .await?;
        affected(
            r.rows_affected(),
            "membership",
            &format!("{user} in {group}"),
        )
    }

    pub async fn remove_user_key(&self, user: &str, fingerprint: &str) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM user_keys WHERE user_name = $1 AND fingerprint = $2")
            .bind(user)
            .bind(fingerprint)
            .execute(&self.pool)
            .await?;
        affected(r.rows_affected(), "key", fingerprint)
    }

    /// (fingerprint, public key line) of a user's keys.
    pub async fn user_keys(&self, user: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT fingerprint, public_key FROM user_keys WHERE user_name = $1 ORDER BY fingerprint",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// (target, login, kind, updated_at ms) of every credential; never the sealed value.
    pub async fn credential_summaries(
        &self,
    ) -> Result<Vec<(String, String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT target_name, login, kind, updated_at FROM credentials ORDER BY target_name, login",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }

    pub async fn metric_counts(&self) -> Result<MetricCounts, StoreError> {
        let kinds =
            sqlx::query("SELECT kind, COUNT(*) FROM audit_events GROUP BY kind ORDER BY kind")
                .fetch_all(&self.pool)
                .await?;
        let bytes = sqlx::query(
            "SELECT CAST(COALESCE(SUM(bytes_up), 0) AS BIGINT), CAST(COALESCE(SUM(bytes_down), 0) AS BIGINT) FROM sessions",
        )
        .fetch_one(&self.pool)
        .await?;
        let blocks = sqlx::query("SELECT COUNT(*) FROM source_blocks")
            .fetch_one(&self.pool)
            .await?;
        Ok(MetricCounts {
            audit_kinds: kinds
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, StoreError>>()?,
            bytes_up: bytes.try_get(0)?,
            bytes_down: bytes.try_get(1)?,
            source_blocks: blocks.try_get(0)?,
        })
    }

    /// A round trip to the database (health checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Whether the audit table answers a read (health checks).
    pub async fn audit_readable(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT COUNT(*) FROM audit_events WHERE ts < 0")
            .fetch_one(&self.pool)
            .await?;
        Ok(())
    }
}

impl Store {
    pub async fn recording(&self, name: &str) -> Result<Option<super::RecordingRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM recordings WHERE name = $1",
            super::recordings::COLUMNS
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(super::recordings::from_row).transpose()
    }

    /// Newest first, at most `limit`, optionally of one session.
    pub async fn list_recordings(
        &self,
        session: Option<&str>,
        limit: i64,
    ) -> Result<Vec<super::RecordingRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM recordings WHERE ($1 = '' OR session_id = $1) \
             ORDER BY started_at DESC, name LIMIT $2",
            super::recordings::COLUMNS
        ))
        .bind(session.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(super::recordings::from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditRow;

    async fn exercise(s: &Store) {
        let t = TokenRow {
            id: "0123456789abcdef".into(),
            name: "ops".into(),
            scope: "admin".into(),
            secret_sha256: "ab".repeat(32),
            created_ms: 5,
            created_by: "cli:root".into(),
            expires_ms: Some(1_000),
            revoked_ms: None,
        };
        s.add_token(&t).await.unwrap();
        assert_eq!(s.token(&t.id).await.unwrap().as_ref(), Some(&t));
        assert!(s.token("nope").await.unwrap().is_none());
        s.revoke_token(&t.id, 9).await.unwrap();
        assert!(matches!(
            s.revoke_token(&t.id, 10).await,
            Err(StoreError::Missing { .. })
        ));
        assert_eq!(s.list_tokens().await.unwrap()[0].revoked_ms, Some(9));

        // Audit rows go through the chain (the audit query itself is
        // tested in store::audit_tests); here they feed the metric counts.
        let s = &s
            .clone()
            .attach_audit(std::sync::Arc::new(crate::audit::ChainKey::from_bytes(
                [1; 32],
            )))
            .await
            .unwrap();
        for (i, kind) in [
            "api.write",
            "api.token.created",
            "login.succeeded",
            "api.write",
            "api.write",
        ]
        .iter()
        .enumerate()
        {
            let row = AuditRow {
                ts_ms: 100 + (i as i64 / 2),
                kind: kind.to_string(),
                actor: if i == 4 { "bob".into() } else { "alice".into() },
                source: String::new(),
                subject: format!("s{i}"),
                session: String::new(),
                detail: "{}".into(),
            };
            s.append_audit(&row).await.unwrap();
        }

        s.add_user("alice", None, 0).await.unwrap();
        s.add_group("ops").await.unwrap();
        s.add_member("ops", "alice").await.unwrap();
        assert_eq!(
            s.list_groups().await.unwrap(),
            vec![("ops".to_string(), vec!["alice".to_string()])]
        );
        s.remove_member("ops", "alice").await.unwrap();
        assert!(s.remove_member("ops", "alice").await.is_err());
        s.remove_group("ops").await.unwrap();
        assert!(s.list_groups().await.unwrap().is_empty());
        s.add_user_key("alice", "SHA256:x/y+z", "ssh-ed25519 AAAA")
            .await
            .unwrap();
        assert_eq!(s.user_keys("alice").await.unwrap().len(), 1);
        s.remove_user_key("alice", "SHA256:x/y+z").await.unwrap();
        assert!(s.user_keys("alice").await.unwrap().is_empty());

        let m = s.metric_counts().await.unwrap();
        assert!(m.audit_kinds.contains(&("api.write".to_string(), 3)));
        assert_eq!((m.bytes_up, m.bytes_down, m.source_blocks), (0, 0, 0));
        assert!(s.session("none").await.unwrap().is_none());
        assert!(s.recording("none").await.unwrap().is_none());
        assert!(s.list_recordings(Some("x"), 10).await.unwrap().is_empty());
        assert!(s.credential_summaries().await.unwrap().is_empty());
        s.ping().await.unwrap();
        s.audit_readable().await.unwrap();
    }

    #[tokio::test]
    async fn api_rows_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        exercise(&Store::connect(&url).await.unwrap()).await;
    }

    /// On the PostgreSQL `.ci/run` starts, like `store::tests::postgres_store`.
    #[tokio::test]
    async fn api_rows_on_postgres() {
        let url = crate::store::audit_tests::pg_schema("api").await;
        let store = Store::connect(&url).await.unwrap();
        exercise(&store).await;
        store.close().await;
    }
}
