//! The recording writer and the integrity chain beside each `.cast`.
//!
//! Chain: h_0 = SHA-256("portcullis-cast-v1" || header line), then
//! h_i = SHA-256(h_{i-1} || event line i), each line with its `'\n'`.
//! The `.chain` file holds JSON lines:
//!
//! - `{"type":"start","format":"portcullis-cast-v1","sha256":hex(h_0)}`
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
//! and to every chain byte before it (`chain_sha256`), so a change to any
//! byte of either file fails verification.

use super::cast::{EventKind, Header, MAX_EVENT_TEXT, event_line_into, header_line};
use super::sign::public_base64;
use super::text::{Utf8Carry, split_text};
use super::{Result, format_err, io_err};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use super::verify::{
    VerifyReport, Witness, seal_cut_short, seal_cut_short_witnessed, verify, verify_witnessed,
};

pub(crate) const FORMAT: &str = "portcullis-cast-v1";
/// Tags per checkpoint past which `lines` is left out, to keep a chain line
/// far below the reader's 1 MiB bound (65536 tags ≈ 350 KB of base64).
pub(crate) const MAX_TAGS: usize = 65_536;
pub(crate) const TAG_LEN: usize = 4;

/// The running chain: what a checkpoint or trailer commits to.
#[derive(Debug, Clone)]
pub(crate) struct ChainState {
    pub h: [u8; 32],
    pub events: u64,
    pub bytes: u64,
}

impl ChainState {
    pub fn start(header_line: &[u8]) -> Self {
        let h = Sha256::new()
            .chain_update(FORMAT.as_bytes())
            .chain_update(header_line)
            .finalize()
            .into();
        ChainState {
            h,
            events: 0,
            bytes: header_line.len() as u64,
        }
    }

    /// Chains one event line (with its `'\n'`); returns its tag.
    pub fn push(&mut self, line: &[u8]) -> [u8; TAG_LEN] {
        self.h = Sha256::new()
            .chain_update(self.h)
            .chain_update(line)
            .finalize()
            .into();
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
        format: FORMAT.to_owned(),
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
    let message = checkpoint_message(state.events, state.bytes, &state.hex(), at_ms);
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
pub(crate) fn checkpoint_message(events: u64, cast_bytes: u64, sha256: &str, at_ms: i64) -> String {
    format!("{FORMAT} checkpoint {events} {cast_bytes} {sha256} {at_ms}")
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

    pub fn seal(&mut self, trailer: &Trailer, key: &SigningKey) -> Result<()> {
        append_durable(&mut self.file, &self.path, &trailer_line(trailer, key)?)
    }

    pub fn digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

fn create_private(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))
}

/// Writes one channel's recording. Not thread-safe by design: the recorder
/// owns it on its writer thread. After an error the writer must be dropped:
/// the recording is then closed by [`seal_cut_short`], which keeps what was
/// made durable.
pub struct RecordingWriter {
    cast: BufWriter<File>,
    cast_path: PathBuf,
    chain: ChainFile,
    state: ChainState,
    tags: Vec<u8>,
    tags_complete: bool,
    /// Events covered by the last checkpoint written, to skip idle ones.
    last_checkpoint: Option<u64>,
    last_time: f64,
    output: Utf8Carry,
    input: Utf8Carry,
    session: String,
    key: SigningKey,
    /// Reused for every event line.
    line: Vec<u8>,
}

impl RecordingWriter {
    /// Creates `<dir>/<name>.cast` and `<dir>/<name>.chain` (both new, mode
    /// 0600) and makes the header and the chain start durable.
    pub fn create(dir: &Path, name: &str, header: &Header, key: &SigningKey) -> Result<Self> {
        let (cast_path, chain_path) = paths(dir, name);
        let session = header.portcullis.as_ref().map(|m| m.session.clone());
        let header = header_line(header)?;
        let state = ChainState::start(header.as_bytes());
        let mut cast = create_private(&cast_path)?;
        append_durable(&mut cast, &cast_path, &header)?;
        let mut chain = ChainFile {
            file: create_private(&chain_path)?,
            path: chain_path,
            hasher: Sha256::new(),
        };
        chain.append(&start_line(&state)?)?;
        // The new directory entries must survive a crash too.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
        Ok(RecordingWriter {
            cast: BufWriter::with_capacity(64 * 1024, cast),
            cast_path,
            chain,
            state,
            tags: Vec::new(),
            tags_complete: true,
            last_checkpoint: None,
            last_time: 0.0,
            output: Utf8Carry::default(),
            input: Utf8Carry::default(),
            session: session.unwrap_or_default(),
            key: key.clone(),
            line: Vec::with_capacity(64 * 1024),
        })
    }

    pub fn cast_path(&self) -> &Path {
        &self.cast_path
    }

    pub fn chain_path(&self) -> &Path {
        &self.chain.path
    }

    /// Event lines written so far.
    pub fn events(&self) -> u64 {
        self.state.events
    }

    /// Records raw channel bytes. Output and input each keep an incomplete
    /// trailing UTF-8 sequence for their next chunk. Times are clamped to be
    /// non-decreasing, which players rely on.
    pub fn event(&mut self, time: f64, kind: EventKind, data: &[u8]) -> Result<()> {
        let text = match kind {
            EventKind::Output => self.output.decode(data),
            EventKind::Input => self.input.decode(data),
            EventKind::Resize | EventKind::Marker => String::from_utf8_lossy(data),
        };
        self.write_text(time, kind, &text)
    }

    pub fn resize(&mut self, time: f64, cols: u32, rows: u32) -> Result<()> {
        self.write_text(time, EventKind::Resize, &format!("{cols}x{rows}"))
    }

    pub fn marker(&mut self, time: f64, text: &str) -> Result<()> {
        self.write_text(time, EventKind::Marker, text)
    }

    fn write_text(&mut self, time: f64, kind: EventKind, text: &str) -> Result<()> {
        if time.is_finite() && time > self.last_time {
            self.last_time = time;
        }
        let mut line = std::mem::take(&mut self.line);
        for part in split_text(text, MAX_EVENT_TEXT) {
            event_line_into(&mut line, self.last_time, kind, part);
            if let Err(e) = self.cast.write_all(&line) {
                self.line = line;
                return Err(io_err(&self.cast_path)(e));
            }
            let tag = self.state.push(&line);
            if self.tags.len() < MAX_TAGS * TAG_LEN {
                self.tags.extend_from_slice(&tag);
            } else {
                self.tags_complete = false;
            }
        }
        self.line = line;
        Ok(())
    }

    /// Hands the buffered event lines to the file (no fsync, no
    /// checkpoint): readers following the recording (the live view) see
    /// them now instead of at the next checkpoint.
    pub fn flush(&mut self) -> Result<()> {
        self.cast.flush().map_err(io_err(&self.cast_path))
    }

    /// Makes every event so far durable, then appends a durable checkpoint.
    /// A checkpoint with no new event since the last one is not written
    /// again (idle sessions would otherwise fsync every second for nothing).
    pub fn checkpoint(&mut self, now_unix_ms: i64) -> Result<Checkpoint> {
        self.cast.flush().map_err(io_err(&self.cast_path))?;
        self.cast
            .get_ref()
            .sync_data()
            .map_err(io_err(&self.cast_path))?;
        if self.last_checkpoint == Some(self.state.events) {
            // Nothing new: no line, and no signature to compute.
            return Ok(Checkpoint {
                events: self.state.events,
                cast_bytes: self.state.bytes,
                sha256: self.state.hex(),
                at_ms: now_unix_ms,
            });
        }
        let (cp, line) = checkpoint_line(
            &self.state,
            &self.tags,
            self.tags_complete,
            now_unix_ms,
            &self.key,
        )?;
        self.chain.append(&line)?;
        self.last_checkpoint = Some(self.state.events);
        self.tags.clear();
        self.tags_complete = true;
        Ok(cp)
    }

    /// Writes out any held partial character, a final checkpoint and the
    /// signed trailer.
    pub fn finish(mut self, info: &TrailerInfo) -> Result<Trailer> {
        let time = self.last_time;
        for kind in [EventKind::Output, EventKind::Input] {
            let carry = match kind {
                EventKind::Input => &mut self.input,
                _ => &mut self.output,
            };
            if let Some(rest) = carry.finish() {
                self.write_text(time, kind, &rest)?;
            }
        }
        let cp = self.checkpoint(info.ended_at_ms)?;
        let chain_sha256 = self.chain.digest();
        let trailer = build_trailer(self.session.clone(), &cp, chain_sha256, info, false);
        self.chain.seal(&trailer, &self.key)?;
        Ok(trailer)
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
