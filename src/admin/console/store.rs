//! Console sessions, in memory: a random cookie value (kept only as its
//! SHA-256), the signed-in user, the role and the CSRF token; each ends at
//! sign-out or after the configured idle time. A restart signs everyone out.
//! Also the short-lived half-way state between the password and the code.

use super::role::Role;
use crate::sync::MutexExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a verified password waits for its code.
pub const PENDING_TTL: Duration = Duration::from_secs(300);

/// A signed-in console user.
#[derive(Debug, Clone)]
pub struct Signed {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    pub source: IpAddr,
    /// Short, non-secret name of this console session for the audit trail.
    pub id: String,
    last_used: Instant,
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
    signed: Mutex<HashMap<String, Signed>>,
    pending: Mutex<HashMap<String, Pending>>,
}

/// 256 random bits, hex.
pub fn secret() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}

/// The map key: a lookup's timing says nothing about the cookie value.
fn key(cookie: &str) -> String {
    hex::encode(Sha256::digest(cookie.as_bytes()))
}

/// Equal-length comparison whose time does not depend on where bytes differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// Starts a console session; returns its cookie value.
    pub fn open(&self, user: &str, role: Role, source: IpAddr, now: Instant) -> (String, Signed) {
        let cookie = secret();
        let k = key(&cookie);
        let s = Signed {
            user: user.to_string(),
            role,
            csrf: secret(),
            source,
            id: k[..12].to_string(),
            last_used: now,
        };
        self.signed.lock_or_recover().insert(k, s.clone());
        (cookie, s)
    }

    /// The session behind a cookie, its idle clock restarted. `Err` with
    /// the session when it had idled out (removed; the caller audits it).
    pub fn touch(
        &self,
        cookie: &str,
        idle: Duration,
        now: Instant,
    ) -> Option<Result<Signed, Signed>> {
        let mut map = self.signed.lock_or_recover();
        let k = key(cookie);
        let s = map.get_mut(&k)?;
        if now.saturating_duration_since(s.last_used) > idle {
            return map.remove(&k).map(Err);
        }
        s.last_used = now;
        Some(Ok(s.clone()))
    }

    /// Ends a session (sign-out).
    pub fn close(&self, cookie: &str) -> Option<Signed> {
        self.signed.lock_or_recover().remove(&key(cookie))
    }

    /// Removes sessions idle past `idle`; returns them to be audited.
    pub fn sweep(&self, idle: Duration, now: Instant) -> Vec<Signed> {
        let mut map = self.signed.lock_or_recover();
        let old: Vec<String> = map
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_used) > idle)
            .map(|(k, _)| k.clone())
            .collect();
        old.iter().filter_map(|k| map.remove(k)).collect()
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

    pub fn count(&self) -> usize {
        self.signed.lock_or_recover().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_sessions_end_and_active_ones_stay() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let idle = Duration::from_secs(60);
        let (c, _) = s.open("alice", Role::Auditor, ip, t0);
        assert!(matches!(
            s.touch(&c, idle, t0 + Duration::from_secs(59)),
            Some(Ok(_))
        ));
        // The clock restarted at the last use.
        assert!(matches!(
            s.touch(&c, idle, t0 + Duration::from_secs(118)),
            Some(Ok(_))
        ));
        assert!(matches!(
            s.touch(&c, idle, t0 + Duration::from_secs(179)),
            Some(Err(_))
        ));
        assert!(s.touch(&c, idle, t0).is_none(), "gone once idled out");
        assert!(s.touch("forged", idle, t0).is_none());
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
