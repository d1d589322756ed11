//! The second-factor budget: how many codes may be checked for one user,
//! whatever the source address. Pure: the time is passed in.
//!
//! Only someone holding a user's first factor reaches the code prompt, and
//! with it an attacker can open as many connections from as many networks
//! as they like, each with several guesses. So the budget belongs to the
//! user alone, and a place in it is *reserved* (one lock, check and take
//! together) before a code is evaluated; a right code gives its place back.
//!
//! Two rules, per user:
//! - at most `failures` codes are checked in any sliding `window`;
//! - past `failures` in a streak, each further check must wait after the
//!   previous one for a delay that doubles (`window / failures`, twice
//!   that, ... at most `window`). A streak ends after `4 × window` without
//!   a wrong code.
//!
//! A refused attempt changes nothing, so hammering never lengthens a delay;
//! the longest wait is one window, so nobody is locked out for good. An
//! attacker who holds the first factor can keep the budget spent, and with
//! it delay the user: that is the price of making the code unguessable, and
//! it is visible (failure summaries, `totp-budget` in the audit trail).

use crate::sync::MutexExt;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct BudgetConfig {
    /// Codes checked per user per window before delays start.
    pub failures: u32,
    pub window: Duration,
    /// Bound on remembered users (only users whose first factor verified).
    pub max_entries: usize,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            failures: 10,
            window: Duration::from_secs(15 * 60),
            max_entries: 100_000,
        }
    }
}

/// The answer to "may a code be checked for this user now?".
#[derive(Debug)]
pub enum Budget {
    /// Yes: a place is taken; give it back with `refund` if the code was right.
    Check(Reservation),
    /// No: not before this long. Nothing was taken.
    Wait(Duration),
}

/// One place in a user's budget. Deliberately not `Clone`: it is given back
/// at most once.
#[derive(Debug)]
pub struct Reservation {
    user: String,
    at: Instant,
}

#[derive(Default)]
struct Entry {
    /// Checks within the last window, oldest first (at most `failures`).
    recent: VecDeque<Instant>,
    /// Checks since the streak began (quiet for `4 × window` ends it).
    streak: u32,
    last: Option<Instant>,
}

pub struct SecondFactorBudget {
    cfg: BudgetConfig,
    users: Mutex<HashMap<String, Entry>>,
}

impl SecondFactorBudget {
    pub fn new(cfg: BudgetConfig) -> SecondFactorBudget {
        SecondFactorBudget {
            cfg: BudgetConfig {
                failures: cfg.failures.max(1),
                window: cfg.window.max(Duration::from_secs(1)),
                ..cfg
            },
            users: Mutex::default(),
        }
    }

    fn quiet(&self) -> Duration {
        self.cfg.window * 4
    }

    /// Takes a place for one code check of `user`, or says how long to wait.
    pub fn reserve(&self, user: &str, now: Instant) -> Budget {
        let mut users = self.users.lock_or_recover();
        if users.len() >= self.cfg.max_entries && !users.contains_key(user) {
            let quiet = self.quiet();
            users.retain(|_, e| e.last.is_some_and(|l| now.duration_since(l) < quiet));
            if users.len() >= self.cfg.max_entries {
                // Only users whose first factor verified get here, so this
                // is all but unreachable; refusing is the safe side.
                return Budget::Wait(self.cfg.window);
            }
        }
        let e = users.entry(user.to_string()).or_default();
        let window = self.cfg.window;
        while e
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            e.recent.pop_front();
        }
        if e.last.is_none_or(|l| now.duration_since(l) >= self.quiet()) {
            e.streak = 0;
        }
        let mut wait = Duration::ZERO;
        if e.recent.len() >= self.cfg.failures as usize
            && let Some(oldest) = e.recent.front()
        {
            wait = (*oldest + window).saturating_duration_since(now);
        }
        if let (Some(delay), Some(last)) = (self.delay(e.streak), e.last) {
            wait = wait.max((last + delay).saturating_duration_since(now));
        }
        if !wait.is_zero() {
            return Budget::Wait(wait);
        }
        e.recent.push_back(now);
        e.streak = e.streak.saturating_add(1);
        e.last = Some(now);
        Budget::Check(Reservation {
            user: user.to_string(),
            at: now,
        })
    }

    /// The spacing the next check needs after a streak of `streak` checks.
    fn delay(&self, streak: u32) -> Option<Duration> {
        let over = streak.checked_sub(self.cfg.failures)?;
        let base = self.cfg.window / self.cfg.failures;
        Some(
            base.saturating_mul(1u32 << over.min(16))
                .min(self.cfg.window),
        )
    }

    /// The code was right: its check does not count against the user.
    pub fn refund(&self, r: Reservation) {
        let mut users = self.users.lock_or_recover();
        if let Some(e) = users.get_mut(&r.user) {
            if let Some(i) = e.recent.iter().position(|t| *t == r.at) {
                e.recent.remove(i);
            }
            e.streak = e.streak.saturating_sub(1);
            if e.last == Some(r.at) {
                e.last = e.recent.back().copied();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(failures: u32, window_secs: u64) -> SecondFactorBudget {
        SecondFactorBudget::new(BudgetConfig {
            failures,
            window: Duration::from_secs(window_secs),
            max_entries: 10,
        })
    }

    fn wait(b: &Budget) -> Option<Duration> {
        match b {
            Budget::Check(_) => None,
            Budget::Wait(d) => Some(*d),
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn ten_per_window_then_doubling_delays_never_a_lock() {
        let b = budget(10, 900);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(wait(&b.reserve("nina", t0)).is_none());
        }
        // The eleventh waits for the oldest to leave the window ...
        assert_eq!(wait(&b.reserve("nina", t0)), Some(900 * S));
        // ... and asking again changes nothing.
        for _ in 0..100 {
            let _ = b.reserve("nina", t0 + 100 * S);
        }
        assert_eq!(wait(&b.reserve("nina", t0 + 100 * S)), Some(800 * S));
        // Another user, and any source: their own budget.
        assert!(wait(&b.reserve("olga", t0)).is_none());
        // After the window: allowed again, but the streak goes on: each
        // further check waits after the previous one: 90 s (long past),
        // then 180 s, 360 s, 720 s, then 900 s.
        let mut t = t0 + 900 * S;
        assert!(wait(&b.reserve("nina", t)).is_none());
        for d in [180, 360, 720, 900, 900] {
            assert_eq!(wait(&b.reserve("nina", t)), Some(d * S), "after {t:?}");
            t += d * S;
            assert!(wait(&b.reserve("nina", t)).is_none());
        }
        // Quiet for four windows ends the streak.
        let t = t + 3600 * S;
        for _ in 0..10 {
            assert!(wait(&b.reserve("nina", t)).is_none());
        }
    }

    #[test]
    fn a_right_code_gives_its_place_back() {
        let b = budget(3, 60);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(wait(&b.reserve("a", t0)).is_none());
        }
        let Budget::Check(r) = b.reserve("a", t0) else {
            panic!("third place")
        };
        assert!(wait(&b.reserve("a", t0)).is_some());
        b.refund(r);
        assert!(wait(&b.reserve("a", t0)).is_none());
    }

    #[test]
    fn parallel_reservations_never_exceed_the_budget() {
        let b = std::sync::Arc::new(budget(10, 900));
        let t0 = Instant::now();
        let granted = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        if let Budget::Check(_) = b.reserve("x", t0) {
                            granted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        assert_eq!(granted.into_inner(), 10);
    }

    #[test]
    fn the_table_is_bounded_and_fails_closed() {
        let b = budget(2, 60);
        let t0 = Instant::now();
        for i in 0..10 {
            assert!(wait(&b.reserve(&format!("u{i}"), t0)).is_none());
        }
        assert!(wait(&b.reserve("new", t0)).is_some(), "full: refused");
        // Entries quiet for four windows make room.
        assert!(wait(&b.reserve("new", t0 + 241 * S)).is_none());
    }
}
