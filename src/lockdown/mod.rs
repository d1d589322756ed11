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
/// An IPv4-mapped form (`::ffff:10.0.0.0/104`, `::ffff:10.0.0.1`) becomes
/// the IPv4 network: clients are canonical from accept on (an IPv4 client
/// of a dual-stack socket is `10.0.0.1`), so the mapped form would never match.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net = match s.parse::<IpNet>() {
        Ok(n) => n.trunc(),
        Err(_) => s
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("{s:?} is not an address or a CIDR network"))?,
    };
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && let Some(len) = v6.prefix_len().checked_sub(96)
        && let Ok(v4net) = ipnet::Ipv4Net::new(v4, len)
    {
        return Ok(IpNet::V4(v4net.trunc()));
    }
    Ok(net)
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
        // The IPv4-mapped form names the IPv4 network it stands for.
        let mapped = parse_cidr("::ffff:10.1.2.0/120").unwrap();
        assert_eq!(mapped.to_string(), "10.1.2.0/24");
        assert_eq!(
            parse_cidr("::ffff:10.1.2.3").unwrap().to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            parse_cidr("::ffff:0:0/95").unwrap().to_string(),
            "::fffe:0:0/95"
        );
    }
}
