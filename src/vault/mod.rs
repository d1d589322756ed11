//! Envelope encryption of upstream secrets.
//!
//! Each secret is sealed under its own random data key (XChaCha20-Poly1305);
//! the data key is sealed under the key-encryption key (KEK) read from a 0600
//! file. Both seals carry additional data naming the row and the purpose, so a
//! ciphertext copied to another row or used for another purpose fails to open.
//! The KEK id in each envelope lets a future rotation re-wrap data keys while
//! old envelopes stay readable.

mod secret;

pub use secret::Secret;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::Path;
use zeroize::Zeroizing;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const VERSION: &str = "pcv1";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot read key-encryption key file {path}: {source}")]
    ReadKek {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create key-encryption key file {path}: {source}")]
    WriteKek {
        path: String,
        source: std::io::Error,
    },
    #[error("key-encryption key file {path} must hold exactly 32 bytes")]
    BadKek { path: String },
    #[error(
        "key-encryption key file {path} is readable by group or others (mode {mode:o}); chmod 600 it"
    )]
    KekPermissions { path: String, mode: u32 },
    #[error("stored secret is malformed")]
    Malformed,
    #[error("stored secret was sealed under another key-encryption key ({0})")]
    UnknownKek(String),
    // Deliberately carries no detail: the cause is either tampering or a wrong key.
    #[error("stored secret failed authentication (tampered, moved to another row, or wrong key)")]
    Open,
}

/// What a sealed value is for; part of the additional data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    UpstreamPassword,
    UpstreamPrivateKey,
    TotpSecret,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::UpstreamPassword => "upstream-password",
            Purpose::UpstreamPrivateKey => "upstream-private-key",
            Purpose::TotpSecret => "totp-secret",
        }
    }
}

pub struct Vault {
    kek: Zeroizing<[u8; KEY_LEN]>,
    kek_id: String,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("kek_id", &self.kek_id)
            .finish()
    }
}

impl Vault {
    pub fn from_key(key: [u8; KEY_LEN]) -> Vault {
        let kek_id = hex::encode(&Sha256::digest(key)[..8]);
        Vault {
            kek: Zeroizing::new(key),
            kek_id,
        }
    }

    /// Opens the KEK file, creating it (mode 0600) with a fresh random key if absent.
    pub fn open_or_create(path: &Path) -> Result<Vault, VaultError> {
        let shown = path.display().to_string();
        if !path.exists() {
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            rand::rngs::OsRng.fill_bytes(key.as_mut());
            crate::secret_file::write_new(path, key.as_ref()).map_err(|source| {
                VaultError::WriteKek {
                    path: shown.clone(),
                    source,
                }
            })?;
        }
        check_permissions(path)?;
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| VaultError::ReadKek {
            path: shown.clone(),
            source,
        })?);
        let key: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::BadKek { path: shown })?;
        Ok(Vault::from_key(key))
    }

    /// Seals `plain` for the row named `row` (e.g. `credential:web01:root`).
    pub fn seal(&self, purpose: Purpose, row: &str, plain: &[u8]) -> String {
        let aad = additional_data(purpose, row);
        let mut dek = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(dek.as_mut());
        let body = seal_with(&dek, &aad, plain);
        let wrapped = seal_with(&self.kek, &aad, dek.as_slice());
        format!(
            "{VERSION}:{}:{}:{}",
            self.kek_id,
            B64.encode(wrapped),
            B64.encode(body)
        )
    }

    pub fn open(
        &self,
        purpose: Purpose,
        row: &str,
        sealed: &str,
    ) -> Result<Secret<Vec<u8>>, VaultError> {
        let mut parts = sealed.split(':');
        let (Some(VERSION), Some(kek_id), Some(wrapped), Some(body), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(VaultError::Malformed);
        };
        if kek_id != self.kek_id {
            return Err(VaultError::UnknownKek(kek_id.to_string()));
        }
        let wrapped = B64.decode(wrapped).map_err(|_| VaultError::Malformed)?;
        let body = B64.decode(body).map_err(|_| VaultError::Malformed)?;
        let aad = additional_data(purpose, row);
        let dek = Zeroizing::new(open_with(&self.kek, &aad, &wrapped)?);
        let dek: &[u8; KEY_LEN] = dek
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Malformed)?;
        Ok(Secret::new(open_with(dek, &aad, &body)?))
    }
}

fn additional_data(purpose: Purpose, row: &str) -> Vec<u8> {
    format!("portcullis/{VERSION}/{}/{row}", purpose.label()).into_bytes()
}

fn seal_with(key: &[u8; KEY_LEN], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    // INVARIANT: XChaCha20-Poly1305 encryption only fails for inputs over 256 GiB.
    let ct = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .expect("plaintext within AEAD limits");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

fn open_with(key: &[u8; KEY_LEN], aad: &[u8], data: &[u8]) -> Result<Vec<u8>, VaultError> {
    if data.len() < NONCE_LEN + 16 {
        return Err(VaultError::Malformed);
    }
    let (nonce, ct) = data.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| VaultError::Open)
}

fn check_permissions(path: &Path) -> Result<(), VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| VaultError::ReadKek {
        path: path.display().to_string(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::KekPermissions {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> Vault {
        Vault::from_key([7u8; 32])
    }

    #[test]
    fn round_trip() {
        let v = vault();
        let s = v.seal(
            Purpose::UpstreamPassword,
            "credential:web01:root",
            b"hunter2",
        );
        assert!(!s.contains("hunter2"));
        let p = v
            .open(Purpose::UpstreamPassword, "credential:web01:root", &s)
            .unwrap();
        assert_eq!(p.expose(), b"hunter2");
    }

    #[test]
    fn bound_to_row_and_purpose() {
        let v = vault();
        let s = v.seal(Purpose::UpstreamPassword, "credential:web01:root", b"x");
        assert!(matches!(
            v.open(Purpose::UpstreamPassword, "credential:web02:root", &s),
            Err(VaultError::Open)
        ));
        assert!(matches!(
            v.open(Purpose::UpstreamPrivateKey, "credential:web01:root", &s),
            Err(VaultError::Open)
        ));
    }

    #[test]
    fn wrong_kek_and_tampering_refused() {
        let s = vault().seal(Purpose::UpstreamPassword, "r", b"x");
        let other = Vault::from_key([8u8; 32]);
        assert!(matches!(
            other.open(Purpose::UpstreamPassword, "r", &s),
            Err(VaultError::UnknownKek(_))
        ));
        let mut t = s.clone().into_bytes();
        let n = t.len() - 3;
        t[n] = if t[n] == b'A' { b'B' } else { b'A' };
        let t = String::from_utf8(t).unwrap();
        assert!(vault().open(Purpose::UpstreamPassword, "r", &t).is_err());
        assert!(matches!(
            vault().open(Purpose::UpstreamPassword, "r", "garbage"),
            Err(VaultError::Malformed)
        ));
    }

    #[test]
    fn kek_file_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/kek");
        let a = Vault::open_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = Vault::open_or_create(&path).unwrap();
        assert_eq!(a.kek_id, b.kek_id);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Vault::open_or_create(&path),
            Err(VaultError::KekPermissions { .. })
        ));
    }
}
