//! Reading the chain: filtered queries (admin API, CLI) and JSON-lines export.

use super::AuditError;
use crate::store::{AuditFilter, ChainedRow, Store};
use serde::{Deserialize, Serialize};

/// The most rows one query returns.
pub const MAX_LIMIT: u32 = 1000;
const DEFAULT_LIMIT: u32 = 100;

/// Filters of [`query`]; every one optional. Oldest first; page with
/// `after_seq` = the last `seq` received.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditQuery {
    /// Unix milliseconds, inclusive (see [`parse_time`] for text forms).
    pub since: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub until: Option<i64>,
    /// A kind or a dotted prefix: `session` matches `session.started`, `session.ended`...
    pub kind: Option<String>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub session: Option<String>,
    /// 1..=1000; default 100.
    pub limit: Option<u32>,
    pub after_seq: Option<i64>,
}

/// One event as the API, the export and the stream show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    /// RFC 3339, UTC, millisecond precision.
    pub time: String,
    pub kind: String,
    pub actor: String,
    pub source: String,
    pub subject: String,
    pub session: Option<String>,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<ChainedRow> for AuditEntry {
    fn from(r: ChainedRow) -> AuditEntry {
        let time = jiff::Timestamp::from_millisecond(r.ts_ms)
            .map(|t| format!("{t:.3}"))
            .unwrap_or_else(|_| r.ts_ms.to_string());
        // A detail that is not JSON (edited in the database) is shown as text.
        let detail = serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::String(r.detail));
        AuditEntry {
            seq: r.seq,
            time,
            kind: r.kind,
            actor: r.actor,
            source: r.source,
            subject: r.subject,
            session: Some(r.session).filter(|s| !s.is_empty()),
            detail,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl AuditEntry {
    /// One JSON object on one line.
    pub fn to_json_line(&self) -> String {
        // INVARIANT: strings, integers and a parsed JSON value always serialize.
        serde_json::to_string(self).expect("audit entry serializes")
    }
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, AuditError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AuditError::BadQuery(format!(
                "limit must be between 1 and {MAX_LIMIT}, not {limit}"
            )));
        }
        if let (Some(s), Some(u)) = (self.since, self.until)
            && u < s
        {
            return Err(AuditError::BadQuery("until is before since".into()));
        }
        Ok(AuditFilter {
            since_ms: self.since,
            until_ms: self.until,
            kind: self.kind.clone().filter(|k| !k.is_empty()),
            actor: self.actor.clone(),
            subject: self.subject.clone(),
            session: self.session.clone(),
            after_seq: self.after_seq,
            before_seq: None,
            newest_first: false,
            limit: i64::from(limit),
        })
    }
}

/// Events matching `q`, oldest first, at most `q.limit` (≤ 1000).
pub async fn query(store: &Store, q: &AuditQuery) -> Result<Vec<AuditEntry>, AuditError> {
    let rows = store.audit_rows(&q.filter()?).await?;
    Ok(rows.into_iter().map(AuditEntry::from).collect())
}

/// Writes every event matching `q` (its limit and after_seq are ignored) as
/// JSON lines, oldest first; returns how many.
pub async fn export(
    store: &Store,
    q: &AuditQuery,
    out: &mut dyn std::io::Write,
) -> Result<u64, AuditError> {
    let mut filter = AuditQuery {
        limit: Some(MAX_LIMIT),
        after_seq: None,
        ..q.clone()
    }
    .filter()?;
    let mut n = 0;
    loop {
        let rows = store.audit_rows(&filter).await?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            break;
        };
        for r in rows {
            writeln!(out, "{}", AuditEntry::from(r).to_json_line())?;
            n += 1;
        }
        filter.after_seq = Some(last);
    }
    out.flush()?;
    Ok(n)
}

/// A time for `--since`/`--until` or an API parameter: RFC 3339
/// (`2026-11-26T08:00:00Z`), a date (`2026-11-26`, UTC midnight), Unix
/// milliseconds, or an age (`90m`, `24h`, `7d` ago).
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, AuditError> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>()
        && let Ok(z) = d.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(z.timestamp().as_millisecond());
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let unit = match s.chars().last() {
        Some('s') => 1_000,
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        _ => 0,
    };
    // The unit is one ASCII byte, so slicing it off stays on a char boundary.
    let age = (unit > 0)
        .then(|| s[..s.len() - 1].parse::<i64>().ok())
        .flatten()
        .filter(|n| *n >= 0);
    match age {
        Some(n) => Ok(now_ms.saturating_sub(n.saturating_mul(unit))),
        None => Err(AuditError::BadQuery(format!(
            "{s:?} is not a time: use RFC 3339 (2026-11-26T08:00:00Z), a date, Unix milliseconds, or an age such as 24h or 7d"
        ))),
    }
}
