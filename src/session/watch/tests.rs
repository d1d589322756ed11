//! The watcher's lifecycle with paused time and no store: warnings, the
//! deadline, a revocation, a narrowed grant, a store hiccup, a cancel.

use super::*;
use crate::sync::MutexExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Answers `before` for the first `flip_after` re-checks, then `after`.
struct Grants {
    before: Result<Result<Allow, Deny>, String>,
    after: Result<Result<Allow, Deny>, String>,
    flip_after: usize,
    calls: AtomicUsize,
}

impl Recheck for Grants {
    async fn recheck(&self) -> Result<Result<Allow, Deny>, String> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.flip_after {
            self.before.clone()
        } else {
            self.after.clone()
        }
    }
}

#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

impl Holder for Seen {
    fn warn(&self, text: &str) {
        self.0.lock_or_recover().push(format!("warn {text}"));
    }
    fn narrowed(&self, now: Permissions) {
        let mut v = self.0.lock_or_recover();
        let line = format!("perms {}", now.names());
        if v.last() != Some(&line) {
            v.push(line);
        }
    }
    async fn end(&self, reason: String, text: String) {
        self.0
            .lock_or_recover()
            .push(format!("end {reason} | {text}"));
    }
}

/// Wall time that moves with tokio's (paused) clock.
fn clock() -> impl Fn() -> Timestamp + Send {
    let (base, t0) = (Timestamp::now(), tokio::time::Instant::now());
    move || base + (tokio::time::Instant::now() - t0)
}

fn allow(permissions: Permissions, deadline: Option<(Timestamp, EndCause)>) -> Allow {
    Allow {
        grant_id: "g1".into(),
        via: "user".into(),
        login: "root".into(),
        permissions,
        deadline,
    }
}

fn steady(a: Allow) -> Grants {
    Grants {
        before: Ok(Ok(a.clone())),
        after: Ok(Ok(a)),
        flip_after: usize::MAX,
        calls: AtomicUsize::new(0),
    }
}

fn needs(deadline: Option<(Timestamp, EndCause)>) -> Needs {
    Needs {
        deadline,
        channel: None,
        what: "this session",
    }
}

#[tokio::test(start_paused = true)]
async fn warns_once_per_threshold_then_ends_at_the_deadline() {
    let now = clock();
    let at = now() + SignedDuration::from_secs(400);
    let d = Some((at, EndCause::WindowCloses));
    let grants = steady(allow(Permissions::session_default(), d));
    let seen = Seen::default();
    let t0 = tokio::time::Instant::now();
    watch(needs(d), &grants, &seen, &CancellationToken::new(), now).await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(400) && took < Duration::from_millis(400_500),
        "{took:?}"
    );
    let v = seen.0.into_inner().unwrap();
    let warns: Vec<_> = v.iter().filter(|l| l.starts_with("warn")).collect();
    assert_eq!(warns.len(), 2, "{v:#?}");
    assert!(warns[0].contains("this session ends in 300 s"), "{v:#?}");
    assert!(
        warns[1].contains("ends in 60 s") || warns[1].contains("ends in 59 s"),
        "{v:#?}"
    );
    let last = v.last().unwrap();
    assert!(
        last.starts_with("end the access window closes | this session has ended"),
        "{last}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_revoked_grant_ends_it_within_one_recheck() {
    let now = clock();
    let a = allow(Permissions::session_default(), None);
    let grants = Grants {
        before: Ok(Ok(a.clone())),
        after: Ok(Err(Deny::NoGrant {
            target: "web01".into(),
        })),
        flip_after: 3,
        calls: AtomicUsize::new(0),
    };
    let seen = Seen::default();
    let t0 = tokio::time::Instant::now();
    watch(needs(None), &grants, &seen, &CancellationToken::new(), now).await;
    // Three re-checks allowed it (2 s apart); the fourth ends it.
    let took = t0.elapsed();
    assert!(took <= RECHECK * 4 + TICK, "{took:?}");
    let v = seen.0.into_inner().unwrap();
    assert!(
        v.last()
            .unwrap()
            .contains("end grant withdrawn: you have no grant for target web01"),
        "{v:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_forward_ends_when_its_grant_drops_forwarding_a_session_only_narrows() {
    let mut with = Permissions::session_default();
    with.local_forward = true;
    let without = Permissions::session_default();
    for forward in [true, false] {
        let grants = Grants {
            before: Ok(Ok(allow(with.clone(), None))),
            after: Ok(Ok(allow(without.clone(), None))),
            flip_after: 1,
            calls: AtomicUsize::new(0),
        };
        let n = Needs {
            deadline: None,
            channel: forward.then_some((ChannelKind::DirectTcpip, "port forwarding")),
            what: if forward {
                "this forward"
            } else {
                "this session"
            },
        };
        let seen = Seen::default();
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            stop.cancel();
        });
        watch(n, &grants, &seen, &cancel, clock()).await;
        let v = seen.0.into_inner().unwrap();
        if forward {
            assert!(
                v.last()
                    .unwrap()
                    .contains("end grant withdrawn: port forwarding no longer allowed"),
                "{v:#?}"
            );
        } else {
            assert!(v.iter().all(|l| !l.starts_with("end")), "{v:#?}");
            assert_eq!(v.last().unwrap(), &format!("perms {}", without.names()));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_hiccup_keeps_the_last_decision_and_the_deadline_still_holds() {
    let now = clock();
    let at = now() + SignedDuration::from_secs(30);
    let d = Some((at, EndCause::GrantExpires));
    let grants = Grants {
        before: Ok(Ok(allow(Permissions::session_default(), d))),
        after: Err("database is down".into()),
        flip_after: 1,
        calls: AtomicUsize::new(0),
    };
    let seen = Seen::default();
    let t0 = tokio::time::Instant::now();
    watch(needs(d), &grants, &seen, &CancellationToken::new(), now).await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(31),
        "{took:?}"
    );
    assert!(
        grants.calls.load(Ordering::SeqCst) > 5,
        "the re-checks stopped"
    );
    let v = seen.0.into_inner().unwrap();
    assert!(
        v.last().unwrap().starts_with("end the grant expires"),
        "{v:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_ends_the_watch_without_ending_the_holder() {
    let grants = steady(allow(Permissions::session_default(), None));
    let seen = Seen::default();
    let cancel = CancellationToken::new();
    cancel.cancel();
    watch(needs(None), &grants, &seen, &cancel, clock()).await;
    assert!(
        seen.0
            .into_inner()
            .unwrap()
            .iter()
            .all(|l| !l.starts_with("end"))
    );
}

/// With no deadline near, the watcher wakes once per re-check, not every
/// tick: idle sessions by the thousand cost a wake-up each every 2 s.
#[tokio::test(start_paused = true)]
async fn with_no_deadline_near_it_wakes_once_per_recheck() {
    let looks = std::sync::Arc::new(AtomicUsize::new(0));
    let far = {
        let (clock, looks) = (clock(), looks.clone());
        move || {
            looks.fetch_add(1, Ordering::SeqCst);
            clock()
        }
    };
    let at = Timestamp::now() + SignedDuration::from_secs(3600);
    let d = Some((at, EndCause::GrantExpires));
    let grants = steady(allow(Permissions::session_default(), d));
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(20)).await;
        stop.cancel();
    });
    watch(needs(d), &grants, &Seen::default(), &cancel, far).await;
    // Two looks at the clock per wake-up (the pause and the deadline).
    let wakes = looks.load(Ordering::SeqCst) / 2;
    assert!(wakes <= 11, "{wakes} wake-ups in 20 s");
    let calls = grants.calls.load(Ordering::SeqCst);
    assert!((9..=10).contains(&calls), "{calls} re-checks in 20 s");
}
