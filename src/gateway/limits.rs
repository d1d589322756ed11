//! Caps on unauthenticated connections, in total and per source address.
//! A slot is held from accept until authentication succeeds or the
//! connection ends, whichever comes first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct PreAuth {
    inner: Arc<Mutex<Counts>>,
    max_total: u32,
    max_per_source: u32,
}

#[derive(Default)]
struct Counts {
    total: u32,
    per_source: HashMap<IpAddr, u32>,
}

/// Releases its place when dropped.
pub struct Slot {
    owner: PreAuth,
    ip: IpAddr,
}

impl PreAuth {
    pub fn new(max_total: u32, max_per_source: u32) -> PreAuth {
        PreAuth {
            inner: Arc::default(),
            max_total,
            max_per_source,
        }
    }

    pub fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let mut c = self.inner.lock().ok()?;
        let here = c.per_source.get(&ip).copied().unwrap_or(0);
        if c.total >= self.max_total || here >= self.max_per_source {
            return None;
        }
        c.total += 1;
        c.per_source.insert(ip, here + 1);
        Some(Slot {
            owner: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.owner.inner.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.per_source.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_source.remove(&self.ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_source_and_total() {
        let p = PreAuth::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = p.admit(a).unwrap();
        let _s2 = p.admit(a).unwrap();
        assert!(p.admit(a).is_none(), "per-source cap");
        let _s3 = p.admit(b).unwrap();
        assert!(p.admit(b).is_none(), "total cap");
        drop(s1);
        assert!(p.admit(a).is_some(), "slot released on drop");
    }
}
