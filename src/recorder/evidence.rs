//! The evidence bundle of one session: a plain POSIX tar (ustar) that
//! `portcullis verify BUNDLE.tar` checks offline, and any `tar` lists.
//!
//! ```text
//! manifest.json            what the bundle holds, the session row, and the
//!                          SHA-256 of every other member
//! recordings/NAME.cast     each recording of the session, as on disk
//! recordings/NAME.chain    its integrity chain, checkpoints and signed trailer
//! audit-key.pub            the public audit key the bastion signs with
//! audit.jsonl              the session's audit events (as `audit export`)
//! verify.json              the bastion's own verify report of each recording
//! ```
//!
//! Verifying reads the bundle into memory and checks each recording with
//! the same verifier as `portcullis verify`, through anonymous memory files
//! (`memfd`): nothing is written to disk. The signing key is the verifier's
//! own (`--key` or the configured public key), never the bundle's alone: a
//! forger would ship their own key. The audit rows cannot be verified
//! offline (the chain's HMAC key never leaves the bastion); the report says
//! how many there are and that `audit verify` on the bastion checks them.

use crate::castfile::{self, VerifyReport};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence bundle: {0}")]
    Format(String),
    #[error("evidence bundle: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Cast(#[from] castfile::RecordingError),
}

const BLOCK: usize = 512;
/// Largest member ustar's size field holds (11 octal digits).
pub const MAX_MEMBER: u64 = 0o77777777777;
/// Most bytes `verify` reads from a bundle (it holds them in memory).
pub const MAX_BUNDLE: u64 = 16 << 30;

/// The ustar header of a regular file `name` (at most 100 bytes) of `size`.
pub fn header(name: &str, size: u64, mtime_s: u64) -> Result<[u8; BLOCK], EvidenceError> {
    if name.len() > 100 || name.is_empty() {
        return Err(EvidenceError::Format(format!("member name {name:?}")));
    }
    if size > MAX_MEMBER {
        return Err(EvidenceError::Format(format!(
            "{name} is too large for a bundle"
        )));
    }
    let mut h = [0u8; BLOCK];
    let put = |h: &mut [u8; BLOCK], at: usize, text: &[u8]| {
        h[at..at + text.len()].copy_from_slice(text);
    };
    put(&mut h, 0, name.as_bytes());
    put(&mut h, 100, b"0000444\0");
    put(&mut h, 108, b"0000000\0");
    put(&mut h, 116, b"0000000\0");
    put(&mut h, 124, format!("{size:011o}\0").as_bytes());
    put(
        &mut h,
        136,
        format!("{:011o}\0", mtime_s.min(0o77777777777)).as_bytes(),
    );
    put(&mut h, 148, b"        ");
    h[156] = b'0';
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    put(&mut h, 265, b"portcullis");
    put(&mut h, 297, b"portcullis");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

/// Zero bytes after a member of `size` up to the next block.
pub fn padding(size: u64) -> usize {
    let r = (size % BLOCK as u64) as usize;
    if r == 0 { 0 } else { BLOCK - r }
}

/// The two zero blocks that end an archive.
pub fn end() -> [u8; 2 * BLOCK] {
    [0u8; 2 * BLOCK]
}

/// A whole small member: header, bytes, padding.
pub fn member(name: &str, data: &[u8], mtime_s: u64) -> Result<Vec<u8>, EvidenceError> {
    let mut out = header(name, data.len() as u64, mtime_s)?.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len() + padding(data.len() as u64), 0);
    Ok(out)
}

fn octal(field: &[u8]) -> Result<u64, EvidenceError> {
    let text: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| char::from(*b))
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| EvidenceError::Format("a bad size field".into()))
}

/// Every regular file of a tar stream, by name, read into memory.
pub fn read(mut r: impl Read) -> Result<BTreeMap<String, Vec<u8>>, EvidenceError> {
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    loop {
        let mut h = [0u8; BLOCK];
        r.read_exact(&mut h)
            .map_err(|_| EvidenceError::Format("cut short (no end blocks)".into()))?;
        if h.iter().all(|b| *b == 0) {
            return Ok(files);
        }
        let stored = octal(&h[148..156])?;
        let mut blank = h;
        blank[148..156].copy_from_slice(b"        ");
        let sum: u64 = blank.iter().map(|b| u64::from(*b)).sum();
        if sum != stored {
            return Err(EvidenceError::Format("a header's checksum is wrong".into()));
        }
        let name_end = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = String::from_utf8(h[..name_end].to_vec())
            .map_err(|_| EvidenceError::Format("a member name is not UTF-8".into()))?;
        let size = octal(&h[124..136])?;
        total = total.saturating_add(size);
        if total > MAX_BUNDLE {
            return Err(EvidenceError::Format("larger than verify reads".into()));
        }
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
        r.by_ref().take(size).read_to_end(&mut data)?;
        if data.len() as u64 != size {
            return Err(EvidenceError::Format(format!("{name} is cut short")));
        }
        let mut pad = vec![0u8; padding(size)];
        r.read_exact(&mut pad)
            .map_err(|_| EvidenceError::Format(format!("{name} is cut short")))?;
        // Only regular files count; a second member of one name is refused
        // (which copy would the report be about?).
        if matches!(h[156], b'0' | 0) && files.insert(name.clone(), data).is_some() {
            return Err(EvidenceError::Format(format!("{name} appears twice")));
        }
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// One recording of a bundle, checked.
#[derive(Debug)]
pub struct Checked {
    pub name: String,
    pub report: VerifyReport,
}

/// What `verify` says about a bundle.
#[derive(Debug)]
pub struct BundleReport {
    pub session: String,
    pub recordings: Vec<Checked>,
    /// Problems with the bundle itself (members missing, changed, foreign).
    pub problems: Vec<String>,
    pub audit_events: usize,
    /// The bundle's key is the one it was checked with.
    pub same_key: bool,
}

impl BundleReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
            && !self.recordings.is_empty()
            && self.recordings.iter().all(|c| c.report.ok)
    }
}

/// Checks a bundle read whole: the manifest's digests, then each recording
/// with `key` (the verifier's), the session named by the manifest the one
/// every recording's header names.
pub fn verify(
    files: &BTreeMap<String, Vec<u8>>,
    key: &VerifyingKey,
) -> Result<BundleReport, EvidenceError> {
    let manifest: serde_json::Value = files
        .get("manifest.json")
        .ok_or_else(|| EvidenceError::Format("no manifest.json".into()))
        .and_then(|m| {
            serde_json::from_slice(m)
                .map_err(|e| EvidenceError::Format(format!("manifest.json: {e}")))
        })?;
    let session = manifest["session"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut problems = Vec::new();
    let digests = manifest["files"].as_object().cloned().unwrap_or_default();
    for (name, want) in &digests {
        match files.get(name) {
            None => problems.push(format!("{name}: listed in the manifest, missing")),
            Some(d) if Some(sha256_hex(d).as_str()) != want.as_str() => {
                problems.push(format!(
                    "{name}: not the file the manifest lists (SHA-256 differs)"
                ));
            }
            Some(_) => {}
        }
    }
    for name in files.keys() {
        if name != "manifest.json" && !digests.contains_key(name) {
            problems.push(format!("{name}: not in the manifest"));
        }
    }
    let same_key = files
        .get("audit-key.pub")
        .and_then(|k| castfile::load_public(String::from_utf8_lossy(k).trim()).ok())
        .is_some_and(|k| k == *key);
    let mut recordings = Vec::new();
    for (name, cast) in files {
        let Some(stem) = name
            .strip_prefix("recordings/")
            .and_then(|n| n.strip_suffix(".cast"))
        else {
            continue;
        };
        let chain = files
            .get(&format!("recordings/{stem}.chain"))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let report = verify_in_memory(stem, cast, chain, key, &session)?;
        recordings.push(Checked {
            name: stem.to_string(),
            report,
        });
    }
    let audit_events = files.get("audit.jsonl").map_or(0, |a| {
        a.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count()
    });
    Ok(BundleReport {
        session,
        recordings,
        problems,
        audit_events,
        same_key,
    })
}

/// The recording's files as anonymous memory files, checked by path
/// (`/proc/self/fd/N`) with the verifier every door uses.
fn verify_in_memory(
    name: &str,
    cast: &[u8],
    chain: &[u8],
    key: &VerifyingKey,
    session: &str,
) -> Result<VerifyReport, EvidenceError> {
    let file = |what: &str, data: &[u8]| -> Result<std::fs::File, EvidenceError> {
        let fd =
            rustix::fs::memfd_create(format!("{name}.{what}"), rustix::fs::MemfdFlags::CLOEXEC)
                .map_err(std::io::Error::from)?;
        let mut f = std::fs::File::from(fd);
        f.write_all(data)?;
        Ok(f)
    };
    let (c, k) = (file("cast", cast)?, file("chain", chain)?);
    let path =
        |f: &std::fs::File| std::path::PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
    let mut report = castfile::verify(&path(&c), &path(&k), key)?;
    // The bundle names one session: every recording must be its own.
    if report.ok && report.session.as_deref() != Some(session) {
        report.ok = false;
        report.problem = Some(format!(
            "the recording's header names session {:?}, the bundle {session:?}",
            report.session.as_deref().unwrap_or("?")
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_a_bad_header_is_refused() {
        let mut tar = member("a.txt", b"hello", 1).unwrap();
        tar.extend(member("dir/b.bin", &[0u8; 600], 2).unwrap());
        tar.extend(end());
        let files = read(&tar[..]).unwrap();
        assert_eq!(files["a.txt"], b"hello");
        assert_eq!(files["dir/b.bin"].len(), 600);
        let mut bad = tar.clone();
        bad[0] = b'x';
        assert!(read(&bad[..]).is_err());
        assert!(read(&tar[..tar.len() - 1024]).is_err());
        let mut twice = member("a.txt", b"1", 1).unwrap();
        twice.extend(member("a.txt", b"2", 1).unwrap());
        twice.extend(end());
        assert!(read(&twice[..]).is_err());
    }
}
