//! The only module that speaks SQL.
//!
//! One set of queries and migrations for SQLite (embedded default) and
//! PostgreSQL (several nodes), through sqlx's `Any` driver. Queries use `$n`
//! placeholders and portable types (TEXT, BIGINT) so neither dialect drifts.

mod access_requests;
mod audit;
mod audit_batch;
#[cfg(test)]
mod audit_chain_tests;
#[cfg(test)]
mod audit_legacy_tests;
#[cfg(test)]
pub(crate) mod audit_tests;
pub mod console_sessions;
mod counts;
mod deferred;
mod locks;
mod mfa;
mod nodes;
#[cfg(test)]
mod nodes_tests;
pub mod notify;
mod open;
mod recordings;
mod records;
mod scim;
mod sealed;
pub mod search;
mod session_page;
mod sso;
mod targets;
mod tcp;
#[cfg(test)]
mod tests;
mod tokens;
mod users;

pub use audit::{AuditFilter, AuditHealth, AuditRow, AuditSealer, ChainedRow, GENESIS_HASH};
pub use counts::MetricCounts;
pub use deferred::{Reach, unreachable};
pub use mfa::{SourceBlock, TotpRecord};
pub use nodes::{NodeIdent, NodeRun};
pub use open::{settle_wal, sqlite_file};
pub use recordings::RecordingRow;
pub use records::*;
pub use scim::{ScimGroupRow, ScimUserRow};
pub use sealed::{Sealed, SealedRow};
pub use session_page::{SessionPage, SessionSort};
pub use tcp::{KindedTarget, TargetKind};
pub use tokens::TokenRow;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{kind} {name:?} already exists")]
    Exists { kind: &'static str, name: String },
    #[error("{kind} {name:?} does not exist")]
    Missing { kind: &'static str, name: String },
    #[error("the audit chain key is not loaded, so no audit event can be written")]
    AuditKeyMissing,
    #[error(
        "audit_legacy holds {rows} rows, but legacy rows join the audit chain only once, while it \
         is empty, and the table is then dropped: someone with write access to the database put \
         them there. Refusing to open the audit chain; keep the rows as evidence, then \
         DROP TABLE audit_legacy"
    )]
    AuditLegacyReappeared { rows: i64 },
    #[error("no database at {path}")]
    NoDatabase { path: String },
    #[error("the database is not a portcullis database (it has no migration table)")]
    NotPortcullis,
    #[error(
        "the database schema is older than this portcullis ({missing} migration(s) not applied); \
         a command that only reads never upgrades it: start `portcullis serve` of this version \
         (or run a command that changes something) first"
    )]
    SchemaBehind { missing: usize },
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    audit: audit::AuditHook,
    /// This process's run in `nodes`, written into new sessions and
    /// recordings rows (`serve` sets it; unset for the CLI).
    node_run: std::sync::Arc<std::sync::OnceLock<NodeIdent>>,
    /// Writes waiting out a database outage (`deferred.rs`).
    deferred: std::sync::Arc<deferred::Deferred>,
}

impl Store {
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- users -------------------------------------------------------------

    pub async fn add_user(
        &self,
        name: &str,
        password_hash: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let r =
            sqlx::query("INSERT INTO users (name, password_hash, created_at) VALUES ($1, $2, $3)")
                .bind(name)
                .bind(password_hash)
                .bind(now_ms)
                .execute(&self.pool)
                .await;
        unique(r, "user", name)
    }

    pub async fn set_password(
        &self,
        name: &str,
        password_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
            .bind(password_hash)
            .bind(name)
            .execute(&self.pool)
            .await?;
        affected(r.rows_affected(), "user", name)
    }

    pub async fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for q in [
            "DELETE FROM user_keys WHERE user_name = $1",
            "DELETE FROM totp WHERE user_name = $1",
            "DELETE FROM group_members WHERE user_name = $1",
            "DELETE FROM grants WHERE subject_kind = 'user' AND subject = $1",
            "DELETE FROM scim_users WHERE user_name = $1",
        ] {
            sqlx::query(q).bind(name).execute(&mut *tx).await?;
        }
        let r = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        affected(r.rows_affected(), "user", name)?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT name, password_hash, mfa_exempt FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let keys = sqlx::query(
            "SELECT public_key FROM user_keys WHERE user_name = $1 ORDER BY fingerprint",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<Vec<_>, _>>()?;
        let groups = self.groups_of(name).await?;
        Ok(Some(UserRecord {
            name: row.try_get(0)?,
            password_hash: row.try_get(1)?,
            mfa_exempt: row.try_get::<i64, _>(2)? != 0,
            public_keys: keys,
            groups,
        }))
    }

    pub async fn list_users(&self) -> Result<Vec<UserSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.name, CAST(CASE WHEN u.password_hash IS NULL THEN 0 ELSE 1 END AS BIGINT), \
             (SELECT COUNT(*) FROM user_keys k WHERE k.user_name = u.name) \
             FROM users u ORDER BY u.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UserSummary {
                    name: r.try_get(0)?,
                    has_password: r.try_get::<i64, _>(1)? != 0,
                    key_count: r.try_get::<i64, _>(2)?,
                })
            })
            .collect()
    }

    pub async fn add_user_key(
        &self,
        user: &str,
        fingerprint: &str,
        public_key: &str,
    ) -> Result<(), StoreError> {
        self.require("users", "user", user).await?;
        let r = sqlx::query(
            "INSERT INTO user_keys (user_name, fingerprint, public_key) VALUES ($1, $2, $3)",
        )
        .bind(user)
        .bind(fingerprint)
        .bind(public_key)
        .execute(&self.pool)
        .await;
        unique(r, "key", fingerprint)
    }

    // ---- groups ------------------------------------------------------------

    pub async fn add_group(&self, name: &str) -> Result<(), StoreError> {
        let r = sqlx::query("INSERT INTO user_groups (name) VALUES ($1)")
            .bind(name)
            .execute(&self.pool)
            .await;
        unique(r, "group", name)
    }

    pub async fn add_member(&self, group: &str, user: &str) -> Result<(), StoreError> {
        self.require("user_groups", "group", group).await?;
        self.require("users", "user", user).await?;
        let r = sqlx::query("INSERT INTO group_members (group_name, user_name) VALUES ($1, $2)")
            .bind(group)
            .bind(user)
            .execute(&self.pool)
            .await;
        unique(r, "membership", &format!("{user} in {group}"))
    }

    // ---- targets -----------------------------------------------------------

    pub async fn add_target(&self, t: &TargetRecord, now_ms: i64) -> Result<(), StoreError> {
        let r = sqlx::query(
            "INSERT INTO targets (name, host, port, host_key, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.name)
        .bind(&t.host)
        .bind(i64::from(t.port))
        .bind(&t.host_key)
        .bind(now_ms)
        .execute(&self.pool)
        .await;
        unique(r, "target", &t.name)
    }

    pub async fn remove_target(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM credentials WHERE target_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM grants WHERE target_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM targets WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        affected(r.rows_affected(), "target", name)?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn target(&self, name: &str) -> Result<Option<TargetRecord>, StoreError> {
        let row = sqlx::query("SELECT name, host, port, host_key FROM targets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(target_from_row).transpose()
    }

    pub async fn list_targets(&self) -> Result<Vec<TargetRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, host, port, host_key FROM targets ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(target_from_row).collect()
    }

    // ---- credentials -------------------------------------------------------

    pub async fn set_credential(
        &self,
        target: &str,
        login: &str,
        kind: CredentialKind,
        sealed: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.require("targets", "target", target).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM credentials WHERE target_name = $1 AND login = $2")
            .bind(target)
            .bind(login)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO credentials (target_name, login, kind, sealed, updated_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(target)
        .bind(login)
        .bind(kind.as_str())
        .bind(sealed)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn credential(
        &self,
        target: &str,
        login: &str,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT kind, sealed FROM credentials WHERE target_name = $1 AND login = $2",
        )
        .bind(target)
        .bind(login)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let kind: String = row.try_get(0)?;
        let sealed: String = row.try_get(1)?;
        Ok(CredentialKind::parse(&kind).map(|kind| CredentialRecord { kind, sealed }))
    }

    pub async fn list_credentials(
        &self,
    ) -> Result<Vec<(String, String, CredentialKind)>, StoreError> {
        let rows = sqlx::query(
            "SELECT target_name, login, kind FROM credentials ORDER BY target_name, login",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            if let Some(kind) = CredentialKind::parse(&r.try_get::<String, _>(2)?) {
                out.push((r.try_get(0)?, r.try_get(1)?, kind));
            }
        }
        Ok(out)
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

    // ---- grants ------------------------------------------------------------

    pub async fn add_grant(&self, g: &GrantRecord, now_ms: i64) -> Result<(), StoreError> {
        self.require("targets", "target", &g.target).await?;
        match g.subject {
            Subject::User(ref u) => self.require("users", "user", u).await?,
            Subject::Group(ref n) => self.require("user_groups", "group", n).await?,
        }
        let mut conn = self.pool.acquire().await?;
        Self::insert_grant(&mut conn, g, now_ms).await
    }

    async fn insert_grant(
        conn: &mut sqlx::AnyConnection,
        g: &GrantRecord,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO grants (id, subject_kind, subject, target_name, logins, created_at, valid_from, valid_until, \
             max_session_secs, time_zone, windows, permissions, exec_allow, exec_deny, origin) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&g.id)
        .bind(g.subject.kind())
        .bind(g.subject.name())
        .bind(&g.target)
        .bind(g.logins.join(" "))
        .bind(now_ms)
        .bind(g.valid_from_ms)
        .bind(g.valid_until_ms)
        .bind(g.max_session_secs)
        .bind(&g.time_zone)
        .bind(&g.windows)
        .bind(&g.permissions)
        .bind(g.exec_allow.join("\n"))
        .bind(g.exec_deny.join("\n"))
        .bind(&g.origin)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn remove_grant(&self, id: &str) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM grants WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        affected(r.rows_affected(), "grant", id)
    }

    /// Grants naming the user directly or any of the given groups.
    pub async fn grants_for(
        &self,
        user: &str,
        groups: &[String],
    ) -> Result<Vec<GrantRecord>, StoreError> {
        // Called for every login and every live session's re-check: the
        // database does the filtering (grants_subject index), not a full read.
        let marks: Vec<String> = (0..groups.len()).map(|i| format!("${}", i + 2)).collect();
        let group_clause = if groups.is_empty() {
            String::new()
        } else {
            format!(
                " OR (subject_kind = 'group' AND subject IN ({}))",
                marks.join(", ")
            )
        };
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE (subject_kind = 'user' AND subject = $1){group_clause} ORDER BY created_at, id"
        );
        let mut q = sqlx::query(&sql).bind(user);
        for g in groups {
            q = q.bind(g);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(grant_from_row).collect()
    }

    pub async fn list_grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }

    // ---- sessions ----------------------------------------------------------

    /// Written before the upstream is dialled; failure refuses the session.
    pub async fn session_started(&self, s: &SessionStart) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, user_name, source, target_name, login, started_at, kind, node_run) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&s.id)
        .bind(&s.user)
        .bind(&s.source)
        .bind(&s.target)
        .bind(&s.login)
        .bind(s.started_ms)
        .bind(s.kind.as_str())
        .bind(self.node_run())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn list_sessions(&self, limit: i64) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, user_name, source, target_name, login, started_at, ended_at, end_reason, bytes_up, bytes_down, kind \
             FROM sessions ORDER BY started_at DESC, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn require(
        &self,
        table: &'static str,
        kind: &'static str,
        name: &str,
    ) -> Result<(), StoreError> {
        // `table` is always one of our literals, never input.
        let q = format!("SELECT COUNT(*) FROM {table} WHERE name = $1");
        let n: i64 = sqlx::query(&q)
            .bind(name)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        affected(n as u64, kind, name)
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn affected(n: u64, kind: &'static str, name: &str) -> Result<(), StoreError> {
    if n == 0 {
        return Err(StoreError::Missing {
            kind,
            name: name.to_string(),
        });
    }
    Ok(())
}

fn unique<T>(r: Result<T, sqlx::Error>, kind: &'static str, name: &str) -> Result<(), StoreError> {
    match r {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Exists {
            kind,
            name: name.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}

const GRANT_COLUMNS: &str = "id, subject_kind, subject, target_name, logins, valid_from, valid_until, \
     max_session_secs, time_zone, windows, permissions, exec_allow, exec_deny, origin";

fn lines(s: String) -> Vec<String> {
    s.split('\n')
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn grant_from_row(r: &AnyRow) -> Result<GrantRecord, StoreError> {
    let kind: String = r.try_get(1)?;
    let subject: String = r.try_get(2)?;
    let subject = if kind == "group" {
        Subject::Group(subject)
    } else {
        Subject::User(subject)
    };
    let logins: String = r.try_get(4)?;
    Ok(GrantRecord {
        id: r.try_get(0)?,
        subject,
        target: r.try_get(3)?,
        logins: logins
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        valid_from_ms: r.try_get(5)?,
        valid_until_ms: r.try_get(6)?,
        max_session_secs: r.try_get(7)?,
        time_zone: r.try_get(8)?,
        windows: r.try_get(9)?,
        permissions: r.try_get(10)?,
        exec_allow: lines(r.try_get(11)?),
        exec_deny: lines(r.try_get(12)?),
        origin: r.try_get(13)?,
    })
}

fn target_from_row(r: &AnyRow) -> Result<TargetRecord, StoreError> {
    let port: i64 = r.try_get(2)?;
    Ok(TargetRecord {
        name: r.try_get(0)?,
        host: r.try_get(1)?,
        port: u16::try_from(port).unwrap_or(0),
        host_key: r.try_get(3)?,
    })
}

pub(super) fn session_from_row(r: &AnyRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id: r.try_get(0)?,
        user: r.try_get(1)?,
        source: r.try_get(2)?,
        target: r.try_get(3)?,
        login: r.try_get(4)?,
        started_ms: r.try_get(5)?,
        ended_ms: r.try_get(6)?,
        end_reason: r.try_get(7)?,
        bytes_up: r.try_get(8)?,
        bytes_down: r.try_get(9)?,
        kind: SessionKind::parse(&r.try_get::<String, _>(10)?),
    })
}
