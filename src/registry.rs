//! Live sessions and their cancel tokens: the kill switch acts here.

use crate::sync::MutexExt;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How the connection tells its client why it is being ended: run by `kill`
/// itself, so a mass kill reaches each client's SSH session directly instead
/// of first waking every connection task. `true` if the message was queued.
pub type Tell = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// Why and when a session was killed; written once, by the first kill.
/// Its token tells the connection task to disconnect the client *first*;
/// the session's own cancel token (bridges, recorders, upstream) follows once
/// the transport is cut, so a mass kill is not slowed by teardown work.
#[derive(Default)]
pub struct KillNote {
    note: OnceLock<(String, Instant)>,
    token: CancellationToken,
    tell: OnceLock<Tell>,
    told: AtomicBool,
    closed: OnceLock<Instant>,
    /// The registry's count of kills whose transports are not closed yet,
    /// and whether this note is counted there (`UNCOUNTED`, `COUNTED`,
    /// `SETTLED`).
    in_flight: OnceLock<Arc<InFlight>>,
    counted: AtomicU8,
}

const UNCOUNTED: u8 = 0;
const COUNTED: u8 = 1;
const SETTLED: u8 = 2;

impl std::fmt::Debug for KillNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KillNote")
            .field("note", &self.note)
            .field("killed", &self.is_killed())
            .field("told", &self.told())
            .finish_non_exhaustive()
    }
}

impl KillNote {
    /// Records the first kill's reason (later kills keep the first), tells
    /// the client through the connection's `Tell` if it has one, and wakes
    /// the connection task. `true` for the first kill.
    pub fn kill(&self, reason: &str, at: Instant) -> bool {
        let first = self.note.set((reason.to_string(), at)).is_ok();
        if first
            && self.closed.get().is_none()
            && let Some(c) = self.in_flight.get()
            && self
                .counted
                .compare_exchange(UNCOUNTED, COUNTED, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            c.count.fetch_add(1, Ordering::SeqCst);
        }
        if first
            && let Some(tell) = self.tell.get()
            && tell(reason)
        {
            self.told.store(true, Ordering::SeqCst);
        }
        self.token.cancel();
        first
    }

    /// Set once by the connection; a kill before it is told by the task.
    pub fn on_kill(&self, tell: Tell) {
        let _ = self.tell.set(tell);
    }

    /// Whether `kill` already queued the disconnect for the client.
    pub fn told(&self) -> bool {
        self.told.load(Ordering::SeqCst)
    }

    /// A token cancelled by the kill (a child: cancelling it kills nothing).
    pub fn halt(&self) -> CancellationToken {
        self.token.child_token()
    }

    pub fn is_killed(&self) -> bool {
        self.token.is_cancelled()
    }

    pub async fn killed(&self) {
        self.token.cancelled().await
    }

    pub fn reason(&self) -> Option<&str> {
        self.note.get().map(|(r, _)| r.as_str())
    }

    pub fn requested_at(&self) -> Option<Instant> {
        self.note.get().map(|(_, at)| *at)
    }

    /// Notes when the killed session's transport was closed (the first call
    /// counts): the end of the kill latency.
    pub fn closed(&self) {
        let _ = self.closed.set(Instant::now());
        self.settle();
    }

    /// Counted among the registry's kills in flight from its kill on.
    fn count_in(&self, in_flight: Arc<InFlight>) {
        let _ = self.in_flight.set(in_flight);
    }

    /// No longer a kill in flight (once).
    fn settle(&self) {
        if self
            .counted
            .compare_exchange(COUNTED, SETTLED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
            && let Some(c) = self.in_flight.get()
            && c.count.fetch_sub(1, Ordering::SeqCst) == 1
        {
            c.none.notify_waiters();
        }
    }

    pub fn closed_at(&self) -> Option<Instant> {
        self.closed.get().copied()
    }
}

impl Drop for KillNote {
    /// A killed thing whose transport was never noted closed (a forward, a
    /// listener) stops counting when it is gone.
    fn drop(&mut self) {
        self.settle();
    }
}

/// An authenticated connection. `target` and `login` are empty until one is
/// chosen (a menu or forwarding-only connection).
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub id: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub source: String,
    pub source_ip: IpAddr,
    pub started_ms: i64,
    pub cancel: CancellationToken,
    pub kill: Arc<KillNote>,
    /// What it is: "target" (a `USER+TARGET` connection), "connection"
    /// (a plain `USER` one), "forward" (one `-L/-W/-D` connection, to a TCP
    /// target or through an SSH target), "remote-forward" (one connection
    /// through `-R`), "remote-listener" (a `-R` listener), "agent" (one
    /// agent channel): `session::live`.
    pub kind: &'static str,
    /// Lines for the user's terminal (deadline warnings, a coming
    /// shutdown); `None` where no terminal is bridged.
    pub notices: Option<tokio::sync::broadcast::Sender<bytes::Bytes>>,
    /// Bytes moved so far each way: the very counters its bridge or relay
    /// adds to (relaxed atomics, shared), read when it is listed.
    pub bytes: Arc<dyn Moved>,
}

/// What a live thing moved so far, read when it is listed. Implemented
/// (in `session`) by the counters its bridge or relay adds to, so the
/// registry holds no data-path type.
pub trait Moved: Send + Sync + std::fmt::Debug {
    /// Bytes client to destination, and back.
    fn moved(&self) -> (u64, u64);
}

impl LiveSession {
    /// Bytes moved so far: client to destination, and back.
    pub fn bytes_moved(&self) -> (u64, u64) {
        self.bytes.moved()
    }

    pub fn subject(&self) -> crate::policy::Subject<'_> {
        crate::policy::Subject {
            user: Some(&self.user),
            target: (!self.target.is_empty()).then_some(self.target.as_str()),
            source: self.source_ip,
            session: Some(&self.id),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Registry {
    inner: Arc<Mutex<HashMap<String, LiveSession>>>,
    /// Killed sessions whose client transport is not closed yet.
    kills_in_flight: Arc<InFlight>,
}

/// Killed sessions whose client transport is not closed yet, and a wake-up
/// for the tasks waiting for none: at 10,000 killed sessions, polling the
/// count every 25 ms was 400,000 timer wake-ups a second.
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    none: tokio::sync::Notify,
}

impl Registry {
    pub fn insert(&self, s: LiveSession) {
        s.kill.count_in(self.kills_in_flight.clone());
        self.inner.lock_or_recover().insert(s.id.clone(), s);
    }

    /// Waits `at_least`, then until no killed session's transport is still
    /// open, or `at_most` has passed. A killed session's teardown (upstream,
    /// recording's signed end, rows, audit) waits here, so a mass kill
    /// spends the CPU on telling every client first: at 10,000 sessions the
    /// first teardowns had begun before the last clients were told.
    pub async fn kills_settled(&self, at_least: Duration, at_most: Duration) {
        let until = tokio::time::Instant::now() + at_most;
        tokio::time::sleep(at_least).await;
        let f = &self.kills_in_flight;
        loop {
            // Registered before the count is read: a settle in between
            // still wakes it.
            let none = f.none.notified();
            tokio::pin!(none);
            none.as_mut().enable();
            if f.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            if tokio::time::timeout_at(until, none).await.is_err() {
                return;
            }
        }
    }

    /// Killed sessions whose client transport is not closed yet.
    pub fn kills_in_flight(&self) -> usize {
        self.kills_in_flight.count.load(Ordering::SeqCst)
    }

    pub fn remove(&self, id: &str) {
        self.inner.lock_or_recover().remove(id);
    }

    pub fn get(&self, id: &str) -> Option<LiveSession> {
        self.inner.lock_or_recover().get(id).cloned()
    }

    pub fn list(&self) -> Vec<LiveSession> {
        self.inner.lock_or_recover().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock_or_recover().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Kills every live session the predicate matches, noting why; returns
    /// the ids killed now (sessions already killed are not counted again).
    pub fn kill_where(
        &self,
        reason: impl Fn(&LiveSession) -> Option<String>,
        at: Instant,
    ) -> Vec<String> {
        self.doomed(reason)
            .into_iter()
            .filter(|d| d.note.kill(&d.why, at))
            .map(|d| d.id)
            .collect()
    }

    /// The live sessions, not yet killed, that the predicate matches, and
    /// why: for a caller that kills them in batches (`KillNote::kill`).
    pub fn doomed(&self, reason: impl Fn(&LiveSession) -> Option<String>) -> Vec<Doomed> {
        self.inner
            .lock_or_recover()
            .values()
            .filter(|s| !s.cancel.is_cancelled() && !s.kill.is_killed())
            .filter_map(|s| {
                reason(s).map(|why| Doomed {
                    id: s.id.clone(),
                    note: s.kill.clone(),
                    why,
                })
            })
            .collect()
    }
}

/// A session about to be killed.
pub struct Doomed {
    pub id: String,
    pub note: Arc<KillNote>,
    pub why: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Nothing;

    impl Moved for Nothing {
        fn moved(&self) -> (u64, u64) {
            (0, 0)
        }
    }

    fn mk(id: &str, user: &str) -> LiveSession {
        LiveSession {
            id: id.into(),
            user: user.into(),
            target: "t".into(),
            login: "l".into(),
            source: "s".into(),
            source_ip: "127.0.0.1".parse().unwrap(),
            started_ms: 0,
            cancel: CancellationToken::new(),
            notices: None,
            kind: "target",
            kill: Arc::default(),
            bytes: Arc::new(Nothing),
        }
    }

    #[test]
    fn cancel_matching_only() {
        let r = Registry::default();
        r.insert(mk("1", "alice"));
        r.insert(mk("2", "bob"));
        let at = Instant::now();
        let why = |s: &LiveSession| (s.user == "alice").then(|| "locked".to_string());
        assert_eq!(r.kill_where(why, at), vec!["1".to_string()]);
        assert!(
            r.kill_where(why, at).is_empty(),
            "a killed session is not killed twice"
        );
        assert_eq!(r.get("1").unwrap().kill.reason(), Some("locked"));
        let l = r.list();
        assert!(l.iter().find(|s| s.id == "1").unwrap().kill.is_killed());
        assert!(!l.iter().find(|s| s.id == "2").unwrap().kill.is_killed());
        r.remove("1");
        assert_eq!(r.list().len(), 1);
    }

    #[test]
    fn kills_are_in_flight_until_their_transport_closes_or_they_are_gone() {
        let r = Registry::default();
        let (a, b, c) = (mk("a", "alice"), mk("b", "bob"), mk("c", "carol"));
        let (ka, kb) = (a.kill.clone(), b.kill.clone());
        r.insert(a);
        r.insert(b);
        r.insert(c);
        assert_eq!(r.kills_in_flight(), 0);
        let why = |_: &LiveSession| Some("locked".to_string());
        assert_eq!(r.kill_where(why, Instant::now()).len(), 3);
        assert_eq!(r.kills_in_flight(), 3);
        // A second kill does not count again.
        ka.kill("again", Instant::now());
        assert_eq!(r.kills_in_flight(), 3);
        ka.closed();
        ka.closed();
        assert_eq!(r.kills_in_flight(), 2);
        kb.closed();
        assert_eq!(r.kills_in_flight(), 1);
        // carol's note is only in the registry: gone with it.
        r.remove("c");
        assert_eq!(r.kills_in_flight(), 0);
        // Closed before any kill: never counted.
        let d = mk("d", "dave");
        let kd = d.kill.clone();
        r.insert(d);
        kd.closed();
        r.kill_where(why, Instant::now());
        assert_eq!(r.kills_in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn kills_settled_wakes_when_the_last_transport_closes_or_at_most() {
        let r = Registry::default();
        let (a, b) = (mk("a", "alice"), mk("b", "bob"));
        let (ka, kb) = (a.kill.clone(), b.kill.clone());
        r.insert(a);
        r.insert(b);
        r.kill_where(|_| Some("locked".to_string()), Instant::now());
        let (ms, at_most) = (Duration::from_millis, Duration::from_secs(5));
        let t0 = tokio::time::Instant::now();
        let waiter = {
            let r = r.clone();
            tokio::spawn(async move { r.kills_settled(ms(300), at_most).await })
        };
        tokio::time::sleep(ms(100)).await;
        ka.closed();
        tokio::time::sleep(ms(400)).await;
        assert!(!waiter.is_finished(), "one kill is still in flight");
        kb.closed();
        waiter.await.unwrap();
        assert_eq!(t0.elapsed(), ms(500), "woken by the last close");
        // Nothing in flight: `at_least` only.
        let t1 = tokio::time::Instant::now();
        r.kills_settled(ms(300), at_most).await;
        assert_eq!(t1.elapsed(), ms(300));
        // A kill whose transport never closes: `at_most`.
        let c = mk("c", "carol");
        r.insert(c);
        r.kill_where(|_| Some("locked".to_string()), Instant::now());
        let t2 = tokio::time::Instant::now();
        r.kills_settled(ms(300), at_most).await;
        assert_eq!(t2.elapsed(), at_most);
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // poisons (or reads) the raw lock
    fn kill_tells_once_with_the_first_reason() {
        let note = KillNote::default();
        let heard = Arc::new(Mutex::new(Vec::<String>::new()));
        let h = heard.clone();
        note.on_kill(Box::new(move |why| {
            h.lock().unwrap().push(why.to_string());
            true
        }));
        assert!(!note.told());
        note.kill("first", Instant::now());
        note.kill("second", Instant::now());
        assert!(note.is_killed() && note.told());
        assert_eq!(*heard.lock().unwrap(), vec!["first".to_string()]);
        assert_eq!(note.reason(), Some("first"));
    }

    #[test]
    fn the_kill_halts_at_once_and_a_halt_kills_nothing() {
        // Taken before the kill (a bridge starts long before it): halted by it.
        let note = KillNote::default();
        let halt = note.halt();
        assert!(!halt.is_cancelled());
        note.kill("locked", Instant::now());
        assert!(halt.is_cancelled());
        // A bridge that cancels its own halt does not kill the session.
        let other = KillNote::default();
        other.halt().cancel();
        assert!(!other.is_killed());
    }

    #[test]
    fn a_tell_that_cannot_queue_leaves_it_to_the_task() {
        let note = KillNote::default();
        note.on_kill(Box::new(|_| false));
        note.kill("locked", Instant::now());
        assert!(note.is_killed() && !note.told());
    }

    /// A thread that panicked while holding the registry must not turn the
    /// kill switch off: inserts, lookups and kills go on (issue 16).
    #[test]
    #[allow(clippy::disallowed_methods)] // poisons (or reads) the raw lock
    fn a_poisoned_registry_still_inserts_and_kills() {
        let r = Registry::default();
        r.insert(mk("1", "alice"));
        let inner = r.inner.clone();
        let poisoner = std::thread::spawn(move || {
            let _held = inner.lock().unwrap();
            panic!("poisoning the registry on purpose");
        });
        assert!(poisoner.join().is_err());
        assert!(r.inner.is_poisoned());

        r.insert(mk("2", "alice"));
        assert_eq!(r.len(), 2, "the insert after the poison was kept");
        assert!(r.get("2").is_some());
        let why = |s: &LiveSession| (s.user == "alice").then(|| "locked".to_string());
        let mut killed = r.kill_where(why, Instant::now());
        killed.sort();
        assert_eq!(killed, vec!["1".to_string(), "2".to_string()]);
        assert!(r.list().iter().all(|s| s.kill.is_killed()));
        r.remove("1");
        assert_eq!(r.len(), 1);
    }
}
