//! Writes that wait out a database outage (issue 19 point 3). On
//! PostgreSQL, for a serving node, a session's end, a recording's
//! checkpoint or seal and a kill-switch audit event that fail because the
//! database cannot be reached are kept here, in order, and written when it
//! answers again — so nothing stays "live" in the database after its
//! session ended. A late write never overrides what another node decided
//! meanwhile: a session end applies only to a row with no end yet, a
//! checkpoint only to a recording still `open`.
//!
//! Also here: whether the database answers at all ([`Reach`]), which the
//! gateway reads to refuse logins at once instead of letting them hang.

use super::{AuditRow, SessionEnd, Store, StoreError};
use crate::sync::MutexExt;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

/// More than this many waiting writes and the oldest checkpoints go first
/// (a later one of the same recording replaces them anyway).
const MAX_WAITING: usize = 100_000;

#[derive(Debug)]
enum Write {
    SessionEnded(String, SessionEnd),
    Checkpoint {
        name: String,
        events: i64,
        cast_bytes: i64,
        sha256: String,
        at_ms: i64,
        state: String,
    },
    Audit(AuditRow),
}

/// The waiting writes; `on` only for a serving node on PostgreSQL.
#[derive(Debug, Default)]
pub struct Deferred {
    on: std::sync::atomic::AtomicBool,
    q: Mutex<VecDeque<Write>>,
}

/// Whether an error means the database could not be reached (as opposed
/// to a statement it refused).
pub fn unreachable(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Db(
            sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed
        )
    )
}

impl Store {
    /// From now on, writes that fail for want of the database wait (only
    /// on PostgreSQL: a SQLite file that fails is not an outage to wait out).
    pub fn defer_writes_in_outage(&self, url: &str) {
        if !url.starts_with("sqlite:") {
            self.deferred.on.store(true, Ordering::SeqCst);
        }
    }

    fn defer(&self, e: StoreError, w: Write) -> Result<(), StoreError> {
        if !(self.deferred.on.load(Ordering::SeqCst) && unreachable(&e)) {
            return Err(e);
        }
        let mut q = self.deferred.q.lock_or_recover();
        if let Write::Checkpoint { name, .. } = &w {
            q.retain(|x| !matches!(x, Write::Checkpoint { name: n, state, .. } if n == name && state == "open"));
        }
        if q.len() >= MAX_WAITING
            && let Some(i) = q.iter().position(|x| matches!(x, Write::Checkpoint { .. }))
        {
            q.remove(i);
        }
        q.push_back(w);
        tracing::warn!(
            waiting = q.len(),
            "database unreachable: write kept until it answers"
        );
        Ok(())
    }

    /// How many writes wait for the database.
    pub fn deferred_len(&self) -> usize {
        self.deferred.q.lock_or_recover().len()
    }

    /// Writes what waited, oldest first; stops at the first failure (the
    /// rest waits for the next try). The count written.
    pub async fn flush_deferred(&self) -> Result<usize, StoreError> {
        let mut done = 0;
        loop {
            let Some(w) = self.deferred.q.lock_or_recover().pop_front() else {
                return Ok(done);
            };
            let r = match &w {
                Write::SessionEnded(id, e) => self.close_session_once(id, e).await.map(|_| ()),
                Write::Checkpoint {
                    name,
                    events,
                    cast_bytes,
                    sha256,
                    at_ms,
                    state,
                } => sqlx::query(
                    "UPDATE recordings SET events = $1, cast_bytes = $2, sha256 = $3, \
                         checkpoint_at = $4, state = $5 WHERE name = $6 AND state = 'open'",
                )
                .bind(events)
                .bind(cast_bytes)
                .bind(sha256)
                .bind(at_ms)
                .bind(state)
                .bind(name)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(StoreError::from),
                Write::Audit(row) => self.append_audit(row).await.map(|_| ()),
            };
            if let Err(e) = r {
                if unreachable(&e) {
                    self.deferred.q.lock_or_recover().push_front(w);
                    return Err(e);
                }
                tracing::error!(error = %e, write = ?w, "a write kept through the outage failed");
            }
            done += 1;
        }
    }

    pub async fn session_ended(&self, id: &str, e: &SessionEnd) -> Result<(), StoreError> {
        let r = sqlx::query(
            "UPDATE sessions SET ended_at = $1, end_reason = $2, bytes_up = $3, bytes_down = $4 WHERE id = $5",
        )
        .bind(e.ended_ms)
        .bind(&e.reason)
        .bind(super::clamp(e.bytes_up))
        .bind(super::clamp(e.bytes_down))
        .bind(id)
        .execute(&self.pool)
        .await;
        match r {
            Ok(r) => super::affected(r.rows_affected(), "session", id),
            Err(err) => self.defer(err.into(), Write::SessionEnded(id.to_string(), e.clone())),
        }
    }

    /// A recording's checkpoint (`state` open) or end (closed, cut_short,
    /// failed) in its row.
    pub async fn recording_checkpoint(
        &self,
        name: &str,
        events: i64,
        cast_bytes: i64,
        sha256: &str,
        at_ms: i64,
        state: &str,
    ) -> Result<(), StoreError> {
        match self
            .recording_checkpoint_now(name, events, cast_bytes, sha256, at_ms, state)
            .await
        {
            Err(e) => self.defer(
                e,
                Write::Checkpoint {
                    name: name.to_string(),
                    events,
                    cast_bytes,
                    sha256: sha256.to_string(),
                    at_ms,
                    state: state.to_string(),
                },
            ),
            ok => ok,
        }
    }

    /// Appends an audit row, or keeps it for when the database answers
    /// (kill-switch events: a lock made during an outage is still told).
    pub async fn append_audit_or_defer(&self, r: &AuditRow) -> Result<(), StoreError> {
        match self.append_audit(r).await {
            Ok(_) => Ok(()),
            Err(e) => self.defer(e, Write::Audit(r.clone())),
        }
    }
}

/// Whether the database answers, as this node last saw it, and when this
/// node's heartbeat was last written.
#[derive(Debug)]
pub struct Reach {
    /// Unix ms since the database stopped answering; 0 while it answers.
    down_since_ms: AtomicI64,
    why: Mutex<String>,
    beat: Mutex<Instant>,
}

impl Default for Reach {
    fn default() -> Reach {
        Reach {
            down_since_ms: AtomicI64::new(0),
            why: Mutex::new(String::new()),
            beat: Mutex::new(Instant::now()),
        }
    }
}

impl Reach {
    pub fn is_down(&self) -> bool {
        self.down_since_ms.load(Ordering::SeqCst) != 0
    }

    /// Since when (Unix ms) the database does not answer, and why.
    pub fn down(&self) -> Option<(i64, String)> {
        let since = self.down_since_ms.load(Ordering::SeqCst);
        (since != 0).then(|| (since, self.why.lock_or_recover().clone()))
    }

    /// It answered; `true` when it did not before.
    pub fn answered(&self) -> bool {
        self.down_since_ms.swap(0, Ordering::SeqCst) != 0
    }

    /// It did not answer; `true` when it did before.
    pub fn failed(&self, why: &str, now_ms: i64) -> bool {
        *self.why.lock_or_recover() = why.to_string();
        self.down_since_ms
            .compare_exchange(0, now_ms.max(1), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// This node's heartbeat was written.
    pub fn beat(&self) {
        *self.beat.lock_or_recover() = Instant::now();
    }

    /// How long since this node's heartbeat was last written.
    pub fn since_beat(&self) -> std::time::Duration {
        self.beat.lock_or_recover().elapsed()
    }
}
