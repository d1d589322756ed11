//! Search across recordings: the one operation behind `portcullis sessions
//! search` and `GET /api/v1/search`. The store's word index names the
//! candidate recordings (SQL stays in `store`); each candidate's `.cast` is
//! then read as a stream to find the exact text and its time offset.
//!
//! Hits carry a short excerpt for display. A recording is untrusted input,
//! so the excerpt goes through the replay filter (`castfile::term`) and is
//! then reduced to plain text: no control character or escape sequence
//! leaves here.

use crate::castfile::term::TermFilter;
use crate::castfile::words::Unescape;
use crate::castfile::{self, CastReader, EventKind};
use crate::store::search::{CandidatePage, SearchFilter};
use crate::store::{RecordingRow, SessionRecord, Store, StoreError};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("search: {0}")]
    Invalid(String),
    #[error("search worker: {0}")]
    Worker(String),
}

/// What to look for. Times bound the session's start (Unix ms, inclusive).
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub pattern: String,
    pub user: Option<String>,
    pub target: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Open every recording instead of those whose index holds the words.
    pub scan: bool,
    /// Stop after this many hits (none: all of them).
    pub limit: Option<usize>,
}

/// Where the pattern was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HitKind {
    Printed,
    Typed,
    /// In a marker: an exec's command line, an sftp request, a summary.
    Marked,
}

impl HitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HitKind::Printed => "printed",
            HitKind::Typed => "typed",
            HitKind::Marked => "marked",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    pub session: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub session_started_ms: i64,
    pub recording: String,
    /// Seconds from the recording's start.
    pub offset: f64,
    pub kind: HitKind,
    /// Plain text around the match (filtered; no controls).
    pub excerpt: String,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct SearchResult {
    pub hits: Vec<Hit>,
    /// Recordings opened.
    pub scanned: usize,
    /// The limit was reached: more hits may exist.
    pub truncated: bool,
    pub elapsed_ms: u64,
}

/// Longest pattern accepted (the stream keeps this much text per kind).
pub const MAX_PATTERN: usize = 256;
/// Candidate recordings read from the store at a time.
const CANDIDATE_PAGE: i64 = 256;
/// Characters of context on each side of a match in an excerpt.
const CONTEXT: usize = 40;

pub async fn search(
    store: &Store,
    recordings_dir: &Path,
    q: &SearchQuery,
) -> Result<SearchResult, SearchError> {
    if q.pattern.is_empty() {
        return Err(SearchError::Invalid("the pattern is empty".into()));
    }
    if q.pattern.len() > MAX_PATTERN {
        return Err(SearchError::Invalid(format!(
            "the pattern is longer than {MAX_PATTERN} bytes"
        )));
    }
    let started = Instant::now();
    let mut words: Vec<String> = if q.scan {
        Vec::new()
    } else {
        castfile::words::query(&q.pattern).collect()
    };
    words.sort();
    words.dedup();
    // Candidates, chosen in SQL: sessions matching the filters, their
    // recordings whose index has every word, plus any not indexed yet
    // (still open, or just sealed); without words, every one.
    let filter = SearchFilter {
        user: q.user.clone(),
        target: q.target.clone(),
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        words,
    };
    // A page at a time, so a common word under a hit limit reads only the
    // rows of the recordings it opens.
    let mut result = SearchResult::default();
    let mut page = CandidatePage {
        size: Some(CANDIDATE_PAGE),
        after: None,
    };
    loop {
        let work: Vec<(RecordingRow, SessionRecord)> =
            store.search_candidates(&filter, &page).await?;
        let Some((last, _)) = work.last() else {
            break;
        };
        page.after = Some((last.started_ms, last.name.clone()));
        let full = work.len() as i64 >= CANDIDATE_PAGE;
        let dir = recordings_dir.to_path_buf();
        let pattern = q.pattern.clone();
        let left = q.limit.map(|l| l.saturating_sub(result.hits.len()));
        let part = tokio::task::spawn_blocking(move || scan_all(&dir, &work, &pattern, left))
            .await
            .map_err(|e| SearchError::Worker(e.to_string()))?;
        result.hits.extend(part.hits);
        result.scanned += part.scanned;
        if part.truncated {
            result.truncated = true;
            break;
        }
        if !full {
            break;
        }
    }
    result.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(result)
}

fn scan_all(
    dir: &Path,
    work: &[(RecordingRow, SessionRecord)],
    pattern: &str,
    limit: Option<usize>,
) -> SearchResult {
    let mut out = SearchResult::default();
    for (r, s) in work {
        if limit.is_some_and(|l| out.hits.len() >= l) {
            out.truncated = true;
            break;
        }
        out.scanned += 1;
        let path: PathBuf = dir.join(format!("{}.cast", r.name));
        for f in find(&path, pattern) {
            if limit.is_some_and(|l| out.hits.len() >= l) {
                out.truncated = true;
                break;
            }
            out.hits.push(Hit {
                session: s.id.clone(),
                user: s.user.clone(),
                target: s.target.clone(),
                login: s.login.clone(),
                session_started_ms: s.started_ms,
                recording: r.name.clone(),
                offset: f.time,
                kind: f.kind,
                excerpt: f.excerpt,
            });
        }
    }
    out
}

/// One match in one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub time: f64,
    pub kind: HitKind,
    pub excerpt: String,
}

/// Offsets where `pattern` was printed, typed or marked. Output and input
/// are searched as streams, so text split across events is still found; a
/// marker is whole (an exec's command line, an sftp request, a transfer
/// summary), so it is matched alone. An unreadable file has no hits.
pub fn find(path: &Path, pattern: &str) -> Vec<Found> {
    let Ok(reader) = CastReader::open(path) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let (mut out_tail, mut in_tail) = (String::new(), String::new());
    // Matched as shown: colour and other sequences do not split the text.
    let (mut out_esc, mut in_esc) = (Unescape::default(), Unescape::default());
    let keep = pattern.len().saturating_sub(1).max(CONTEXT * 4);
    for ev in reader.flatten() {
        let (tail, esc, kind) = match ev.kind {
            EventKind::Output => (&mut out_tail, &mut out_esc, HitKind::Printed),
            EventKind::Input => (&mut in_tail, &mut in_esc, HitKind::Typed),
            EventKind::Marker => {
                if let Some(at) = ev.data.find(pattern) {
                    found.push(Found {
                        time: ev.time,
                        kind: HitKind::Marked,
                        excerpt: excerpt(&ev.data, at, pattern.len()),
                    });
                }
                continue;
            }
            _ => continue,
        };
        let searched_from = tail.len().saturating_sub(pattern.len().saturating_sub(1));
        let searched_from = floor_boundary(tail, searched_from);
        esc.push(&ev.data, tail);
        if let Some(at) = tail[searched_from..].find(pattern) {
            found.push(Found {
                time: ev.time,
                kind,
                excerpt: excerpt(tail, searched_from + at, pattern.len()),
            });
            // Text after the match may match again in later events only
            // once new text arrives; what came before is done.
            let end = searched_from + at + pattern.len();
            tail.drain(..end);
        }
        if tail.len() > keep {
            let cut = ceil_boundary(tail, tail.len() - keep);
            tail.drain(..cut);
        }
    }
    found
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Up to `CONTEXT` characters each side of the match at `at..at+len`, as
/// plain text.
fn excerpt(text: &str, at: usize, len: usize) -> String {
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(CONTEXT - 1)
        .map_or(0, |(i, _)| i);
    let end = text[at + len..]
        .char_indices()
        .nth(CONTEXT)
        .map_or(text.len(), |(i, _)| at + len + i);
    plain(&text[start..end])
}

/// The replay filter, then no escape sequence or control character at all:
/// an excerpt is a line of text, whatever the recording held.
pub fn plain(text: &str) -> String {
    let filtered = TermFilter::new().filter(text);
    let mut out = String::with_capacity(filtered.len());
    let mut chars = filtered.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                }
                // Charset selection takes one more character.
                Some('(' | ')' | '*' | '+') => {
                    chars.next();
                }
                _ => {}
            },
            c if c.is_control() => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c => out.push(c),
        }
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_plain_text() {
        assert_eq!(plain("\x1b[1;31mred\x1b[0m\r\nnext"), "red next");
        assert_eq!(plain("a\x1b]0;title\x07b"), "ab");
        assert_eq!(plain("\x1b(0qq\x1b(B ok"), "qq ok");
        assert_eq!(plain("<script>\"x\"</script>"), "<script>\"x\"</script>");
        let long = format!("{}NEEDLE{}", "a".repeat(100), "b".repeat(100));
        let e = excerpt(&long, 100, 6);
        assert_eq!(e, format!("{}NEEDLE{}", "a".repeat(40), "b".repeat(40)));
        let short = excerpt("é NEEDLE é", 3, 6);
        assert_eq!(short, "é NEEDLE é");
    }
}
