//! Nodes of one database (issue 19): each run's heartbeat, the claim of a
//! run that went silent (exactly one node wins it), what a run left open,
//! and the fingerprints of the keys every node must share.

use super::recordings::{COLUMNS, from_row};
use super::{RecordingRow, SessionEnd, Store, StoreError};
use sqlx::Row;

/// Who this process is in `nodes`: the node's name and this start's run id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdent {
    pub node: String,
    pub run: String,
}

/// One run (one start) of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRun {
    pub run_id: String,
    pub node: String,
    pub heartbeat_ms: i64,
    pub state: String,
    /// The data directory's node-id the run served from.
    pub dir_id: String,
}

fn run_from(r: &sqlx::any::AnyRow) -> Result<NodeRun, StoreError> {
    Ok(NodeRun {
        run_id: r.try_get(0)?,
        node: r.try_get(1)?,
        heartbeat_ms: r.try_get(2)?,
        state: r.try_get(3)?,
        dir_id: r.try_get(4)?,
    })
}

impl Store {
    /// The node and run this process writes into new sessions and
    /// recordings rows; set once, by `serve`.
    pub fn set_node(&self, node: &str, run_id: &str) {
        let _ = self.node_run.set(NodeIdent {
            node: node.to_string(),
            run: run_id.to_string(),
        });
    }

    /// This process's node, when it serves.
    pub fn node(&self) -> Option<&NodeIdent> {
        self.node_run.get()
    }

    pub(super) fn node_run(&self) -> Option<&str> {
        self.node_run.get().map(|n| n.run.as_str())
    }

    /// This run starts: its row, state `up`.
    pub async fn node_started(
        &self,
        run_id: &str,
        node: &str,
        dir_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (run_id, node, started_at, heartbeat_at, state, dir_id) \
             VALUES ($1, $2, $3, $3, 'up', $4)",
        )
        .bind(run_id)
        .bind(node)
        .bind(now_ms)
        .bind(dir_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Refreshes this run's heartbeat; `false` when the run is no longer
    /// `up` (another node declared it dead and closed what it held).
    pub async fn node_heartbeat(&self, run_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE nodes SET heartbeat_at = $1 WHERE run_id = $2 AND state = 'up'")
                .bind(now_ms)
                .bind(run_id)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A clean stop: `stopped` only when the run left nothing open, else it
    /// stays `up`, expires and is claimed like a crash.
    pub async fn node_stopped(&self, run_id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE nodes SET state = 'stopped' WHERE run_id = $1 AND state = 'up' \
             AND NOT EXISTS (SELECT 1 FROM sessions WHERE node_run = $1 AND ended_at IS NULL) \
             AND NOT EXISTS (SELECT 1 FROM recordings WHERE node_run = $1 AND state = 'open')",
        )
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Runs in state `up` other than `me`: all of them, or only those
    /// whose heartbeat is older than `cutoff_ms`.
    pub async fn node_runs_up(&self, me: &str) -> Result<Vec<NodeRun>, StoreError> {
        let rows = sqlx::query(
            "SELECT run_id, node, heartbeat_at, state, dir_id FROM nodes WHERE state = 'up' AND run_id <> $1 \
             ORDER BY started_at, run_id",
        )
        .bind(me)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from).collect()
    }

    /// Claims `run` for `by`: `up` → `dead`, only while it is still `up`
    /// and (unless `any_age`) its heartbeat is older than `cutoff_ms`, so of
    /// several nodes noticing one silent run exactly one wins.
    pub async fn claim_node_run(
        &self,
        run: &str,
        by: &str,
        now_ms: i64,
        cutoff_ms: i64,
        any_age: bool,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE nodes SET state = 'dead', claimed_by = $1, claimed_at = $2 \
             WHERE run_id = $3 AND state = 'up' AND (heartbeat_at < $4 OR $5 = 1)",
        )
        .bind(by)
        .bind(now_ms)
        .bind(run)
        .bind(cutoff_ms)
        .bind(i64::from(any_age))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Claims `dead` runs whose claimer (`from`) died before it finished.
    pub async fn adopt_node_claims(&self, from: &str, by: &str) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE nodes SET claimed_by = $1 WHERE state = 'dead' AND claimed_by = $2 AND cleaned_at IS NULL",
        )
        .bind(by)
        .bind(from)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Runs `by` claimed and has not finished closing yet.
    pub async fn node_claims_of(&self, by: &str) -> Result<Vec<NodeRun>, StoreError> {
        let rows = sqlx::query(
            "SELECT run_id, node, heartbeat_at, state, dir_id FROM nodes \
             WHERE state = 'dead' AND claimed_by = $1 AND cleaned_at IS NULL ORDER BY started_at, run_id",
        )
        .bind(by)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from).collect()
    }

    pub async fn node_cleaned(&self, run: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE nodes SET cleaned_at = $1 WHERE run_id = $2")
            .bind(now_ms)
            .bind(run)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Open recordings written by `run` (`None`: rows from before node
    /// identity).
    pub async fn open_recordings_of_run(
        &self,
        run: Option<&str>,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let q = match run {
            Some(_) => format!(
                "SELECT {COLUMNS} FROM recordings WHERE state = 'open' AND node_run = $1 ORDER BY started_at, name"
            ),
            None => format!(
                "SELECT {COLUMNS} FROM recordings WHERE state = 'open' AND node_run IS NULL ORDER BY started_at, name"
            ),
        };
        let mut query = sqlx::query(&q);
        if let Some(r) = run {
            query = query.bind(r);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Ids of the sessions `run` holds that have no end row.
    pub async fn live_sessions_of_run(&self, run: Option<&str>) -> Result<Vec<String>, StoreError> {
        let q = match run {
            Some(_) => {
                "SELECT id FROM sessions WHERE ended_at IS NULL AND node_run = $1 ORDER BY started_at, id"
            }
            None => {
                "SELECT id FROM sessions WHERE ended_at IS NULL AND node_run IS NULL ORDER BY started_at, id"
            }
        };
        let mut query = sqlx::query(q);
        if let Some(r) = run {
            query = query.bind(r);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
            .collect()
    }

    /// Sessions live on other runs that are up (other nodes), with the
    /// node holding each: one cluster view from any node.
    pub async fn live_elsewhere(
        &self,
        my_run: &str,
    ) -> Result<Vec<(super::SessionRecord, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, s.user_name, s.source, s.target_name, s.login, s.started_at, s.ended_at, \
             s.end_reason, s.bytes_up, s.bytes_down, s.kind, n.node \
             FROM sessions s JOIN nodes n ON n.run_id = s.node_run \
             WHERE s.ended_at IS NULL AND n.state = 'up' AND n.run_id <> $1 \
             ORDER BY s.started_at, s.id",
        )
        .bind(my_run)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((super::session_from_row(r)?, r.try_get::<String, _>(11)?)))
            .collect()
    }

    /// The node whose run wrote recording `name`: its name, its run's
    /// state and last heartbeat (Unix ms).
    pub async fn recording_node(
        &self,
        name: &str,
    ) -> Result<Option<(String, String, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT n.node, n.state, n.heartbeat_at FROM recordings r \
             JOIN nodes n ON n.run_id = r.node_run WHERE r.name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .transpose()
    }

    /// Ends a session only if it has no end yet; `true` when this call did.
    pub async fn close_session_once(&self, id: &str, e: &SessionEnd) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE sessions SET ended_at = $1, end_reason = $2, bytes_up = $3, bytes_down = $4 \
             WHERE id = $5 AND ended_at IS NULL",
        )
        .bind(e.ended_ms)
        .bind(&e.reason)
        .bind(i64::try_from(e.bytes_up).unwrap_or(i64::MAX))
        .bind(i64::try_from(e.bytes_down).unwrap_or(i64::MAX))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records `fingerprint` as the cluster's `name` key unless one is
    /// recorded; returns the recorded one and the node that recorded it.
    pub async fn cluster_key(
        &self,
        name: &str,
        fingerprint: &str,
        node: &str,
        now_ms: i64,
    ) -> Result<(String, String), StoreError> {
        sqlx::query(
            "INSERT INTO cluster_keys (name, fingerprint, node, recorded_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(fingerprint)
        .bind(node)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT fingerprint, node FROM cluster_keys WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Moves the cluster's `name` key on (a KEK rotation).
    pub async fn set_cluster_key(
        &self,
        name: &str,
        fingerprint: &str,
        node: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cluster_keys SET fingerprint = $1, node = $2, recorded_at = $3 WHERE name = $4",
        )
        .bind(fingerprint)
        .bind(node)
        .bind(now_ms)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
