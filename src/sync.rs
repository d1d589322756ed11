//! One policy for poisoned std locks: take the guard back and go on.
//!
//! A std `Mutex`/`RwLock` is poisoned when a thread panicked while holding
//! it. Every lock in this crate guards state that is consistent at every
//! point a panic can happen: critical sections are short, synchronous (a
//! std guard is never held across an `.await`) and each is one insert,
//! remove, push, swap or read. So the data behind a poisoned lock is as
//! good as before the panic, and the only wrong answer is to skip the work:
//! a skipped registry insert is a session the kill switch cannot see, a
//! skipped kill a session that stays up. Locks are taken through these
//! helpers, never with `if let Ok(..) = lock()` (clippy's
//! `disallowed_methods`, set in clippy.toml, holds everyone else to it).
#![allow(clippy::disallowed_methods)] // the one place the raw calls live

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub trait MutexExt<T: ?Sized> {
    /// The guard, recovered from a poisoned lock.
    fn lock_or_recover(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> MutexExt<T> for Mutex<T> {
    fn lock_or_recover(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub trait RwLockExt<T: ?Sized> {
    /// A read guard, recovered from a poisoned lock.
    fn read_or_recover(&self) -> RwLockReadGuard<'_, T>;
    /// A write guard, recovered from a poisoned lock.
    fn write_or_recover(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T: ?Sized> RwLockExt<T> for RwLock<T> {
    fn read_or_recover(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_or_recover(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_hands_back_its_data() {
        let m = std::sync::Arc::new(Mutex::new(vec![1]));
        let rw = std::sync::Arc::new(RwLock::new(1));
        let (m2, rw2) = (m.clone(), rw.clone());
        let poisoner = std::thread::spawn(move || {
            let _a = m2.lock().unwrap();
            let _b = rw2.write().unwrap();
            panic!("poisoning on purpose");
        });
        assert!(poisoner.join().is_err());
        assert!(m.is_poisoned() && rw.is_poisoned());
        m.lock_or_recover().push(2);
        assert_eq!(*m.lock_or_recover(), vec![1, 2]);
        *rw.write_or_recover() += 1;
        assert_eq!(*rw.read_or_recover(), 2);
    }
}
