//! Host keys of the bastion and users' public keys.

use super::GatewayError;
use crate::upstream::keys;
pub use crate::upstream::keys::fingerprint;
use russh::keys::ssh_key::{EcdsaCurve, HashAlg};
use russh::keys::{Algorithm, PrivateKey, PublicKey};
use std::path::{Path, PathBuf};

/// Loads the configured host keys, or the generated one in the data
/// directory (created on first start, mode 0600).
pub fn load_or_generate(
    configured: &[PathBuf],
    data_dir: &Path,
) -> Result<Vec<PrivateKey>, GatewayError> {
    if !configured.is_empty() {
        return configured.iter().map(|p| load(p)).collect();
    }
    let path = data_dir.join("host_ed25519");
    if !path.exists() {
        let key = write_new_ed25519(&path)?;
        let public = key.public_key().to_openssh().map_err(|e| err(&path, e))?;
        let _ = std::fs::write(path.with_extension("pub"), format!("{public}\n"));
    }
    Ok(vec![load(&path)?])
}

/// A new Ed25519 key written to `path` (which must not exist), mode 0600.
pub(super) fn write_new_ed25519(path: &Path) -> Result<PrivateKey, GatewayError> {
    let key =
        PrivateKey::random(&mut rand010::rng(), Algorithm::Ed25519).map_err(|e| err(path, e))?;
    let pem = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(|e| err(path, e))?;
    crate::secret_file::write_new(path, pem.as_bytes()).map_err(|e| err(path, e))?;
    Ok(key)
}

pub(super) fn load(path: &Path) -> Result<PrivateKey, GatewayError> {
    russh::keys::load_secret_key(path, None).map_err(|e| err(path, e))
}

pub(super) fn err(path: &Path, e: impl std::fmt::Display) -> GatewayError {
    GatewayError::HostKey {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A user's public key checked and normalised for storage:
/// (fingerprint, one-line key without comment).
pub fn parse_user_key(line: &str) -> Result<(String, String), String> {
    let key = keys::parse_public(line).map_err(|e| format!("not an OpenSSH public key: {e}"))?;
    Ok((fingerprint(&key), keys::to_openssh(&key)))
}

/// Whether `key` is one of the stored one-line keys.
pub fn matches_any(key: &PublicKey, stored: &[String]) -> bool {
    stored
        .iter()
        .filter_map(|s| PublicKey::from_openssh(s).ok())
        .any(|k| k.key_data() == key.key_data())
}

/// Host key algorithms offered and signature algorithms announced
/// (server-sig-algs): russh's default list without `ssh-rsa`, whose
/// signatures are SHA-1.
pub const SIGNATURE_ALGORITHMS: &[Algorithm] = &[
    Algorithm::Ed25519,
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];

/// Whether a user's signature algorithm is acceptable: an RSA key signs
/// with rsa-sha2-256/512 only. A client may send `ssh-rsa` although we never
/// announce it, so this is checked on every offer and every signature.
pub fn strong_signature(algorithm: &Algorithm) -> bool {
    !matches!(algorithm, Algorithm::Rsa { hash: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_generate(&[], dir.path()).unwrap();
        let b = load_or_generate(&[], dir.path()).unwrap();
        assert_eq!(a[0].public_key(), b[0].public_key());
        let pubtext = std::fs::read_to_string(dir.path().join("host_ed25519.pub")).unwrap();
        let (fp, _) = parse_user_key(&pubtext).unwrap();
        assert_eq!(fp, fingerprint(a[0].public_key()));
        assert!(matches_any(a[0].public_key(), &[pubtext]));
        assert!(parse_user_key("nonsense").is_err());
    }
}
