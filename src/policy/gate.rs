//! The one gate every channel and channel request passes.
//!
//! Both the reply to the client and the decision to forward upstream come
//! from these functions, so what we answer and what we do cannot disagree.

use super::exec::ExecRules;

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
    /// The command's raw bytes, as the target's shell will see them.
    Exec(&'a [u8]),
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
    /// sftp, and scp (which runs over sftp, or as `scp -t/-f` with -O).
    pub file_transfer: bool,
    pub local_forward: bool,
    pub remote_forward: bool,
    pub agent_forwarding: bool,
    pub x11_forwarding: bool,
    pub exec_rules: ExecRules,
}

/// Names used in the CLI and the store, in display order.
pub const PERMISSION_NAMES: [&str; 8] = [
    "pty",
    "shell",
    "exec",
    "sftp",
    "local-forward",
    "remote-forward",
    "agent",
    "x11",
];

impl Permissions {
    /// Interactive and file-transfer use; every forwarding kind off until a
    /// grant turns it on (forwarding is what bypasses recording elsewhere).
    pub fn session_default() -> Permissions {
        Permissions {
            pty: true,
            shell: true,
            exec: true,
            file_transfer: true,
            local_forward: false,
            remote_forward: false,
            agent_forwarding: false,
            x11_forwarding: false,
            exec_rules: ExecRules::default(),
        }
    }

    pub fn none() -> Permissions {
        Permissions {
            pty: false,
            shell: false,
            exec: false,
            file_transfer: false,
            local_forward: false,
            remote_forward: false,
            agent_forwarding: false,
            x11_forwarding: false,
            exec_rules: ExecRules::default(),
        }
    }

    /// Parses `shell,exec,sftp,pty` (any of PERMISSION_NAMES); unknown names are errors.
    pub fn parse(list: &str) -> Result<Permissions, String> {
        let mut p = Permissions::none();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let flag = match name {
                "pty" => &mut p.pty,
                "shell" => &mut p.shell,
                "exec" => &mut p.exec,
                "sftp" | "scp" => &mut p.file_transfer,
                "local-forward" => &mut p.local_forward,
                "remote-forward" => &mut p.remote_forward,
                "agent" => &mut p.agent_forwarding,
                "x11" => &mut p.x11_forwarding,
                other => {
                    return Err(format!(
                        "unknown permission {other:?} (known: {})",
                        PERMISSION_NAMES.join(", ")
                    ));
                }
            };
            *flag = true;
        }
        Ok(p)
    }

    pub fn names(&self) -> String {
        let flags = [
            self.pty,
            self.shell,
            self.exec,
            self.file_transfer,
            self.local_forward,
            self.remote_forward,
            self.agent_forwarding,
            self.x11_forwarding,
        ];
        PERMISSION_NAMES
            .iter()
            .zip(flags)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn allows_channel(&self, kind: &ChannelKind) -> bool {
        match kind {
            ChannelKind::Session => self.shell || self.exec || self.file_transfer,
            ChannelKind::DirectTcpip => self.local_forward,
            ChannelKind::ForwardedTcpip => self.remote_forward,
            ChannelKind::DirectStreamLocal => false,
            ChannelKind::X11 => self.x11_forwarding,
            ChannelKind::Agent => self.agent_forwarding,
        }
    }

    pub fn allows_request(&self, req: &SessionRequest<'_>) -> bool {
        match req {
            SessionRequest::Pty => self.pty,
            SessionRequest::Shell => self.shell,
            SessionRequest::Exec(cmd) => match super::command::classify(cmd) {
                super::command::ExecKind::Transfer(_) => self.file_transfer,
                super::command::ExecKind::Command => self.exec && self.exec_rules.permits(cmd),
            },
            SessionRequest::Subsystem(name) => *name == "sftp" && self.file_transfer,
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

    #[test]
    fn each_permission_gates_its_own_request() {
        let cases: [(&str, SessionRequest<'_>); 7] = [
            ("pty", SessionRequest::Pty),
            ("shell", SessionRequest::Shell),
            ("exec", SessionRequest::Exec(b"uptime")),
            ("sftp", SessionRequest::Subsystem("sftp")),
            ("sftp", SessionRequest::Exec(b"scp -t /tmp")),
            ("agent", SessionRequest::AgentForward),
            ("x11", SessionRequest::X11),
        ];
        for (name, req) in cases {
            let only = Permissions::parse(name).unwrap();
            assert!(only.allows_request(&req), "{name} should allow {req:?}");
            let all_but: Vec<&str> = PERMISSION_NAMES
                .iter()
                .copied()
                .filter(|n| *n != name)
                .collect();
            let without = Permissions::parse(&all_but.join(",")).unwrap();
            assert!(
                !without.allows_request(&req),
                "without {name}, {req:?} must be refused"
            );
        }
        let p = Permissions::parse("local-forward").unwrap();
        assert!(
            p.allows_channel(&ChannelKind::DirectTcpip)
                && !p.allows_channel(&ChannelKind::ForwardedTcpip)
        );
        assert!(Permissions::parse("shell,teleport").is_err());
        assert_eq!(
            Permissions::parse("exec,shell,pty").unwrap().names(),
            "pty,shell,exec"
        );
    }

    #[test]
    fn exec_rules_apply_to_exec_only() {
        let mut p = Permissions::session_default();
        p.exec_rules = ExecRules {
            allow: vec!["uptime".into()],
            deny: vec![],
        };
        assert!(p.allows_request(&SessionRequest::Exec(b"uptime")));
        assert!(!p.allows_request(&SessionRequest::Exec(b"cat /etc/shadow")));
        assert!(p.allows_request(&SessionRequest::Shell));
    }

    /// Commands that look like a transfer but run something else: with a
    /// file-transfer-only grant they must be refused, with exec they are
    /// commands under the exec lists.
    const DISGUISED: [&[u8]; 12] = [
        b"scp -t . ; id",
        b"scp -t .;id",
        b"scp -t . </dev/null >/dev/null 2>&1; id",
        b"scp -f x; echo SECRET",
        b"scp -f x </dev/null >/dev/null 2>&1; echo SECRET",
        b"scp -t $(id)",
        b"scp -t `id`",
        b"scp -t .\nid",
        b"scp -t .\0; id",
        b"rsync --server x; sh",
        b"rsync --server -logDtpre.iLsfxCIvu . dest/ && sh",
        b"rsync --server --daemon --config=/tmp/x .",
    ];

    #[test]
    fn a_file_transfer_grant_runs_no_command() {
        let sftp = Permissions::parse("sftp").unwrap();
        for cmd in DISGUISED {
            assert!(
                !sftp.allows_request(&SessionRequest::Exec(cmd)),
                "{:?} passed as a transfer",
                String::from_utf8_lossy(cmd)
            );
        }
        for real in [
            &b"scp -t ."[..],
            b"scp -v -r -p -d -t dest/",
            b"scp -f -- -file",
            b"rsync --server -logDtpre.iLsfxCIvu . dest/",
            b"rsync --server --sender -logDtpre.iLsfxCIvu . src/",
        ] {
            assert!(
                sftp.allows_request(&SessionRequest::Exec(real)),
                "{:?}",
                String::from_utf8_lossy(real)
            );
        }
    }

    #[test]
    fn a_disguised_transfer_is_an_exec_under_its_lists() {
        let mut p = Permissions::parse("exec,sftp").unwrap();
        p.exec_rules = ExecRules {
            allow: vec!["uptime".into()],
            deny: vec![],
        };
        for cmd in DISGUISED {
            assert!(
                !p.allows_request(&SessionRequest::Exec(cmd)),
                "{:?}",
                String::from_utf8_lossy(cmd)
            );
        }
        // A real transfer is not an exec: the lists do not apply to it.
        assert!(p.allows_request(&SessionRequest::Exec(b"scp -t .")));
        // Exec alone does not grant transfers.
        let exec = Permissions::parse("exec").unwrap();
        assert!(!exec.allows_request(&SessionRequest::Exec(b"scp -t .")));
        assert!(exec.allows_request(&SessionRequest::Exec(b"scp -t . ; id")));
    }

    #[test]
    fn an_allow_list_admits_no_second_command() {
        let mut p = Permissions::parse("exec").unwrap();
        p.exec_rules = ExecRules {
            allow: vec!["echo *".into(), "pg_isready*".into()],
            deny: vec!["*;*".into()],
        };
        for ok in [&b"echo hi"[..], b"pg_isready"] {
            assert!(p.allows_request(&SessionRequest::Exec(ok)));
        }
        for bad in [
            &b"echo hi; id -un"[..],
            b"echo hi && id",
            b"echo hi\nid",
            b"echo $(id)",
            b"pg_isready && sh",
            b"pg_isready | sh",
        ] {
            assert!(
                !p.allows_request(&SessionRequest::Exec(bad)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
