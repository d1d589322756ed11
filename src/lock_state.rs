//! What the kill switch keeps in memory, so the accept loop, logins, dials
//! and channel opens decide without waiting on anything: the locks in
//! force, the blocked source networks, and the automatic rules' failure
//! windows and webhook slots. Plain state under std locks; the operations
//! that fill and act on it (`lockdown`) take the whole `App`, which holds
//! this: keeping it apart keeps `app` below `lockdown`.

use crate::policy::{Lock, LockScope, Subject};
use crate::sync::{MutexExt, RwLockExt};
use ipnet::IpNet;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Failure windows kept at most; the oldest key is dropped past this.
const MAX_KEYS: usize = 10_000;
/// Webhook deliveries in flight at most; more are dropped and audited.
const MAX_DELIVERIES: usize = 32;

/// The locks in force, cached for decisions that must not wait.
#[derive(Debug, Default)]
pub struct Locks {
    cache: RwLock<Vec<Lock>>,
    pub(crate) epoch: AtomicI64,
    /// Made here while the database could not store them: enforced here
    /// whatever a reload says, written when the database answers again.
    pending: RwLock<Vec<Lock>>,
}

impl Locks {
    /// The lock in force covering the subject, if any.
    pub fn covering(&self, s: &Subject<'_>, now_ms: i64) -> Option<Lock> {
        Lock::first_covering(&self.cache.read_or_recover(), s, now_ms).cloned()
    }

    /// A source lock in force covering `ip`: such connections are dropped
    /// before the handshake.
    pub fn source_lock(&self, ip: std::net::IpAddr, now_ms: i64) -> Option<Lock> {
        self.cache
            .read_or_recover()
            .iter()
            .find(|l| {
                l.in_force(now_ms) && matches!(&l.scope, LockScope::Source(n) if n.contains(&ip))
            })
            .cloned()
    }

    pub(crate) fn add(&self, l: Lock) {
        let mut c = self.cache.write_or_recover();
        c.retain(|x| x.id != l.id);
        c.push(l);
    }

    pub(crate) fn replace(&self, mut locks: Vec<Lock>, epoch: i64) {
        for p in self.pending.read_or_recover().iter() {
            if !locks.iter().any(|l| l.id == p.id) {
                locks.push(p.clone());
            }
        }
        *self.cache.write_or_recover() = locks;
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// A lock the database did not take: kept in force here until stored.
    pub(crate) fn add_pending(&self, l: Lock) {
        self.pending.write_or_recover().push(l.clone());
        self.add(l);
    }

    /// The locks waiting to be stored, oldest first.
    pub fn pending(&self) -> Vec<Lock> {
        self.pending.read_or_recover().clone()
    }

    /// Lock `id` is stored now.
    pub(crate) fn stored(&self, id: &str) {
        self.pending.write_or_recover().retain(|l| l.id != id);
    }

    /// The next reload reads every lock, whatever the epoch says (after a
    /// database outage, or a lost notification connection).
    pub fn forget_epoch(&self) {
        self.epoch.store(-1, Ordering::SeqCst);
    }

    pub fn in_force(&self, now_ms: i64) -> Vec<Lock> {
        let c = self.cache.read_or_recover();
        c.iter().filter(|l| l.in_force(now_ms)).cloned().collect()
    }
}

#[derive(Debug, Default)]
pub struct SourceBlocks {
    nets: RwLock<Vec<(IpNet, Option<i64>)>>,
}

impl SourceBlocks {
    pub fn replace(&self, nets: Vec<(IpNet, Option<i64>)>) {
        *self.nets.write_or_recover() = nets;
    }

    /// Whether `ip` is in a block that has not expired at `now_ms`.
    pub fn is_blocked(&self, ip: IpAddr, now_ms: i64) -> bool {
        self.nets
            .read_or_recover()
            .iter()
            .any(|(net, expires)| net.contains(&ip) && expires.is_none_or(|e| e > now_ms))
    }
}

/// The state rules keep between events.
#[derive(Debug)]
pub struct Rules {
    failures: Mutex<HashMap<(usize, String), VecDeque<Instant>>>,
    pub(crate) deliveries: Arc<tokio::sync::Semaphore>,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            failures: Mutex::default(),
            deliveries: Arc::new(tokio::sync::Semaphore::new(MAX_DELIVERIES)),
        }
    }
}

impl Rules {
    /// Records a failure; true when it completes a burst (the window then
    /// restarts, so one burst fires once).
    pub(crate) fn burst(
        &self,
        rule: usize,
        key: String,
        count: u32,
        within: Duration,
        now: Instant,
    ) -> bool {
        let mut m = self.failures.lock_or_recover();
        if m.len() >= MAX_KEYS && !m.contains_key(&(rule, key.clone())) {
            let oldest = m
                .iter()
                .min_by_key(|(_, v)| v.back().copied())
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                m.remove(&k);
            }
        }
        let times = m.entry((rule, key)).or_default();
        times.push_back(now);
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > within)
        {
            times.pop_front();
        }
        if times.len() >= count as usize {
            times.clear();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic while the lock cache was held must not make new locks
    /// invisible: a lock added after the poison covers its user.
    #[test]
    #[allow(clippy::disallowed_methods)] // poisons (or reads) the raw lock
    fn a_poisoned_lock_cache_still_takes_and_answers_locks() {
        let locks = Arc::new(Locks::default());
        let l2 = locks.clone();
        let poisoner = std::thread::spawn(move || {
            let _held = l2.cache.write().unwrap();
            panic!("poisoning the lock cache on purpose");
        });
        assert!(poisoner.join().is_err());
        assert!(locks.cache.is_poisoned());
        locks.add(Lock {
            id: "l1".into(),
            scope: LockScope::User("alice".into()),
            reason: "r".into(),
            author: "a".into(),
            created_ms: 0,
            expires_ms: None,
            lifted_ms: None,
            lifted_by: None,
        });
        let alice = Subject {
            user: Some("alice"),
            target: None,
            source: "10.0.0.1".parse().unwrap(),
            session: None,
        };
        let bob = Subject {
            user: Some("bob"),
            ..alice
        };
        assert_eq!(locks.covering(&alice, 1).map(|l| l.id), Some("l1".into()));
        assert!(locks.covering(&bob, 1).is_none());
        assert_eq!(locks.in_force(1).len(), 1);
    }
}
