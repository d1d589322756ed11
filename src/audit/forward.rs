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

    /// The row parts of a forward event: by its user, from its source, to
    /// its target.
    pub(super) fn row(
        &self,
        kind: &'static str,
        detail: serde_json::Value,
    ) -> (&'static str, String, String, String, serde_json::Value) {
        (
            kind,
            self.user.clone(),
            self.source.clone(),
            self.target.clone(),
            detail,
        )
    }

    /// `forward.closed`: its meta plus how long, how much and why it ended.
    pub(super) fn closed_row(
        &self,
        duration_ms: u64,
        bytes_up: u64,
        bytes_down: u64,
        reason: &str,
    ) -> (&'static str, String, String, String, serde_json::Value) {
        let mut d = self.to_json();
        d["duration_ms"] = json!(duration_ms);
        d["bytes_up"] = json!(bytes_up);
        d["bytes_down"] = json!(bytes_down);
        d["reason"] = json!(reason);
        self.row("forward.closed", d)
    }
}
