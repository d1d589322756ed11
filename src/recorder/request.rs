//! Session-channel requests. A shell, exec or subsystem request creates the
//! recording: the header and the chain start are durable (file and
//! directory fsynced by `RecordingWriter::create`) and the recordings row is
//! stored before the bridge gets its answer and forwards the request, so
//! the target never acts unrecorded.
//!
//! Header fields the client chooses (TERM, the command, the subsystem name)
//! are capped there and kept whole in a marker: nothing a client sends can
//! make the header unwritable after the command went out. A capped value's
//! marker is made durable (a checkpoint) before the answer too.

use super::piped::Piped;
use super::terminal::Terminal;
use super::transfer::TransferLog;
use super::{Ctx, Mode, Out, RecorderError};
use crate::bridge::Request;
use crate::castfile::binary::Segmenter;
use crate::castfile::sftp::SftpLog;
use crate::castfile::{ChannelKind, Header, RecordingWriter, SessionMeta};
use crate::clock::now_ms;
use crate::policy::{ExecKind, classify_exec};
use crate::store::RecordingRow;

/// Longest TERM kept in the header.
pub(crate) const TERM_CAP: usize = 64;
/// Longest command or subsystem name kept in the header.
pub(crate) const COMMAND_CAP: usize = 1024;

/// The request that starts what runs on the channel.
enum Asked {
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
}

impl Asked {
    fn kind(&self) -> ChannelKind {
        match self {
            Asked::Shell => ChannelKind::Shell,
            Asked::Exec(_) => ChannelKind::Exec,
            Asked::Subsystem(_) => ChannelKind::Subsystem,
        }
    }

    /// The command or subsystem name as recorded (whole).
    fn command(&self) -> Option<String> {
        match self {
            Asked::Shell => None,
            Asked::Exec(cmd) => Some(shown(cmd)),
            Asked::Subsystem(name) => Some(name.clone()),
        }
    }

    fn marker(&self) -> Option<String> {
        match self {
            Asked::Shell => None,
            Asked::Exec(cmd) => Some(format!("exec: {}", shown(cmd))),
            Asked::Subsystem(name) if name == "sftp" => Some(format!(
                "subsystem: {name} (file transfer; contents not recorded)"
            )),
            Asked::Subsystem(name) => Some(format!("subsystem: {name}")),
        }
    }
}

fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Shell => "shell",
        ChannelKind::Exec => "exec",
        ChannelKind::Subsystem => "subsystem",
    }
}

impl Ctx {
    pub(super) async fn request(&mut self, time: f64, req: Request) -> Result<(), RecorderError> {
        match req {
            Request::Pty {
                cols, rows, term, ..
            } => {
                self.pty = true;
                self.size = (cols, rows);
                self.term = term;
                self.rec.resize(time, cols, rows)
            }
            Request::WindowChange { cols, rows, .. } => {
                self.size = (cols, rows);
                self.rec.resize(time, cols, rows)
            }
            Request::Shell => self.session_request(time, Asked::Shell).await,
            Request::Exec(cmd) => self.session_request(time, Asked::Exec(cmd)).await,
            Request::Subsystem(name) => self.session_request(time, Asked::Subsystem(name)).await,
            Request::Signal(sig) => self.rec.marker(time, &format!("signal {sig}")),
            Request::AgentForward => self
                .rec
                .marker(time, "agent forwarding on (allowed by the grant)"),
            Request::Env { .. } => Ok(()),
        }
    }

    async fn session_request(&mut self, time: f64, asked: Asked) -> Result<(), RecorderError> {
        if self.rec.is_open() {
            // SSH allows one per channel: the target refuses this one, and
            // how the channel is recorded does not change.
            let what = asked.marker().unwrap_or_else(|| "shell".into());
            return self.rec.marker(
                time,
                &format!("{what} (a second session request on this channel)"),
            );
        }
        let (target, _) = self.session.target_and_login().unwrap_or_default();
        let store = &self.app.store;
        // Unreadable setting: record everything (fail closed).
        let content = store.record_content(&target).await.unwrap_or(true);
        let capped = self.create(&asked, content).await?;
        if let Some(m) = asked.marker() {
            self.rec.marker(time, &m)?;
        }
        if self.term.len() > TERM_CAP {
            let m = format!("TERM (cut in the header): {}", self.term);
            self.rec.marker(time, &m)?;
        }
        let mode = self.mode_for(&asked, &target).await?;
        match &mode {
            Mode::Piped(p) => p.opening(time, &mut self.rec)?,
            Mode::Transfer(x) => x.opening(time, &mut self.rec)?,
            _ => {}
        }
        if capped {
            // The whole value is only in a marker: durable before the answer.
            self.rec.checkpoint(&self.app.store).await?;
        }
        if let Mode::Early(early) = std::mem::replace(&mut self.mode, mode) {
            for h in early.frames {
                let typed = self.data(h.at, h.dir, h.data, h.stderr)?;
                self.typed(typed).await;
            }
        }
        Ok(())
    }

    /// Creates the files (header and chain start durable) and the row;
    /// true when a client-chosen header field had to be capped.
    async fn create(&mut self, asked: &Asked, content: bool) -> Result<bool, RecorderError> {
        let s = &self.session;
        let (target, login) = s.target_and_login().unwrap_or_default();
        let kind = asked.kind();
        let (command, command_cut) = cap(asked.command(), COMMAND_CAP);
        let (term, term_cut) = cap(Some(self.term.clone()), TERM_CAP);
        let header = Header {
            width: self.size.0,
            height: self.size.1,
            timestamp: now_ms() / 1000,
            env: [("TERM".to_string(), term.unwrap_or_default())]
                .into_iter()
                .collect(),
            title: Some(format!(
                "{}@{} as {} ({})",
                s.user,
                target,
                login,
                kind_name(kind)
            )),
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
        let (name, key) = (self.rec.name.clone(), self.app.audit_key.clone());
        let writer = tokio::task::spawn_blocking(move || {
            RecordingWriter::create(&dir, &name, &header, &key)
        })
        .await
        .map_err(|e| RecorderError::Task(e.to_string()))?
        .map_err(|source| RecorderError::Create {
            name: self.rec.name.clone(),
            source,
        })?;
        self.rec.opened(writer, content);
        let row = RecordingRow::open(
            &self.rec.name,
            &s.id,
            self.channel,
            kind_name(kind),
            now_ms(),
        );
        self.app
            .store
            .recording_started(&row)
            .await
            .map_err(|source| RecorderError::Store {
                what: "recording row",
                source,
            })?;
        if !content {
            self.rec.marker(
                0.0,
                "contents not recorded: this target records metadata only",
            )?;
        }
        Ok(command_cut || term_cut)
    }

    /// How the channel is recorded. A transfer only when the gate's own
    /// classifier says so: never from a heuristic on the client's string.
    async fn mode_for(&self, asked: &Asked, target: &str) -> Result<Mode, RecorderError> {
        let rules = !self.app.config.lockdown.rules.is_empty();
        let files = self
            .app
            .config
            .recordings_dir
            .join(format!("{}.files", self.rec.name));
        Ok(match asked {
            Asked::Exec(cmd) => match classify_exec(cmd) {
                ExecKind::Transfer(t) => {
                    let keep = self.keeps_files(target).await?;
                    let log = TransferLog::new(t, keep.then_some(files.as_path()))?;
                    Mode::Transfer(Box::new(log))
                }
                ExecKind::Command if self.pty => Mode::Terminal(Terminal::new(rules)),
                ExecKind::Command => Mode::Piped(Box::new(Piped::new())),
            },
            Asked::Shell if self.pty => Mode::Terminal(Terminal::new(rules)),
            Asked::Shell => Mode::Piped(Box::new(Piped::new())),
            Asked::Subsystem(name) if name == "sftp" => {
                let log = match self.keeps_files(target).await? {
                    true => SftpLog::with_capture(files),
                    false => SftpLog::default(),
                };
                Mode::Sftp(Box::new(log), Segmenter::new("stderr"))
            }
            // The gate allows sftp only; anything else would be recorded whole.
            Asked::Subsystem(_) => Mode::Piped(Box::new(Piped::new())),
        })
    }

    async fn keeps_files(&self, target: &str) -> Result<bool, RecorderError> {
        self.app
            .store
            .capture_files(target)
            .await
            .map_err(|source| RecorderError::Store {
                what: "capture setting",
                source,
            })
    }
}

/// Command bytes as text: invalid UTF-8 bytes written `\xNN`, not lost.
fn shown(cmd: &[u8]) -> String {
    let mut s = String::with_capacity(cmd.len());
    for chunk in cmd.utf8_chunks() {
        s.push_str(chunk.valid());
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// `value` cut to `max` bytes (on a character boundary) for the header,
/// saying so; and whether it was cut.
fn cap(value: Option<String>, max: usize) -> (Option<String>, bool) {
    let Some(v) = value else {
        return (None, false);
    };
    if v.len() <= max {
        return (Some(v), false);
    }
    let mut cut = max;
    while !v.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = v.get(..cut).unwrap_or_default();
    let capped = format!("{head}… [{} bytes: whole in a marker]", v.len());
    (Some(capped), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_chosen_header_fields_are_capped_on_a_character_boundary() {
        assert_eq!(
            cap(Some("xterm".into()), TERM_CAP),
            (Some("xterm".into()), false)
        );
        let long = format!("a{}", "é".repeat(600));
        let (c, cut) = cap(Some(long.clone()), COMMAND_CAP);
        let c = c.unwrap();
        assert!(cut);
        assert!(c.len() < COMMAND_CAP + 64, "{}", c.len());
        assert!(c.ends_with(&format!("… [{} bytes: whole in a marker]", long.len())));
        assert!(long.starts_with(c.split('…').next().unwrap()));
    }

    #[test]
    fn a_huge_command_still_makes_a_header_line() {
        // The header line is bounded by the reader's MAX_LINE; a client's
        // command used to go into it whole.
        let cmd = "x".repeat(crate::castfile::MAX_LINE + 1);
        let (c, _) = cap(Some(cmd), COMMAND_CAP);
        let header = Header {
            width: 80,
            height: 24,
            timestamp: 0,
            env: Default::default(),
            title: None,
            portcullis: Some(SessionMeta {
                session: "s".into(),
                user: "u".into(),
                target: "t".into(),
                login: "l".into(),
                channel: 0,
                kind: ChannelKind::Exec,
                command: c,
            }),
        };
        let dir = tempfile::tempdir().unwrap();
        let key = crate::castfile::SigningKey::from_bytes(&[7; 32]);
        RecordingWriter::create(dir.path(), "r", &header, &key).expect("header written");
    }

    #[test]
    fn command_bytes_that_are_not_utf8_are_kept_visible() {
        assert_eq!(shown(b"ls \xff\xfe -l"), "ls \\xff\\xfe -l");
        assert_eq!(shown("café".as_bytes()), "café");
    }
}
