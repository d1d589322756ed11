//! SSH targets by name or configured host: the ones a ProxyJump destination
//! (host, port) may name.

use super::{Store, StoreError, TargetRecord, target_from_row};

impl Store {
    /// Targets whose name or configured host equals `host`, ignoring case
    /// (OpenSSH lower-cases the host name it forwards to); the caller
    /// decides which one the port selects.
    pub async fn targets_named_or_at(&self, host: &str) -> Result<Vec<TargetRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, host, port, host_key FROM targets \
             WHERE (lower(name) = lower($1) OR lower(host) = lower($1)) AND kind <> 'tcp' ORDER BY name",
        )
        .bind(host)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(target_from_row).collect()
    }
}
