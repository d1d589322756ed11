//! Records each session channel: one task per channel receives copies of the
//! bridge's frames (a bounded queue, never a write on the data path itself),
//! turns them into asciicast events, checkpoints the integrity chain every
//! second (file and database) and signs the trailer at the end.
//!
//! Nothing the client chooses turns recording off. What a channel carries
//! is recorded by its kind, decided from the requests the gate allowed:
//!
//! - a terminal (a pty was requested): keystrokes, masked where the target
//!   did not echo them, and output ([`terminal`]);
//! - an exec or shell without a pty: stdin (capped) and output as text,
//!   binary runs marked and summarised ([`piped`]);
//! - a proven file transfer (`policy::classify_exec`, the gate's own
//!   decision): both directions counted and hashed ([`transfer`]);
//! - sftp: file operations as markers (`castfile::sftp`);
//! - a captured TCP forward: the raw bytes both ways as markers
//!   ([`capture`], started by `forward::trail`).
//!
//! The recording exists before the target acts: the bridge holds a shell,
//! exec or subsystem request until this task answers that the header is
//! durable and the row stored ([`request`]).
//!
//! Fail closed: if a recording cannot be written, the task ends, which ends
//! the channel (the bridge's tap fails) and the session, and says so in the
//! audit trail.

use crate::app::App;
use crate::audit::{self, AuditEvent};
use crate::bridge::{Ack, Direction, Frame, Request, Tap, Tapped};
use crate::castfile::binary::Segmenter;
use crate::castfile::sftp::SftpLog;
use crate::castfile::{EventKind, RecordingError, TrailerInfo};
use crate::clock::now_ms;
use crate::session::Session;
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub mod capture;
pub mod evidence;
mod out;
mod piped;
mod request;
pub mod search;
mod terminal;
mod transfer;
mod upkeep;

/// The disk marks moved out to `crate::disk` (the session refuses on them
/// too, and must not import the recorder); the old path stays for callers.
pub use crate::disk as space;

use out::{Out, Rec};
pub use upkeep::{prune, reap, recover};
pub(crate) use upkeep::{seal, witness_of};

/// Frames queued per channel before the channel waits for the recorder.
const QUEUE: usize = 256;
/// How long written events may wait in the writer's buffer.
const LIVE_FLUSH: Duration = Duration::from_millis(25);
/// Data held from before the session request (see [`Mode::Early`]).
const EARLY_CAP: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("cannot create recording {name}: {source}")]
    Create {
        name: String,
        source: RecordingError,
    },
    #[error("recording {name} write failed: {source}")]
    Write {
        name: String,
        source: RecordingError,
    },
    #[error("recording {name} checkpoint failed: {source}")]
    Checkpoint {
        name: String,
        source: RecordingError,
    },
    #[error("{what} not stored: {source}")]
    Store {
        what: &'static str,
        source: crate::store::StoreError,
    },
    #[error("{0}")]
    Capture(String),
    #[error("{0}")]
    Seal(String),
    #[error("the recording task stopped: {0}")]
    Task(String),
    #[error("more than {EARLY_CAP} bytes crossed the channel before its session request")]
    Early,
}

/// Starts recording channel `channel` of `session`; the returned tap goes to the bridge.
pub fn start(app: Arc<App>, session: Arc<Session>, channel: u32) -> Tap {
    let (tx, rx) = crate::bridge::tap_queue(QUEUE);
    // Every byte is wanted: stdin of a non-pty exec is recorded (capped) or
    // counted and hashed, never skipped.
    let up_data = Arc::new(AtomicBool::new(true));
    // In the caller's span (its connection's): the recorder's lines name the session.
    let tasks = app.tasks.clone();
    tasks.spawn(tracing::Instrument::in_current_span(record(
        app, session, channel, rx,
    )));
    Tap { tx, up_data }
}

/// What the channel carries, decided by its session request.
enum Mode {
    /// No shell, exec or subsystem request yet. No OpenSSH client sends
    /// data then, but sshd may hand it to the command as stdin: it is held
    /// (bounded) and recorded once the kind is known.
    Early(Early),
    Terminal(terminal::Terminal),
    Piped(Box<piped::Piped>),
    Transfer(Box<transfer::TransferLog>),
    /// File operations as markers; the server's stderr as text.
    Sftp(Box<SftpLog>, Segmenter),
}

/// The steps of a frame's handling that await, run boxed by the loop (see
/// `record`): most frames are handled synchronously.
enum Then {
    /// A session request: creates the recording and stores its row; the
    /// answer lets the bridge forward it.
    Request(f64, Request, Option<Ack>),
    /// Lines typed at a terminal, for the lockdown rules.
    Typed(Vec<String>),
}

impl Then {
    fn typed(lines: Vec<String>) -> Option<Then> {
        (!lines.is_empty()).then_some(Then::Typed(lines))
    }
}

struct Ctx {
    app: Arc<App>,
    session: Arc<Session>,
    channel: u32,
    start: Instant,
    rec: Rec,
    mode: Mode,
    /// A pty was requested: the channel is a terminal.
    pty: bool,
    size: (u32, u32),
    term: String,
}

async fn record(app: Arc<App>, session: Arc<Session>, channel: u32, mut rx: crate::bridge::TapRx) {
    let name = format!("{}-{channel}", session.id);
    let mut ctx = Ctx {
        app,
        session,
        channel,
        start: Instant::now(),
        rec: Rec::new(name),
        mode: Mode::Early(Early::default()),
        pty: false,
        size: (80, 24),
        term: "xterm".into(),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Events reach the file within LIVE_FLUSH of being written (the live
    // view follows the file); at most one write per channel per period.
    // One timer per period with events waiting, not one per frame.
    let mut flush: Option<Pin<Box<tokio::time::Sleep>>> = None;
    // The loop's task lives as long as the channel, and a future is as large
    // as its largest state: the steps that await (a session request creates
    // the recording and stores its row; typed lines go to the lockdown
    // rules), a checkpoint, the seal are boxed, so an idle channel's
    // recorder holds only its state and the queue's ends. The common frame
    // (data) is handled synchronously and allocates nothing here.
    let outcome = loop {
        tokio::select! {
            t = rx.recv() => match t {
                Some(t) => {
                    let done = match ctx.frame(t) {
                        Ok(Some(then)) => Box::pin(ctx.then(then)).await,
                        other => other.map(|_| ()),
                    };
                    if let Err(e) = done { break Err(e) }
                    flush.get_or_insert_with(|| Box::pin(tokio::time::sleep(LIVE_FLUSH)));
                }
                None => break Ok(()),
            },
            _ = async { if let Some(due) = flush.as_mut() { due.await } }, if flush.is_some() => {
                flush = None;
                if let Err(e) = ctx.rec.flush() { break Err(e) }
            }
            _ = tick.tick() => if let Err(e) = Box::pin(ctx.rec.checkpoint(&ctx.app.store)).await { break Err(e) },
        }
    };
    drop(rx);
    let result = match outcome {
        Ok(()) => Box::pin(ctx.finish()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        Box::pin(ctx.failed(&e.to_string())).await;
    }
}

impl Ctx {
    fn t(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64()
    }

    /// A frame's synchronous handling; what must await comes back as a
    /// [`Then`] for the loop to run boxed.
    fn frame(&mut self, t: Tapped) -> Result<Option<Then>, RecorderError> {
        let time = self.t(t.at);
        let done = match (t.dir, t.frame) {
            (Direction::Up, Frame::Request(req)) => {
                return Ok(Some(Then::Request(time, req, t.ack)));
            }
            (dir, Frame::Data(b)) => return self.data(time, dir, b, false).map(Then::typed),
            (dir, Frame::Stderr(b)) => return self.data(time, dir, b, true).map(Then::typed),
            (dir, Frame::Eof) => self.eof(time, dir),
            (Direction::Down, Frame::ExitStatus(code)) => {
                self.rec.marker(time, &format!("exit status {code}"))
            }
            (Direction::Down, Frame::ExitSignal { name, .. }) => {
                self.rec.marker(time, &format!("killed by signal {name}"))
            }
            (Direction::Down, Frame::RequestFailed) => {
                self.rec.marker(time, "the target refused the request")
            }
            _ => Ok(()),
        };
        done.map(|()| None)
    }

    async fn then(&mut self, then: Then) -> Result<(), RecorderError> {
        match then {
            Then::Request(time, req, ack) => {
                self.request(time, req).await?;
                // Answered only once the request is recorded; an error drops
                // the answer, and the bridge does not forward the request.
                let forwarded = ack.is_none_or(|ack| ack.recorded());
                if forwarded {
                    return Ok(());
                }
                self.rec.marker(
                    time,
                    "not forwarded: the bridge stopped waiting for this recording (timeout, or the session ended)",
                )
            }
            Then::Typed(lines) => {
                self.typed(lines).await;
                Ok(())
            }
        }
    }

    /// Channel bytes, recorded the way the channel's kind calls for; the
    /// lines typed at a terminal are returned for the lockdown rules.
    fn data(
        &mut self,
        at: f64,
        dir: Direction,
        b: Bytes,
        stderr: bool,
    ) -> Result<Vec<String>, RecorderError> {
        let rec = &mut self.rec;
        let done = match (&mut self.mode, dir) {
            (Mode::Early(held), _) => held.hold(at, dir, b, stderr),
            (Mode::Terminal(term), Direction::Up) => {
                let (released, lines) = term.input(at, &b);
                write_input(rec, released)?;
                return Ok(lines);
            }
            (Mode::Terminal(term), Direction::Down) => {
                write_input(rec, term.output(&b))?;
                rec.event(at, EventKind::Output, &b)
            }
            (Mode::Piped(p), Direction::Up) => p.input(at, &b, rec),
            (Mode::Piped(p), Direction::Down) if stderr => p.stderr(at, &b, rec),
            (Mode::Piped(p), Direction::Down) => p.output(at, &b, rec),
            (Mode::Transfer(x), Direction::Up) => x.up(&b),
            (Mode::Transfer(x), Direction::Down) if stderr => x.stderr(at, &b, rec),
            (Mode::Transfer(x), Direction::Down) => x.down(&b),
            (Mode::Sftp(_, errors), Direction::Down) if stderr => {
                piped::feed(errors, at, EventKind::Output, &b, rec)
            }
            (Mode::Sftp(log, _), dir) => {
                let markers = match dir {
                    Direction::Up => log.up(&b),
                    Direction::Down => log.down(&b),
                };
                if let Some(e) = log.capture_failed.take() {
                    return Err(RecorderError::Capture(e));
                }
                markers.iter().try_for_each(|m| rec.marker(at, m))
            }
        };
        done.map(|()| Vec::new())
    }

    /// An EOF: text its direction's streams still hold is decided now, so
    /// it is recorded before what follows (the exit status).
    fn eof(&mut self, at: f64, dir: Direction) -> Result<(), RecorderError> {
        let rec = &mut self.rec;
        match (&mut self.mode, dir) {
            (Mode::Piped(p), Direction::Up) => p.input_ended(at, rec),
            (Mode::Piped(p), Direction::Down) => p.output_ended(at, rec),
            (Mode::Transfer(x), Direction::Down) => x.output_ended(at, rec),
            (Mode::Sftp(_, errors), Direction::Down) => {
                piped::close(errors, at, EventKind::Output, rec)
            }
            _ => Ok(()),
        }
    }

    /// Typed lines (in clear, even where the recording masks them) go to
    /// the lockdown rules; a matching rule acts on its own.
    async fn typed(&self, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let seen = self.session.seen();
        for line in lines {
            crate::lockdown::rules::on_command(&self.app, &seen, &line).await;
        }
    }

    async fn finish(&mut self) -> Result<(), RecorderError> {
        let end = self.t(Instant::now());
        let rec = &mut self.rec;
        match &mut self.mode {
            // Input still held by the masker (a line never ended) is released, masked.
            Mode::Terminal(term) => {
                let rest = term.flush().into_iter().map(|(at, s)| (at.min(end), s));
                write_input(rec, rest.collect())?;
            }
            Mode::Piped(p) => p.finish(end, rec)?,
            Mode::Transfer(x) => x.finish(end, rec)?,
            Mode::Sftp(_, errors) => piped::close(errors, end, EventKind::Output, rec)?,
            Mode::Early(_) => {}
        }
        let Some(w) = self.rec.take() else {
            return Ok(());
        };
        let counters = &self.session.counters;
        let info = TrailerInfo {
            bytes_up: counters.up.load(Ordering::Relaxed),
            bytes_down: counters.down.load(Ordering::Relaxed),
            end_reason: self
                .session
                .end_reason()
                .unwrap_or_else(|| "channel closed".into()),
            ended_at_ms: now_ms(),
        };
        let name = self.rec.name.clone();
        seal(&self.app.store, &name, w, &info)
            .await
            .map_err(RecorderError::Seal)?;
        tracing::debug!(recording = %name, "recording sealed");
        let cast = self.app.config.recordings_dir.join(format!("{name}.cast"));
        upkeep::index(self.app.clone(), name, cast);
        Ok(())
    }

    async fn failed(&mut self, e: &str) {
        let name = self.rec.name.clone();
        tracing::error!(session = %self.session.id, recording = %name, error = %e, "recording failed; ending the session");
        let _ = self
            .app
            .store
            .recording_checkpoint(&name, 0, 0, "", now_ms(), "failed")
            .await;
        let event = AuditEvent::RecordingFailed {
            session: self.session.id.clone(),
            recording: name,
            error: e.to_string(),
        };
        if let Err(err) = audit::record(&self.app.store, event).await {
            tracing::error!(error = %err, "audit write failed too");
        }
        self.session
            .set_end_reason(&format!("recording failed: {e}"));
        self.session.cancel.cancel();
    }
}

/// Data from before the session request, replayed once the kind is known.
#[derive(Default)]
struct Early {
    frames: Vec<Held>,
    bytes: usize,
}

struct Held {
    at: f64,
    dir: Direction,
    data: Bytes,
    stderr: bool,
}

impl Early {
    fn hold(
        &mut self,
        at: f64,
        dir: Direction,
        data: Bytes,
        stderr: bool,
    ) -> Result<(), RecorderError> {
        // An empty frame still counts: the number of frames is bounded too.
        self.bytes += data.len().max(1);
        if self.bytes > EARLY_CAP {
            return Err(RecorderError::Early);
        }
        self.frames.push(Held {
            at,
            dir,
            data,
            stderr,
        });
        Ok(())
    }
}

/// Keystrokes the masker released, each at the time it was typed.
fn write_input(out: &mut impl Out, released: Vec<(f64, String)>) -> Result<(), RecorderError> {
    for (at, text) in released {
        out.event(at, EventKind::Input, text.as_bytes())?;
    }
    Ok(())
}
