//! Walks the chain and names every row that was edited, deleted, moved or
//! forged.
//!
//! Each row is checked against its own keyed hash and against its neighbour:
//! a changed field breaks the row's hash; a hash recomputed without the key
//! also breaks (and no longer matches the next row's `prev_hash`); a deleted
//! row leaves a gap in `seq`; a row moved to another `seq` still verifies
//! under its original one, which is how it is recognised. A tail cut off the
//! end shows against the head row, as long as that was not rolled back too
//! (compare the head hash printed here with one kept elsewhere, e.g. in the SIEM).

use super::{AuditError, ChainKey};
use crate::store::{AuditFilter, ChainedRow, GENESIS_HASH, Store};
use std::collections::{BTreeMap, HashSet};

const PAGE: i64 = 2000;
/// Rows failing their hash kept for classification; past this only counted.
const MAX_BAD: usize = 10_000;
/// Candidate positions tried per failing row to recognise a moved row.
const MAX_CANDIDATES: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// Contents changed; the stored hash is the original one.
    Edited,
    /// Hash recomputed without the chain key (or a row made up).
    Forged,
    /// Missing from the chain.
    Deleted,
    /// Holds the event sealed as another seq.
    Reordered { sealed_as: i64 },
    /// Missing here, found at another seq.
    Moved { to: i64 },
    /// Its prev_hash does not match the row before it.
    Unlinked,
    /// Beyond the head: appended outside portcullis.
    BeyondHead,
    /// The head names rows that are not there (the tail was cut off).
    TailMissing { head_seq: i64 },
    /// The head row itself was deleted.
    HeadMissing,
    /// `audit_legacy` is back with rows no process will ever seal (they can
    /// only come from a database writer).
    LegacyRows { rows: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub seq: i64,
    /// Last seq of a range (deletions); equal to `seq` otherwise.
    pub last: i64,
    pub kind: ProblemKind,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if matches!(
            self.kind,
            ProblemKind::HeadMissing | ProblemKind::LegacyRows { .. }
        ) {
            // Not a row: no seq to name.
        } else if self.last > self.seq {
            write!(f, "seq {}..{}: ", self.seq, self.last)?;
        } else {
            write!(f, "seq {}: ", self.seq)?;
        }
        match &self.kind {
            ProblemKind::Edited => f.write_str("edited (its contents no longer match its hash)"),
            ProblemKind::Forged => f.write_str(
                "forged (its hash was recomputed without the chain key; the next row still names the original)",
            ),
            ProblemKind::Deleted => f.write_str("deleted (missing from the chain)"),
            ProblemKind::Reordered { sealed_as } => {
                write!(f, "reordered (holds the event sealed as seq {sealed_as})")
            }
            ProblemKind::Moved { to } => write!(f, "reordered (moved to seq {to})"),
            ProblemKind::Unlinked => {
                f.write_str("chain broken (prev_hash does not match the previous row's hash)")
            }
            ProblemKind::BeyondHead => {
                f.write_str("forged (appended after the chain head, outside portcullis)")
            }
            ProblemKind::HeadMissing => {
                f.write_str("chain head: missing (the audit_head row was deleted)")
            }
            ProblemKind::LegacyRows { rows } => write!(
                f,
                "audit_legacy: {rows} rows outside the chain (legacy rows are adopted once, \
                 while the chain is empty; these were inserted by a database writer)"
            ),
            ProblemKind::TailMissing { head_seq } => write!(
                f,
                "deleted (the chain head is seq {head_seq}; the end of the chain was cut off)"
            ),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub count: u64,
    pub head_seq: i64,
    pub head_hash: String,
    pub problems: Vec<Problem>,
    /// Failing rows beyond those classified.
    pub unclassified: u64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.unclassified == 0
    }
}

#[derive(Default)]
struct Walk {
    count: u64,
    last: Option<(i64, String)>,
    bad: Vec<ChainedRow>,
    bad_seqs: HashSet<i64>,
    unclassified: u64,
    gaps: Vec<(i64, i64)>,
    unlinked: Vec<i64>,
}

impl Walk {
    fn step(&mut self, key: &ChainKey, r: ChainedRow) {
        self.count += 1;
        let expected = self.last.as_ref().map_or(1, |(s, _)| s + 1);
        if r.seq > expected {
            self.gaps.push((expected, r.seq - 1));
        } else {
            let prev = self.last.as_ref().map_or(GENESIS_HASH, |(_, h)| h.as_str());
            if r.prev_hash != prev {
                self.unlinked.push(r.seq);
            }
        }
        self.last = Some((r.seq, r.hash.clone()));
        if key.hash(&r) != r.hash {
            self.bad_seqs.insert(r.seq);
            if self.bad.len() < MAX_BAD {
                self.bad.push(r);
            } else {
                self.unclassified += 1;
            }
        }
    }
}

/// Checks the whole chain with `key`.
pub async fn verify(store: &Store, key: &ChainKey) -> Result<Report, AuditError> {
    let mut w = Walk::default();
    let (head_seq, head_hash) = loop {
        let rows = store
            .audit_rows(&AuditFilter {
                after_seq: w.last.as_ref().map(|(s, _)| *s),
                limit: PAGE,
                ..AuditFilter::default()
            })
            .await?;
        let full = rows.len() as i64 == PAGE;
        for r in rows {
            w.step(key, r);
        }
        if full {
            continue;
        }
        // Read after the walk: an append commits its row and the head
        // together, so the head is at or past every row seen. If rows were
        // appended meanwhile, walk them too.
        // A missing head row is reported; the rows are still checked.
        let head = store.audit_head().await?.unwrap_or((-1, String::new()));
        if head.0 > w.last.as_ref().map_or(0, |(s, _)| *s) {
            let more = store
                .audit_rows(&AuditFilter {
                    after_seq: w.last.as_ref().map(|(s, _)| *s),
                    limit: 1,
                    ..AuditFilter::default()
                })
                .await?;
            if !more.is_empty() {
                continue;
            }
        }
        break head;
    };
    let mut problems = classify(&w, key, head_seq, &head_hash);
    if let Some(rows) = store.audit_legacy_rows().await?
        && rows > 0
    {
        problems.push(Problem {
            seq: 0,
            last: 0,
            kind: ProblemKind::LegacyRows { rows },
        });
    }
    Ok(Report {
        count: w.count,
        head_seq,
        head_hash,
        problems,
        unclassified: w.unclassified,
    })
}

fn classify(w: &Walk, key: &ChainKey, head_seq: i64, head_hash: &str) -> Vec<Problem> {
    let mut found: BTreeMap<(i64, i64), ProblemKind> = BTreeMap::new();
    let missing: Vec<i64> = w
        .gaps
        .iter()
        .flat_map(|(a, b)| *a..=*b)
        .take(MAX_CANDIDATES)
        .collect();
    let candidates: Vec<i64> = w
        .bad
        .iter()
        .map(|r| r.seq)
        .chain(missing)
        .take(MAX_CANDIDATES)
        .collect();
    let unlinked: HashSet<i64> = w.unlinked.iter().copied().collect();
    let last_seq = w.last.as_ref().map_or(0, |(s, _)| *s);
    let mut moved: BTreeMap<i64, i64> = BTreeMap::new();
    for r in &w.bad {
        let original = candidates.iter().copied().find(|c| {
            *c != r.seq && {
                let probe = ChainedRow {
                    seq: *c,
                    ..r.clone()
                };
                key.hash(&probe) == r.hash
            }
        });
        let kind = if let Some(c) = original {
            moved.insert(c, r.seq);
            ProblemKind::Reordered { sealed_as: c }
        } else if r.seq > head_seq && head_seq >= 0 {
            ProblemKind::BeyondHead
        } else if unlinked.contains(&(r.seq + 1))
            || (r.seq == last_seq && head_seq >= 0 && r.hash != head_hash)
        {
            ProblemKind::Forged
        } else {
            ProblemKind::Edited
        };
        found.insert((r.seq, r.seq), kind);
    }
    // Seqs past the head never existed: a gap there is no deletion.
    let end = if head_seq < 0 { i64::MAX } else { head_seq };
    for (a, b) in w.gaps.iter().filter(|(a, _)| *a <= end) {
        for (from, to, kind) in split_moves(*a, (*b).min(end), &moved) {
            found.insert((from, to), kind);
        }
    }
    for s in &w.unlinked {
        // Explained by a neighbour already named.
        if !w.bad_seqs.contains(s) && !w.bad_seqs.contains(&(s - 1)) {
            found.entry((*s, *s)).or_insert(ProblemKind::Unlinked);
        }
    }
    if head_seq < 0 {
        found.insert((0, 0), ProblemKind::HeadMissing);
    } else if head_seq > last_seq {
        found.insert(
            (last_seq + 1, head_seq),
            ProblemKind::TailMissing { head_seq },
        );
    } else if head_seq < last_seq && !w.bad_seqs.contains(&last_seq) {
        found.insert((head_seq + 1, last_seq), ProblemKind::BeyondHead);
    }
    found
        .into_iter()
        .map(|((seq, last), kind)| Problem { seq, last, kind })
        .collect()
}

/// A gap a..=b, with the seqs found elsewhere reported as moved, the rest as deleted ranges.
fn split_moves(a: i64, b: i64, moved: &BTreeMap<i64, i64>) -> Vec<(i64, i64, ProblemKind)> {
    let mut out = Vec::new();
    let mut start = a;
    for (&s, &to) in moved.range(a..=b) {
        if s > start {
            out.push((start, s - 1, ProblemKind::Deleted));
        }
        out.push((s, s, ProblemKind::Moved { to }));
        start = s + 1;
    }
    if start <= b {
        out.push((start, b, ProblemKind::Deleted));
    }
    out
}
