//! Which target a forwarding request names. Pure: the caller resolves the
//! *configured* host names (never the client's) and passes the addresses in.
//!
//! A request `host:port` names a target when the port is the target's port
//! and the host is one of:
//! - the target's name (`db01`), any ASCII case;
//! - the host the administrator configured for it (`db01.internal`,
//!   `10.0.0.5`), any ASCII case;
//! - an IP literal that is one of the addresses the configured host has.
//!
//! Any other DNS name is refused without being looked up. Resolving names
//! the client picks would let a restricted user make the bastion query any
//! name (a DNS exfiltration channel and an oracle on internal zones) and
//! would make the decision depend on records that change between check and
//! use; it buys no reach, since the bastion always dials the configured host.
//! So `localhost` is not `127.0.0.1` here unless a target is configured so.

use std::net::IpAddr;

/// A target the user could be forwarded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    /// As configured by the administrator.
    pub host: String,
    pub port: u16,
    /// Addresses `host` resolves to (the literal itself when it is an IP).
    pub addrs: Vec<IpAddr>,
}

/// How a request named its target, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MatchedBy {
    Name,
    ConfiguredHost,
    Address,
}

/// The requested host as an IP, if it is a literal (`[::1]` and
/// IPv4-mapped IPv6 forms included).
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = h.parse().ok()?;
    Some(canonical(ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// How `host:port` names `c`, if it does.
pub fn matches(host: &str, port: u32, c: &Candidate) -> Option<MatchedBy> {
    if port != u32::from(c.port) || host.is_empty() {
        return None;
    }
    if host.eq_ignore_ascii_case(&c.name) {
        return Some(MatchedBy::Name);
    }
    if host.eq_ignore_ascii_case(&c.host) {
        return Some(MatchedBy::ConfiguredHost);
    }
    let ip = ip_literal(host)?;
    c.addrs
        .iter()
        .any(|a| canonical(*a) == ip)
        .then_some(MatchedBy::Address)
}

/// The best-named candidate: a name beats a configured host beats an
/// address; ties go to the first in the given order.
pub fn best<'a>(host: &str, port: u32, candidates: &'a [Candidate]) -> Option<&'a Candidate> {
    candidates
        .iter()
        .filter_map(|c| matches(host, port, c).map(|m| (m, c)))
        .min_by_key(|(m, _)| *m)
        .map(|(_, c)| c)
}

/// Whether the request needs the candidates' addresses at all (an IP
/// literal); otherwise no resolution is done.
pub fn needs_addresses(host: &str) -> bool {
    ip_literal(host).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, host: &str, port: u16, addrs: &[&str]) -> Candidate {
        Candidate {
            name: name.into(),
            host: host.into(),
            port,
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn names_hosts_and_addresses() {
        let db = c("db01", "127.0.0.1", 5432, &["127.0.0.1"]);
        let web = c(
            "console",
            "console.internal",
            443,
            &["10.0.0.7", "10.0.0.8"],
        );
        let cases: &[(&str, u32, &Candidate, Option<MatchedBy>)] = &[
            ("db01", 5432, &db, Some(MatchedBy::Name)),
            ("DB01", 5432, &db, Some(MatchedBy::Name)),
            ("db01", 5433, &db, None),
            ("127.0.0.1", 5432, &db, Some(MatchedBy::ConfiguredHost)),
            ("::ffff:127.0.0.1", 5432, &db, Some(MatchedBy::Address)),
            ("[::ffff:127.0.0.1]", 5432, &db, Some(MatchedBy::Address)),
            ("127.0.0.2", 5432, &db, None),
            ("localhost", 5432, &db, None),
            ("db01.evil.example", 5432, &db, None),
            ("", 5432, &db, None),
            (
                "console.internal",
                443,
                &web,
                Some(MatchedBy::ConfiguredHost),
            ),
            (
                "CONSOLE.internal",
                443,
                &web,
                Some(MatchedBy::ConfiguredHost),
            ),
            ("10.0.0.8", 443, &web, Some(MatchedBy::Address)),
            ("10.0.0.9", 443, &web, None),
            ("10.0.0.7", 80, &web, None),
            ("console.internal.", 443, &web, None),
        ];
        for (host, port, cand, want) in cases {
            assert_eq!(matches(host, *port, cand), *want, "{host}:{port}");
        }
    }

    #[test]
    fn the_strongest_match_wins() {
        let a = c("db01", "10.0.0.5", 5432, &["10.0.0.5"]);
        let b = c("10.0.0.5", "db-b", 5432, &["10.0.0.6"]);
        let all = [a.clone(), b.clone()];
        assert_eq!(best("10.0.0.5", 5432, &all), Some(&b));
        assert_eq!(best("db01", 5432, &all), Some(&a));
        assert_eq!(best("10.0.0.6", 5432, &all), Some(&b));
        assert_eq!(best("10.0.0.7", 5432, &all), None);
        assert!(needs_addresses("10.0.0.7") && !needs_addresses("db01"));
    }
}
