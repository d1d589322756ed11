//! Group listings and removals, group members and user keys: the rows the
//! admin API changes beyond those the CLI adds in `mod.rs`.

use super::{Store, StoreError, affected};
use sqlx::Row;

impl Store {
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
            "DELETE FROM scim_groups WHERE group_name = $1",
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
}
