//! Per-user caps on audit rows a user can cause at will: forwarded
//! connections (two rows each) and just-in-time access requests. Pure
//! (`Instant` passed in); the gateway and the menu hold them in `App`.
//!
//! Forwards past the cap are not refused (a browser behind `ssh -D` opens
//! dozens a minute) but summarised: the first one over the cap writes one
//! durable `forward.summarising` row before it is dialled, later ones are
//! counted in memory and written as one `forward.summary` row per user per
//! flush (every 30 s). Access requests past the cap are refused.

use crate::sync::MutexExt;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket per key: `burst` at once, then one per `every`.
pub struct RateCap {
    burst: f64,
    every: Duration,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Keys kept at most; full buckets are dropped first when it is reached.
const MAX_KEYS: usize = 10_000;

impl RateCap {
    pub fn new(burst: u32, every: Duration) -> RateCap {
        RateCap {
            burst: f64::from(burst.max(1)),
            every: every.max(Duration::from_millis(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; `false` when its bucket is empty.
    pub fn take(&self, key: &str, now: Instant) -> bool {
        let mut b = self.buckets.lock_or_recover();
        let (burst, every) = (self.burst, self.every.as_secs_f64());
        let refill = |(t, at): (f64, Instant)| {
            (t + now.saturating_duration_since(at).as_secs_f64() / every).min(burst)
        };
        if b.len() >= MAX_KEYS && !b.contains_key(key) {
            b.retain(|_, v| refill(*v) < burst);
            if b.len() >= MAX_KEYS {
                return false;
            }
        }
        let entry = b.entry(key.to_string()).or_insert((burst, now));
        let tokens = refill(*entry);
        if tokens >= 1.0 {
            *entry = (tokens - 1.0, now);
            true
        } else {
            *entry = (tokens, now);
            false
        }
    }
}

/// The caps a running bastion holds (in `App`).
pub struct Caps {
    /// Forwards audited one by one: 100 at once, then one per 2 s per user.
    pub forwards: RateCap,
    /// Forwards past that cap, summarised per user per flush.
    pub summary: ForwardSummary,
    /// Access requests: 10 at once, then one per 6 minutes per user.
    pub requests: RateCap,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps {
            forwards: RateCap::new(100, Duration::from_secs(2)),
            summary: ForwardSummary::default(),
            requests: RateCap::new(10, Duration::from_secs(360)),
        }
    }
}

/// Destinations named in one summary row; the rest are counted as "other".
const DESTINATIONS: usize = 16;

#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct UserForwards {
    pub count: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub destinations: BTreeMap<String, u64>,
}

/// Forwards opened past a user's cap, until the next flush.
#[derive(Default)]
pub struct ForwardSummary {
    inner: Mutex<(HashMap<String, UserForwards>, HashSet<String>)>,
}

impl ForwardSummary {
    /// Counts forward `id` of `user` to `destination`; `true` when it is
    /// the user's first since the last flush (write the durable marker).
    pub fn opened(&self, user: &str, id: &str, destination: &str) -> bool {
        let mut g = self.inner.lock_or_recover();
        let (users, open) = &mut *g;
        open.insert(id.to_string());
        let first = !users.contains_key(user);
        let u = users.entry(user.to_string()).or_default();
        u.count += 1;
        let known = u.destinations.contains_key(destination);
        let key = if known || u.destinations.len() < DESTINATIONS {
            destination.to_string()
        } else {
            "other".to_string()
        };
        *u.destinations.entry(key).or_default() += 1;
        first
    }

    /// Adds a summarised forward's bytes; `false` when `id` was audited
    /// on its own (write its `forward.closed` row).
    pub fn closed(&self, user: &str, id: &str, up: u64, down: u64) -> bool {
        let mut g = self.inner.lock_or_recover();
        let (users, open) = &mut *g;
        if !open.remove(id) {
            return false;
        }
        let u = users.entry(user.to_string()).or_default();
        u.bytes_up += up;
        u.bytes_down += down;
        true
    }

    /// Takes the per-user totals since the last call.
    pub fn drain(&self) -> Vec<(String, UserForwards)> {
        let mut g = self.inner.lock_or_recover();
        let mut v: Vec<_> = g.0.drain().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// The row of a `forward.summarising` marker or `forward.summary`.
pub(super) fn summary_row(
    user: &str,
    marker: bool,
    f: &UserForwards,
) -> (&'static str, String, String, String, serde_json::Value) {
    let kind = if marker {
        "forward.summarising"
    } else {
        "forward.summary"
    };
    let detail = json!({ "forwards": f.count, "bytes_up": f.bytes_up, "bytes_down": f.bytes_down,
                         "destinations": f.destinations });
    (
        kind,
        user.to_string(),
        String::new(),
        user.to_string(),
        detail,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_per_key_and_refill() {
        let cap = RateCap::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!((0..3).all(|_| cap.take("a", t0)));
        assert!(!cap.take("a", t0));
        assert!(cap.take("b", t0), "another user has their own bucket");
        assert!(!cap.take("a", t0 + Duration::from_secs(9)));
        assert!(cap.take("a", t0 + Duration::from_secs(20)));
    }

    #[test]
    fn summaries_count_and_only_summarised_closes_are_absorbed() {
        let s = ForwardSummary::default();
        assert!(s.opened("al", "f1", "db01:5432"));
        assert!(!s.opened("al", "f2", "db01:5432"));
        for i in 0..40 {
            s.opened("al", &format!("g{i}"), &format!("h{i}:80"));
        }
        assert!(s.closed("al", "f1", 10, 20));
        assert!(!s.closed("al", "never-summarised", 1, 1));
        let v = s.drain();
        assert_eq!(v.len(), 1);
        let u = &v[0].1;
        assert_eq!((u.count, u.bytes_up, u.bytes_down), (42, 10, 20));
        assert_eq!(u.destinations.len(), DESTINATIONS + 1);
        assert_eq!(u.destinations["db01:5432"], 2);
        assert!(s.drain().is_empty());
    }
}
