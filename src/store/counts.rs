//! Counters behind `/metrics` and the health reads, over durable rows so
//! every node agrees.

use super::{Store, StoreError};
use sqlx::Row;

/// Counters for `/metrics`, read from durable rows so every node agrees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricCounts {
    /// (audit kind, rows) for every kind present.
    pub audit_kinds: Vec<(String, i64)>,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub source_blocks: i64,
}

impl Store {
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
