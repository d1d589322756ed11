//! Caps on unauthenticated connections, in total and per source address.
//!
//! A place is held from accept until authentication succeeds or the
//! connection ends. When the total cap is reached, the oldest
//! unauthenticated connection is cut to make room: idle and slow-dripping
//! connections are old by nature, while a real login finishes in a fraction
//! of a second, so a flood of held connections cannot keep real users out.
//! A source over its own cap is refused outright.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct PreAuth {
    inner: Arc<Mutex<Counts>>,
    max_total: u32,
    max_per_source: u32,
}

#[derive(Default)]
struct Counts {
    per_source: HashMap<IpAddr, u32>,
    /// Admission order → (source, the connection's cut token).
    slots: BTreeMap<u64, (IpAddr, CancellationToken)>,
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
    /// Admitted after cutting the oldest unauthenticated connection.
    AdmittedByEvicting(IpAddr),
}

impl PreAuth {
    pub fn new(max_total: u32, max_per_source: u32) -> PreAuth {
        PreAuth {
            inner: Arc::default(),
            max_total: max_total.max(1),
            max_per_source,
        }
    }

    pub fn admit(&self, ip: IpAddr) -> Option<(Slot, Admission)> {
        let mut c = self.inner.lock().ok()?;
        let here = c.per_source.get(&ip).copied().unwrap_or(0);
        if here >= self.max_per_source {
            return None;
        }
        let mut admission = Admission::Admitted;
        if c.slots.len() >= self.max_total as usize
            && let Some((_, (old_ip, cut))) = c.slots.pop_first()
        {
            cut.cancel();
            release(&mut c.per_source, old_ip);
            admission = Admission::AdmittedByEvicting(old_ip);
        }
        let seq = c.next;
        c.next += 1;
        let cut = CancellationToken::new();
        c.slots.insert(seq, (ip, cut.clone()));
        *c.per_source.entry(ip).or_insert(0) += 1;
        Some((
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
        self.inner.lock().map(|c| c.slots.len()).unwrap_or(0)
    }
}

fn release(per_source: &mut HashMap<IpAddr, u32>, ip: IpAddr) {
    if let Some(n) = per_source.get_mut(&ip) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            per_source.remove(&ip);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.owner.inner.lock()
            && let Some((ip, _)) = c.slots.remove(&self.seq)
        {
            release(&mut c.per_source, ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_source_cap_refuses_and_total_cap_evicts_the_oldest() {
        let p = PreAuth::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let (s1, _) = p.admit(a).unwrap();
        let (s2, _) = p.admit(a).unwrap();
        assert!(p.admit(a).is_none(), "per-source cap");
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
        assert!(p.admit(a).is_some(), "slot released on drop");
    }
}
