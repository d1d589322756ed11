//! Adapts a russh server channel to the bridge's frame interface, applying
//! the policy gate to every request on the way in.

use crate::bridge::{Frame, FrameSink, FrameSource, Request, SinkClosed};
use crate::upstream::{sig_from_name, sig_name};
use russh::server::{ChannelOpenHandle, Handle, Msg};
use russh::{ChannelId, ChannelMsg, ChannelOpenFailure, ChannelReadHalf, ChannelWriteHalf};

/// A request that needs the gate's yes before it may reach the target, as
/// both russh's channel queue and the handler's callback see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    Pty,
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
    Env(String),
    Agent,
}

/// The handler's decision on one request, in the order requests arrived.
#[derive(Debug)]
pub struct Verdict {
    pub asked: Asked,
    pub allowed: bool,
}

/// How many decided requests may wait for a channel's bridge to take them.
/// Past this the handler waits (the client is flooding requests).
pub const VERDICTS: usize = 32;

/// Boxed (`boxed_queue`): unboxed, every session channel would hold a
/// block of 32 verdicts (~1.3 KiB) for its life.
pub type VerdictTx = crate::boxed_queue::Sender<Verdict>;
pub type VerdictRx = crate::boxed_queue::Receiver<Verdict>;

pub fn verdicts() -> (VerdictTx, VerdictRx) {
    crate::boxed_queue::bounded(VERDICTS)
}

/// russh puts a request in the channel's queue *before* it calls the
/// handler's callback, so the bridge would forward a request before the
/// handler had decided it. The handler is therefore the one place that
/// decides (permissions held now, locks, command rules) and answers the
/// client; this source forwards a request only after the handler's verdict
/// for exactly that request said yes. Without a verdict queue (forwards)
/// every request is refused.
pub struct ClientSource {
    rx: ChannelReadHalf,
    verdicts: Option<VerdictRx>,
}

pub struct ClientSink {
    tx: ChannelWriteHalf<Msg>,
    handle: Handle,
    id: ChannelId,
}

pub fn split(
    ch: russh::Channel<Msg>,
    handle: Handle,
    verdicts: Option<VerdictRx>,
) -> (ClientSource, ClientSink) {
    let id = ch.id();
    let (rx, tx) = ch.split();
    (ClientSource { rx, verdicts }, ClientSink { tx, handle, id })
}

/// What the bridge does with one message from the client.
enum Gated {
    Frame(Frame),
    /// Forwarded only if the handler's verdict on `Asked` said yes.
    Ask(Asked, Request),
    Drop,
}

impl ClientSource {
    fn classify(msg: ChannelMsg) -> Gated {
        let (asked, req) = match msg {
            ChannelMsg::Data { data } => return Gated::Frame(Frame::Data(data)),
            ChannelMsg::ExtendedData { data, ext: 1 } => return Gated::Frame(Frame::Stderr(data)),
            ChannelMsg::Eof => return Gated::Frame(Frame::Eof),
            ChannelMsg::Close => return Gated::Frame(Frame::Close),
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
                ..
            } => (
                Asked::Pty,
                Request::Pty {
                    term,
                    cols: col_width,
                    rows: row_height,
                    pix_width,
                    pix_height,
                    modes: terminal_modes
                        .into_iter()
                        .map(|(m, v)| (m as u8, v))
                        .collect(),
                },
            ),
            ChannelMsg::RequestShell { .. } => (Asked::Shell, Request::Shell),
            ChannelMsg::Exec { command, .. } => {
                (Asked::Exec(command.clone()), Request::Exec(command))
            }
            ChannelMsg::RequestSubsystem { name, .. } => {
                (Asked::Subsystem(name.clone()), Request::Subsystem(name))
            }
            ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            } => (
                Asked::Env(variable_name.clone()),
                Request::Env {
                    name: variable_name,
                    value: variable_value,
                },
            ),
            ChannelMsg::AgentForward { .. } => (Asked::Agent, Request::AgentForward),
            // Carry no authority of their own: they only affect what runs.
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                return Gated::Frame(Frame::Request(Request::WindowChange {
                    cols: col_width,
                    rows: row_height,
                    pix_width,
                    pix_height,
                }));
            }
            ChannelMsg::Signal { signal } => {
                return Gated::Frame(Frame::Request(Request::Signal(sig_name(&signal))));
            }
            _ => return Gated::Drop,
        };
        Gated::Ask(asked, req)
    }

    /// Waits for the handler's verdict on `asked`; `None` when the channel
    /// is over. A verdict for another request than this one means the two
    /// queues disagree: refuse (fail closed).
    async fn verdict(&mut self, asked: &Asked) -> Option<bool> {
        let Some(v) = self.verdicts.as_mut() else {
            return Some(false);
        };
        let verdict = v.recv().await?;
        if verdict.asked != *asked {
            tracing::error!(expected = ?asked, got = ?verdict.asked, "gate verdicts out of step; refusing");
            return Some(false);
        }
        Some(verdict.allowed)
    }
}

impl FrameSource for ClientSource {
    async fn recv(&mut self) -> Option<Frame> {
        loop {
            let msg = self.rx.wait().await?;
            match Self::classify(msg) {
                Gated::Frame(f) => return Some(f),
                Gated::Ask(asked, req) => {
                    if self.verdict(&asked).await? {
                        return Some(Frame::Request(req));
                    }
                }
                Gated::Drop => {}
            }
        }
    }
}

impl FrameSink for ClientSink {
    async fn send(&mut self, frame: Frame) -> Result<(), SinkClosed> {
        let tx = &self.tx;
        let r = match frame {
            Frame::Data(b) => tx.data_bytes(b).await,
            Frame::Stderr(b) => tx.extended_data_bytes(1, b).await,
            Frame::Eof => tx.eof().await,
            Frame::Close => tx.close().await,
            Frame::ExitStatus(code) => tx.exit_status(code).await,
            Frame::ExitSignal {
                name,
                core_dumped,
                message,
            } => {
                return self
                    .handle
                    .exit_signal_request(
                        self.id,
                        sig_from_name(&name),
                        core_dumped,
                        message,
                        "en".into(),
                    )
                    .await
                    .map_err(|_| SinkClosed);
            }
            Frame::RequestFailed => {
                let msg = "portcullis: the target refused the request\r\n";
                let _ = tx.extended_data_bytes(1, msg.as_bytes().to_vec()).await;
                let _ = tx.exit_status(1).await;
                let _ = tx.eof().await;
                let _ = tx.close().await;
                // Ends this direction; the bridge then closes the upstream side.
                return Err(SinkClosed);
            }
            Frame::Request(_) => Ok(()),
        };
        r.map_err(|_| SinkClosed)
    }
}

/// Refuses a channel open with `reason`, which OpenSSH prints as is.
pub(super) async fn reject(reply: ChannelOpenHandle, reason: String) -> Result<(), russh::Error> {
    reply
        .reject(ChannelOpenFailure::Other { code: 1, reason })
        .await;
    Ok(())
}
