//! TCP forwarding under policy (issue 7): which target a request names
//! ([`matching`], pure), whether the user may reach it now ([`resolve`]),
//! the TCP side of a forward as bridge frames ([`tcp`]), the client's bytes
//! written to it by the connection's own task ([`upload`]), the audit of
//! each forward ([`trail`]) and the relay ([`relay`]); the optional content
//! capture is a recorder (`recorder::capture`). The russh side is
//! `gateway::forward`, `gateway::tcp_forward` and `gateway::remote`; the
//! lifecycle (registry, kill, grant watch) is `session::live`.
//!
//! The bastion never dials the host string a client sent: it dials the
//! host:port configured for the matched target.

pub mod matching;
pub mod relay;
pub mod resolve;
pub mod tcp;
pub mod trail;
pub mod upload;

use crate::names::escape_for_log;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// The data the forward audit events carry, kept beside them.
pub use crate::audit::{ForwardKind, ForwardMeta};

impl ForwardKind {
    /// From a direct-tcpip's originator. OpenSSH's `-W` channel has no
    /// socket and sends the fixed originator 127.0.0.1:65535 (best effort:
    /// a `-L` client on that very port is reported as stdio).
    pub fn of_direct(originator: &str, port: u32) -> ForwardKind {
        if originator == "stdio-forward" || (originator == "127.0.0.1" && port == 65535) {
            ForwardKind::Stdio
        } else {
            ForwardKind::Local
        }
    }
}

/// `host:port` as text safe for logs and messages.
pub fn show(host: &str, port: u32) -> String {
    let host = escape_for_log(host);
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
