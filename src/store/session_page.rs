//! One page of the sessions table for the console: filters, a sort
//! column from a fixed list, and the total matching, in two statements.

use super::{Store, StoreError, session_from_row};
use crate::store::SessionRecord;
use sqlx::Row;

/// Columns a page may be sorted by (each maps to one literal below).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionSort {
    #[default]
    Started,
    Ended,
    User,
    Target,
    Kind,
    Bytes,
}

impl SessionSort {
    pub fn parse(s: &str) -> Option<SessionSort> {
        Some(match s {
            "started" => SessionSort::Started,
            "ended" => SessionSort::Ended,
            "user" => SessionSort::User,
            "target" => SessionSort::Target,
            "kind" => SessionSort::Kind,
            "bytes" => SessionSort::Bytes,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            SessionSort::Started => "started_at",
            SessionSort::Ended => "COALESCE(ended_at, 0)",
            SessionSort::User => "user_name",
            SessionSort::Target => "target_name",
            SessionSort::Kind => "kind",
            SessionSort::Bytes => "(bytes_up + bytes_down)",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SessionPage {
    /// Prefix of the user name / target name; exact kind.
    pub user: Option<String>,
    pub target: Option<String>,
    pub kind: Option<String>,
    /// Started at or after / at or before (Unix ms).
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub sort: SessionSort,
    pub ascending: bool,
    pub limit: i64,
    pub offset: i64,
}

/// `LIKE` pattern matching values starting with `s` literally.
fn prefix(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Store {
    /// The page's rows and how many rows match the filters in all.
    pub async fn page_sessions(
        &self,
        q: &SessionPage,
    ) -> Result<(Vec<SessionRecord>, i64), StoreError> {
        let mut clauses = Vec::new();
        let mut texts = Vec::new();
        let mut n = 0;
        for (col, v) in [("user_name", &q.user), ("target_name", &q.target)] {
            if let Some(v) = v {
                n += 1;
                clauses.push(format!("{col} LIKE ${n} ESCAPE '\\'"));
                texts.push(prefix(v));
            }
        }
        if let Some(k) = &q.kind {
            n += 1;
            clauses.push(format!("kind = ${n}"));
            texts.push(k.clone());
        }
        let mut nums = Vec::new();
        for (op, v) in [(">=", q.since_ms), ("<=", q.until_ms)] {
            if let Some(v) = v {
                n += 1;
                clauses.push(format!("started_at {op} ${n}"));
                nums.push(v);
            }
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let dir = if q.ascending { "ASC" } else { "DESC" };
        let count_sql = format!("SELECT COUNT(*) FROM sessions{filter}");
        let page_sql = format!(
            "SELECT id, user_name, source, target_name, login, started_at, ended_at, end_reason, \
             bytes_up, bytes_down, kind FROM sessions{filter} ORDER BY {} {dir}, id {dir} \
             LIMIT ${} OFFSET ${}",
            q.sort.column(),
            n + 1,
            n + 2
        );
        let mut count = sqlx::query(&count_sql);
        let mut page = sqlx::query(&page_sql);
        for t in &texts {
            count = count.bind(t.clone());
            page = page.bind(t.clone());
        }
        for v in &nums {
            count = count.bind(*v);
            page = page.bind(*v);
        }
        let total: i64 = count.fetch_one(&self.pool).await?.try_get(0)?;
        let rows = page
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(&self.pool)
            .await?;
        let rows = rows
            .iter()
            .map(session_from_row)
            .collect::<Result<_, _>>()?;
        Ok((rows, total))
    }
}
