//! The candidates of a search, chosen in SQL: recordings joined with their
//! sessions, filtered by user, target and start time, and narrowed by the
//! word index (recordings holding every word, plus any not indexed yet),
//! so a search reads only the rows it will open.

use super::{RecordingRow, SessionRecord, Store, StoreError, session_from_row};
use sqlx::Row;
use sqlx::any::AnyRow;

/// What narrows a search before any file is opened.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub user: Option<String>,
    pub target: Option<String>,
    /// Session start, Unix ms, both inclusive.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// The index words every candidate must hold (empty: every recording).
    pub words: Vec<String>,
}

/// One page of candidates: at most `size`, after `after` (the last
/// recording of the previous page: its start and name), so recordings
/// added meanwhile neither repeat nor shift the pages.
#[derive(Debug, Clone, Default)]
pub struct CandidatePage {
    pub size: Option<i64>,
    pub after: Option<(i64, String)>,
}

const SESSION: &str = "s.id, s.user_name, s.source, s.target_name, s.login, s.started_at, \
     s.ended_at, s.end_reason, s.bytes_up, s.bytes_down, s.kind";
const RECORDING: &str = "r.name, r.session_id, r.channel, r.kind, r.started_at, r.events, \
     r.cast_bytes, r.sha256, r.checkpoint_at, r.state";

/// The recording's columns, after the session's 11.
fn recording_at(r: &AnyRow) -> Result<RecordingRow, StoreError> {
    const O: usize = 11;
    Ok(RecordingRow {
        name: r.try_get(O)?,
        session_id: r.try_get(O + 1)?,
        channel: r.try_get(O + 2)?,
        kind: r.try_get(O + 3)?,
        started_ms: r.try_get(O + 4)?,
        events: r.try_get(O + 5)?,
        cast_bytes: r.try_get(O + 6)?,
        sha256: r.try_get(O + 7)?,
        checkpoint_ms: r.try_get(O + 8)?,
        state: r.try_get(O + 9)?,
    })
}

enum Bind<'a> {
    Text(&'a str),
    Int(i64),
}

impl Store {
    /// Candidate recordings with their sessions, newest first (as
    /// `all_recordings` orders them).
    pub async fn search_candidates(
        &self,
        f: &SearchFilter,
        page: &CandidatePage,
    ) -> Result<Vec<(RecordingRow, SessionRecord)>, StoreError> {
        let mut binds: Vec<Bind> = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        let mark = |binds: &mut Vec<Bind<'_>>| format!("${}", binds.len());
        if let Some(u) = &f.user {
            binds.push(Bind::Text(u));
            conds.push(format!("s.user_name = {}", mark(&mut binds)));
        }
        if let Some(t) = &f.target {
            binds.push(Bind::Text(t));
            conds.push(format!("s.target_name = {}", mark(&mut binds)));
        }
        if let Some(m) = f.since_ms {
            binds.push(Bind::Int(m));
            conds.push(format!("s.started_at >= {}", mark(&mut binds)));
        }
        if let Some(m) = f.until_ms {
            binds.push(Bind::Int(m));
            conds.push(format!("s.started_at <= {}", mark(&mut binds)));
        }
        if !f.words.is_empty() {
            let marks: Vec<String> = f
                .words
                .iter()
                .map(|w| {
                    binds.push(Bind::Text(w));
                    mark(&mut binds)
                })
                .collect();
            // Holds every word, or is not indexed yet (the empty word marks
            // an indexed recording).
            conds.push(format!(
                "(r.name IN (SELECT name FROM recording_words WHERE word IN ({}) \
                 GROUP BY name HAVING COUNT(DISTINCT word) = {}) \
                 OR NOT EXISTS (SELECT 1 FROM recording_words w WHERE w.word = '' AND w.name = r.name))",
                marks.join(", "),
                f.words.len()
            ));
        }
        if let Some((at, name)) = &page.after {
            binds.push(Bind::Int(*at));
            let a = mark(&mut binds);
            binds.push(Bind::Text(name));
            let n = mark(&mut binds);
            conds.push(format!(
                "(r.started_at < {a} OR (r.started_at = {a} AND r.name > {n}))"
            ));
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "SELECT {SESSION}, {RECORDING} FROM recordings r JOIN sessions s ON s.id = r.session_id\
             {filter} ORDER BY r.started_at DESC, r.name"
        );
        let sql = match page.size {
            Some(n) => format!("{sql} LIMIT {}", n.max(1)),
            None => sql,
        };
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = match b {
                Bind::Text(t) => q.bind(*t),
                Bind::Int(i) => q.bind(*i),
            };
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((recording_at(r)?, session_from_row(r)?)))
            .collect()
    }
}

/// Run on SQLite and PostgreSQL by `store::tests`.
#[cfg(test)]
pub(super) async fn exercise_search(store: &Store) {
    use super::{SessionKind, SessionStart};
    for (id, user, target, at) in [
        ("srch-a", "su1", "st1", 100),
        ("srch-b", "su2", "st1", 200),
        ("srch-c", "su1", "st2", 300),
    ] {
        store
            .session_started(&SessionStart {
                id: id.into(),
                user: user.into(),
                source: "127.0.0.1:1".into(),
                target: target.into(),
                login: "root".into(),
                started_ms: at,
                kind: SessionKind::Target,
            })
            .await
            .unwrap();
    }
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (name, session, at, index) in [
        ("srch-a-0", "srch-a", 100, Some(words(&["alpha", "beta"]))),
        ("srch-b-0", "srch-b", 200, Some(words(&["alpha"]))),
        ("srch-c-0", "srch-c", 300, None),
        ("srch-c-1", "srch-c", 301, Some(words(&["gamma"]))),
    ] {
        store
            .recording_started(&RecordingRow::open(name, session, 0, "shell", at))
            .await
            .unwrap();
        if let Some(w) = index {
            store.index_recording(name, &w, true).await.unwrap();
        }
    }
    let names = |f: SearchFilter| async move {
        store
            .search_candidates(&f, &CandidatePage::default())
            .await
            .unwrap()
            .into_iter()
            .map(|(r, s)| {
                assert_eq!(r.session_id, s.id);
                r.name
            })
            .collect::<Vec<_>>()
    };
    let user = |u: &str| Some(u.to_string());
    // Every word, or not indexed yet; newest first.
    assert_eq!(
        names(SearchFilter {
            user: user("su1"),
            words: words(&["alpha", "beta"]),
            ..SearchFilter::default()
        })
        .await,
        ["srch-c-0", "srch-a-0"]
    );
    assert_eq!(
        names(SearchFilter {
            user: user("su2"),
            words: words(&["beta"]),
            ..SearchFilter::default()
        })
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        names(SearchFilter {
            user: user("su1"),
            target: user("st2"),
            ..SearchFilter::default()
        })
        .await,
        ["srch-c-1", "srch-c-0"]
    );
    // Start times bound the session, both ends inclusive.
    assert_eq!(
        names(SearchFilter {
            target: user("st1"),
            since_ms: Some(100),
            until_ms: Some(200),
            words: words(&["alpha"]),
            ..SearchFilter::default()
        })
        .await,
        ["srch-b-0", "srch-a-0"]
    );
    assert_eq!(
        names(SearchFilter {
            target: user("st1"),
            since_ms: Some(150),
            until_ms: Some(250),
            ..SearchFilter::default()
        })
        .await,
        ["srch-b-0"]
    );
    // Pages follow one another without repeats.
    let f = SearchFilter {
        user: user("su1"),
        ..SearchFilter::default()
    };
    let mut page = CandidatePage {
        size: Some(2),
        after: None,
    };
    let mut seen = Vec::new();
    loop {
        let rows = store.search_candidates(&f, &page).await.unwrap();
        let Some((last, _)) = rows.last() else { break };
        page.after = Some((last.started_ms, last.name.clone()));
        seen.extend(rows.into_iter().map(|(r, _)| r.name));
    }
    assert_eq!(seen, ["srch-c-1", "srch-c-0", "srch-a-0"]);
}
