//! Words for the search index: runs of letters, digits, `_`, `.`, `/`, `-`,
//! lower-cased, 2 to 64 characters, and the parts of each run between `.`,
//! `/` and `-` (so `cat /etc/passwd` is found by `passwd`, and a marker's
//! `/root/pc-denied` by `pc-denied`). A pattern's parts must all be in a
//! recording for it to be opened; the exact pattern is then matched in full.
//! A fragment of a word (`assw`) is not a part: `sessions search --scan`
//! opens every recording instead.

use super::{CastReader, EventKind, Result};
use std::collections::BTreeSet;
use std::path::Path;

pub const MAX_WORDS: usize = 20_000;
/// Text read per recording for the index; the rest is still searched by scan
/// when a recording is a candidate, but words only there are not indexed.
pub const MAX_INDEXED_BYTES: usize = 64 << 20;

fn is_joiner(c: char) -> bool {
    matches!(c, '.' | '-' | '/')
}

fn runs(text: &str) -> impl Iterator<Item = &str> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || is_joiner(c)))
        .map(|w| w.trim_matches(is_joiner))
}

fn keep(w: &str) -> bool {
    (2..=64).contains(&w.chars().count())
}

/// Index terms of `text`: every whole run and every part of it.
pub fn split(text: &str) -> impl Iterator<Item = String> + '_ {
    runs(text)
        .flat_map(|w| {
            let parts = w.split(is_joiner).filter(move |p| *p != w);
            std::iter::once(w).chain(parts)
        })
        .filter(|w| keep(w))
        .map(str::to_lowercase)
}

/// What a recording's index must hold for `pattern` to be in it: the parts
/// of its words (each also indexed on its own, see [`split`]).
pub fn query(pattern: &str) -> impl Iterator<Item = String> + '_ {
    runs(pattern)
        .flat_map(|w| w.split(is_joiner))
        .filter(|w| keep(w))
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
        let w: Vec<String> = super::split("$ rm -rf /var/tmp/xy; echo Done.").collect();
        assert_eq!(
            w,
            vec!["rm", "rf", "var/tmp/xy", "var", "tmp", "xy", "echo", "done"]
        );
        let q: Vec<String> = super::query("/etc/passwd pc-denied").collect();
        assert_eq!(q, vec!["etc", "passwd", "pc", "denied"]);
        // Every query term of a text is among its index terms.
        let text = "cat /etc/pass-wd.d/x_y Ab.c";
        let index: Vec<String> = super::split(text).collect();
        assert!(super::query(text).all(|q| index.contains(&q)), "{index:?}");
    }
}
