//! Console sessions, in the database (`console_sessions`) so every node
//! and a restarted one know them: a random cookie value, of which the row
//! keeps only the SHA-256; the CSRF token is derived from the cookie value
//! (so a row alone gives neither). Idle time is the row's `last_used_at`;
//! sign-out and idling out delete the row, and idle rows are pruned.
//! Also, in memory, the short-lived half-way state between the password
//! and the code.

use super::role::Role;
use crate::store::console_sessions::ConsoleSessionRow;
use crate::store::{Store, StoreError};
use crate::sync::MutexExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// How long a verified password waits for its code.
pub const PENDING_TTL: Duration = Duration::from_secs(300);
/// The row's idle clock is restarted at most this often (a write per
/// request otherwise): a session may idle out up to this much early.
const TOUCH_EVERY_MS: i64 = 5_000;
/// Idle rows are pruned by this node at most this often.
const PRUNE_EVERY_MS: i64 = 30_000;

/// A signed-in console user.
#[derive(Debug, Clone)]
pub struct Signed {
    pub user: String,
    pub role: Role,
    /// Empty for a session found idle by the pruning (no cookie at hand).
    pub csrf: String,
    pub source: String,
    /// Short, non-secret name of this console session for the audit trail.
    pub id: String,
}

/// A password verified, the code not yet.
#[derive(Debug, Clone)]
pub struct Pending {
    pub user: String,
    pub source: IpAddr,
    created: Instant,
}

#[derive(Default)]
pub struct Sessions {
    pending: Mutex<HashMap<String, Pending>>,
    /// Unix ms of this node's last pruning.
    pruned: AtomicI64,
}

/// 256 random bits, hex.
pub fn secret() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}

/// The row's key: the cookie value itself is never stored.
fn key(cookie: &str) -> String {
    hex::encode(Sha256::digest(cookie.as_bytes()))
}

/// The session's CSRF token, from the cookie value (never stored): a page
/// holding the cookie gets it from `/console/me`; a cross-site request
/// carries the cookie but cannot read the answer.
fn csrf_of(cookie: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"portcullis-console-csrf-v1\0");
    h.update(cookie.as_bytes());
    hex::encode(h.finalize())
}

/// Equal-length comparison whose time does not depend on where bytes differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The row as a session; `None` for a role this binary does not know.
fn signed(row: &ConsoleSessionRow, cookie: Option<&str>) -> Option<Signed> {
    Some(Signed {
        user: row.user.clone(),
        role: Role::parse(&row.role)?,
        csrf: cookie.map(csrf_of).unwrap_or_default(),
        source: row.source.clone(),
        id: row.id_sha256.chars().take(12).collect(),
    })
}

impl Sessions {
    /// Starts a console session (its row first); returns its cookie value.
    pub async fn open(
        &self,
        store: &Store,
        user: &str,
        role: Role,
        source: IpAddr,
        now_ms: i64,
    ) -> Result<(String, Signed), StoreError> {
        let cookie = secret();
        let row = ConsoleSessionRow {
            id_sha256: key(&cookie),
            user: user.to_string(),
            role: role.as_str().to_string(),
            source: source.to_string(),
            created_ms: now_ms,
            last_used_ms: now_ms,
        };
        store.console_session_open(&row).await?;
        let s = Signed {
            user: row.user,
            role,
            csrf: csrf_of(&cookie),
            source: row.source,
            id: row.id_sha256.chars().take(12).collect(),
        };
        Ok((cookie, s))
    }

    /// The session behind a cookie, its idle clock restarted. `Err` with
    /// the session when it had idled out (deleted here; the caller audits it).
    pub async fn touch(
        &self,
        store: &Store,
        cookie: &str,
        idle: Duration,
        now_ms: i64,
    ) -> Result<Option<Result<Signed, Signed>>, StoreError> {
        let k = key(cookie);
        let Some(row) = store.console_session(&k).await? else {
            return Ok(None);
        };
        let idle_before = now_ms.saturating_sub(millis(idle));
        let Some(s) = signed(&row, Some(cookie)) else {
            store.console_session_close(&k).await?;
            return Ok(None);
        };
        if row.last_used_ms < idle_before {
            // Whoever deletes the row reports it (once, on any node).
            return Ok(store.console_session_close(&k).await?.map(|_| Err(s)));
        }
        if now_ms.saturating_sub(row.last_used_ms) >= TOUCH_EVERY_MS
            && !store.console_session_touch(&k, now_ms, idle_before).await?
        {
            // Signed out or pruned meanwhile.
            return Ok(None);
        }
        Ok(Some(Ok(s)))
    }

    /// Ends a session (sign-out).
    pub async fn close(&self, store: &Store, cookie: &str) -> Result<Option<Signed>, StoreError> {
        Ok(store
            .console_session_close(&key(cookie))
            .await?
            .and_then(|r| signed(&r, Some(cookie))))
    }

    /// Deletes sessions idle past `idle` (at most every 30 s per node);
    /// returns them to be audited.
    pub async fn sweep(
        &self,
        store: &Store,
        idle: Duration,
        now_ms: i64,
    ) -> Result<Vec<Signed>, StoreError> {
        let last = self.pruned.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < PRUNE_EVERY_MS
            || self
                .pruned
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(Vec::new());
        }
        let rows = store
            .console_sessions_expire(now_ms.saturating_sub(millis(idle)))
            .await?;
        Ok(rows.iter().filter_map(|r| signed(r, None)).collect())
    }

    /// Remembers a verified password; returns the cookie value naming it.
    pub fn pend(&self, user: &str, source: IpAddr, now: Instant) -> String {
        let cookie = secret();
        let mut map = self.pending.lock_or_recover();
        map.retain(|_, p| now.saturating_duration_since(p.created) <= PENDING_TTL);
        map.insert(
            key(&cookie),
            Pending {
                user: user.to_string(),
                source,
                created: now,
            },
        );
        cookie
    }

    /// The verified password behind a cookie, if recent and from the same address.
    pub fn pending(&self, cookie: &str, source: IpAddr, now: Instant) -> Option<Pending> {
        let map = self.pending.lock_or_recover();
        let p = map.get(&key(cookie))?;
        (now.saturating_duration_since(p.created) <= PENDING_TTL && p.source == source)
            .then(|| p.clone())
    }

    pub fn unpend(&self, cookie: &str) {
        self.pending.lock_or_recover().remove(&key(cookie));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn idle_sessions_end_and_active_ones_stay() {
        let (_d, db) = store().await;
        let s = Sessions::default();
        let t0 = 1_000_000;
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let idle = Duration::from_secs(60);
        let (c, opened) = s.open(&db, "alice", Role::Auditor, ip, t0).await.unwrap();
        let got = s.touch(&db, &c, idle, t0 + 59_000).await.unwrap();
        let Some(Ok(got)) = got else {
            panic!("{got:?}")
        };
        assert_eq!(got.csrf, opened.csrf, "the same CSRF token from the cookie");
        // The clock restarted at the last use.
        assert!(matches!(
            s.touch(&db, &c, idle, t0 + 118_000).await.unwrap(),
            Some(Ok(_))
        ));
        assert!(matches!(
            s.touch(&db, &c, idle, t0 + 179_000).await.unwrap(),
            Some(Err(_))
        ));
        assert!(
            s.touch(&db, &c, idle, t0).await.unwrap().is_none(),
            "gone once idled out"
        );
        assert!(s.touch(&db, "forged", idle, t0).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_row_holds_neither_the_cookie_nor_the_csrf_token() {
        let (_d, db) = store().await;
        let s = Sessions::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (c, signed) = s.open(&db, "alice", Role::Admin, ip, 5).await.unwrap();
        let row = db.console_session(&key(&c)).await.unwrap().unwrap();
        let text = format!("{row:?}");
        assert!(!text.contains(&c) && !text.contains(&signed.csrf), "{text}");
        // The row's key, presented as a cookie, is not the session.
        let idle = Duration::from_secs(60);
        assert!(
            s.touch(&db, &row.id_sha256, idle, 6)
                .await
                .unwrap()
                .is_none()
        );
        // Sign-out ends it for everyone.
        assert!(s.close(&db, &c).await.unwrap().is_some());
        assert!(s.touch(&db, &c, idle, 7).await.unwrap().is_none());
    }

    #[test]
    fn pending_is_bound_to_its_address_and_expires() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let c = s.pend("alice", ip, t0);
        assert!(s.pending(&c, ip, t0).is_some());
        assert!(s.pending(&c, other, t0).is_none());
        assert!(
            s.pending(&c, ip, t0 + PENDING_TTL + Duration::from_secs(1))
                .is_none()
        );
    }
}
