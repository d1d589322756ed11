//! The walk shared by `verify` and `seal_cut_short`: the `.cast` line by
//! line, recomputing the chain, meeting the `.chain` records as the event
//! count reaches them. The first disagreement is the problem.

use super::cast::{Header, LineEnd, parse_header, parse_line, read_line_bounded};
use super::chain::{ChainState, Format, Record, TAG_LEN, checkpoint_message};
use super::chain_reader::{ChainItem, ChainReader, SignedTrailer};
use super::sign::public_base64;
use super::verify::Witness;
use super::{Result, io_err};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::Digest;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

struct PendingCheckpoint {
    line: u64,
    ordinal: u64,
    events: u64,
    cast_bytes: u64,
    sha256: String,
    tags: Option<Vec<u8>>,
}

enum Pending {
    Checkpoint(PendingCheckpoint),
    Trailer(SignedTrailer),
}

pub(super) struct Scan<'a> {
    /// What the database recorded; `None` checks the files alone.
    witness: Option<&'a Witness>,
    /// The witness's checkpoint was met by the recomputed chain (or there is none).
    witness_met: bool,
    /// `None` when recovering: then there must be no trailer yet.
    key: Option<&'a VerifyingKey>,
    /// Checks each signed checkpoint (verifying and recovering alike).
    checkpoint_key: Option<&'a VerifyingKey>,
    /// Checkpoints whose signature verified.
    pub(super) signed_checkpoints: u64,
    pub(super) chain: ChainReader,
    pub(super) initial: ChainState,
    pub(super) state: ChainState,
    header: Option<Header>,
    pub(super) cast_good_len: u64,
    next: Option<Pending>,
    /// Checkpoints read from the chain, for their 1-based ordinal.
    read_checkpoints: u64,
    /// Checkpoints that matched the recomputed chain.
    pub(super) checkpoints: u64,
    pub(super) last_cp_events: u64,
    /// Recomputed tags since the last matched checkpoint.
    pub(super) tags: Vec<u8>,
    pub(super) trailer: Option<SignedTrailer>,
    pub(super) need_start: bool,
    parse_error: Option<String>,
}

impl<'a> Scan<'a> {
    pub(super) fn run(
        cast: &Path,
        chain: &Path,
        key: Option<&'a VerifyingKey>,
        checkpoint_key: Option<&'a VerifyingKey>,
        witness: Option<&'a Witness>,
    ) -> Result<(Self, Option<String>)> {
        let mut reader = BufReader::new(File::open(cast).map_err(io_err(cast))?);
        let mut buf = Vec::new();
        let end = read_line_bounded(&mut reader, &mut buf).map_err(io_err(cast))?;
        // The start record names the format; until it is read (or when
        // recovery must write it) the current one.
        let initial = ChainState::start(Format::CURRENT, &buf);
        let mut scan = Scan {
            witness,
            // A row with no checkpoint stored yet (an open recording's first
            // second) witnesses nothing; a sealed row always has its digest.
            witness_met: witness.is_none_or(|w| w.sha256.is_empty() && !w.sealed),
            key,
            checkpoint_key,
            signed_checkpoints: 0,
            chain: ChainReader::open(chain)?,
            state: initial.clone(),
            initial,
            header: None,
            cast_good_len: buf.len() as u64,
            next: None,
            read_checkpoints: 0,
            checkpoints: 0,
            last_cp_events: 0,
            tags: Vec::new(),
            trailer: None,
            need_start: false,
            parse_error: None,
        };
        if end != LineEnd::Complete {
            return Ok((
                scan,
                Some("cast header line is missing or incomplete".to_owned()),
            ));
        }
        let problem = match scan.check_start(&buf)? {
            Some(p) => Some(p),
            None => match scan.check_witness() {
                Some(p) => Some(p),
                None => scan.walk(&mut reader, &mut buf, cast)?,
            },
        };
        let problem = problem.or_else(|| scan.witness_at_end());
        Ok((scan, problem))
    }

    fn recovering(&self) -> bool {
        self.key.is_none()
    }

    pub(super) fn session(&self) -> Option<String> {
        let meta = self.header.as_ref()?.portcullis.as_ref()?;
        Some(meta.session.clone())
    }

    fn check_start(&mut self, header_line: &[u8]) -> Result<Option<String>> {
        let missing = self.chain.reader.is_none();
        let problem = match self.chain.next()? {
            ChainItem::Record(_, Record::Start { format, sha256 }) => {
                let known = Format::parse(&format);
                if let Some(f) = known.filter(|f| *f != self.initial.format) {
                    self.initial = ChainState::start(f, header_line);
                    self.state = self.initial.clone();
                }
                if known.is_none() {
                    Some(format!(
                        "chain format {format:?} is not one this bastion knows"
                    ))
                } else if sha256 != self.initial.hex() {
                    Some("header line was modified (chain start mismatch)".to_owned())
                } else {
                    None
                }
            }
            // A crash right after creating the cast: recovery writes the start.
            ChainItem::Eof | ChainItem::Torn(_) if self.recovering() => {
                self.need_start = true;
                None
            }
            ChainItem::Eof if missing => Some(format!(
                "chain file {} is missing",
                self.chain.path.display()
            )),
            ChainItem::Eof => Some("chain file is empty".to_owned()),
            ChainItem::Torn(l) => Some(format!("chain line {l} is incomplete")),
            ChainItem::Bad(l, r) => Some(format!("chain line {l} is malformed: {r}")),
            _ => Some("chain line 1 is not the start record".to_owned()),
        };
        if problem.is_some() {
            return Ok(problem);
        }
        let header = std::str::from_utf8(header_line)
            .map_err(|e| e.to_string())
            .and_then(|t| parse_header(t.trim_end_matches('\n')).map_err(|e| e.to_string()));
        match header {
            Ok(h) => self.header = Some(h),
            Err(e) => {
                return Ok(Some(format!(
                    "header line is not a valid asciicast v2 header: {e}"
                )));
            }
        }
        if self.need_start {
            return Ok(None);
        }
        self.advance()
    }

    /// Reads the next chain record into `next`.
    fn advance(&mut self) -> Result<Option<String>> {
        self.next = None;
        Ok(match self.chain.next()? {
            ChainItem::Record(l, Record::Start { .. }) => {
                Some(format!("chain line {l}: a second start record"))
            }
            ChainItem::Record(l, rec) => match self.checkpoint_from(l, rec) {
                Ok(cp) => {
                    self.next = Some(Pending::Checkpoint(cp));
                    None
                }
                Err(problem) => Some(problem),
            },
            ChainItem::Trailer(t) => {
                self.next = Some(Pending::Trailer(t));
                None
            }
            ChainItem::Eof => None,
            ChainItem::Torn(_) if self.recovering() => None,
            ChainItem::Torn(l) => Some(format!(
                "chain line {l} is incomplete (torn write; run recovery)"
            )),
            ChainItem::Bad(l, r) => Some(format!("chain line {l} is malformed: {r}")),
        })
    }

    /// Checks a checkpoint record's own consistency before the walk meets it.
    fn checkpoint_from(
        &mut self,
        l: u64,
        rec: Record,
    ) -> std::result::Result<PendingCheckpoint, String> {
        let Record::Checkpoint {
            events,
            cast_bytes,
            sha256,
            at,
            lines,
            sig,
        } = rec
        else {
            return Err(format!("chain line {l}: not a checkpoint"));
        };
        self.read_checkpoints += 1;
        let ordinal = self.read_checkpoints;
        match (sig, self.checkpoint_key) {
            (Some(sig), Some(key)) => {
                let message =
                    checkpoint_message(self.state.format, events, cast_bytes, &sha256, at);
                if !signature_holds(key, message.as_bytes(), &sig) {
                    return Err(format!(
                        "chain line {l}: checkpoint {ordinal} is not signed by this key (edited, or another bastion's)"
                    ));
                }
                self.signed_checkpoints += 1;
            }
            // Recovery signs what it seals: it vouches only for what the
            // audit key already signed, so a stripped signature is refused.
            // (A sealed recording's trailer covers unsigned checkpoints.)
            (None, Some(_)) if self.recovering() => {
                return Err(format!(
                    "chain line {l}: checkpoint {ordinal} is unsigned; recovery seals only checkpoints the audit key signed"
                ));
            }
            _ => {}
        }
        let prev = self.last_cp_events;
        if events < prev {
            return Err(format!(
                "chain line {l}: checkpoint {ordinal} goes backwards ({events} events after {prev})"
            ));
        }
        let tags = lines
            .map(|b| B64.decode(b))
            .transpose()
            .map_err(|e| format!("chain line {l} is malformed: line tags: {e}"))?;
        if let Some(t) = &tags {
            // A missing checkpoint leaves its successor with too few tags.
            let want = (events - prev).saturating_mul(TAG_LEN as u64);
            if t.len() as u64 != want {
                let (a, b, c) = (prev + 1, events, t.len() / TAG_LEN);
                return Err(format!(
                    "chain file missing checkpoint before chain line {l}: checkpoint {ordinal} covers event lines {a} to {b} but lists {c} line tags"
                ));
            }
        }
        Ok(PendingCheckpoint {
            line: l,
            ordinal,
            events,
            cast_bytes,
            sha256,
            tags,
        })
    }

    fn walk(
        &mut self,
        reader: &mut BufReader<File>,
        buf: &mut Vec<u8>,
        cast: &Path,
    ) -> Result<Option<String>> {
        loop {
            if let Some(p) = self.settle()? {
                return Ok(Some(p));
            }
            let end = read_line_bounded(reader, buf).map_err(io_err(cast))?;
            let line = self.state.events + 2;
            let problem = match end {
                LineEnd::Eof => break,
                _ if self.trailer.is_some() => {
                    Some(format!("extra data after the signed end: cast line {line}"))
                }
                LineEnd::Complete => self.on_line(line, buf).or_else(|| self.check_witness()),
                LineEnd::Torn if self.recovering() => break,
                LineEnd::Torn => Some(format!(
                    "cast line {line} is incomplete (torn write; run recovery if the recorder crashed)"
                )),
                LineEnd::TooLong => Some(format!("cast line {line} is longer than 1 MiB")),
            };
            if problem.is_some() {
                return Ok(problem);
            }
        }
        self.at_end()
    }

    fn on_line(&mut self, line: u64, bytes: &[u8]) -> Option<String> {
        let tag = self.state.push(bytes);
        self.tags.extend_from_slice(&tag);
        self.cast_good_len += bytes.len() as u64;
        let event = self.state.events;
        if let Some(Pending::Checkpoint(cp)) = &self.next
            && let Some(expected) = &cp.tags
        {
            let at = (event - self.last_cp_events - 1) as usize * TAG_LEN;
            if expected.get(at..at + TAG_LEN) != Some(&tag[..]) {
                return Some(format!(
                    "event line {event} (cast line {line}) was modified, reordered, inserted or removed (checkpoint {} mismatch)",
                    cp.ordinal
                ));
            }
        }
        if self.parse_error.is_none() {
            let parsed = std::str::from_utf8(bytes)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    parse_line(t.trim_end_matches('\n'))
                        .map(drop)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = parsed {
                self.parse_error = Some(format!(
                    "event line {event} (cast line {line}) is not a valid event: {e}"
                ));
            }
        }
        None
    }

    /// Compares the chain with the database's checkpoint when the event count
    /// reaches it: the database is written by the bastion alone, so files
    /// replaced, rolled back or rebuilt without a chain disagree with it.
    fn check_witness(&mut self) -> Option<String> {
        let w = self.witness?;
        if self.witness_met || self.state.events != w.events {
            return None;
        }
        if self.state.hex() != w.sha256 || self.state.bytes != w.cast_bytes {
            return Some(format!(
                "event {} does not match the checkpoint stored in the database (the files were replaced, rolled back or edited)",
                w.events
            ));
        }
        self.witness_met = true;
        None
    }

    fn witness_at_end(&self) -> Option<String> {
        let w = self.witness?;
        let n = self.state.events;
        if !self.witness_met {
            return Some(format!(
                "the database recorded a checkpoint at event {}, but the files hold {n} events (truncated or replaced)",
                w.events
            ));
        }
        if w.sealed && n != w.events {
            return Some(format!(
                "the database recorded the sealed recording with {} events; the files hold {n}",
                w.events
            ));
        }
        let session = self.session().unwrap_or_default();
        if session != w.session {
            return Some(format!(
                "the files belong to session {session:?}, not {:?} (swapped or copied)",
                w.session
            ));
        }
        None
    }

    /// Meets every chain record due at the current event count.
    fn settle(&mut self) -> Result<Option<String>> {
        loop {
            let n = self.state.events;
            match self.next.take() {
                Some(Pending::Checkpoint(cp)) if cp.events == n => {
                    if let Some(p) = self.check_checkpoint(&cp) {
                        return Ok(Some(p));
                    }
                    self.last_cp_events = n;
                    self.tags.clear();
                    self.checkpoints += 1;
                    if let Some(p) = self.advance()? {
                        return Ok(Some(p));
                    }
                }
                Some(Pending::Trailer(t)) if t.trailer.events == n => return self.close_with(t),
                Some(Pending::Trailer(t)) if t.trailer.events < n => {
                    return Ok(Some(format!(
                        "chain line {}: trailer covers {} events, fewer than its checkpoints",
                        t.line, t.trailer.events
                    )));
                }
                other => {
                    self.next = other;
                    return Ok(None);
                }
            }
        }
    }

    fn check_checkpoint(&self, cp: &PendingCheckpoint) -> Option<String> {
        if cp.cast_bytes == self.state.bytes && cp.sha256 == self.state.hex() {
            return None;
        }
        let (a, b, k) = (self.last_cp_events + 1, cp.events, cp.ordinal);
        let what = if cp.cast_bytes != self.state.bytes {
            format!(
                "{} bytes present, it recorded {}",
                self.state.bytes, cp.cast_bytes
            )
        } else {
            "sha256 differs".to_owned()
        };
        if b < a {
            return Some(format!(
                "chain line {}: checkpoint {k} does not match the recording at event {b} ({what})",
                cp.line
            ));
        }
        Some(format!(
            "event lines {a} to {b} (cast lines {} to {}) were modified, reordered, inserted or removed (checkpoint {k} mismatch: {what})",
            a + 1,
            b + 1
        ))
    }

    /// Checks the trailer reached at its event count; nothing may follow it.
    fn close_with(&mut self, t: SignedTrailer) -> Result<Option<String>> {
        if let Some(p) = self.check_trailer(&t) {
            return Ok(Some(p));
        }
        self.trailer = Some(t);
        let after = match self.chain.next()? {
            ChainItem::Eof => return Ok(None),
            ChainItem::Record(l, _) | ChainItem::Torn(l) | ChainItem::Bad(l, _) => l,
            ChainItem::Trailer(t) => t.line,
        };
        Ok(Some(format!(
            "extra data after the signed end: chain line {after}"
        )))
    }

    fn check_trailer(&self, t: &SignedTrailer) -> Option<String> {
        let Some(key) = self.key else {
            return Some(format!(
                "the recording already has a trailer (chain line {}): nothing to seal",
                t.line
            ));
        };
        let signature = B64
            .decode(&t.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok());
        let valid = signature.is_some_and(|s| key.verify_strict(t.raw.as_bytes(), &s).is_ok());
        if !valid || t.public_key != public_base64(key) {
            return Some("trailer signature does not verify (forged or wrong key)".to_owned());
        }
        let header_session = self.session().unwrap_or_default();
        if t.trailer.session != header_session {
            return Some(format!(
                "trailer names session {:?}, the header names {header_session:?}",
                t.trailer.session
            ));
        }
        let chain_digest = hex::encode(self.chain.hasher.clone().finalize());
        if t.trailer.chain_sha256 != chain_digest {
            return Some(
                "chain file was modified before its trailer (chain sha256 mismatch)".to_owned(),
            );
        }
        if t.trailer.cast_bytes != self.state.bytes || t.trailer.sha256 != self.state.hex() {
            let a = self.last_cp_events + 1;
            return Some(format!(
                "the cast does not match the signed trailer at event {}: event lines {a} onwards or the chain checkpoints were modified",
                t.trailer.events
            ));
        }
        None
    }

    /// The cast ended: anything the chain still expects means truncation.
    fn at_end(&mut self) -> Result<Option<String>> {
        let n = self.state.events;
        let mut expected = match self.next.take() {
            Some(Pending::Trailer(t)) => {
                return Ok(Some(format!(
                    "recording truncated: {n} events present, trailer says {}",
                    t.trailer.events
                )));
            }
            Some(Pending::Checkpoint(cp)) => {
                format!("checkpoint {} says {}", cp.ordinal, cp.events)
            }
            None if self.trailer.is_none() && !self.recovering() => {
                return Ok(Some(
                    "no trailer: recording was not closed (run recovery)".to_owned(),
                ));
            }
            None => return Ok(self.parse_error.clone()),
        };
        // Prefer naming the signed count when the trailer is further on.
        loop {
            match self.chain.next()? {
                ChainItem::Trailer(t) => {
                    expected = format!("trailer says {}", t.trailer.events);
                    break;
                }
                ChainItem::Record(..) => {}
                _ => break,
            }
        }
        Ok(Some(format!(
            "recording truncated: {n} events present, {expected}"
        )))
    }
}

fn signature_holds(key: &VerifyingKey, message: &[u8], sig_b64: &str) -> bool {
    let Ok(bytes) = B64.decode(sig_b64) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&bytes) else {
        return false;
    };
    key.verify_strict(message, &sig).is_ok()
}
