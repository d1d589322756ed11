//! What the forward events carry: who forwarded what, plain data that
//! `forward` and `gateway` fill in (audit imports no feature module).

use serde_json::json;

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
    /// `ssh -R`: the listener itself on the target (its connections are
    /// `Remote`); audited so every process finds it by its id.
    RemoteListener,
}

impl ForwardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardKind::Local => "local",
            ForwardKind::Stdio => "stdio",
            ForwardKind::Remote => "remote",
            ForwardKind::Agent => "agent",
            ForwardKind::RemoteListener => "remote-listener",
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
