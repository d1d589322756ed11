//! Failed logins as a bounded summary per flush: one row per (network,
//! factor) and one per username, each list capped, the rest counted in one
//! more row. A password spray over ten thousand names from one network is
//! one row naming a few of them, not ten thousand rows; a flood from many
//! networks is at most `NETWORK_ROWS + USER_ROWS + 1` rows per flush.

use crate::names::escape_for_log;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// (network, factor) rows per flush; the busiest are written.
pub const NETWORK_ROWS: usize = 32;
/// Username rows per flush; the most-failed names are written.
pub const USER_ROWS: usize = 16;
/// Usernames named in a network row.
const SAMPLE: usize = 5;

/// One failure tally line: the username sent, the address, the factor.
#[derive(Debug, Clone)]
pub struct Failed {
    pub username: String,
    pub source: IpAddr,
    pub factor: String,
    pub count: u32,
}

/// One row of the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Summary {
    /// Failures of one factor from one network (/24, /64).
    Network {
        network: String,
        factor: String,
        count: u64,
        usernames: u64,
        /// The most-tried usernames (escaped), busiest first.
        sample: Vec<String>,
    },
    /// Failures for one username, whatever the network.
    User {
        username: String,
        count: u64,
        networks: u64,
    },
    /// What the capped lists left out, plus failures the tally had no room for.
    Omitted {
        network_rows: u64,
        user_rows: u64,
        failures: u64,
        untallied: u64,
    },
}

/// The network an address counts in: /24 for IPv4, /64 for IPv6, with
/// IPv4-mapped IPv6 addresses counted as the IPv4 address they are.
pub fn network_of(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

/// Summarises one flush's tally (`untallied`: failures it had no room for).
pub fn summarise(tally: &[Failed], untallied: u32) -> Vec<Summary> {
    // (network, factor) → username → count
    let mut by_net: BTreeMap<(String, String), BTreeMap<&str, u64>> = BTreeMap::new();
    // username → (count, networks)
    let mut by_user: BTreeMap<&str, (u64, BTreeSet<String>)> = BTreeMap::new();
    for f in tally {
        let net = network_of(f.source);
        *by_net
            .entry((net.clone(), f.factor.clone()))
            .or_default()
            .entry(f.username.as_str())
            .or_default() += u64::from(f.count);
        let u = by_user.entry(f.username.as_str()).or_default();
        u.0 += u64::from(f.count);
        u.1.insert(net);
    }
    let mut nets: Vec<Summary> = by_net
        .into_iter()
        .map(|((network, factor), names)| {
            let count = names.values().sum();
            let mut busiest: Vec<(&str, u64)> = names.iter().map(|(n, c)| (*n, *c)).collect();
            busiest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            Summary::Network {
                network,
                factor,
                count,
                usernames: names.len() as u64,
                sample: busiest
                    .iter()
                    .take(SAMPLE)
                    .map(|(n, _)| escape_for_log(n))
                    .collect(),
            }
        })
        .collect();
    let mut users: Vec<Summary> = by_user
        .into_iter()
        .map(|(name, (count, networks))| Summary::User {
            username: escape_for_log(name),
            count,
            networks: networks.len() as u64,
        })
        .collect();
    let weight = |s: &Summary| match s {
        Summary::Network { count, .. } | Summary::User { count, .. } => *count,
        Summary::Omitted { .. } => 0,
    };
    // Busiest first; the sort is stable, so ties keep name order.
    nets.sort_by_key(|s| std::cmp::Reverse(weight(s)));
    users.sort_by_key(|s| std::cmp::Reverse(weight(s)));
    let net_cut: Vec<Summary> = nets.split_off(nets.len().min(NETWORK_ROWS));
    let user_cut: Vec<Summary> = users.split_off(users.len().min(USER_ROWS));
    let mut out = nets;
    out.extend(users);
    if !net_cut.is_empty() || !user_cut.is_empty() || untallied > 0 {
        out.push(Summary::Omitted {
            network_rows: net_cut.len() as u64,
            user_rows: user_cut.len() as u64,
            failures: net_cut.iter().map(weight).sum(),
            untallied: u64::from(untallied),
        });
    }
    out
}

impl Summary {
    /// kind, actor, source, subject, detail of the audit row.
    pub(super) fn row_parts(&self) -> (&'static str, String, String, String, serde_json::Value) {
        match self {
            Summary::Network {
                network,
                factor,
                count,
                usernames,
                sample,
            } => {
                // One name tried: the row is about that name (as before).
                let who = if *usernames == 1 {
                    sample.first().cloned().unwrap_or_default()
                } else {
                    String::new()
                };
                (
                    "login.failures",
                    who.clone(),
                    network.clone(),
                    who,
                    json!({ "factor": factor, "count": count, "network": network,
                            "usernames": usernames, "sample": sample }),
                )
            }
            Summary::User {
                username,
                count,
                networks,
            } => (
                "login.failures.user",
                username.clone(),
                String::new(),
                username.clone(),
                json!({ "count": count, "networks": networks }),
            ),
            Summary::Omitted {
                network_rows,
                user_rows,
                failures,
                untallied,
            } => (
                "login.failures.omitted",
                String::new(),
                String::new(),
                String::new(),
                json!({ "network_rows": network_rows, "user_rows": user_rows,
                        "failures": failures, "untallied": untallied }),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(user: &str, ip: &str, factor: &str, count: u32) -> Failed {
        Failed {
            username: user.into(),
            source: ip.parse().unwrap(),
            factor: factor.into(),
            count,
        }
    }

    #[test]
    fn a_spray_over_many_names_is_one_network_row() {
        let tally: Vec<Failed> = (0..10_000)
            .map(|i| {
                f(
                    &format!("user{i}"),
                    &format!("203.0.113.{}", i % 200),
                    "password",
                    1,
                )
            })
            .chain([f("alice", "::ffff:203.0.113.9", "password", 3)])
            .collect();
        let rows = summarise(&tally, 7);
        let nets: Vec<&Summary> = rows
            .iter()
            .filter(|r| matches!(r, Summary::Network { .. }))
            .collect();
        assert_eq!(nets.len(), 1, "{nets:?}");
        let Summary::Network {
            network,
            count,
            usernames,
            sample,
            ..
        } = nets[0]
        else {
            unreachable!()
        };
        assert_eq!(network, "203.0.113.0/24");
        assert_eq!((*count, *usernames), (10_003, 10_001));
        assert_eq!(sample[0], "alice");
        assert_eq!(sample.len(), SAMPLE);
        let users = rows
            .iter()
            .filter(|r| matches!(r, Summary::User { .. }))
            .count();
        assert_eq!(users, USER_ROWS);
        assert_eq!(
            rows.last(),
            Some(&Summary::Omitted {
                network_rows: 0,
                user_rows: 10_001 - USER_ROWS as u64,
                failures: 0,
                untallied: 7
            })
        );
        assert!(rows.len() <= NETWORK_ROWS + USER_ROWS + 1);
    }

    #[test]
    fn many_networks_are_capped_and_v6_counts_per_64() {
        let mut tally: Vec<Failed> = (0..5000u32)
            .map(|i| {
                f(
                    "bob",
                    &format!("2001:db8:{:x}::{}", i / 2, i % 2),
                    "totp",
                    1,
                )
            })
            .collect();
        tally.push(f("bob", "2001:db8:ffff::1", "totp", 50));
        let rows = summarise(&tally, 0);
        assert_eq!(rows.len(), NETWORK_ROWS + 1 + 1);
        assert!(
            matches!(&rows[0], Summary::Network { network, count: 50, .. } if network == "2001:db8:ffff::/64")
        );
        assert!(matches!(&rows[1], Summary::Network { count: 2, .. }));
        assert!(rows.contains(&Summary::User {
            username: "bob".into(),
            count: 5050,
            networks: 2501
        }));
        assert!(matches!(
            rows.last(),
            Some(Summary::Omitted {
                network_rows: 2469,
                failures: 4938,
                ..
            })
        ));
    }

    #[test]
    fn untrusted_names_are_escaped_in_every_row() {
        let rows = summarise(&[f("evil\n\x1b[2J", "10.0.0.1", "password", 2)], 0);
        for r in &rows {
            let (_, actor, _, subject, detail) = r.row_parts();
            for s in [actor, subject, detail.to_string()] {
                assert!(!s.contains('\n') && !s.contains('\x1b'), "{s}");
            }
        }
        assert_eq!(rows.len(), 2);
    }
}
