//! SCIM resources (`scim_users`, `scim_groups`, migration 0014) beside the
//! bastion's own users and groups, which they mark `provisioned_by = 'scim'`.
//! Only rows with a SCIM resource are visible to SCIM: local users are not.

use super::{Store, StoreError, affected, unique};
use sqlx::Row;

/// A provisioned user: the bastion name, the IdP's resource (JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimUserRow {
    pub id: String,
    pub user_name: String,
    /// The SCIM userName, lower-cased: unique, compared case-insensitively.
    pub scim_key: String,
    pub external_id: Option<String>,
    pub resource: String,
    pub active: bool,
    pub lock_id: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
}

/// A provisioned group: the bastion group name, the IdP's resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroupRow {
    pub id: String,
    pub group_name: String,
    /// The displayName, lower-cased: unique.
    pub display_key: String,
    pub external_id: Option<String>,
    pub resource: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
}

const USER_COLUMNS: &str = "id, user_name, scim_key, external_id, resource, active, lock_id, \
     created_ms, updated_ms, version";
const GROUP_COLUMNS: &str =
    "id, group_name, display_key, external_id, resource, created_ms, updated_ms, version";

fn user_row(r: &sqlx::any::AnyRow) -> Result<ScimUserRow, StoreError> {
    Ok(ScimUserRow {
        id: r.try_get(0)?,
        user_name: r.try_get(1)?,
        scim_key: r.try_get(2)?,
        external_id: r.try_get(3)?,
        resource: r.try_get(4)?,
        active: r.try_get::<i64, _>(5)? != 0,
        lock_id: r.try_get(6)?,
        created_ms: r.try_get(7)?,
        updated_ms: r.try_get(8)?,
        version: r.try_get(9)?,
    })
}

fn group_row(r: &sqlx::any::AnyRow) -> Result<ScimGroupRow, StoreError> {
    Ok(ScimGroupRow {
        id: r.try_get(0)?,
        group_name: r.try_get(1)?,
        display_key: r.try_get(2)?,
        external_id: r.try_get(3)?,
        resource: r.try_get(4)?,
        created_ms: r.try_get(5)?,
        updated_ms: r.try_get(6)?,
        version: r.try_get(7)?,
    })
}

impl Store {
    /// The groups whose grants reach a user.
    pub async fn groups_of(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            // A user the IdP deprovisioned (SCIM `active: false`) is in no
            // group as far as grants are concerned, whatever else holds.
            "SELECT group_name FROM group_members WHERE user_name = $1 \
             AND NOT EXISTS (SELECT 1 FROM scim_users s WHERE s.user_name = $2 AND s.active = 0) \
             ORDER BY group_name",
        )
        .bind(user)
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Creates the bastion user (no password, no key: marked as the IdP's)
    /// and its SCIM resource, in one transaction.
    pub async fn add_scim_user(&self, u: &ScimUserRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "INSERT INTO users (name, password_hash, created_at, provisioned_by) \
             VALUES ($1, NULL, $2, 'scim')",
        )
        .bind(&u.user_name)
        .bind(u.created_ms)
        .execute(&mut *tx)
        .await;
        unique(r, "user", &u.user_name)?;
        let r = sqlx::query(&format!(
            "INSERT INTO scim_users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&u.id)
        .bind(&u.user_name)
        .bind(&u.scim_key)
        .bind(&u.external_id)
        .bind(&u.resource)
        .bind(i64::from(u.active))
        .bind(&u.lock_id)
        .bind(u.created_ms)
        .bind(u.updated_ms)
        .bind(u.version)
        .execute(&mut *tx)
        .await;
        unique(r, "userName", &u.scim_key)?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a SCIM user's resource, state and lock (not its bastion name).
    pub async fn update_scim_user(&self, u: &ScimUserRow) -> Result<(), StoreError> {
        let r = sqlx::query(
            "UPDATE scim_users SET scim_key = $1, external_id = $2, resource = $3, active = $4, \
             lock_id = $5, updated_ms = $6, version = $7 WHERE id = $8",
        )
        .bind(&u.scim_key)
        .bind(&u.external_id)
        .bind(&u.resource)
        .bind(i64::from(u.active))
        .bind(&u.lock_id)
        .bind(u.updated_ms)
        .bind(u.version)
        .bind(&u.id)
        .execute(&self.pool)
        .await;
        match r {
            Ok(r) => affected(r.rows_affected(), "SCIM user", &u.id),
            Err(e) => unique(Err::<(), _>(e), "userName", &u.scim_key),
        }
    }

    pub async fn scim_user(&self, id: &str) -> Result<Option<ScimUserRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM scim_users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_row).transpose()
    }

    pub async fn scim_user_by_name(&self, user: &str) -> Result<Option<ScimUserRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM scim_users WHERE user_name = $1"
        ))
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_row).transpose()
    }

    pub async fn scim_users(&self) -> Result<Vec<ScimUserRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM scim_users ORDER BY created_ms, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_row).collect()
    }

    /// Whether a bastion user was created by the IdP (`None`: no such user).
    pub async fn user_provisioned_by(&self, user: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT provisioned_by FROM users WHERE name = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(r.try_get::<Option<String>, _>(0)?.unwrap_or_default())),
        }
    }

    pub async fn add_scim_group(&self, g: &ScimGroupRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("INSERT INTO user_groups (name, provisioned_by) VALUES ($1, 'scim')")
            .bind(&g.group_name)
            .execute(&mut *tx)
            .await;
        unique(r, "group", &g.group_name)?;
        let r = sqlx::query(&format!(
            "INSERT INTO scim_groups ({GROUP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&g.id)
        .bind(&g.group_name)
        .bind(&g.display_key)
        .bind(&g.external_id)
        .bind(&g.resource)
        .bind(g.created_ms)
        .bind(g.updated_ms)
        .bind(g.version)
        .execute(&mut *tx)
        .await;
        unique(r, "displayName", &g.display_key)?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn update_scim_group(&self, g: &ScimGroupRow) -> Result<(), StoreError> {
        let r = sqlx::query(
            "UPDATE scim_groups SET display_key = $1, external_id = $2, resource = $3, \
             updated_ms = $4, version = $5 WHERE id = $6",
        )
        .bind(&g.display_key)
        .bind(&g.external_id)
        .bind(&g.resource)
        .bind(g.updated_ms)
        .bind(g.version)
        .bind(&g.id)
        .execute(&self.pool)
        .await;
        match r {
            Ok(r) => affected(r.rows_affected(), "SCIM group", &g.id),
            Err(e) => unique(Err::<(), _>(e), "displayName", &g.display_key),
        }
    }

    pub async fn scim_group(&self, id: &str) -> Result<Option<ScimGroupRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM scim_groups WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(group_row).transpose()
    }

    pub async fn scim_groups(&self) -> Result<Vec<ScimGroupRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM scim_groups ORDER BY created_ms, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(group_row).collect()
    }

    /// Members of a group, by bastion user name.
    pub async fn members_of(&self, group: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_name FROM group_members WHERE group_name = $1 ORDER BY user_name",
        )
        .bind(group)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Every group a user is in, whatever the user's SCIM state (the
    /// user's read-only `groups`; `groups_of` is what grants see).
    pub async fn memberships_of(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT group_name FROM group_members WHERE user_name = $1 ORDER BY group_name",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}

/// SCIM rows on either dialect (called by `store::tests` for SQLite and
/// PostgreSQL): provisioned marks, case-folded uniqueness, an inactive
/// user in no group for grants, cleanup with the bastion rows.
#[cfg(test)]
pub(super) async fn exercise_scim(store: &Store) {
    let user = |id: &str, name: &str, key: &str| ScimUserRow {
        id: id.into(),
        user_name: name.into(),
        scim_key: key.into(),
        external_id: Some("x".into()),
        resource: "{}".into(),
        active: true,
        lock_id: None,
        created_ms: 1,
        updated_ms: 1,
        version: 1,
    };
    store.add_user("local1", None, 1).await.unwrap();
    assert_eq!(
        store.user_provisioned_by("local1").await.unwrap(),
        Some(String::new())
    );
    assert_eq!(store.user_provisioned_by("nobody").await.unwrap(), None);
    // A local user's name cannot be provisioned; a userName is unique.
    assert!(matches!(
        store.add_scim_user(&user("u0", "local1", "local1")).await,
        Err(StoreError::Exists { .. })
    ));
    let mut u = user("u1", "idp1", "idp1@example.com");
    store.add_scim_user(&u).await.unwrap();
    assert!(matches!(
        store
            .add_scim_user(&user("u2", "idp2", "idp1@example.com"))
            .await,
        Err(StoreError::Exists { .. })
    ));
    assert!(
        store.user("idp2").await.unwrap().is_none(),
        "half a user left"
    );
    assert_eq!(
        store.user_provisioned_by("idp1").await.unwrap(),
        Some("scim".into())
    );
    let g = ScimGroupRow {
        id: "g1".into(),
        group_name: "idpgroup".into(),
        display_key: "idp group".into(),
        external_id: None,
        resource: "{}".into(),
        created_ms: 1,
        updated_ms: 1,
        version: 1,
    };
    store.add_scim_group(&g).await.unwrap();
    store.add_member("idpgroup", "idp1").await.unwrap();
    assert_eq!(store.groups_of("idp1").await.unwrap(), vec!["idpgroup"]);
    u.active = false;
    u.lock_id = Some("l1".into());
    u.version = 2;
    store.update_scim_user(&u).await.unwrap();
    assert!(store.groups_of("idp1").await.unwrap().is_empty());
    assert_eq!(
        store.memberships_of("idp1").await.unwrap(),
        vec!["idpgroup"]
    );
    assert_eq!(store.scim_user("u1").await.unwrap().unwrap(), u);
    assert_eq!(store.scim_user_by_name("idp1").await.unwrap().unwrap(), u);
    assert_eq!(store.scim_users().await.unwrap(), vec![u.clone()]);
    assert_eq!(store.members_of("idpgroup").await.unwrap(), vec!["idp1"]);
    store.remove_group("idpgroup").await.unwrap();
    assert!(store.scim_group("g1").await.unwrap().is_none());
    store.remove_user("idp1").await.unwrap();
    assert!(store.scim_user("u1").await.unwrap().is_none());
    store.remove_user("local1").await.unwrap();
}
