//! First-factor checks: passwords (argon2id) and the user's public keys.
//!
//! Hashing is deliberately slow, so it runs on tokio's blocking pool behind a
//! semaphore: at most `MAX_CONCURRENT_HASHES` at once, and a login that cannot
//! get a slot quickly is refused rather than queued (load is shed, not stored).

pub mod budget;
pub mod login;
pub mod throttle;
pub mod totp;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

pub const MAX_CONCURRENT_HASHES: usize = 4;
const SLOT_WAIT: Duration = Duration::from_secs(2);
/// Longest password we will hash; longer ones are refused unhashed.
pub const MAX_PASSWORD_LEN: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed")]
    Hash,
    #[error("too many logins in progress; try again")]
    Busy,
}

fn argon2() -> Argon2<'static> {
    // OWASP 2023 minimum for argon2id: 19 MiB, 2 iterations, 1 lane.
    // INVARIANT: constant parameters inside argon2's accepted ranges.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a new password (admin CLI; blocking is fine there).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Hash)
}

/// A hash of a random password, verified against when the user is unknown or
/// has no password, so timing does not reveal which users exist.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut pw = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut pw);
        hash_password(&hex::encode(pw)).unwrap_or_default()
    })
}

#[derive(Clone)]
pub struct PasswordChecker {
    slots: Arc<Semaphore>,
}

impl Default for PasswordChecker {
    fn default() -> Self {
        PasswordChecker {
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT_HASHES)),
        }
    }
}

impl PasswordChecker {
    /// Verifies `password` against `stored` (or a dummy when `None`) off the
    /// async runtime. `Ok(false)` for a wrong password or no stored hash.
    pub async fn verify(&self, stored: Option<String>, password: &str) -> Result<bool, AuthError> {
        if password.len() > MAX_PASSWORD_LEN {
            return Ok(false);
        }
        let permit = tokio::time::timeout(SLOT_WAIT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| AuthError::Busy)?
            .map_err(|_| AuthError::Busy)?;
        let real = stored.is_some();
        let hash = stored.unwrap_or_else(|| dummy_hash().to_string());
        let password = Zeroizing::new(password.to_string());
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            PasswordHash::new(&hash)
                .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
                .unwrap_or(false)
        })
        .await
        .map_err(|_| AuthError::Hash)?;
        Ok(ok && real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verify_right_wrong_and_missing() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        let c = PasswordChecker::default();
        assert!(c.verify(Some(h.clone()), "correct horse").await.unwrap());
        assert!(!c.verify(Some(h), "wrong").await.unwrap());
        assert!(!c.verify(None, "anything").await.unwrap());
        assert!(!c.verify(Some("not a hash".into()), "x").await.unwrap());
        assert!(
            !c.verify(None, &"x".repeat(MAX_PASSWORD_LEN + 1))
                .await
                .unwrap()
        );
    }
}
