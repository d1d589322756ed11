//! Verification and crash recovery. Both walk the `.cast` line by line,
//! recomputing the chain, and meet the `.chain` records as the event count
//! reaches them; the first disagreement is the reported problem. Recovery
//! tolerates what a crash leaves (a torn last line in either file, events
//! after the last checkpoint, a missing chain) and refuses anything else,
//! so it never signs over a recording that was edited.

use super::chain::{
    ChainFile, MAX_TAGS, TAG_LEN, Trailer, TrailerInfo, build_trailer, checkpoint_line, paths,
    start_line,
};
use super::scan::Scan;
use super::{RecordingError, Result, io_err};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub ok: bool,
    /// Event lines chained before the scan stopped (all of them when `ok`).
    pub events: u64,
    pub cast_bytes: u64,
    /// Checkpoints that matched.
    pub checkpoints: u64,
    /// Of those, the ones whose signature verified (older recordings have none).
    pub signed_checkpoints: u64,
    pub session: Option<String>,
    /// From the trailer, when it verified.
    pub cut_short: bool,
    pub end_reason: Option<String>,
    /// The first thing wrong, naming the line where the chain allows it.
    pub problem: Option<String>,
}

/// Checks `cast` against `chain` and the trailer's signature by `public_key`.
/// `Err` is only for I/O trouble; a bad recording is a report with a problem.
pub fn verify(cast: &Path, chain: &Path, public_key: &VerifyingKey) -> Result<VerifyReport> {
    let (scan, problem) = Scan::run(cast, chain, Some(public_key), Some(public_key))?;
    let trailer = scan.trailer.as_ref().filter(|_| problem.is_none());
    Ok(VerifyReport {
        ok: problem.is_none(),
        events: scan.state.events,
        cast_bytes: scan.state.bytes,
        checkpoints: scan.checkpoints,
        signed_checkpoints: scan.signed_checkpoints,
        session: scan.session(),
        cut_short: trailer.is_some_and(|t| t.trailer.cut_short),
        end_reason: trailer.map(|t| t.trailer.end_reason.clone()),
        problem,
    })
}

/// Closes a recording its writer never finished (the process was killed):
/// drops a torn last line from both files, adds a final checkpoint and a
/// trailer with `cut_short: true`. Refuses (`Integrity`) a recording whose
/// existing checkpoints do not match it, or one that already has a trailer.
pub fn seal_cut_short(
    dir: &Path,
    name: &str,
    key: &SigningKey,
    info: &TrailerInfo,
) -> Result<Trailer> {
    let (cast_path, chain_path) = paths(dir, name);
    // Recovery checks the checkpoints' signatures too: it must never sign
    // over a recording someone edited while the bastion was down.
    let public = key.verifying_key();
    let (scan, problem) = Scan::run(&cast_path, &chain_path, None, Some(&public))?;
    if let Some(reason) = problem {
        return Err(RecordingError::Integrity { reason });
    }
    let cast = File::options()
        .write(true)
        .open(&cast_path)
        .map_err(io_err(&cast_path))?;
    cast.set_len(scan.cast_good_len)
        .and_then(|()| cast.sync_data())
        .map_err(io_err(&cast_path))?;
    let mut file = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&chain_path)
        .map_err(io_err(&chain_path))?;
    file.set_len(scan.chain.good_len)
        .and_then(|()| file.seek(SeekFrom::End(0)))
        .map_err(io_err(&chain_path))?;
    let mut chain = ChainFile {
        file,
        path: chain_path,
        hasher: scan.chain.hasher.clone(),
    };
    if scan.need_start {
        chain.append(&start_line(&scan.initial)?)?;
    }
    let complete = scan.tags.len() <= MAX_TAGS * TAG_LEN;
    let (cp, line) = checkpoint_line(&scan.state, &scan.tags, complete, info.ended_at_ms, key)?;
    if scan.checkpoints == 0 || scan.last_cp_events != scan.state.events {
        chain.append(&line)?;
    }
    let session = scan.session().unwrap_or_default();
    let trailer = build_trailer(session, &cp, chain.digest(), info, true);
    chain.seal(&trailer, key)?;
    Ok(trailer)
}
