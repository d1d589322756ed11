//! The recording writer: event lines into the `.cast`, each chained (see
//! [`super::chain`]) as it is closed, checkpoints and the signed trailer
//! into the `.chain`.
//!
//! Bulk output is where the cost is (issue 20), so two things here are
//! about bytes per CPU second rather than format:
//!
//! - **Consecutive output chunks share a line.** Output arriving within
//!   [`MERGE_WINDOW`] of the line's first chunk, with nothing else
//!   between, is appended to the same event line, up to
//!   [`MAX_EVENT_TEXT`] bytes of text. A pty hands the bastion ~4 KiB
//!   reads: as one line each, every 4 KiB paid a timestamp, a tag and a
//!   BLAKE3 finalisation, and BLAKE3 hashed only 4 chunks in parallel
//!   instead of 16. The text is the same; a merged chunk is shown up to
//!   [`MERGE_WINDOW`] early on replay (a player draws a frame every ~16 ms).
//!   asciicast v2 and the chain format are unchanged: old readers, the
//!   verifier and `asciinema` read these files as before.
//! - **Writes are large and page-aligned.** Buffered lines go to the file
//!   once [`WRITE_AT`] bytes are pending, cut at a 4 KiB file offset (the
//!   rest waits for the next write): the kernel's page-cache write costs
//!   ~0.25 CPU s/GiB in unaligned 64 KiB writes and ~0.17 in aligned
//!   256 KiB ones (measured on this ext4). Readers following the file may
//!   see a line's first part before the rest, as they could before; every
//!   line is whole in the file before a checkpoint covers it.

use super::cast::{
    EventKind, Header, MAX_EVENT_TEXT, event_line_close, event_line_open, header_line,
};
use super::chain::{
    ChainFile, ChainState, Checkpoint, Format, MAX_TAGS, TAG_LEN, Trailer, TrailerInfo,
    append_durable, build_trailer, checkpoint_line, paths, start_line,
};
use super::escape::json_body_into;
use super::text::{Utf8Carry, split_text};
use super::{Result, io_err};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Output chunks this close to their line's first chunk join that line.
pub(crate) const MERGE_WINDOW: f64 = 0.002;
/// Pending event bytes past which they are written to the file.
const WRITE_AT: usize = 256 * 1024;
/// Writes past [`WRITE_AT`] end at a multiple of this file offset.
const ALIGN: u64 = 4096;
/// A pending buffer larger than this is given back at a checkpoint, so a
/// channel that went quiet after a burst does not keep it.
const KEEP: usize = 64 * 1024;

fn create_private(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))
}

/// The event line being built at the end of the pending buffer, its
/// string not yet closed: more chunks of the same stream may join it.
struct OpenLine {
    kind: EventKind,
    /// Where the line starts in `pending`.
    start: usize,
    /// Its time (the first chunk's).
    time: f64,
    /// Text bytes in it (before escaping).
    text: usize,
}

/// Writes one channel's recording. Not thread-safe by design: the recorder
/// owns it on its writer thread. After an error the writer must be dropped:
/// the recording is then closed by [`super::seal_cut_short`], which keeps
/// what was made durable.
pub struct RecordingWriter {
    cast: File,
    cast_path: PathBuf,
    chain: ChainFile,
    /// Covers every closed line (handed to the file or still pending).
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
    /// Event lines not yet handed to the file, built in place (escaped
    /// straight into it, hashed there): one copy of the text, not two. It
    /// starts empty, so an idle channel holds no buffer.
    pending: Vec<u8>,
    open: Option<OpenLine>,
}

impl RecordingWriter {
    /// Creates `<dir>/<name>.cast` and `<dir>/<name>.chain` (both new, mode
    /// 0600) and makes the header and the chain start durable.
    pub fn create(dir: &Path, name: &str, header: &Header, key: &SigningKey) -> Result<Self> {
        Self::create_in(Format::CURRENT, dir, name, header, key)
    }

    /// [`Self::create`] in a given chain format (tests write the old one).
    pub(crate) fn create_in(
        format: Format,
        dir: &Path,
        name: &str,
        header: &Header,
        key: &SigningKey,
    ) -> Result<Self> {
        let (cast_path, chain_path) = paths(dir, name);
        let session = header.portcullis.as_ref().map(|m| m.session.clone());
        let header = header_line(header)?;
        let state = ChainState::start(format, header.as_bytes());
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
            cast,
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
            pending: Vec::new(),
            open: None,
        })
    }

    pub fn cast_path(&self) -> &Path {
        &self.cast_path
    }

    pub fn chain_path(&self) -> &Path {
        &self.chain.path
    }

    /// Event lines closed so far (a line still open for more chunks of its
    /// stream is counted when it closes).
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

    /// Records text already known to be whole UTF-8 (the segmenter's):
    /// [`Self::event`] without validating it again. A stream that still
    /// holds part of a character from [`Self::event`] goes through it, so
    /// the two may be mixed.
    pub fn text(&mut self, time: f64, kind: EventKind, text: &str) -> Result<()> {
        let carry = match kind {
            EventKind::Output => &self.output,
            EventKind::Input => &self.input,
            EventKind::Resize | EventKind::Marker => return self.write_text(time, kind, text),
        };
        if carry.is_empty() {
            self.write_text(time, kind, text)
        } else {
            self.event(time, kind, text.as_bytes())
        }
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
        // Only output comes in bulk; keystrokes keep a line each (the
        // masker releases several at once, at one clamped time).
        let joinable = kind == EventKind::Output;
        for part in split_text(text, MAX_EVENT_TEXT) {
            let joins = joinable
                && self.open.as_ref().is_some_and(|o| {
                    o.kind == kind
                        && self.last_time - o.time <= MERGE_WINDOW
                        && o.text + part.len() <= MAX_EVENT_TEXT
                });
            if !joins {
                self.close_line();
                self.open = Some(OpenLine {
                    kind,
                    start: self.pending.len(),
                    time: self.last_time,
                    text: 0,
                });
                event_line_open(&mut self.pending, self.last_time, kind);
            }
            json_body_into(&mut self.pending, part);
            if let Some(o) = self.open.as_mut() {
                o.text += part.len();
            }
            if !joinable {
                self.close_line();
            }
            if self.pending.len() >= WRITE_AT {
                self.write_pending(true)?;
            }
        }
        Ok(())
    }

    /// Ends the open line (if any) and chains it.
    fn close_line(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        event_line_close(&mut self.pending);
        let tag = self
            .state
            .push(self.pending.get(open.start..).unwrap_or_default());
        if self.tags.len() < MAX_TAGS * TAG_LEN {
            self.tags.extend_from_slice(&tag);
        } else {
            self.tags_complete = false;
        }
    }

    /// Closes the open line and hands pending lines to the file: all of
    /// them, or (`aligned`) up to the last 4 KiB file offset they reach.
    fn write_pending(&mut self, aligned: bool) -> Result<()> {
        self.close_line();
        let mut n = self.pending.len();
        if aligned {
            // Every pending byte is closed and counted: the file holds
            // `state.bytes - n` bytes now.
            let end = self.state.bytes & !(ALIGN - 1);
            let at = self.state.bytes - n as u64;
            n = usize::try_from(end.saturating_sub(at)).unwrap_or(n).min(n);
        }
        if n == 0 {
            return Ok(());
        }
        let written = self
            .cast
            .write_all(self.pending.get(..n).unwrap_or_default());
        if written.is_err() || n == self.pending.len() {
            // After an error the writer is dropped: nothing is written twice.
            self.pending.clear();
        } else {
            self.pending.drain(..n);
        }
        written.map_err(io_err(&self.cast_path))
    }

    /// Hands the buffered event lines to the file (no fsync, no
    /// checkpoint): readers following the recording (the live view) see
    /// them now instead of at the next checkpoint. Closes the open line.
    pub fn flush(&mut self) -> Result<()> {
        self.write_pending(false)
    }

    /// Makes every event so far durable, then appends a durable checkpoint.
    /// A checkpoint with no new event since the last one is not written
    /// again (idle sessions would otherwise fsync every second for nothing).
    pub fn checkpoint(&mut self, now_unix_ms: i64) -> Result<Checkpoint> {
        let (cp, line) = self.checkpoint_line(now_unix_ms)?;
        if let Some(line) = line {
            self.chain.append(&line)?;
        }
        Ok(cp)
    }

    /// The events made durable, and the checkpoint line to append (none
    /// when no event came since the last one), not yet written.
    fn checkpoint_line(&mut self, now_unix_ms: i64) -> Result<(Checkpoint, Option<String>)> {
        self.flush()?;
        // A burst's buffer is not kept by a channel that went quiet.
        if self.pending.capacity() > KEEP {
            self.pending = Vec::new();
        }
        self.cast.sync_data().map_err(io_err(&self.cast_path))?;
        if self.last_checkpoint == Some(self.state.events) {
            // Nothing new: no line, and no signature to compute.
            let cp = Checkpoint {
                events: self.state.events,
                cast_bytes: self.state.bytes,
                sha256: self.state.hex(),
                at_ms: now_unix_ms,
            };
            return Ok((cp, None));
        }
        let (cp, line) = checkpoint_line(
            &self.state,
            &self.tags,
            self.tags_complete,
            now_unix_ms,
            &self.key,
        )?;
        self.last_checkpoint = Some(self.state.events);
        self.tags.clear();
        self.tags_complete = true;
        Ok((cp, Some(line)))
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
        // The last checkpoint and the trailer reach the `.chain` in one
        // sync, not one each (issue 20: a sync fewer per session). Nothing
        // is acknowledged before it: a crash before the sync leaves the
        // recording as cut short after its last durable checkpoint, as a
        // crash before the checkpoint's own sync did. The events are
        // durable (the `.cast` synced) before either line is written.
        let (cp, line) = self.checkpoint_line(info.ended_at_ms)?;
        if let Some(line) = line {
            self.chain.append_unsynced(&line)?;
        }
        let chain_sha256 = self.chain.digest();
        let trailer = build_trailer(self.session.clone(), &cp, chain_sha256, info, false);
        self.chain.seal(&trailer, &self.key)?;
        Ok(trailer)
    }
}

impl Drop for RecordingWriter {
    /// Events written but not yet handed to the file go to it (not durably),
    /// as a buffered writer's would: recovery keeps whatever whole lines reach
    /// the file. A write error here has nowhere to go; recovery reports the
    /// recording as cut short either way.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
