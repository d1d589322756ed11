//! Live sessions and their cancel tokens: the kill switch acts here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct LiveSession {
    pub id: String,
    pub user: String,
    pub target: String,
    pub login: String,
    pub source: String,
    pub started_ms: i64,
    pub cancel: CancellationToken,
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

    pub fn list(&self) -> Vec<LiveSession> {
        self.inner
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Cancels every live session the predicate matches; returns how many.
    pub fn cancel_where(&self, pred: impl Fn(&LiveSession) -> bool) -> usize {
        let Ok(m) = self.inner.lock() else { return 0 };
        let mut n = 0;
        for s in m.values().filter(|s| pred(s)) {
            s.cancel.cancel();
            n += 1;
        }
        n
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
            started_ms: 0,
            cancel: CancellationToken::new(),
        };
        r.insert(mk("1", "alice"));
        r.insert(mk("2", "bob"));
        assert_eq!(r.cancel_where(|s| s.user == "alice"), 1);
        let l = r.list();
        assert!(
            l.iter()
                .find(|s| s.id == "1")
                .unwrap()
                .cancel
                .is_cancelled()
        );
        assert!(
            !l.iter()
                .find(|s| s.id == "2")
                .unwrap()
                .cancel
                .is_cancelled()
        );
        r.remove("1");
        assert_eq!(r.list().len(), 1);
    }
}
