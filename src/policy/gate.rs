//! The one gate every channel and channel request passes.
//!
//! Both the reply to the client and the decision to forward upstream come
//! from these functions, so what we answer and what we do cannot disagree.

/// Channel types a client may ask to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    Session,
    DirectTcpip,
    DirectStreamLocal,
    X11,
    Agent,
    ForwardedTcpip,
}

/// Requests on a session channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRequest<'a> {
    Pty,
    Shell,
    Exec,
    Subsystem(&'a str),
    Env(&'a str),
    WindowChange,
    Signal,
    X11,
    AgentForward,
}

/// What a session may do; comes from the grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub pty: bool,
    pub shell: bool,
    pub exec: bool,
    pub sftp: bool,
    pub port_forwarding: bool,
    pub agent_forwarding: bool,
    pub x11_forwarding: bool,
}

impl Permissions {
    /// Interactive and file-transfer use; every forwarding kind off until a
    /// grant turns it on (forwarding is what bypasses recording elsewhere).
    pub fn session_default() -> Permissions {
        Permissions {
            pty: true,
            shell: true,
            exec: true,
            sftp: true,
            port_forwarding: false,
            agent_forwarding: false,
            x11_forwarding: false,
        }
    }

    pub fn allows_channel(&self, kind: &ChannelKind) -> bool {
        match kind {
            ChannelKind::Session => self.pty || self.shell || self.exec || self.sftp,
            ChannelKind::DirectTcpip | ChannelKind::ForwardedTcpip => self.port_forwarding,
            ChannelKind::DirectStreamLocal => false,
            ChannelKind::X11 => self.x11_forwarding,
            ChannelKind::Agent => self.agent_forwarding,
        }
    }

    pub fn allows_request(&self, req: &SessionRequest<'_>) -> bool {
        match req {
            SessionRequest::Pty => self.pty,
            SessionRequest::Shell => self.shell,
            SessionRequest::Exec => self.exec,
            SessionRequest::Subsystem(name) => *name == "sftp" && self.sftp,
            SessionRequest::Env(name) => env_allowed(name),
            SessionRequest::WindowChange | SessionRequest::Signal => true,
            SessionRequest::X11 => self.x11_forwarding,
            SessionRequest::AgentForward => self.agent_forwarding,
        }
    }
}

/// Environment variables passed to the target: locale and time zone only.
/// Anything else (LD_PRELOAD, BASH_ENV, PATH...) could change what runs there.
pub fn env_allowed(name: &str) -> bool {
    matches!(name, "LANG" | "LANGUAGE" | "TZ" | "COLORTERM")
        || (name.starts_with("LC_")
            && (4..=32).contains(&name.len())
            && name[3..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_allowlist() {
        for ok in ["LANG", "LC_ALL", "LC_CTYPE", "TZ", "LANGUAGE"] {
            assert!(env_allowed(ok), "{ok}");
        }
        for bad in [
            "LD_PRELOAD",
            "PATH",
            "BASH_ENV",
            "LC_",
            "LC_all",
            "HOME",
            "SSH_AUTH_SOCK",
        ] {
            assert!(!env_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn default_session_refuses_every_forwarding() {
        let p = Permissions::session_default();
        assert!(p.allows_channel(&ChannelKind::Session));
        for k in [
            ChannelKind::DirectTcpip,
            ChannelKind::ForwardedTcpip,
            ChannelKind::X11,
            ChannelKind::Agent,
            ChannelKind::DirectStreamLocal,
        ] {
            assert!(!p.allows_channel(&k), "{k:?}");
        }
        for r in [
            SessionRequest::X11,
            SessionRequest::AgentForward,
            SessionRequest::Subsystem("evil"),
        ] {
            assert!(!p.allows_request(&r), "{r:?}");
        }
        assert!(p.allows_request(&SessionRequest::Subsystem("sftp")));
    }
}
