//! The chain key and each row's keyed hash.
//!
//! hash = HMAC-SHA256(key, canonical(row)), hex. The canonical encoding is
//! unambiguous: a domain tag, seq and time as 8-byte big-endian integers, then
//! kind, actor, source, subject, session, detail and prev_hash, each as a
//! 4-byte big-endian length and its UTF-8 bytes.

use super::AuditError;
use crate::store::{AuditSealer, ChainedRow};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::path::Path;
use zeroize::Zeroizing;

const DOMAIN: &[u8] = b"portcullis-audit-v1";
const KEY_LEN: usize = 32;

/// The 32-byte HMAC key of the chain, from a 0600 file beside the KEK.
pub struct ChainKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

impl ChainKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> ChainKey {
        ChainKey(Zeroizing::new(bytes))
    }

    /// Reads the key, generating it (0600) when the file does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<ChainKey, AuditError> {
        if !path.exists() {
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            rand::rngs::OsRng.fill_bytes(key.as_mut());
            match crate::secret_file::write_new(path, key.as_ref()) {
                Ok(()) => {}
                // Another node or process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(AuditError::WriteKey {
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        Self::load(path)
    }

    /// A MAC of a fixed text made with the key: what the database keeps so
    /// nodes can tell they share the key without anyone storing it.
    pub fn check_value(&self) -> String {
        // INVARIANT: HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref()).expect("hmac key");
        mac.update(b"portcullis-cluster-key-check-v1");
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Reads an existing key; refuses one that group or others can read.
    pub fn load(path: &Path) -> Result<ChainKey, AuditError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display().to_string();
        let read_err = |source| AuditError::ReadKey {
            path: shown.clone(),
            source,
        };
        let mode = std::fs::metadata(path)
            .map_err(read_err)?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(AuditError::KeyPermissions { path: shown, mode });
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(read_err)?);
        let key: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| AuditError::BadKey { path: shown })?;
        Ok(ChainKey::from_bytes(key))
    }

    /// The row's keyed hash as lowercase hex.
    pub fn hash(&self, row: &ChainedRow) -> String {
        // INVARIANT: HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.as_ref()).expect("any key length");
        mac.update(&canonical(row));
        hex::encode(mac.finalize().into_bytes())
    }
}

impl AuditSealer for ChainKey {
    fn seal(&self, row: &ChainedRow) -> String {
        self.hash(row)
    }
}

/// The bytes a row's hash covers (everything but the hash itself).
pub fn canonical(row: &ChainedRow) -> Vec<u8> {
    let fields = [
        &row.kind,
        &row.actor,
        &row.source,
        &row.subject,
        &row.session,
        &row.detail,
        &row.prev_hash,
    ];
    let mut out =
        Vec::with_capacity(DOMAIN.len() + 16 + fields.iter().map(|f| f.len() + 4).sum::<usize>());
    out.extend_from_slice(DOMAIN);
    out.extend_from_slice(&row.seq.to_be_bytes());
    out.extend_from_slice(&row.ts_ms.to_be_bytes());
    for f in fields {
        // Fields are stored as TEXT; a length past u32 cannot come from a row.
        let len = u32::try_from(f.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(f.as_bytes());
    }
    out
}
