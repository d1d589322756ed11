//! TCP forwarding under policy (issue 7): which target a request names
//! ([`matching`], pure), whether the user may reach it now ([`resolve`]),
//! the TCP side of a forward as bridge frames ([`tcp`]), the client's bytes
//! written to it by the connection's own task ([`upload`]) and the optional
//! content capture ([`capture`]). The russh side is `gateway::forward`.
//!
//! The bastion never dials the host string a client sent: it dials the
//! host:port configured for the matched target.

pub mod capture;
pub mod matching;
pub mod resolve;
pub mod tcp;
pub mod upload;

use crate::names::escape_for_log;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("capture: {0}")]
    Capture(String),
}

/// How the client asked for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardKind {
    /// `ssh -L` or `ssh -D` (SOCKS): the same direct-tcpip on the wire.
    Local,
    /// `ssh -W` (OpenSSH names the originator `stdio-forward`).
    Stdio,
    /// `ssh -R`: a connection accepted by the target, relayed to the client.
    Remote,
    /// `ssh -A`: the target's agent requests relayed to the client's agent.
    Agent,
}

impl ForwardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardKind::Local => "local",
            ForwardKind::Stdio => "stdio",
            ForwardKind::Remote => "remote",
            ForwardKind::Agent => "agent",
        }
    }

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

/// Who forwarded what, for the audit trail and the capture header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardMeta {
    pub id: String,
    pub session: String,
    pub user: String,
    /// The client's address (the SSH connection's source).
    pub source: String,
    pub kind: ForwardKind,
    /// The matched target, or the SSH target whose connection carries it.
    pub target: String,
    /// What the bastion (or the target, for `via`) connects to.
    pub destination: String,
    /// What the client asked for, escaped (it is untrusted text).
    pub requested: String,
    /// The SSH target the connection goes through (`alice+web01 -L/-R`).
    pub via: Option<String>,
}

impl ForwardMeta {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "id": self.id,
            "session": self.session,
            "kind": self.kind.as_str(),
            "target": self.target,
            "destination": self.destination,
            "requested": self.requested,
            "via": self.via,
        })
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
