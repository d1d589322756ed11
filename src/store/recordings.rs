//! Recording rows and their last integrity checkpoint.

use super::{Store, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRow {
    /// File stem: `<session>-<channel>`.
    pub name: String,
    pub session_id: String,
    pub channel: i64,
    pub kind: String,
    pub started_ms: i64,
    pub events: i64,
    pub cast_bytes: i64,
    pub sha256: String,
    pub checkpoint_ms: Option<i64>,
    /// `open`, `closed`, `cut_short`, `failed`.
    pub state: String,
}

impl RecordingRow {
    /// The row of a recording that starts now: empty, `open`.
    pub fn open(name: &str, session_id: &str, channel: u32, kind: &str, started_ms: i64) -> Self {
        RecordingRow {
            name: name.to_string(),
            session_id: session_id.to_string(),
            channel: i64::from(channel),
            kind: kind.to_string(),
            started_ms,
            events: 0,
            cast_bytes: 0,
            sha256: String::new(),
            checkpoint_ms: None,
            state: "open".into(),
        }
    }
}

pub(super) const COLUMNS: &str =
    "name, session_id, channel, kind, started_at, events, cast_bytes, sha256, checkpoint_at, state";

pub(super) fn from_row(r: &AnyRow) -> Result<RecordingRow, StoreError> {
    Ok(RecordingRow {
        name: r.try_get(0)?,
        session_id: r.try_get(1)?,
        channel: r.try_get(2)?,
        kind: r.try_get(3)?,
        started_ms: r.try_get(4)?,
        events: r.try_get(5)?,
        cast_bytes: r.try_get(6)?,
        sha256: r.try_get(7)?,
        checkpoint_ms: r.try_get(8)?,
        state: r.try_get(9)?,
    })
}

impl Store {
    pub async fn recording_started(&self, r: &RecordingRow) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO recordings ({COLUMNS}, node_run) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&r.name)
        .bind(&r.session_id)
        .bind(r.channel)
        .bind(&r.kind)
        .bind(r.started_ms)
        .bind(r.events)
        .bind(r.cast_bytes)
        .bind(&r.sha256)
        .bind(r.checkpoint_ms)
        .bind(&r.state)
        .bind(self.node_run())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn recording_checkpoint_now(
        &self,
        name: &str,
        events: i64,
        cast_bytes: i64,
        sha256: &str,
        at_ms: i64,
        state: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE recordings SET events = $1, cast_bytes = $2, sha256 = $3, checkpoint_at = $4, state = $5 WHERE name = $6")
            .bind(events)
            .bind(cast_bytes)
            .bind(sha256)
            .bind(at_ms)
            .bind(state)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn recordings_in_state(&self, state: &str) -> Result<Vec<RecordingRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE state = $1 ORDER BY started_at, name"
        ))
        .bind(state)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn recordings_of(&self, session_id: &str) -> Result<Vec<RecordingRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE session_id = $1 ORDER BY channel"
        ))
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn all_recordings(&self) -> Result<Vec<RecordingRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings ORDER BY started_at DESC, name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn remove_recording(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM recordings WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the words of a finished recording for search. `complete`:
    /// these are all its words; otherwise the recording stays a candidate of
    /// every search (its words only narrow nothing).
    pub async fn index_recording(
        &self,
        name: &str,
        words: &[String],
        complete: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM recording_words WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        // The empty word (never a real one) marks the recording as indexed.
        if complete {
            sqlx::query("INSERT INTO recording_words (word, name) VALUES ('', $1)")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        for chunk in words.chunks(200) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!(
                "INSERT INTO recording_words (word, name) VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for w in chunk {
                q = q.bind(w).bind(name);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn indexed_recordings(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT name FROM recording_words WHERE word = ''")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Recordings whose index holds every one of `words`.
    pub async fn recordings_with_words(&self, words: &[String]) -> Result<Vec<String>, StoreError> {
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=words.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT name FROM recording_words WHERE word IN ({}) GROUP BY name HAVING COUNT(DISTINCT word) = {}",
            marks.join(", "),
            words.len()
        );
        let mut q = sqlx::query(&sql);
        for w in words {
            q = q.bind(w);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    pub async fn set_capture_files(&self, target: &str, on: bool) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE targets SET capture_files = $1 WHERE name = $2")
            .bind(i64::from(on))
            .bind(target)
            .execute(&self.pool)
            .await?;
        super::affected(r.rows_affected(), "target", target)
    }

    pub async fn set_record_content(&self, target: &str, on: bool) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE targets SET record_content = $1 WHERE name = $2")
            .bind(i64::from(on))
            .bind(target)
            .execute(&self.pool)
            .await?;
        super::affected(r.rows_affected(), "target", target)
    }

    /// Whether terminal contents of sessions on `target` are recorded (the
    /// default), or only their markers. An unknown target records contents.
    pub async fn record_content(&self, target: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT record_content FROM targets WHERE name = $1")
            .bind(target)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<i64, _>(0)? != 0,
            None => true,
        })
    }

    /// Whether file contents moved to or from `target` are kept.
    pub async fn capture_files(&self, target: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT capture_files FROM targets WHERE name = $1")
            .bind(target)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<i64, _>(0)? != 0,
            None => false,
        })
    }
}

/// Lookups for the admin API and the CLI listings.
impl Store {
    pub async fn recording(&self, name: &str) -> Result<Option<RecordingRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM recordings WHERE name = $1",
            COLUMNS
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Newest first, at most `limit`, optionally of one session.
    pub async fn list_recordings(
        &self,
        session: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM recordings WHERE ($1 = '' OR session_id = $1) \
             ORDER BY started_at DESC, name LIMIT $2",
            COLUMNS
        ))
        .bind(session.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }
}
