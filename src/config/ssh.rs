//! `[ssh]`: the client-facing listener's options beyond `listen`. For now
//! the load balancers whose PROXY protocol v2 header is believed.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSsh {
    #[serde(default)]
    proxy_protocol_from: Vec<String>,
}

/// The `[ssh]` section.
#[derive(Debug, Clone, Default)]
pub struct SshSettings {
    /// Connections from these networks (the load balancers) must start
    /// with a PROXY protocol v2 header, whose client address is then used
    /// for everything (throttles, locks, rules, audit); connections from
    /// anywhere else are plain SSH, and a header from them is refused.
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
}

impl RawSsh {
    pub(super) fn check(self, problems: &mut Vec<String>) -> SshSettings {
        let mut nets = Vec::new();
        for s in &self.proxy_protocol_from {
            match super::parse_cidr(s) {
                Ok(n) => nets.push(n),
                Err(e) => problems.push(format!("ssh.proxy_protocol_from: {s:?}: {e}")),
            }
        }
        SshSettings {
            proxy_protocol_from: nets,
        }
    }
}
