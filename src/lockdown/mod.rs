//! Locks that shut the gate: the kill switch (locks on users, targets,
//! sources, sessions or everything), the automatic rules that raise them, and
//! blocked source networks kept by the admin, all cached here for decisions
//! that must not wait on anything.

mod default_rules;
mod lines;
mod locks;
pub mod rules;
pub mod rules_config;
mod webhook;

pub use lines::LineAssembler;
pub use locks::{
    Lifter, LockError, LockOutcome, LockSpec, Locks, check, create, kill_reason, lift, list,
    refresh, terminate,
};
pub use rules::{RuleError, Rules, Seen};

use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::RwLock;

#[derive(Debug, Default)]
pub struct SourceBlocks {
    nets: RwLock<Vec<(IpNet, Option<i64>)>>,
}

impl SourceBlocks {
    pub fn replace(&self, nets: Vec<(IpNet, Option<i64>)>) {
        if let Ok(mut n) = self.nets.write() {
            *n = nets;
        }
    }

    /// Whether `ip` is in a block that has not expired at `now_ms`.
    pub fn is_blocked(&self, ip: IpAddr, now_ms: i64) -> bool {
        let Ok(n) = self.nets.read() else { return true }; // poisoned: fail closed
        n.iter()
            .any(|(net, expires)| net.contains(&ip) && expires.is_none_or(|e| e > now_ms))
    }
}

/// Parses `10.0.0.0/24`, `2001:db8::/32` or a bare address (a /32 or /128).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is not an address or a CIDR network"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_match_networks_until_they_expire() {
        let b = SourceBlocks::default();
        b.replace(vec![
            (parse_cidr("10.1.2.3/24").unwrap(), None),
            (parse_cidr("2001:db8::1").unwrap(), Some(100)),
        ]);
        assert!(b.is_blocked("10.1.2.200".parse().unwrap(), 0));
        assert!(!b.is_blocked("10.1.3.1".parse().unwrap(), 0));
        assert!(b.is_blocked("2001:db8::1".parse().unwrap(), 99));
        assert!(!b.is_blocked("2001:db8::1".parse().unwrap(), 100));
        assert_eq!(
            parse_cidr("10.1.2.3/24").unwrap().to_string(),
            "10.1.2.0/24"
        );
        assert!(parse_cidr("nope").is_err());
    }
}
