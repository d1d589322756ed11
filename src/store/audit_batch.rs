//! Group commit of the audit chain's appends.
//!
//! Every audited step waits until its row is durable. One transaction (and,
//! on SQLite, one WAL sync) per row made the chain the login path's
//! bottleneck on a real disk: ~8 syncs per proxied login, one writer. Appends
//! that arrive while a commit is in progress now queue, and the next commit
//! writes all of them, in arrival order, in one transaction. Each caller
//! still returns only once its own row is committed; nothing is acknowledged
//! early.
//!
//! On SQLite the pool's connections run `synchronous = NORMAL` (see
//! `open.rs`): their commits are not synced. An audit commit switches its
//! connection to `FULL` first, so its WAL sync also makes every write
//! committed before it durable. Every security-relevant change is audited,
//! so it is durable once its audit row is.

use super::audit::{AuditRow, AuditSealer, ChainedRow, append_all_in};
use super::{Store, StoreError};
use crate::sync::MutexExt;
use sqlx::{Acquire, AnyConnection};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Rows waiting for the next commit, and whose turn it is to commit.
#[derive(Default)]
pub(super) struct Batch {
    waiting: Mutex<Vec<Pending>>,
    turn: tokio::sync::Mutex<()>,
}

/// A queued row and where its outcome goes: the committed row, or `None`
/// when the batch failed (then nothing of it was written).
struct Pending {
    row: AuditRow,
    done: oneshot::Sender<Option<ChainedRow>>,
}

impl Store {
    /// Appends one event at the head of the chain; durable when this returns.
    pub async fn append_audit(&self, r: &AuditRow) -> Result<ChainedRow, StoreError> {
        let sealer = self.sealer()?;
        let (done, mut outcome) = oneshot::channel();
        let batch = self.audit.batch.clone();
        batch.waiting.lock_or_recover().push(Pending {
            row: r.clone(),
            done,
        });
        {
            let _turn = batch.turn.lock().await;
            // Committed by the batch before ours, while we waited our turn?
            if let Ok(row) = outcome.try_recv() {
                return self.settle(sealer.as_ref(), r, row).await;
            }
            let rows = std::mem::take(&mut *batch.waiting.lock_or_recover());
            // In a task of its own: a caller that gives up (a timeout, a
            // closed connection) must not abandon the others' rows mid-commit.
            let (store, sealer) = (self.clone(), sealer.clone());
            let _ = tokio::spawn(async move { store.commit_batch(sealer, rows).await }).await;
        }
        let row = outcome.await.unwrap_or(None);
        self.settle(sealer.as_ref(), r, row).await
    }

    /// A row the batch wrote, or (the batch failed) the row written alone,
    /// so that its caller gets its own error.
    async fn settle(
        &self,
        sealer: &dyn AuditSealer,
        r: &AuditRow,
        row: Option<ChainedRow>,
    ) -> Result<ChainedRow, StoreError> {
        match row {
            Some(row) => Ok(row),
            None => {
                let mut conn = self.pool.acquire().await?;
                let mut rows = write_durably(&mut conn, sealer, &[r]).await?;
                // INVARIANT: one row in, one row out (or an error above).
                Ok(rows.pop().expect("one row appended"))
            }
        }
    }

    async fn commit_batch(&self, sealer: Arc<dyn AuditSealer>, batch: Vec<Pending>) {
        let rows: Vec<&AuditRow> = batch.iter().map(|p| &p.row).collect();
        let written = match self.pool.acquire().await {
            Ok(mut conn) => write_durably(&mut conn, sealer.as_ref(), &rows).await,
            Err(e) => Err(e.into()),
        };
        match written {
            Ok(chained) => {
                for (p, row) in batch.into_iter().zip(chained) {
                    let _ = p.done.send(Some(row));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, rows = batch.len(), "audit batch not written; each row tried alone");
                for p in batch {
                    let _ = p.done.send(None);
                }
            }
        }
    }
}

/// Appends `rows` in one transaction, synced to disk before it returns.
async fn write_durably(
    conn: &mut AnyConnection,
    sealer: &dyn AuditSealer,
    rows: &[&AuditRow],
) -> Result<Vec<ChainedRow>, StoreError> {
    let sqlite = conn.backend_name() == "SQLite";
    if sqlite {
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await?;
    }
    let mut tx = conn.begin().await?;
    let chained = append_all_in(&mut tx, sealer, rows).await?;
    tx.commit().await?;
    if sqlite {
        // Back to the pool's setting; if this fails the connection only
        // stays more durable than it needs to be.
        let _ = sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await;
    }
    Ok(chained)
}
