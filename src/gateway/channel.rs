//! Adapts a russh server channel to the bridge's frame interface, applying
//! the policy gate to every request on the way in.

use crate::bridge::{Frame, FrameSink, FrameSource, Request, SinkClosed};
use crate::policy::{Permissions, SessionRequest};
use crate::upstream::{sig_from_name, sig_name};
use russh::server::{Handle, Msg};
use russh::{ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

pub struct ClientSource {
    rx: ChannelReadHalf,
    perms: Permissions,
}

pub struct ClientSink {
    tx: ChannelWriteHalf<Msg>,
    handle: Handle,
    id: ChannelId,
}

pub fn split(
    ch: russh::Channel<Msg>,
    handle: Handle,
    perms: Permissions,
) -> (ClientSource, ClientSink) {
    let id = ch.id();
    let (rx, tx) = ch.split();
    (ClientSource { rx, perms }, ClientSink { tx, handle, id })
}

impl ClientSource {
    /// The request as the bridge carries it, if the gate lets it through.
    /// The reply to the client was given from the same gate in the handler.
    fn gate(&self, msg: ChannelMsg) -> Option<Frame> {
        let p = &self.perms;
        let req = match msg {
            ChannelMsg::Data { data } => return Some(Frame::Data(data)),
            ChannelMsg::ExtendedData { data, ext: 1 } => return Some(Frame::Stderr(data)),
            ChannelMsg::Eof => return Some(Frame::Eof),
            ChannelMsg::Close => return Some(Frame::Close),
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
                ..
            } if p.allows_request(&SessionRequest::Pty) => Request::Pty {
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
            ChannelMsg::RequestShell { .. } if p.allows_request(&SessionRequest::Shell) => {
                Request::Shell
            }
            ChannelMsg::Exec { command, .. }
                if p.allows_request(&SessionRequest::Exec(&command)) =>
            {
                Request::Exec(command)
            }
            ChannelMsg::RequestSubsystem { name, .. }
                if p.allows_request(&SessionRequest::Subsystem(&name)) =>
            {
                Request::Subsystem(name)
            }
            ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            } if p.allows_request(&SessionRequest::Env(&variable_name)) => Request::Env {
                name: variable_name,
                value: variable_value,
            },
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => Request::WindowChange {
                cols: col_width,
                rows: row_height,
                pix_width,
                pix_height,
            },
            ChannelMsg::Signal { signal } => Request::Signal(sig_name(&signal)),
            ChannelMsg::AgentForward { .. } if p.allows_request(&SessionRequest::AgentForward) => {
                Request::AgentForward
            }
            _ => return None,
        };
        Some(Frame::Request(req))
    }
}

impl FrameSource for ClientSource {
    async fn recv(&mut self) -> Option<Frame> {
        loop {
            let msg = self.rx.wait().await?;
            if let Some(f) = self.gate(msg) {
                return Some(f);
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
