//! The bastion's audit key (Ed25519) that signs recording trailers.
//!
//! The private key is a 32-byte seed file (mode 0600); `<path>.pub` beside it
//! holds the public key in base64, which is what `verify` is given.

use super::{RecordingError, Result, io_err};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::rngs::OsRng;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

fn key_err(path: &Path, reason: impl Into<String>) -> RecordingError {
    RecordingError::Key {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// `<path>.pub`: the suffix is appended, not swapped for the extension.
pub fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

pub fn public_base64(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

/// Loads the audit key, or creates it (and its `.pub`) when absent. A key
/// readable by group or others is refused: it could forge any recording.
pub fn load_or_create(path: &Path) -> Result<SigningKey> {
    let fresh = SigningKey::generate(&mut OsRng);
    let key = match crate::secret_file::write_new(path, fresh.as_bytes()) {
        Ok(()) => fresh,
        // Another process may have won the race: its key is the one to use.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_seed(path)?,
        Err(e) => return Err(io_err(path)(e)),
    };
    let pub_path = public_path(path);
    if !pub_path.exists() {
        let text = format!("{}\n", public_base64(&key.verifying_key()));
        std::fs::write(&pub_path, text).map_err(io_err(&pub_path))?;
    }
    Ok(key)
}

fn read_seed(path: &Path) -> Result<SigningKey> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mode = file.metadata().map_err(io_err(path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_err(
            path,
            format!("mode {mode:o} lets others read it; chmod 600"),
        ));
    }
    let mut seed = Zeroizing::new(Vec::with_capacity(33));
    // One byte past 32 is enough to tell a wrong-sized file.
    (&file)
        .take(33)
        .read_to_end(&mut seed)
        .map_err(io_err(path))?;
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
        seed.as_slice()
            .try_into()
            .map_err(|_| key_err(path, "must hold exactly 32 bytes"))?,
    );
    Ok(SigningKey::from_bytes(&seed))
}

/// Accepts the path of a `.pub` file or the base64 text itself.
pub fn load_public(path_or_base64: &str) -> Result<VerifyingKey> {
    let path = Path::new(path_or_base64);
    let text = if path.is_file() {
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(4096).read_to_string(&mut text))
            .map_err(io_err(path))?;
        text
    } else {
        path_or_base64.to_owned()
    };
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| key_err(path, "not a file, nor base64 public key text"))?;
    let bytes: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| key_err(path, "a public key is 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| key_err(path, "not a valid Ed25519 public key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_loads_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.key");
        let key = load_or_create(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create(&path).expect("load");
        assert_eq!(key.to_bytes(), again.to_bytes());

        let pub_path = public_path(&path);
        let from_file = load_public(&pub_path.display().to_string()).expect("pub file");
        assert_eq!(from_file, key.verifying_key());
        let text = public_base64(&key.verifying_key());
        assert_eq!(load_public(&text).expect("base64"), key.verifying_key());
    }

    #[test]
    fn refuses_bad_key_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("short.key");
        std::fs::write(&path, [1u8; 31]).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(
            load_or_create(&path),
            Err(RecordingError::Key { .. })
        ));

        let open = dir.path().join("open.key");
        std::fs::write(&open, [1u8; 32]).expect("write");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            load_or_create(&open),
            Err(RecordingError::Key { .. })
        ));

        assert!(load_public("not base64!").is_err());
        assert!(load_public(&B64.encode([0u8; 31])).is_err());
    }
}
