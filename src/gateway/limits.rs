//! Caps on unauthenticated connections: in total, per source address, and
//! per source network (IPv4 /24, IPv6 /64: one host has a whole /64, and a
//! handful of addresses in one /24 is cheap).
//!
//! A place is held from accept until authentication succeeds or the
//! connection ends. When a cap is reached, the newcomer is admitted by
//! cutting the oldest connection *in that cap's scope that has not passed a
//! first factor*: idle and slow-dripping connections are old by nature and a
//! real login reaches its first factor in a fraction of a second, so a flood
//! cannot keep real users out. A connection past its first factor (a person
//! at the "Verification code:" prompt) is never cut by a flood; if a scope
//! holds only such connections, the newcomer is refused instead. The login
//! grace time still ends every connection that does not finish. At most
//! `PROTECTED_PER_USER` connections of one user are protected at once, so a
//! stolen first factor cannot hold every place at the code prompt.

use crate::auth::throttle::network_of;
use crate::sync::MutexExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// A person runs a few logins at once (ssh, scp, a ControlMaster); more
/// connections of one user at the code prompt stay cuttable.
pub const PROTECTED_PER_USER: usize = 4;

#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub total: u32,
    pub per_source: u32,
    pub per_network: u32,
}

#[derive(Clone)]
pub struct PreAuth {
    inner: Arc<Mutex<Counts>>,
    caps: Caps,
}

struct Held {
    ip: IpAddr,
    net: IpAddr,
    cut: CancellationToken,
    /// Set while protected: the user whose first factor it holds.
    user: Option<String>,
}

#[derive(Default)]
struct Counts {
    /// Admission order → the connection.
    slots: BTreeMap<u64, Held>,
    /// Those not past a first factor, oldest first: the ones a cap may cut.
    fresh: BTreeSet<u64>,
    by_source: HashMap<IpAddr, BTreeSet<u64>>,
    by_net: HashMap<IpAddr, BTreeSet<u64>>,
    /// Protected connections per user (at most `PROTECTED_PER_USER`).
    protected: HashMap<String, BTreeSet<u64>>,
    next: u64,
}

/// Releases its place when dropped; `cut` is cancelled if it is evicted.
pub struct Slot {
    owner: PreAuth,
    seq: u64,
    pub cut: CancellationToken,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Admitted after cutting an unauthenticated connection from this source.
    AdmittedByEvicting(IpAddr),
}

/// Which cap refused a newcomer (every connection in its scope was past a
/// first factor).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Source,
    Network,
    Total,
}

impl PreAuth {
    pub fn new(caps: Caps) -> PreAuth {
        PreAuth {
            inner: Arc::default(),
            caps: Caps {
                total: caps.total.max(1),
                per_source: caps.per_source.max(1),
                per_network: caps.per_network.max(1),
            },
        }
    }

    /// `ip` must be canonical (an IPv4 client is IPv4, not `::ffff:a.b.c.d`).
    pub fn admit(&self, ip: IpAddr) -> Result<(Slot, Admission), Refused> {
        let mut c = self.inner.lock_or_recover();
        let net = network_of(ip);
        let mut admission = Admission::Admitted;
        let held = |set: Option<&BTreeSet<u64>>| set.map_or(0, BTreeSet::len);
        if held(c.by_source.get(&ip)) >= self.caps.per_source as usize {
            let victim = oldest_fresh(&c, c.by_source.get(&ip)).ok_or(Refused::Source)?;
            admission = evict(&mut c, victim);
        }
        if held(c.by_net.get(&net)) >= self.caps.per_network as usize {
            let victim = oldest_fresh(&c, c.by_net.get(&net)).ok_or(Refused::Network)?;
            admission = evict(&mut c, victim);
        }
        if c.slots.len() >= self.caps.total as usize {
            let victim = c.fresh.first().copied().ok_or(Refused::Total)?;
            admission = evict(&mut c, victim);
        }
        let seq = c.next;
        c.next += 1;
        let cut = CancellationToken::new();
        c.slots.insert(
            seq,
            Held {
                ip,
                net,
                cut: cut.clone(),
                user: None,
            },
        );
        c.fresh.insert(seq);
        c.by_source.entry(ip).or_default().insert(seq);
        c.by_net.entry(net).or_default().insert(seq);
        Ok((
            Slot {
                owner: self.clone(),
                seq,
                cut,
            },
            admission,
        ))
    }

    #[cfg(test)]
    fn total(&self) -> usize {
        self.inner.lock_or_recover().slots.len()
    }
}

/// The oldest connection in `scope` that has not passed a first factor.
fn oldest_fresh(c: &Counts, scope: Option<&BTreeSet<u64>>) -> Option<u64> {
    scope?.iter().copied().find(|s| c.fresh.contains(s))
}

fn evict(c: &mut Counts, seq: u64) -> Admission {
    match remove(c, seq) {
        Some(h) => {
            h.cut.cancel();
            Admission::AdmittedByEvicting(h.ip)
        }
        None => Admission::Admitted,
    }
}

fn remove(c: &mut Counts, seq: u64) -> Option<Held> {
    let h = c.slots.remove(&seq)?;
    c.fresh.remove(&seq);
    unprotect(c, seq, h.user.as_deref());
    for (map, key) in [(&mut c.by_source, h.ip), (&mut c.by_net, h.net)] {
        if let Some(set) = map.get_mut(&key) {
            set.remove(&seq);
            if set.is_empty() {
                map.remove(&key);
            }
        }
    }
    Some(h)
}

fn unprotect(c: &mut Counts, seq: u64, user: Option<&str>) {
    if let Some(u) = user
        && let Some(set) = c.protected.get_mut(u)
    {
        set.remove(&seq);
        if set.is_empty() {
            c.protected.remove(u);
        }
    }
}

impl Slot {
    /// `Some(user)`: this connection holds `user`'s verified first factor
    /// and is no longer cut to make room (unless that user already has
    /// `PROTECTED_PER_USER` such connections; returns whether it is
    /// protected). `None`: it starts over and may be cut again.
    pub fn first_factor(&self, user: Option<&str>) -> bool {
        let mut c = self.owner.inner.lock_or_recover();
        let seq = self.seq;
        let Some(old) = c.slots.get_mut(&seq).map(|h| h.user.take()) else {
            return false;
        };
        unprotect(&mut c, seq, old.as_deref());
        c.fresh.insert(seq);
        let Some(user) = user else {
            return false;
        };
        let mine = c.protected.entry(user.to_string()).or_default();
        if mine.len() >= PROTECTED_PER_USER {
            return false;
        }
        mine.insert(seq);
        c.fresh.remove(&seq);
        if let Some(h) = c.slots.get_mut(&seq) {
            h.user = Some(user.to_string());
        }
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        remove(&mut self.owner.inner.lock_or_recover(), self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn caps(total: u32, per_source: u32, per_network: u32) -> PreAuth {
        PreAuth::new(Caps {
            total,
            per_source,
            per_network,
        })
    }

    #[test]
    fn total_cap_evicts_the_oldest_and_places_are_released_once() {
        let p = caps(3, 10, 10);
        let (a, b, c) = (ip("10.0.0.1"), ip("10.0.1.2"), ip("10.0.2.3"));
        let (s1, _) = p.admit(a).unwrap();
        let (s2, _) = p.admit(a).unwrap();
        let (_s3, _) = p.admit(b).unwrap();
        let (_s4, how) = p.admit(c).unwrap();
        assert_eq!(how, Admission::AdmittedByEvicting(a));
        assert!(s1.cut.is_cancelled(), "the oldest was cut");
        assert!(!s2.cut.is_cancelled());
        assert_eq!(p.total(), 3);
        drop(s1); // already evicted: must not free a second place
        assert_eq!(p.total(), 3);
        drop(s2);
        assert_eq!(p.total(), 2);
        assert!(p.admit(a).is_ok(), "slot released on drop");
    }

    #[test]
    fn a_connection_past_its_first_factor_is_never_cut() {
        let p = caps(3, 10, 10);
        let (human, _) = p.admit(ip("192.0.2.1")).unwrap();
        assert!(human.first_factor(Some("nina")));
        let flood: Vec<_> = (0..20)
            .filter_map(|i| p.admit(ip(&format!("198.51.{i}.7"))).ok().map(|(s, _)| s))
            .collect();
        assert_eq!(flood.len(), 20, "each newcomer cut an older flooder");
        assert!(!human.cut.is_cancelled());
        assert_eq!(flood.iter().filter(|s| !s.cut.is_cancelled()).count(), 2);
        // Only people past the first factor left: newcomers are refused.
        for (i, s) in flood.iter().filter(|s| !s.cut.is_cancelled()).enumerate() {
            assert!(s.first_factor(Some(&format!("u{i}"))));
        }
        assert_eq!(p.admit(ip("203.0.113.1")).err(), Some(Refused::Total));
        assert!(!human.cut.is_cancelled());
        // Back to fresh (a username change starts over): cuttable again.
        assert!(!human.first_factor(None));
        assert!(p.admit(ip("203.0.113.1")).is_ok());
        assert!(human.cut.is_cancelled());
    }

    #[test]
    fn per_source_and_per_network_caps_cut_within_their_scope() {
        let p = caps(100, 2, 3);
        let a = ip("10.0.0.1");
        let (s1, _) = p.admit(a).unwrap();
        let (s2, _) = p.admit(a).unwrap();
        let (_s3, how) = p.admit(a).unwrap();
        assert_eq!(how, Admission::AdmittedByEvicting(a));
        assert!(s1.cut.is_cancelled() && !s2.cut.is_cancelled());
        // A third address of the same /24 hits the network cap (3) and cuts
        // the oldest of that /24; another /24 is untouched.
        let (other, _) = p.admit(ip("10.0.1.1")).unwrap();
        let (_s4, how) = p.admit(ip("10.0.0.99")).unwrap();
        assert_eq!(how, Admission::Admitted);
        let (_s5, how) = p.admit(ip("10.0.0.98")).unwrap();
        assert_eq!(how, Admission::AdmittedByEvicting(a));
        assert!(s2.cut.is_cancelled() && !other.cut.is_cancelled());
        // A person past the first factor in that /24 is skipped.
        let (human, _) = p.admit(ip("10.0.0.50")).unwrap();
        human.first_factor(Some("nina"));
        for i in 0..10 {
            let _ = p.admit(ip(&format!("10.0.0.{}", 100 + i)));
        }
        assert!(!human.cut.is_cancelled());
    }

    #[test]
    fn one_user_protects_only_a_few_connections() {
        let p = caps(6, 10, 10);
        let mine: Vec<_> = (0..6)
            .map(|i| p.admit(ip(&format!("10.0.{i}.1"))).unwrap().0)
            .collect();
        let protected = mine
            .iter()
            .filter(|s| s.first_factor(Some("stolen")))
            .count();
        assert_eq!(protected, PROTECTED_PER_USER);
        // Full: newcomers cut the unprotected ones, never the protected.
        let _a = p.admit(ip("192.0.2.1")).unwrap();
        let _b = p.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(mine.iter().filter(|s| s.cut.is_cancelled()).count(), 2);
        assert!(p.admit(ip("192.0.2.3")).is_ok(), "a fresh one is cut");
        // One protected connection ends: that user's next one is protected.
        let (late, _) = p.admit(ip("10.0.9.1")).unwrap_or_else(|_| panic!("cap"));
        drop(mine);
        assert!(late.first_factor(Some("stolen")));
    }

    #[test]
    fn ipv6_is_capped_per_64() {
        let p = caps(100, 10, 2);
        let (s1, _) = p.admit(ip("2001:db8:1:2::1")).unwrap();
        let (s2, _) = p.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        s2.first_factor(Some("nina"));
        let (_s3, how) = p.admit(ip("2001:db8:1:2::77")).unwrap();
        assert_eq!(how, Admission::AdmittedByEvicting(ip("2001:db8:1:2::1")));
        assert!(s1.cut.is_cancelled() && !s2.cut.is_cancelled());
        let (_s4, how) = p.admit(ip("2001:db8:1:3::1")).unwrap();
        assert_eq!(how, Admission::Admitted, "another /64");
    }
}
