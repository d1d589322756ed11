//! Adapts a russh client channel to the bridge's frame interface.

use crate::bridge::{Frame, FrameSink, FrameSource, Request, SinkClosed};
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Pty, Sig};

pub struct UpstreamSource(ChannelReadHalf);
pub struct UpstreamSink(ChannelWriteHalf<Msg>);

pub(super) fn split(ch: russh::Channel<Msg>) -> (UpstreamSource, UpstreamSink) {
    let (r, w) = ch.split();
    (UpstreamSource(r), UpstreamSink(w))
}

impl FrameSource for UpstreamSource {
    async fn recv(&mut self) -> Option<Frame> {
        loop {
            let frame = match self.0.wait().await? {
                ChannelMsg::Data { data } => Frame::Data(data),
                ChannelMsg::ExtendedData { data, ext: 1 } => Frame::Stderr(data),
                ChannelMsg::Eof => Frame::Eof,
                ChannelMsg::Close => Frame::Close,
                ChannelMsg::ExitStatus { exit_status } => Frame::ExitStatus(exit_status),
                ChannelMsg::ExitSignal {
                    signal_name,
                    core_dumped,
                    error_message,
                    ..
                } => Frame::ExitSignal {
                    name: sig_name(&signal_name),
                    core_dumped,
                    message: error_message,
                },
                // Only shell/exec/subsystem are sent wanting a reply.
                ChannelMsg::Failure => Frame::RequestFailed,
                _ => continue,
            };
            return Some(frame);
        }
    }
}

impl FrameSink for UpstreamSink {
    async fn send(&mut self, frame: Frame) -> Result<(), SinkClosed> {
        let w = &self.0;
        let r = match frame {
            Frame::Data(b) => w.data_bytes(b).await,
            Frame::Stderr(b) => w.extended_data_bytes(1, b).await,
            Frame::Eof => w.eof().await,
            Frame::Close => w.close().await,
            Frame::Request(req) => request(w, req).await,
            // Exit reports and refusals only travel downstream.
            Frame::ExitStatus(_) | Frame::ExitSignal { .. } | Frame::RequestFailed => Ok(()),
        };
        r.map_err(|_| SinkClosed)
    }
}

async fn request(w: &ChannelWriteHalf<Msg>, req: Request) -> Result<(), russh::Error> {
    match req {
        Request::Pty {
            term,
            cols,
            rows,
            pix_width,
            pix_height,
            modes,
        } => {
            let modes: Vec<(Pty, u32)> = modes
                .into_iter()
                .filter_map(|(op, v)| Pty::from_u8(op).map(|p| (p, v)))
                .collect();
            w.request_pty(false, &term, cols, rows, pix_width, pix_height, &modes)
                .await
        }
        Request::Shell => w.request_shell(true).await,
        Request::Exec(cmd) => w.exec(true, cmd).await,
        Request::Subsystem(name) => w.request_subsystem(true, name).await,
        Request::Env { name, value } => w.set_env(false, name, value).await,
        Request::WindowChange {
            cols,
            rows,
            pix_width,
            pix_height,
        } => w.window_change(cols, rows, pix_width, pix_height).await,
        Request::Signal(name) => w.signal(sig_from_name(&name)).await,
        Request::AgentForward => w.agent_forward(false).await,
    }
}

pub fn sig_name(s: &Sig) -> String {
    match s {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(c) => c.as_str(),
    }
    .to_string()
}

pub fn sig_from_name(name: &str) -> Sig {
    match name {
        "ABRT" => Sig::ABRT,
        "ALRM" => Sig::ALRM,
        "FPE" => Sig::FPE,
        "HUP" => Sig::HUP,
        "ILL" => Sig::ILL,
        "INT" => Sig::INT,
        "KILL" => Sig::KILL,
        "PIPE" => Sig::PIPE,
        "QUIT" => Sig::QUIT,
        "SEGV" => Sig::SEGV,
        "TERM" => Sig::TERM,
        "USR1" => Sig::USR1,
        other => Sig::Custom(other.to_string()),
    }
}
