//! Records each session channel: one task per channel receives copies of the
//! bridge's frames (a bounded queue, never a write on the data path itself),
//! turns them into asciicast events, checkpoints the integrity chain every
//! second (file and database) and signs the trailer at the end.
//!
//! Fail closed: if a recording cannot be written, the task ends, which ends
//! the channel (the bridge's tap fails) and the session, and says so in the
//! audit trail.

use crate::app::{App, now_ms};
use crate::audit::{self, AuditEvent};
use crate::bridge::{Direction, Frame, Request, Tap, Tapped};
use crate::recording::binary::{BinaryStream, looks_binary};
use crate::recording::{
    ChannelKind, EventKind, Header, InputMasker, RecordingWriter, SessionMeta, TrailerInfo,
};
use crate::session::Session;
use crate::store::RecordingRow;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod upkeep;
use tokio::sync::mpsc;
pub(crate) use upkeep::seal;
pub use upkeep::{prune, recover};

/// Frames queued per channel before the channel waits for the recorder.
const QUEUE: usize = 256;

/// Starts recording channel `channel` of `session`; the returned tap goes to the bridge.
pub fn start(app: Arc<App>, session: Arc<Session>, channel: u32) -> Tap {
    let (tx, rx) = mpsc::channel(QUEUE);
    let up_data = Arc::new(std::sync::atomic::AtomicBool::new(true));
    tokio::spawn(record(app, session, channel, rx, up_data.clone()));
    Tap { tx, up_data }
}

struct Ctx {
    app: Arc<App>,
    session: Arc<Session>,
    name: String,
    start: Instant,
    size: (u32, u32),
    term: String,
    /// sftp/scp: transfers are logged as markers, their bytes are not put in the cast.
    transfer: bool,
    /// Follows an sftp subsystem's file operations.
    sftp: Option<crate::recording::sftp::SftpLog>,
    masker: InputMasker,
    /// A pty was requested: input is keystrokes and is recorded (masked when not echoed).
    interactive: bool,
    /// Tells the bridge whether client data is wanted at all.
    up_data: Arc<std::sync::atomic::AtomicBool>,
    channel: u32,
    writer: Option<RecordingWriter>,
    /// The target records terminal contents (false: markers only).
    content: bool,
    /// Exec stdout turned binary: counted and hashed, not put in the cast.
    binary: Option<BinaryStream>,
    events_since_checkpoint: bool,
    /// Typed lines for the lockdown rules (only when rules exist).
    lines: Option<crate::lockdown::LineAssembler>,
}

async fn record(
    app: Arc<App>,
    session: Arc<Session>,
    channel: u32,
    mut rx: mpsc::Receiver<Tapped>,
    up_data: Arc<std::sync::atomic::AtomicBool>,
) {
    let name = format!("{}-{channel}", session.id);
    let mut ctx = Ctx {
        app,
        session,
        name,
        start: Instant::now(),
        size: (80, 24),
        term: "xterm".into(),
        transfer: false,
        sftp: None,
        masker: InputMasker::default(),
        interactive: false,
        up_data,
        channel,
        writer: None,
        content: true,
        binary: None,
        events_since_checkpoint: false,
        lines: None,
    };
    if !ctx.app.config.lockdown.rules.is_empty() {
        ctx.lines = Some(crate::lockdown::LineAssembler::default());
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            t = rx.recv() => match t {
                Some(t) => if let Err(e) = ctx.frame(t).await { break Err(e) },
                None => break Ok(()),
            },
            _ = tick.tick() => if let Err(e) = ctx.checkpoint().await { break Err(e) },
        }
    };
    drop(rx);
    let result = match outcome {
        Ok(()) => ctx.finish().await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        ctx.failed(&e).await;
    }
}

impl Ctx {
    fn t(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64()
    }

    async fn frame(&mut self, t: Tapped) -> Result<(), String> {
        let time = self.t(t.at);
        match (t.dir, t.frame) {
            (Direction::Up, Frame::Request(req)) => self.request(time, req).await,
            // Without a pty, stdin is data piped in (a file, a script), not
            // keystrokes: it is counted, not recorded.
            (Direction::Up, Frame::Data(b)) if !self.transfer && self.interactive => {
                let released = self.masker.input(time, &b);
                self.typed(&released).await;
                for (at, text) in released {
                    self.content(|w| w.event(at, EventKind::Input, text.as_bytes()))?;
                }
                Ok(())
            }
            (Direction::Down, Frame::Data(b))
                if !self.transfer
                    && !self.interactive
                    && (self.binary.is_some() || looks_binary(&b)) =>
            {
                self.binary_output(time, &b)
            }
            (Direction::Down, Frame::Data(b) | Frame::Stderr(b)) if !self.transfer => {
                let released = if self.interactive {
                    self.masker.output(&b)
                } else {
                    Vec::new()
                };
                self.typed(&released).await;
                for (at, text) in released {
                    self.content(|w| w.event(at, EventKind::Input, text.as_bytes()))?;
                }
                self.content(|w| w.event(time, EventKind::Output, &b))
            }
            (dir, Frame::Data(b)) if self.sftp.is_some() => {
                let Some(log) = self.sftp.as_mut() else {
                    return Ok(());
                };
                let markers = if dir == Direction::Up {
                    log.up(&b)
                } else {
                    log.down(&b)
                };
                if let Some(e) = log.capture_failed.take() {
                    return Err(e);
                }
                for m in markers {
                    self.marker(time, &m)?;
                }
                Ok(())
            }
            (Direction::Down, Frame::ExitStatus(code)) => {
                self.marker(time, &format!("exit status {code}"))
            }
            (Direction::Down, Frame::ExitSignal { name, .. }) => {
                self.marker(time, &format!("killed by signal {name}"))
            }
            (Direction::Down, Frame::RequestFailed) => {
                self.marker(time, "the target refused the request")
            }
            _ => Ok(()),
        }
    }

    /// Input the masker released (masked when it was not echoed) goes to
    /// the rules line by line; a matching rule acts on its own.
    async fn typed(&mut self, released: &[(f64, String)]) {
        let Some(lines) = self.lines.as_mut() else {
            return;
        };
        let done: Vec<String> = released.iter().flat_map(|(_, t)| lines.feed(t)).collect();
        if done.is_empty() {
            return;
        }
        let seen = self.session.seen();
        for line in done {
            crate::lockdown::rules::on_command(&self.app, &seen, &line).await;
        }
    }

    async fn request(&mut self, time: f64, req: Request) -> Result<(), String> {
        match req {
            Request::Pty {
                cols, rows, term, ..
            } => {
                self.interactive = true;
                self.size = (cols, rows);
                self.term = term;
                if self.writer.is_some() {
                    self.write(|w| w.resize(time, cols, rows))?;
                }
                Ok(())
            }
            Request::WindowChange { cols, rows, .. } => {
                self.size = (cols, rows);
                self.write(|w| w.resize(time, cols, rows))
            }
            Request::Shell => self.open(ChannelKind::Shell, None).await,
            Request::Exec(cmd) => {
                self.transfer = matches!(
                    crate::policy::classify_exec(&cmd),
                    crate::policy::ExecKind::Transfer(_)
                );
                let cmd = String::from_utf8_lossy(&cmd).to_string();
                // Piped stdin of a non-interactive exec is only counted.
                self.up_data
                    .store(self.interactive, std::sync::atomic::Ordering::Relaxed);
                self.open(ChannelKind::Exec, Some(cmd.clone())).await?;
                self.marker(time, &format!("exec: {cmd}"))
            }
            Request::Subsystem(name) => {
                self.transfer = true;
                if name == "sftp" {
                    let (target, _) = self.session.target_and_login().unwrap_or_default();
                    let keep = self
                        .app
                        .store
                        .capture_files(&target)
                        .await
                        .map_err(|e| format!("capture setting unreadable: {e}"))?;
                    let dir = self
                        .app
                        .config
                        .recordings_dir
                        .join(format!("{}.files", self.name));
                    self.sftp = Some(if keep {
                        crate::recording::sftp::SftpLog::with_capture(dir)
                    } else {
                        Default::default()
                    });
                }
                self.open(ChannelKind::Subsystem, Some(name.clone()))
                    .await?;
                self.marker(
                    time,
                    &format!("subsystem: {name} (file transfer; contents not recorded)"),
                )
            }
            Request::Signal(sig) => self.marker(time, &format!("signal {sig}")),
            Request::AgentForward => {
                self.marker(time, "agent forwarding on (allowed by the grant)")
            }
            Request::Env { .. } => Ok(()),
        }
    }

    async fn open(&mut self, kind: ChannelKind, command: Option<String>) -> Result<(), String> {
        if self.writer.is_some() {
            return Ok(());
        }
        let s = &self.session;
        let (target, login) = s.target_and_login().unwrap_or_default();
        // Unreadable setting: record everything (fail closed).
        self.content = self.app.store.record_content(&target).await.unwrap_or(true);
        let kind_name = match kind {
            ChannelKind::Shell => "shell",
            ChannelKind::Exec => "exec",
            ChannelKind::Subsystem => "subsystem",
        };
        let header = Header {
            width: self.size.0,
            height: self.size.1,
            timestamp: now_ms() / 1000,
            env: [("TERM".to_string(), self.term.clone())]
                .into_iter()
                .collect(),
            title: Some(format!("{}@{} as {} ({kind_name})", s.user, target, login)),
            portcullis: Some(SessionMeta {
                session: s.id.clone(),
                user: s.user.clone(),
                target,
                login,
                channel: self.channel,
                kind,
                command,
            }),
        };
        let dir = self.app.config.recordings_dir.clone();
        let writer = RecordingWriter::create(&dir, &self.name, &header, &self.app.audit_key)
            .map_err(|e| format!("cannot create recording {}: {e}", self.name))?;
        self.writer = Some(writer);
        let row = RecordingRow::open(&self.name, &s.id, self.channel, kind_name, now_ms());
        self.app
            .store
            .recording_started(&row)
            .await
            .map_err(|e| format!("recording row not written: {e}"))?;
        if !self.content {
            let time = self.t(Instant::now());
            self.marker(
                time,
                "contents not recorded: this target records metadata only",
            )?;
        }
        Ok(())
    }

    fn write(
        &mut self,
        f: impl FnOnce(&mut RecordingWriter) -> Result<(), crate::recording::RecordingError>,
    ) -> Result<(), String> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        self.events_since_checkpoint = true;
        f(w).map_err(|e| format!("recording {} write failed: {e}", self.name))
    }

    fn binary_output(&mut self, time: f64, chunk: &[u8]) -> Result<(), String> {
        if self.binary.is_none() {
            self.marker(time, BinaryStream::STARTED)?;
        }
        self.binary.get_or_insert_default().push(chunk);
        Ok(())
    }

    /// Terminal contents: written unless the target records metadata only.
    fn content(
        &mut self,
        f: impl FnOnce(&mut RecordingWriter) -> Result<(), crate::recording::RecordingError>,
    ) -> Result<(), String> {
        if !self.content {
            return Ok(());
        }
        self.write(f)
    }

    fn marker(&mut self, time: f64, text: &str) -> Result<(), String> {
        self.write(|w| w.marker(time, text))
    }

    async fn checkpoint(&mut self) -> Result<(), String> {
        if !self.events_since_checkpoint {
            return Ok(());
        }
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        self.events_since_checkpoint = false;
        let cp = tokio::task::block_in_place(|| w.checkpoint(now_ms()))
            .map_err(|e| format!("recording {} checkpoint failed: {e}", self.name))?;
        self.app
            .store
            .recording_checkpoint(
                &self.name,
                cp.events as i64,
                cp.cast_bytes as i64,
                &cp.sha256,
                now_ms(),
                "open",
            )
            .await
            .map_err(|e| format!("recording checkpoint not stored: {e}"))
    }

    async fn finish(&mut self) -> Result<(), String> {
        // Input still held by the masker (a line never ended) is released, masked.
        let end = self.t(Instant::now());
        for (at, text) in self.masker.flush() {
            self.content(|w| w.event(at.min(end), EventKind::Input, text.as_bytes()))?;
        }
        if let Some(binary) = self.binary.take() {
            self.marker(end, &binary.summary())?;
        }
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        let info = TrailerInfo {
            bytes_up: self
                .session
                .counters
                .up
                .load(std::sync::atomic::Ordering::Relaxed),
            bytes_down: self
                .session
                .counters
                .down
                .load(std::sync::atomic::Ordering::Relaxed),
            end_reason: self
                .session
                .end_reason()
                .unwrap_or_else(|| "channel closed".into()),
            ended_at_ms: now_ms(),
        };
        seal(&self.app.store, &self.name, w, &info).await?;
        upkeep::index(
            self.app.clone(),
            self.name.clone(),
            self.app
                .config
                .recordings_dir
                .join(format!("{}.cast", self.name)),
        );
        Ok(())
    }

    async fn failed(&mut self, e: &str) {
        tracing::error!(session = %self.session.id, recording = %self.name, error = %e, "recording failed; ending the session");
        let _ = self
            .app
            .store
            .recording_checkpoint(&self.name, 0, 0, "", now_ms(), "failed")
            .await;
        let event = AuditEvent::RecordingFailed {
            session: self.session.id.clone(),
            recording: self.name.clone(),
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
