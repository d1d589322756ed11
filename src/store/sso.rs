//! Users an OpenID Provider's sign-in creates (`provisioned_by = 'oidc'`):
//! no password, no key; groups follow the IdP's claim at each sign-in.

use super::{Store, StoreError, unique};

impl Store {
    /// Creates a user marked as the IdP's.
    pub async fn add_oidc_user(&self, name: &str, created_ms: i64) -> Result<(), StoreError> {
        let r = sqlx::query(
            "INSERT INTO users (name, password_hash, created_at, provisioned_by) \
             VALUES ($1, NULL, $2, 'oidc')",
        )
        .bind(name)
        .bind(created_ms)
        .execute(&self.pool)
        .await;
        unique(r, "user", name)
    }
}
