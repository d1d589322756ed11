//! API tokens (`api_tokens`): never the secret, only its SHA-256.
//!
//! The tests below also cover the other rows the admin API reads
//! (`users`, `counts`, `recordings`, credential summaries).

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
