//! Parsing and naming of SSH keys (russh's ssh-key types stay in this room).

use russh::keys::{Algorithm, HashAlg, PublicKey};

/// Parses an OpenSSH one-line public key (`ssh-ed25519 AAAA... comment`).
pub fn parse_public(line: &str) -> Result<PublicKey, String> {
    PublicKey::from_openssh(line.trim()).map_err(|e| e.to_string())
}

/// `SHA256:...` as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The key without its comment, as stored for pinning.
pub fn to_openssh(key: &PublicKey) -> String {
    let mut k = key.clone();
    k.set_comment("");
    k.to_openssh().unwrap_or_default().trim().to_string()
}

/// Checks that text is a private key we can use, without keeping it.
pub fn validate_private(text: &str) -> Result<String, String> {
    russh::keys::decode_secret_key(text, None)
        .map(|k| k.algorithm().to_string())
        .map_err(|e| format!("not a usable unencrypted private key: {e}"))
}

pub(super) fn host_key_algorithms(pinned: &PublicKey) -> Vec<Algorithm> {
    match pinned.algorithm() {
        Algorithm::Rsa { .. } => vec![
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
        ],
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test";

    #[test]
    fn parse_and_fingerprint() {
        let k = parse_public(ED).unwrap();
        assert!(fingerprint(&k).starts_with("SHA256:"));
        assert!(!to_openssh(&k).contains("test"));
        assert!(parse_public("ssh-ed25519 garbage").is_err());
    }
}
