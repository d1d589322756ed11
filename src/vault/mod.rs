//! Envelope encryption of upstream secrets.
//!
//! Each secret is sealed under its own random data key (XChaCha20-Poly1305);
//! the data key is sealed under the key-encryption key (KEK) read from a 0600
//! file. Both seals carry additional data naming the row and the purpose, so a
//! ciphertext copied to another row or used for another purpose fails to open.
//! Each envelope names its KEK (a truncated SHA-256 of the key), so keys can
//! be rotated without downtime: nodes first learn the new key as an accepted
//! one, then seal with it while still opening the old, `kek rewrap`
//! re-seals every data key under it (the bodies stay as they are), and only
//! then is the old key dropped. See `accepted_kek_files` in the config.

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
    #[error(
        "stored secret was sealed under key-encryption key {0}, which is neither kek_file nor one of accepted_kek_files"
    )]
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
    /// Seals, and opens.
    kek: Zeroizing<[u8; KEY_LEN]>,
    kek_id: String,
    /// Open only: keys being rotated in or out.
    accepted: Vec<(String, Zeroizing<[u8; KEY_LEN]>)>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let accepted: Vec<&str> = self.accepted.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Vault")
            .field("kek_id", &self.kek_id)
            .field("accepted", &accepted)
            .finish()
    }
}

impl Vault {
    pub fn from_key(key: [u8; KEY_LEN]) -> Vault {
        Vault {
            kek_id: key_id(&key),
            kek: Zeroizing::new(key),
            accepted: Vec::new(),
        }
    }

    /// Also opens (never seals) envelopes under these keys.
    pub fn accepting(mut self, keys: Vec<[u8; KEY_LEN]>) -> Vault {
        for k in keys {
            let id = key_id(&k);
            if id != self.kek_id && !self.accepted.iter().any(|(a, _)| *a == id) {
                self.accepted.push((id, Zeroizing::new(k)));
            }
        }
        self
    }

    /// The KEK file (created with a fresh key when absent) and the accepted
    /// key files (which must exist).
    pub fn load(kek_file: &Path, accepted: &[std::path::PathBuf]) -> Result<Vault, VaultError> {
        let mut keys = Vec::new();
        for p in accepted {
            keys.push(*read_key(p)?);
        }
        Ok(Vault::open_or_create(kek_file)?.accepting(keys))
    }

    /// The KEK file and the accepted key files, all of which must exist:
    /// for commands that only read, which must not make a key.
    pub fn load_existing(
        kek_file: &Path,
        accepted: &[std::path::PathBuf],
    ) -> Result<Vault, VaultError> {
        let mut keys = Vec::new();
        for p in accepted {
            keys.push(*read_key(p)?);
        }
        Ok(Vault::from_key(*read_key(kek_file)?).accepting(keys))
    }

    /// Opens the KEK file, creating it (mode 0600) with a fresh random key if absent.
    pub fn open_or_create(path: &Path) -> Result<Vault, VaultError> {
        if !path.exists() {
            match create_key_file(path) {
                Ok(_) => {}
                // Another node or process created it first: use theirs.
                Err(VaultError::WriteKek { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Vault::from_key(*read_key(path)?))
    }

    /// The id envelopes sealed now carry.
    pub fn id(&self) -> &str {
        &self.kek_id
    }

    /// Whether envelopes under this KEK id can be opened.
    pub fn knows(&self, kek_id: &str) -> bool {
        self.key(kek_id).is_some()
    }

    fn key(&self, kek_id: &str) -> Option<&[u8; KEY_LEN]> {
        if kek_id == self.kek_id {
            return Some(&self.kek);
        }
        self.accepted
            .iter()
            .find(|(id, _)| id == kek_id)
            .map(|(_, k)| &**k)
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
        let e = Envelope::parse(sealed)?;
        let aad = additional_data(purpose, row);
        let dek = self.data_key(&e, &aad)?;
        Ok(Secret::new(open_with(&dek, &aad, &e.body)?))
    }

    /// The envelope with its data key sealed under the current KEK (the
    /// body untouched); `None` when it already is. Fails, changing nothing,
    /// when the envelope does not open: a re-wrap never launders a forgery.
    pub fn rewrap(
        &self,
        purpose: Purpose,
        row: &str,
        sealed: &str,
    ) -> Result<Option<String>, VaultError> {
        let e = Envelope::parse(sealed)?;
        let aad = additional_data(purpose, row);
        let dek = self.data_key(&e, &aad)?;
        // Only proof that it opens; the plaintext is wiped at once.
        drop(Zeroizing::new(open_with(&dek, &aad, &e.body)?));
        if e.kek_id == self.kek_id {
            return Ok(None);
        }
        let wrapped = seal_with(&self.kek, &aad, dek.as_slice());
        Ok(Some(format!(
            "{VERSION}:{}:{}:{}",
            self.kek_id,
            B64.encode(wrapped),
            B64.encode(&e.body)
        )))
    }

    fn data_key(&self, e: &Envelope, aad: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
        let kek = self
            .key(&e.kek_id)
            .ok_or_else(|| VaultError::UnknownKek(e.kek_id.clone()))?;
        let dek = Zeroizing::new(open_with(kek, aad, &e.wrapped)?);
        let dek: [u8; KEY_LEN] = dek
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Malformed)?;
        Ok(Zeroizing::new(dek))
    }
}

/// The KEK id an envelope names, if it is one.
pub fn kek_id_of(sealed: &str) -> Option<String> {
    Envelope::parse(sealed).ok().map(|e| e.kek_id)
}

/// `pcv1:KEK_ID:WRAPPED_DEK:BODY`.
struct Envelope {
    kek_id: String,
    wrapped: Vec<u8>,
    body: Vec<u8>,
}

impl Envelope {
    fn parse(sealed: &str) -> Result<Envelope, VaultError> {
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
        Ok(Envelope {
            kek_id: kek_id.to_string(),
            wrapped: B64.decode(wrapped).map_err(|_| VaultError::Malformed)?,
            body: B64.decode(body).map_err(|_| VaultError::Malformed)?,
        })
    }
}

/// Writes a fresh random key (0600, never over an existing file); its id.
pub fn create_key_file(path: &Path) -> Result<String, VaultError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    crate::secret_file::write_new(path, key.as_ref()).map_err(|source| VaultError::WriteKek {
        path: path.display().to_string(),
        source,
    })?;
    Ok(key_id(&key))
}

fn read_key(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    let shown = path.display().to_string();
    check_permissions(path)?;
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| VaultError::ReadKek {
        path: shown.clone(),
        source,
    })?);
    let key: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| VaultError::BadKek { path: shown })?;
    Ok(Zeroizing::new(key))
}

fn key_id(key: &[u8; KEY_LEN]) -> String {
    hex::encode(&Sha256::digest(key)[..8])
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
    fn a_rotation_rewraps_under_the_new_key_and_keeps_the_body() {
        let old = vault();
        let s = old.seal(Purpose::TotpSecret, "totp:alice", b"secret");
        let new = Vault::from_key([9u8; 32]).accepting(vec![[7u8; 32]]);
        // The new node opens the old envelope before any re-wrap.
        let p = new.open(Purpose::TotpSecret, "totp:alice", &s).unwrap();
        assert_eq!(p.expose(), b"secret");
        let r = new
            .rewrap(Purpose::TotpSecret, "totp:alice", &s)
            .unwrap()
            .unwrap();
        assert_eq!(kek_id_of(&r).unwrap(), new.id());
        assert_eq!(r.rsplit(':').next(), s.rsplit(':').next(), "body kept");
        assert!(
            new.rewrap(Purpose::TotpSecret, "totp:alice", &r)
                .unwrap()
                .is_none()
        );
        // Without the old key, only the re-wrapped envelope opens.
        let alone = Vault::from_key([9u8; 32]);
        assert_eq!(
            alone
                .open(Purpose::TotpSecret, "totp:alice", &r)
                .unwrap()
                .expose(),
            b"secret"
        );
        assert!(matches!(
            alone.open(Purpose::TotpSecret, "totp:alice", &s),
            Err(VaultError::UnknownKek(_))
        ));
        // Still bound to its row: a re-wrap for another row fails.
        assert!(matches!(
            new.rewrap(Purpose::TotpSecret, "totp:bob", &s),
            Err(VaultError::Open)
        ));
    }

    #[test]
    fn a_tampered_body_is_not_rewrapped() {
        let s = vault().seal(Purpose::UpstreamPassword, "r", b"x");
        let (head, body) = s.rsplit_once(':').unwrap();
        let mut b = B64.decode(body).unwrap();
        let n = b.len() - 1;
        b[n] ^= 1;
        let forged = format!("{head}:{}", B64.encode(b));
        let new = Vault::from_key([9u8; 32]).accepting(vec![[7u8; 32]]);
        assert!(matches!(
            new.rewrap(Purpose::UpstreamPassword, "r", &forged),
            Err(VaultError::Open)
        ));
    }

    #[test]
    fn accepted_key_files_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("old-kek");
        assert!(matches!(
            Vault::load(&dir.path().join("kek"), &[missing]),
            Err(VaultError::ReadKek { .. })
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
