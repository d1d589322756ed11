//! TLS for the admin API: rustls with the aws-lc-rs provider; a configured
//! certificate, or a self-signed one generated once into the data directory
//! and reused; client certificates required when a client CA is configured.

use super::AdminError;
use crate::config::ApiConfig;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const GENERATED_CERT: &str = "api-cert.pem";
pub const GENERATED_KEY: &str = "api-key.pem";

fn tls_err(what: &str, e: impl std::fmt::Display) -> AdminError {
    AdminError::Tls(format!("{what}: {e}"))
}

/// The certificate and key files to serve: configured, or generated once.
pub fn cert_paths(api: &ApiConfig, data_dir: &Path) -> Result<(PathBuf, PathBuf), AdminError> {
    if let (Some(c), Some(k)) = (&api.cert_file, &api.key_file) {
        return Ok((c.clone(), k.clone()));
    }
    let cert = data_dir.join(GENERATED_CERT);
    let key = data_dir.join(GENERATED_KEY);
    if !(cert.exists() && key.exists()) {
        generate(api, &cert, &key)?;
    }
    Ok((cert, key))
}

fn generate(api: &ApiConfig, cert: &Path, key: &Path) -> Result<(), AdminError> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let listen_ip = api.listen.ip();
    if !listen_ip.is_unspecified() && !names.contains(&listen_ip.to_string()) {
        names.push(listen_ip.to_string());
    }
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| tls_err("generating a self-signed certificate", e))?;
    // Each file appears whole or not at all, the certificate last: a bastion
    // stopped half-way through (a signal during its first start) leaves
    // either nothing or a key without a certificate, and the next start
    // generates the pair again instead of refusing to run.
    write_atomically(key, ck.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_atomically(cert, ck.cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert.display(), "generated a self-signed certificate for the admin API");
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AdminError> {
    crate::secret_file::replace(path, bytes, mode)
        .map_err(|e| tls_err(&path.display().to_string(), e))
}

/// SHA-256 of a certificate's DER, as colon-separated hex (what browsers show).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn server_config(
    api: &ApiConfig,
    data_dir: &Path,
) -> Result<Arc<rustls::ServerConfig>, AdminError> {
    let (cert_path, key_path) = cert_paths(api, data_dir)?;
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_err(&cert_path.display().to_string(), e))?;
    let Some(leaf) = certs.first() else {
        return Err(tls_err(&cert_path.display().to_string(), "no certificate"));
    };
    tracing::info!(sha256 = %fingerprint(leaf), "admin API certificate");
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| tls_err(&key_path.display().to_string(), e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("TLS versions", e))?;
    let builder = match &api.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| tls_err("client CA", e))? {
                roots
                    .add(c.map_err(|e| tls_err("client CA", e))?)
                    .map_err(|e| tls_err("client CA", e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_err("client CA", e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_err("certificate and key", e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> ApiConfig {
        crate::config::Config::embedded(None).api
    }

    #[test]
    fn a_key_left_without_its_certificate_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(GENERATED_KEY), "half-written").unwrap();
        let (cert, key) = cert_paths(&api(), dir.path()).unwrap();
        assert!(
            std::fs::read_to_string(&cert)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        let key_text = std::fs::read_to_string(&key).unwrap();
        assert!(key_text.contains("PRIVATE KEY"), "{key_text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        // A second start reuses the pair.
        let before = std::fs::read(&cert).unwrap();
        cert_paths(&api(), dir.path()).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), before);
    }
}
