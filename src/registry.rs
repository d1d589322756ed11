//! Live sessions and their cancel tokens: the kill switch acts here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why and when a session was killed; written once, by the first kill.
/// Its token tells the connection task to disconnect the client *first*;
/// the session's own cancel token (bridges, recorders, upstream) follows once
/// the transport is cut, so a mass kill is not slowed by teardown work.
#[derive(Debug, Default)]
pub struct KillNote {
    note: OnceLock<(String, Instant)>,
    token: CancellationToken,
}

impl KillNote {
    /// Records the first kill's reason (later kills keep the first) and
    /// wakes the connection task.
    pub fn kill(&self, reason: &str, at: Instant) {
        let _ = self.note.set((reason.to_string(), at));
        self.token.cancel();
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
}

impl LiveSession {
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
}

impl Registry {
    pub fn insert(&self, s: LiveSession) {
        if let Ok(mut m) = self.inner.lock() {
            m.insert(s.id.clone(), s);
        }
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut m) = self.inner.lock() {
            m.remove(id);
        }
    }

    pub fn get(&self, id: &str) -> Option<LiveSession> {
        self.inner.lock().ok().and_then(|m| m.get(id).cloned())
    }

    pub fn list(&self) -> Vec<LiveSession> {
        self.inner
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|m| m.len()).unwrap_or(0)
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
        let Ok(m) = self.inner.lock() else {
            return Vec::new();
        };
        let mut killed = Vec::new();
        for s in m.values() {
            if s.cancel.is_cancelled() || s.kill.is_killed() {
                continue;
            }
            if let Some(why) = reason(s) {
                s.kill.kill(&why, at);
                killed.push(s.id.clone());
            }
        }
        killed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_matching_only() {
        let r = Registry::default();
        let mk = |id: &str, user: &str| LiveSession {
            id: id.into(),
            user: user.into(),
            target: "t".into(),
            login: "l".into(),
            source: "s".into(),
            source_ip: "127.0.0.1".parse().unwrap(),
            started_ms: 0,
            cancel: CancellationToken::new(),
            kill: Arc::default(),
        };
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
}
