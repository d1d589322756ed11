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
    /// Events recovery sealed that no signed checkpoint covered (from the trailer).
    pub unsigned_events: u64,
    /// Recovery found no `.chain` and started a new one (from the trailer).
    pub chain_rebuilt: bool,
    pub end_reason: Option<String>,
    /// The first thing wrong, naming the line where the chain allows it.
    pub problem: Option<String>,
}

/// What the database recorded about a recording: a second witness, written
/// by the bastion alone, that the files are checked against. Someone who can
/// write the recordings directory but not the database cannot make a signed
/// recording of another session, an older copy, or a rebuilt one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The session the row belongs to: the files' header must name it.
    pub session: String,
    /// The last checkpoint stored (`events` 0, `sha256` empty when none was).
    pub events: u64,
    pub cast_bytes: u64,
    pub sha256: String,
    /// The row says the recording was sealed: its checkpoint is the final digest.
    pub sealed: bool,
}

/// Checks `cast` against `chain` and the trailer's signature by `public_key`.
/// `Err` is only for I/O trouble; a bad recording is a report with a problem.
pub fn verify(cast: &Path, chain: &Path, public_key: &VerifyingKey) -> Result<VerifyReport> {
    verify_witnessed(cast, chain, public_key, None)
}

/// [`verify`], and the files must also agree with the database's `witness`.
pub fn verify_witnessed(
    cast: &Path,
    chain: &Path,
    public_key: &VerifyingKey,
    witness: Option<&Witness>,
) -> Result<VerifyReport> {
    let (scan, problem) = Scan::run(cast, chain, Some(public_key), Some(public_key), witness)?;
    let trailer = scan.trailer.as_ref().filter(|_| problem.is_none());
    Ok(VerifyReport {
        ok: problem.is_none(),
        events: scan.state.events,
        cast_bytes: scan.state.bytes,
        checkpoints: scan.checkpoints,
        signed_checkpoints: scan.signed_checkpoints,
        session: scan.session(),
        cut_short: trailer.is_some_and(|t| t.trailer.cut_short),
        unsigned_events: trailer.map_or(0, |t| t.trailer.unsigned_events),
        chain_rebuilt: trailer.is_some_and(|t| t.trailer.chain_rebuilt),
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
    seal_cut_short_witnessed(dir, name, key, info, None)
}

/// [`seal_cut_short`], refusing also files that disagree with the database's
/// `witness`. Events past the last signed checkpoint (or a chain rebuilt
/// because the `.chain` was gone) are sealed, since a crash leaves them, but
/// the trailer says how many no signature covered and its end reason says so.
pub fn seal_cut_short_witnessed(
    dir: &Path,
    name: &str,
    key: &SigningKey,
    info: &TrailerInfo,
    witness: Option<&Witness>,
) -> Result<Trailer> {
    let (cast_path, chain_path) = paths(dir, name);
    // Recovery checks the checkpoints' signatures too: it must never sign
    // over a recording someone edited while the bastion was down.
    let public = key.verifying_key();
    let (scan, problem) = Scan::run(&cast_path, &chain_path, None, Some(&public), witness)?;
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
    let mut trailer = build_trailer(session, &cp, chain.digest(), info, true);
    trailer.unsigned_events = scan.state.events - scan.last_cp_events;
    trailer.chain_rebuilt = scan.need_start;
    if trailer.unsigned_events > 0 {
        trailer.end_reason.push_str(&format!(
            "; {} events after the last signed checkpoint are not covered by any signature made during the session{}",
            trailer.unsigned_events,
            if trailer.chain_rebuilt {
                " (the .chain file was missing: recovery rebuilt it)"
            } else {
                ""
            }
        ));
    }
    chain.seal(&trailer, key)?;
    Ok(trailer)
}
