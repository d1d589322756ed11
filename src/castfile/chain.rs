//! The recording writer and the integrity chain beside each `.cast`.
//!
//! Chain, by the format named in the `.chain` start record (each line with
//! its `'\n'`; `FORMAT` is the name's bytes):
//!
//! - `portcullis-cast-v2` (written since issue 20): h_0 = BLAKE3(FORMAT ||
//!   header line), then h_i = BLAKE3(h_{i-1} || BLAKE3(event line i)). Each
//!   line is hashed on its own, whole, so BLAKE3 hashes its 1 KiB chunks in
//!   parallel (SIMD); chaining is then one 64-byte block. About 2x faster
//!   than SHA-256 (with the CPU's SHA extensions) on 4 KiB lines, 4x on
//!   32 KiB ones: SHA-256 was a fifth of the bastion's CPU recording text.
//! - `portcullis-cast-v1` (still verified and recovered): h_0 =
//!   SHA-256(FORMAT || header line), then h_i = SHA-256(h_{i-1} || event line i).
//!
//! The JSON field that carries h_i keeps its name `sha256` in both formats
//! (chain records, trailer, database rows), so readers of the field need
//! no change; its value is whatever the format computes.
//!
//! The `.chain` file holds JSON lines:
//!
//! - `{"type":"start","format":FORMAT,"sha256":hex(h_0)}`
//! - `{"type":"checkpoint","events":N,"cast_bytes":B,"sha256":hex(h_N),"at":ms,"lines":b64,"sig":b64}`
//!   where `lines` (optional) is the first 4 bytes of every h_i since the
//!   previous checkpoint: it costs no extra hashing and lets the verifier
//!   name the exact first bad line instead of a range; `sig` is Ed25519 by
//!   the audit key over [`checkpoint_message`] (absent in recordings made
//!   before checkpoints were signed).
//! - one final `{"type":"trailer","trailer":{...},"signature":b64,"public_key":b64}`
//!   whose signature is Ed25519 over the exact `trailer` JSON bytes.
//!
//! Checkpoints are durable progress marks for crash recovery and for
//! locating damage, and each is signed: a recording its writer never
//! finished (the bastion was killed) is then tamper-evident up to its last
//! checkpoint even before recovery seals it, since whoever edits it cannot
//! re-sign the checkpoints. The trailer commits to the cast (`sha256` = h_N)
//! and to every chain byte before it (`chain_sha256`, SHA-256 in both
//! formats), so a change to any byte of either file fails verification.

use super::sign::public_base64;
use super::{Result, format_err, io_err};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use super::writer::RecordingWriter;

pub use super::verify::{
    VerifyReport, Witness, seal_cut_short, seal_cut_short_witnessed, verify, verify_witnessed,
};

/// The chain format a recording is written and verified with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// SHA-256 over each line: every recording before issue 20.
    V1,
    /// BLAKE3 of each line, chained (what the writer writes).
    V2,
}

impl Format {
    /// The format new recordings are written in.
    pub const CURRENT: Format = Format::V2;

    pub fn name(self) -> &'static str {
        match self {
            Format::V1 => "portcullis-cast-v1",
            Format::V2 => "portcullis-cast-v2",
        }
    }

    pub fn parse(name: &str) -> Option<Format> {
        [Format::V1, Format::V2]
            .into_iter()
            .find(|f| f.name() == name)
    }

    /// H(a || b), the chain's hash.
    fn hash(self, a: &[u8], b: &[u8]) -> [u8; 32] {
        match self {
            Format::V1 => Sha256::new()
                .chain_update(a)
                .chain_update(b)
                .finalize()
                .into(),
            Format::V2 => {
                let mut h = blake3::Hasher::new();
                h.update(a);
                h.update(b);
                *h.finalize().as_bytes()
            }
        }
    }

    /// The next chain value after `line`.
    fn link(self, prev: &[u8; 32], line: &[u8]) -> [u8; 32] {
        match self {
            Format::V1 => self.hash(prev, line),
            Format::V2 => self.hash(prev, blake3::hash(line).as_bytes()),
        }
    }
}
/// Tags per checkpoint past which `lines` is left out, to keep a chain line
/// far below the reader's 1 MiB bound (65536 tags ≈ 350 KB of base64).
pub(crate) const MAX_TAGS: usize = 65_536;
pub(crate) const TAG_LEN: usize = 4;

/// The running chain: what a checkpoint or trailer commits to.
#[derive(Debug, Clone)]
pub(crate) struct ChainState {
    pub format: Format,
    pub h: [u8; 32],
    pub events: u64,
    pub bytes: u64,
}

impl ChainState {
    pub fn start(format: Format, header_line: &[u8]) -> Self {
        ChainState {
            format,
            h: format.hash(format.name().as_bytes(), header_line),
            events: 0,
            bytes: header_line.len() as u64,
        }
    }

    /// Chains one event line (with its `'\n'`); returns its tag.
    pub fn push(&mut self, line: &[u8]) -> [u8; TAG_LEN] {
        self.h = self.format.link(&self.h, line);
        self.events += 1;
        self.bytes += line.len() as u64;
        [self.h[0], self.h[1], self.h[2], self.h[3]]
    }

    pub fn hex(&self) -> String {
        hex::encode(self.h)
    }
}

/// The `start` and `checkpoint` lines of a `.chain` file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Record {
    Start {
        format: String,
        sha256: String,
    },
    Checkpoint {
        events: u64,
        cast_bytes: u64,
        sha256: String,
        at: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lines: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sig: Option<String>,
    },
}

/// A durable progress mark; the caller also stores it in the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub events: u64,
    pub cast_bytes: u64,
    pub sha256: String,
    pub at_ms: i64,
}

/// The signed summary of a closed recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    pub session: String,
    pub events: u64,
    pub cast_bytes: u64,
    pub sha256: String,
    /// SHA-256 of the `.chain` bytes before the trailer line.
    pub chain_sha256: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub end_reason: String,
    pub ended_at_ms: i64,
    pub cut_short: bool,
    /// Events recovery sealed past the last signed checkpoint: written (or
    /// edited) with nothing signed over them. Left out when 0, so trailers
    /// from before this field keep their exact signed bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unsigned_events: u64,
    /// Recovery found no `.chain` file and started one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chain_rebuilt: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the caller knows at the end that the recording does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailerInfo {
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub end_reason: String,
    pub ended_at_ms: i64,
}

pub(crate) const TRAILER_PREFIX: &str = "{\"type\":\"trailer\",\"trailer\":";
pub(crate) const SIGNATURE_MARK: &str = ",\"signature\":\"";

pub(crate) fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.cast")),
        dir.join(format!("{name}.chain")),
    )
}

pub(crate) fn start_line(state: &ChainState) -> Result<String> {
    let rec = Record::Start {
        format: state.format.name().to_owned(),
        sha256: state.hex(),
    };
    record_line(&rec)
}

/// The checkpoint line for `state`, with the tags gathered since the last one.
pub(crate) fn checkpoint_line(
    state: &ChainState,
    tags: &[u8],
    tags_complete: bool,
    at_ms: i64,
    key: &SigningKey,
) -> Result<(Checkpoint, String)> {
    let message = checkpoint_message(state.format, state.events, state.bytes, &state.hex(), at_ms);
    let rec = Record::Checkpoint {
        events: state.events,
        cast_bytes: state.bytes,
        sha256: state.hex(),
        at: at_ms,
        lines: tags_complete.then(|| B64.encode(tags)),
        sig: Some(B64.encode(key.sign(message.as_bytes()).to_bytes())),
    };
    let cp = Checkpoint {
        events: state.events,
        cast_bytes: state.bytes,
        sha256: state.hex(),
        at_ms,
    };
    Ok((cp, record_line(&rec)?))
}

/// What a checkpoint's signature covers: the format, then every field that
/// commits to the recording, in a fixed text layout (never re-serialised JSON).
pub(crate) fn checkpoint_message(
    format: Format,
    events: u64,
    cast_bytes: u64,
    sha256: &str,
    at_ms: i64,
) -> String {
    let format = format.name();
    format!("{format} checkpoint {events} {cast_bytes} {sha256} {at_ms}")
}

fn record_line(rec: &Record) -> Result<String> {
    let mut line = serde_json::to_string(rec).map_err(|e| format_err(0, e.to_string()))?;
    line.push('\n');
    Ok(line)
}

/// The signed trailer line. The layout is fixed so the verifier can cut the
/// exact signed bytes back out of the line.
pub(crate) fn trailer_line(trailer: &Trailer, key: &SigningKey) -> Result<String> {
    let raw = serde_json::to_string(trailer).map_err(|e| format_err(0, e.to_string()))?;
    let signature = B64.encode(key.sign(raw.as_bytes()).to_bytes());
    let public_key = public_base64(&key.verifying_key());
    Ok(format!(
        "{TRAILER_PREFIX}{raw}{}\n",
        trailer_tail(&signature, &public_key)
    ))
}

/// Everything after the signed bytes, without the `'\n'`.
pub(crate) fn trailer_tail(signature: &str, public_key: &str) -> String {
    format!("{SIGNATURE_MARK}{signature}\",\"public_key\":\"{public_key}\"}}")
}

/// Writes `line` to the end of `file` and makes it durable.
pub(crate) fn append_durable(file: &mut File, path: &Path, line: &str) -> Result<()> {
    file.write_all(line.as_bytes()).map_err(io_err(path))?;
    file.sync_data().map_err(io_err(path))
}

/// The `.chain` file being appended to, hashing what precedes the trailer.
pub(crate) struct ChainFile {
    pub file: File,
    pub path: PathBuf,
    pub hasher: Sha256,
}

impl ChainFile {
    pub fn append(&mut self, line: &str) -> Result<()> {
        append_durable(&mut self.file, &self.path, line)?;
        self.hasher.update(line.as_bytes());
        Ok(())
    }

    /// Appends without a sync: the next [`Self::seal`]'s sync covers it.
    pub fn append_unsynced(&mut self, line: &str) -> Result<()> {
        self.file
            .write_all(line.as_bytes())
            .map_err(io_err(&self.path))?;
        self.hasher.update(line.as_bytes());
        Ok(())
    }

    /// Appends the signed trailer; it, and everything before it, durable.
    pub fn seal(&mut self, trailer: &Trailer, key: &SigningKey) -> Result<()> {
        append_durable(&mut self.file, &self.path, &trailer_line(trailer, key)?)
    }

    pub fn digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

pub(crate) fn build_trailer(
    session: String,
    cp: &Checkpoint,
    chain_sha256: String,
    info: &TrailerInfo,
    cut_short: bool,
) -> Trailer {
    Trailer {
        session,
        events: cp.events,
        cast_bytes: cp.cast_bytes,
        sha256: cp.sha256.clone(),
        chain_sha256,
        bytes_up: info.bytes_up,
        bytes_down: info.bytes_down,
        end_reason: info.end_reason.clone(),
        ended_at_ms: info.ended_at_ms,
        cut_short,
        unsigned_events: 0,
        chain_rebuilt: false,
    }
}
