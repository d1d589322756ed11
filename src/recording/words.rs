//! Words for the search index: runs of letters, digits, `_`, `.`, `/`, `-`,
//! lower-cased, 2 to 64 characters. A pattern's words must all be in a
//! recording for it to be opened; the exact pattern is then matched in full.

use super::{CastReader, EventKind, Result};
use std::collections::BTreeSet;
use std::path::Path;

pub const MAX_WORDS: usize = 20_000;
/// Text read per recording for the index; the rest is still searched by scan
/// when a recording is a candidate, but words only there are not indexed.
pub const MAX_INDEXED_BYTES: usize = 64 << 20;

pub fn split(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')))
        .map(|w| w.trim_matches(|c| matches!(c, '.' | '-' | '/')))
        .filter(|w| (2..=64).contains(&w.chars().count()))
        .map(str::to_lowercase)
}

/// The distinct words of a recording's output and input, and whether they
/// are all of them (false when a cap stopped the reading: such a recording
/// must still be scanned by every search).
pub fn of_cast(path: &Path) -> Result<(BTreeSet<String>, bool)> {
    let mut words = BTreeSet::new();
    let mut read = 0usize;
    for ev in CastReader::open(path)? {
        let ev = ev?;
        if !matches!(
            ev.kind,
            EventKind::Output | EventKind::Input | EventKind::Marker
        ) {
            continue;
        }
        read += ev.data.len();
        words.extend(split(&ev.data));
        if words.len() >= MAX_WORDS || read >= MAX_INDEXED_BYTES {
            return Ok((words, false));
        }
    }
    Ok((words, true))
}

#[cfg(test)]
mod tests {
    #[test]
    fn splitting() {
        let w: Vec<String> = super::split("$ rm -rf /var/tmp/x; echo Done.").collect();
        assert_eq!(w, vec!["rm", "rf", "var/tmp/x", "echo", "done"]);
    }
}
