//! Failure budgets checked before any password hashing, kept in memory.
//!
//! Two keys: (user, source network) and source network alone, where a network
//! is the /24 of an IPv4 address or the /64 of an IPv6 one. A user's delay
//! grows with failures from that network and is capped, so an attacker
//! elsewhere cannot lock an admin out, and nobody is locked out for good.
//! A network with many failures across users is blocked for a while.
//! Failures are also tallied per (user, address, factor) for a periodic
//! summary, never one database row per attempt.

use crate::sync::MutexExt;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Failures per (user, network) before delays start.
    pub user_free_failures: u32,
    pub user_max_delay: Duration,
    /// Quiet time after which a (user, network) record is forgotten.
    pub user_quiet_reset: Duration,
    /// Failures per network within `net_window` that block the network.
    pub net_max_failures: u32,
    pub net_window: Duration,
    pub net_block: Duration,
    /// Bound on remembered keys, so a spray of usernames cannot grow memory.
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            user_free_failures: 5,
            user_max_delay: Duration::from_secs(60),
            user_quiet_reset: Duration::from_secs(15 * 60),
            net_max_failures: 50,
            net_window: Duration::from_secs(10 * 60),
            net_block: Duration::from_secs(10 * 60),
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// This user may try again from this network after the delay.
    Wait(Duration),
    /// The whole source network is blocked for this long.
    Blocked(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Net(IpAddr);

/// The network an address belongs to for throttles and caps: its /24
/// (IPv4) or /64 (IPv6). Callers pass canonical addresses (see
/// `gateway::serve`), so an IPv4 client of a dual-stack socket is IPv4 here.
pub fn network_of(ip: IpAddr) -> IpAddr {
    Net::of(ip).0
}

impl Net {
    fn of(ip: IpAddr) -> Net {
        Net(match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                IpAddr::from([o[0], o[1], o[2], 0])
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        })
    }
}

struct UserEntry {
    failures: u32,
    last: Instant,
    next_allowed: Instant,
}

struct NetEntry {
    failures: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

/// One line of the failure summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureTally {
    pub user: String,
    pub source: IpAddr,
    pub factor: &'static str,
    pub count: u32,
}

#[derive(Default)]
struct Inner {
    users: HashMap<(String, Net), UserEntry>,
    nets: HashMap<Net, NetEntry>,
    tally: HashMap<(String, IpAddr, &'static str), u32>,
    /// Failures not tallied because the tally was full.
    overflow: u32,
}

pub struct Throttle {
    cfg: ThrottleConfig,
    inner: Mutex<Inner>,
}

impl Throttle {
    pub fn new(cfg: ThrottleConfig) -> Throttle {
        Throttle {
            cfg,
            inner: Mutex::default(),
        }
    }

    pub fn check(&self, user: &str, ip: IpAddr, now: Instant) -> Verdict {
        let inner = self.inner.lock_or_recover();
        let net = Net::of(ip);
        if let Some(until) = inner.nets.get(&net).and_then(|n| n.blocked_until)
            && until > now
        {
            return Verdict::Blocked(until - now);
        }
        if let Some(u) = inner.users.get(&(user.to_string(), net))
            && u.next_allowed > now
        {
            return Verdict::Wait(u.next_allowed - now);
        }
        Verdict::Allow
    }

    pub fn failure(&self, user: &str, ip: IpAddr, factor: &'static str, now: Instant) {
        let mut inner = self.inner.lock_or_recover();
        let cfg = &self.cfg;
        if inner.users.len() >= cfg.max_entries || inner.nets.len() >= cfg.max_entries {
            purge(&mut inner, cfg, now);
        }
        let net = Net::of(ip);
        // Past the bound, known keys keep counting; new ones are not remembered.
        if inner.nets.len() < cfg.max_entries || inner.nets.contains_key(&net) {
            let n = inner.nets.entry(net).or_insert(NetEntry {
                failures: 0,
                window_start: now,
                blocked_until: None,
            });
            if now.duration_since(n.window_start) > cfg.net_window {
                n.failures = 0;
                n.window_start = now;
            }
            n.failures += 1;
            if n.failures >= cfg.net_max_failures {
                n.blocked_until = Some(now + cfg.net_block);
            }
        }
        let key = (user.to_string(), net);
        if inner.users.len() < cfg.max_entries || inner.users.contains_key(&key) {
            let u = inner.users.entry(key).or_insert(UserEntry {
                failures: 0,
                last: now,
                next_allowed: now,
            });
            if now.duration_since(u.last) > cfg.user_quiet_reset {
                u.failures = 0;
            }
            u.failures += 1;
            u.last = now;
            if u.failures > cfg.user_free_failures {
                let exp = (u.failures - cfg.user_free_failures).min(16);
                let delay = Duration::from_secs(1u64 << exp).min(cfg.user_max_delay);
                u.next_allowed = now + delay;
            }
        }
        if inner.tally.len() < cfg.max_entries {
            *inner
                .tally
                .entry((user.to_string(), ip, factor))
                .or_insert(0) += 1;
        } else {
            inner.overflow += 1;
        }
    }

    /// Counts an attempt refused by `check` in the summary only: it neither
    /// extends the delay (hammering must not lock a user out for good) nor
    /// costs a hash.
    pub fn throttled(&self, user: &str, ip: IpAddr) {
        self.tally(user, ip, "throttled");
    }

    /// Counts an attempt in the summary only, under `factor` (e.g. a code
    /// refused unchecked because the user's second-factor budget is spent).
    pub fn tally(&self, user: &str, ip: IpAddr, factor: &'static str) {
        let mut inner = self.inner.lock_or_recover();
        if inner.tally.len() < self.cfg.max_entries {
            *inner
                .tally
                .entry((user.to_string(), ip, factor))
                .or_insert(0) += 1;
        } else {
            inner.overflow += 1;
        }
    }

    /// A full login clears that user's delay from that network.
    pub fn success(&self, user: &str, ip: IpAddr) {
        let mut inner = self.inner.lock_or_recover();
        inner.users.remove(&(user.to_string(), Net::of(ip)));
    }

    /// Takes the failures tallied since the last call, plus the overflow count.
    pub fn drain_tally(&self) -> (Vec<FailureTally>, u32) {
        let mut inner = self.inner.lock_or_recover();
        let overflow = std::mem::take(&mut inner.overflow);
        let mut v: Vec<FailureTally> = inner
            .tally
            .drain()
            .map(|((user, source, factor), count)| FailureTally {
                user,
                source,
                factor,
                count,
            })
            .collect();
        v.sort_by(|a, b| (&a.user, a.source, a.factor).cmp(&(&b.user, b.source, b.factor)));
        (v, overflow)
    }
}

fn purge(inner: &mut Inner, cfg: &ThrottleConfig, now: Instant) {
    inner
        .users
        .retain(|_, u| now.duration_since(u.last) <= cfg.user_quiet_reset || u.next_allowed > now);
    inner.nets.retain(|_, n| {
        now.duration_since(n.window_start) <= cfg.net_window
            || n.blocked_until.is_some_and(|b| b > now)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn delay_grows_is_capped_and_is_per_network() {
        let t = Throttle::new(ThrottleConfig::default());
        let now = Instant::now();
        let me = ip("10.1.1.5");
        for _ in 0..5 {
            t.failure("admin", me, "password", now);
        }
        assert_eq!(
            t.check("admin", me, now),
            Verdict::Allow,
            "five free failures"
        );
        t.failure("admin", me, "password", now);
        assert_eq!(
            t.check("admin", me, now),
            Verdict::Wait(Duration::from_secs(2))
        );
        for _ in 0..20 {
            t.failure("admin", me, "password", now);
        }
        assert_eq!(
            t.check("admin", me, now),
            Verdict::Wait(Duration::from_secs(60)),
            "capped"
        );
        // Same /24: same budget. Another network and another user: unaffected.
        assert!(matches!(
            t.check("admin", ip("10.1.1.200"), now),
            Verdict::Wait(_)
        ));
        assert_eq!(t.check("admin", ip("10.1.2.5"), now), Verdict::Allow);
        assert_eq!(t.check("bob", me, now), Verdict::Allow);
        assert_eq!(
            t.check("admin", me, now + Duration::from_secs(61)),
            Verdict::Allow,
            "not locked out for good"
        );
        t.success("admin", me);
        assert_eq!(t.check("admin", me, now), Verdict::Allow);
    }

    #[test]
    fn a_noisy_network_is_blocked_for_a_while() {
        let t = Throttle::new(ThrottleConfig::default());
        let now = Instant::now();
        for i in 0..50 {
            t.failure(&format!("u{i}"), ip("192.0.2.7"), "password", now);
        }
        assert!(matches!(
            t.check("anyone", ip("192.0.2.99"), now),
            Verdict::Blocked(_)
        ));
        assert_eq!(t.check("anyone", ip("192.0.3.1"), now), Verdict::Allow);
        assert_eq!(
            t.check("anyone", ip("192.0.2.99"), now + Duration::from_secs(601)),
            Verdict::Allow
        );
    }

    #[test]
    fn ipv6_uses_the_64() {
        let t = Throttle::new(ThrottleConfig {
            net_max_failures: 2,
            ..Default::default()
        });
        let now = Instant::now();
        t.failure("a", ip("2001:db8:1:2::1"), "totp", now);
        t.failure("b", ip("2001:db8:1:2:ffff::9"), "totp", now);
        assert!(matches!(
            t.check("c", ip("2001:db8:1:2::77"), now),
            Verdict::Blocked(_)
        ));
        assert_eq!(t.check("c", ip("2001:db8:1:3::1"), now), Verdict::Allow);
    }

    #[test]
    fn tally_is_summarised_and_bounded() {
        let t = Throttle::new(ThrottleConfig {
            max_entries: 2,
            ..Default::default()
        });
        let now = Instant::now();
        t.failure("a", ip("10.0.0.1"), "password", now);
        t.failure("a", ip("10.0.0.1"), "password", now);
        t.failure("b", ip("10.0.0.1"), "totp", now);
        t.failure("c", ip("10.0.0.1"), "totp", now);
        let (v, overflow) = t.drain_tally();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0],
            FailureTally {
                user: "a".into(),
                source: ip("10.0.0.1"),
                factor: "password",
                count: 2
            }
        );
        assert_eq!(overflow, 1);
        assert!(t.drain_tally().0.is_empty());
    }
}
