//! The audit chain's rows: serialised appends, the append-only guards, reads.
//!
//! The store never sees the chain key: the caller's [`AuditSealer`] computes
//! each row's keyed hash inside the append transaction, once the head row is
//! locked, so there is exactly one chain however many processes append.

use super::{Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event to append; the chain adds its sequence number and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub ts_ms: i64,
    pub kind: String,
    pub actor: String,
    pub source: String,
    pub subject: String,
    /// Empty when the event belongs to no session.
    pub session: String,
    /// A JSON object, stored (and hashed) as this exact text.
    pub detail: String,
}

/// One row of the chain as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedRow {
    pub seq: i64,
    pub ts_ms: i64,
    pub kind: String,
    pub actor: String,
    pub source: String,
    pub subject: String,
    pub session: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Computes a row's keyed hash (its `hash` field is ignored).
pub trait AuditSealer: Send + Sync {
    fn seal(&self, row: &ChainedRow) -> String;
}

/// Whether the audit trail can be written, shared by every clone of the store
/// (read by `/health`); and how many streamed events were dropped.
#[derive(Debug, Clone, Default)]
pub struct AuditHealth(Arc<HealthInner>);

#[derive(Debug, Default)]
struct HealthInner {
    failing: AtomicBool,
    failures: AtomicU64,
    dropped: AtomicU64,
}

impl AuditHealth {
    /// Records the outcome of one append: a failure turns the flag on, the
    /// next success turns it off.
    pub fn note(&self, ok: bool) {
        if !ok {
            self.0.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.0.failing.store(!ok, Ordering::SeqCst);
    }
    pub fn is_failing(&self) -> bool {
        self.0.failing.load(Ordering::SeqCst)
    }
    /// Appends that failed since start.
    pub fn failures(&self) -> u64 {
        self.0.failures.load(Ordering::Relaxed)
    }
    pub fn note_dropped(&self, n: u64) {
        self.0.dropped.fetch_add(n, Ordering::Relaxed);
    }
    /// Events the stream skipped because its sink was too slow.
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Default)]
pub(super) struct AuditHook {
    sealer: Option<Arc<dyn AuditSealer>>,
    health: AuditHealth,
    /// Appends waiting for the next group commit (`audit_batch.rs`),
    /// shared by every clone of the store.
    pub(super) batch: Arc<super::audit_batch::Batch>,
}

impl std::fmt::Debug for AuditHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditHook")
            .field("sealed", &self.sealer.is_some())
            .finish_non_exhaustive()
    }
}

/// Filters of a read; `None` means any. Kind matches as a dotted prefix.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub kind: Option<String>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub session: Option<String>,
    pub after_seq: Option<i64>,
    pub before_seq: Option<i64>,
    pub newest_first: bool,
    pub limit: i64,
}

const COLUMNS: &str = "seq, ts, kind, actor, source, subject, session_id, detail, prev_hash, hash";

impl Store {
    /// Every later append is sealed by `sealer`; rows written before the
    /// chain existed are appended to it first, once, while it is empty
    /// (refused with [`StoreError::AuditLegacyReappeared`] afterwards).
    pub async fn attach_audit(mut self, sealer: Arc<dyn AuditSealer>) -> Result<Store, StoreError> {
        self.audit.sealer = Some(sealer);
        self.adopt_legacy_audit().await?;
        Ok(self)
    }

    pub fn audit_health(&self) -> &AuditHealth {
        &self.audit.health
    }

    pub(super) fn sealer(&self) -> Result<Arc<dyn AuditSealer>, StoreError> {
        self.audit.sealer.clone().ok_or(StoreError::AuditKeyMissing)
    }

    /// Rows from before the chain join it only while the chain is empty (the
    /// first start after migration 0007), and the table is dropped in the same
    /// transaction. Later, rows there can only have been put there by a
    /// database writer: sealing them with the real key would launder a forgery,
    /// so the chain is refused instead.
    async fn adopt_legacy_audit(&self) -> Result<usize, StoreError> {
        let sealer = self.sealer()?;
        let mut tx = self.pool.begin().await?;
        if !legacy_table_exists(&mut tx).await? {
            return Ok(0);
        }
        // Lock the head first, so a second node adopting at once waits and then finds no table.
        let head: Option<i64> =
            sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq")
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        // Looked at again under the lock: a node that held it adopted and dropped the table.
        if !legacy_table_exists(&mut tx).await? {
            return Ok(0);
        }
        let chained: i64 = sqlx::query("SELECT COUNT(*) FROM audit_events")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let rows = sqlx::query(
            "SELECT ts, kind, actor, source, subject, detail FROM audit_legacy ORDER BY ts, id",
        )
        .fetch_all(&mut *tx)
        .await?;
        // A missing head counts as a chain that was written to: fail closed.
        let empty_chain = head == Some(0) && chained == 0;
        if !empty_chain && !rows.is_empty() {
            return Err(StoreError::AuditLegacyReappeared {
                rows: rows.len() as i64,
            });
        }
        for r in &rows {
            let row = AuditRow {
                ts_ms: r.try_get(0)?,
                kind: r.try_get(1)?,
                actor: r.try_get(2)?,
                source: r.try_get(3)?,
                subject: r.try_get(4)?,
                session: String::new(),
                detail: r.try_get(5)?,
            };
            append_in(&mut tx, sealer.as_ref(), &row).await?;
        }
        // Also drops the empty table left by releases that adopted on every start.
        sqlx::query("DROP TABLE audit_legacy")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Rows in `audit_legacy`, or `None` when the table does not exist.
    pub async fn audit_legacy_rows(&self) -> Result<Option<i64>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        if !legacy_table_exists(&mut conn).await? {
            return Ok(None);
        }
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM audit_legacy")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        Ok(Some(n))
    }

    /// The head as last written: sequence number and hash of the newest row
    /// (`None` only if someone deleted it).
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let r = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    pub async fn audit_rows(&self, f: &AuditFilter) -> Result<Vec<ChainedRow>, StoreError> {
        // Placeholders are numbered in the order values are pushed, and bound
        // in that order: every integer first, then every text, then the limit.
        let mut clauses: Vec<String> = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        for (col, op, v) in [
            ("ts", ">=", f.since_ms),
            ("ts", "<", f.until_ms),
            ("seq", ">", f.after_seq),
            ("seq", "<", f.before_seq),
        ] {
            if let Some(v) = v {
                ints.push(v);
                clauses.push(format!("{col} {op} ${}", ints.len()));
            }
        }
        let base = ints.len();
        for (col, v) in [
            ("actor", &f.actor),
            ("subject", &f.subject),
            ("session_id", &f.session),
        ] {
            if let Some(v) = v {
                texts.push(v.clone());
                clauses.push(format!("{col} = ${}", base + texts.len()));
            }
        }
        if let Some(k) = &f.kind {
            texts.push(k.clone());
            texts.push(format!("{}.%", like_escape(k)));
            let b = base + texts.len();
            clauses.push(format!("(kind = ${} OR kind LIKE ${b} ESCAPE '!')", b - 1));
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events{}{} ORDER BY seq {} LIMIT ${}",
            if clauses.is_empty() { "" } else { " WHERE " },
            clauses.join(" AND "),
            if f.newest_first { "DESC" } else { "ASC" },
            base + texts.len() + 1,
        );
        let mut q = sqlx::query(&sql);
        for v in &ints {
            q = q.bind(*v);
        }
        for v in &texts {
            q = q.bind(v.as_str());
        }
        let rows = q.bind(f.limit).fetch_all(&self.pool).await?;
        rows.iter().map(chained_from_row).collect()
    }
}

/// Takes the head's lock, seals the row as the next one and inserts it.
pub(super) async fn append_in(
    conn: &mut AnyConnection,
    sealer: &dyn AuditSealer,
    r: &AuditRow,
) -> Result<ChainedRow, StoreError> {
    let mut rows = append_all_in(conn, sealer, &[r]).await?;
    // INVARIANT: one row in, one row out (or an error above).
    Ok(rows.pop().expect("one row appended"))
}

/// Rows per INSERT statement (10 parameters each: within SQLite's and
/// PostgreSQL's limits on bound parameters).
const INSERT_ROWS: usize = 50;

/// Appends `rows` in order at the head of the chain, inside the caller's
/// transaction. Three statements per batch, not three per row (issue 20:
/// each statement is a round trip to the database's thread; a group
/// commit carries several rows): the head's seq moves past the whole batch
/// first, the rows are chained in memory and inserted, then the head takes
/// the last row's hash. The same rows and hashes as appending them one by
/// one.
pub(super) async fn append_all_in(
    conn: &mut AnyConnection,
    sealer: &dyn AuditSealer,
    rows: &[&AuditRow],
) -> Result<Vec<ChainedRow>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let n = rows.len() as i64;
    // A write first: on SQLite it takes the database's write lock, on
    // PostgreSQL the head row's lock, both held until commit, so reading the
    // head and inserting the next rows cannot interleave with another append.
    let head = sqlx::query("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
        .bind(n)
        .fetch_one(&mut *conn)
        .await?;
    let last: i64 = head.try_get(0)?;
    let mut prev_hash: String = head.try_get(1)?;
    let mut chained = Vec::with_capacity(rows.len());
    for (seq, r) in (last - n + 1..).zip(rows) {
        let mut row = ChainedRow {
            seq,
            ts_ms: r.ts_ms,
            kind: r.kind.clone(),
            actor: r.actor.clone(),
            source: r.source.clone(),
            subject: r.subject.clone(),
            session: r.session.clone(),
            detail: r.detail.clone(),
            prev_hash,
            hash: String::new(),
        };
        row.hash = sealer.seal(&row);
        prev_hash = row.hash.clone();
        chained.push(row);
    }
    for chunk in chained.chunks(INSERT_ROWS) {
        insert_rows(conn, chunk).await?;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev_hash)
        .execute(&mut *conn)
        .await?;
    Ok(chained)
}

/// One INSERT of `rows` (at most [`INSERT_ROWS`]).
async fn insert_rows(conn: &mut AnyConnection, rows: &[ChainedRow]) -> Result<(), StoreError> {
    let values: Vec<String> = (0..rows.len())
        .map(|i| {
            let p: Vec<String> = (1..=10).map(|c| format!("${}", i * 10 + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO audit_events ({COLUMNS}) VALUES {}",
        values.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for row in rows {
        q = q
            .bind(row.seq)
            .bind(row.ts_ms)
            .bind(&row.kind)
            .bind(&row.actor)
            .bind(&row.source)
            .bind(&row.subject)
            .bind(&row.session)
            .bind(&row.detail)
            .bind(&row.prev_hash)
            .bind(&row.hash);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// Asked of the catalogue, so no failing statement aborts a PostgreSQL transaction.
async fn legacy_table_exists(conn: &mut AnyConnection) -> Result<bool, StoreError> {
    let sql = if conn.backend_name() == "PostgreSQL" {
        "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'audit_legacy' \
         AND schemaname = ANY (current_schemas(false))"
    } else {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_legacy'"
    };
    let n: i64 = sqlx::query(sql).fetch_one(&mut *conn).await?.try_get(0)?;
    Ok(n > 0)
}

fn like_escape(s: &str) -> String {
    s.replace('!', "!!").replace('%', "!%").replace('_', "!_")
}

fn chained_from_row(r: &AnyRow) -> Result<ChainedRow, StoreError> {
    Ok(ChainedRow {
        seq: r.try_get(0)?,
        ts_ms: r.try_get(1)?,
        kind: r.try_get(2)?,
        actor: r.try_get(3)?,
        source: r.try_get(4)?,
        subject: r.try_get(5)?,
        session: r.try_get(6)?,
        detail: r.try_get(7)?,
        prev_hash: r.try_get(8)?,
        hash: r.try_get(9)?,
    })
}

const SQLITE_GUARDS: &[&str] = &[
    "CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events \
     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events \
     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head \
     BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END",
];

const PG_GUARDS: &[&str] = &[
    // Several nodes may start at once; concurrent DDL on one function fails.
    "SELECT pg_advisory_xact_lock(7242017001)",
    "CREATE OR REPLACE FUNCTION portcullis_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; END $$",
    "DO $$ BEGIN \
       IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'audit_events_append_only' \
                      AND tgrelid = 'audit_events'::regclass) THEN \
         CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events \
           FOR EACH ROW EXECUTE FUNCTION portcullis_audit_append_only(); \
       END IF; \
       IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'audit_events_no_truncate' \
                      AND tgrelid = 'audit_events'::regclass) THEN \
         CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events \
           FOR EACH STATEMENT EXECUTE FUNCTION portcullis_audit_append_only(); \
       END IF; \
       IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'audit_head_no_delete' \
                      AND tgrelid = 'audit_head'::regclass) THEN \
         CREATE TRIGGER audit_head_no_delete BEFORE DELETE OR TRUNCATE ON audit_head \
           FOR EACH STATEMENT EXECUTE FUNCTION portcullis_audit_append_only(); \
       END IF; \
     END $$",
];

/// Makes the database itself refuse UPDATE and DELETE on the audit table.
/// Idempotent; run after migrations on every start (a dropped trigger comes back).
pub(super) async fn install_audit_guards(pool: &sqlx::AnyPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let guards = if tx.backend_name() == "PostgreSQL" {
        PG_GUARDS
    } else {
        SQLITE_GUARDS
    };
    for g in guards {
        sqlx::raw_sql(g).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
