//! The bastion's host CA: an Ed25519 key (`host_ca_file`, by default
//! `host-ca` in the data directory, 0600, created on first start) that signs a host certificate per SSH
//! target for connections terminated at the bastion (ProxyJump). A user
//! trusts it with one `@cert-authority` line limited to the targets' names
//! and addresses (or a configured domain): whoever holds the key can pose as
//! any host that line covers, so it never covers `*`.

use super::GatewayError;
use super::keys::{self, err};
use russh::keys::ssh_key::Certificate;
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::{Algorithm, PrivateKey, PublicKey};
use std::path::Path;

/// Tolerates a client clock somewhat behind the bastion's.
const BACKDATE_SECS: u64 = 300;

pub struct HostCa {
    key: PrivateKey,
    /// Named in errors: `host_ca_file` may be anywhere.
    path: String,
}

impl HostCa {
    /// Loads the CA key, creating it (mode 0600) when the file does not exist.
    pub fn load_or_generate(path: &Path) -> Result<HostCa, GatewayError> {
        if !path.exists() {
            match keys::write_new_ed25519(path) {
                Ok(_) => {}
                // Another node or process created it first: use theirs.
                Err(_) if path.exists() => {}
                Err(e) => return Err(e),
            }
        }
        let key = keys::load(path)?;
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(err(path, "the host CA must be an Ed25519 key"));
        }
        Ok(HostCa {
            key,
            path: path.display().to_string(),
        })
    }

    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// The line a user adds to known_hosts to trust the CA for `hosts`
    /// (known_hosts patterns); `None` when there is nothing to trust it for.
    pub fn known_hosts_line(&self, hosts: &[String]) -> Option<String> {
        if hosts.is_empty() {
            return None;
        }
        let mut public = self.key.public_key().clone();
        public.set_comment("portcullis-host-ca");
        let text = public.to_openssh().ok()?;
        Some(format!(
            "@cert-authority {} {}",
            hosts.join(","),
            text.trim()
        ))
    }

    /// A host certificate for `subject` valid for `principals` (what the
    /// client called the target), from `now_secs` for `valid_secs`. Signed
    /// per connection and never stored; OpenSSH checks it again at every
    /// re-key, so the nested connection cannot outlive it.
    pub fn certify(
        &self,
        subject: &PublicKey,
        key_id: &str,
        principals: &[String],
        now_secs: u64,
        valid_secs: u64,
    ) -> Result<Certificate, GatewayError> {
        let fail = |e: &dyn std::fmt::Display| GatewayError::HostKey {
            path: self.path.clone(),
            reason: format!("cannot sign a host certificate for {key_id}: {e}"),
        };
        let mut nonce = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let mut b = Builder::new(
            nonce.to_vec(),
            subject.key_data().clone(),
            now_secs.saturating_sub(BACKDATE_SECS),
            now_secs.saturating_add(valid_secs),
        )
        .map_err(|e| fail(&e))?;
        b.cert_type(CertType::Host).map_err(|e| fail(&e))?;
        b.key_id(format!("portcullis:{key_id}"))
            .map_err(|e| fail(&e))?;
        for p in principals {
            b.valid_principal(p.clone()).map_err(|e| fail(&e))?;
        }
        b.sign(&self.key).map_err(|e| fail(&e))
    }
}

/// known_hosts patterns for SSH targets `(name, host, port)`: what OpenSSH
/// looks up when a user jumps to one by name (port 22) or by its configured
/// address (`[host]:port` unless the port is 22). Names that could act as
/// patterns are left out: a target name is `[A-Za-z0-9._-]`, a host may be
/// anything an administrator typed.
pub fn target_patterns(targets: &[(String, String, u16)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    };
    let mut push = |p: String| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    for (name, host, port) in targets {
        for n in principals(&[name]) {
            if plain(&n) {
                push(n.clone());
                if *port != 22 {
                    push(format!("[{n}]:{port}"));
                }
            }
        }
        let h = host.to_ascii_lowercase();
        if plain(&h) {
            push(if *port == 22 {
                h
            } else {
                format!("[{h}]:{port}")
            });
        }
    }
    out
}

/// Host names as OpenSSH compares them: it lower-cases what the user typed
/// before checking it against a certificate's principals.
pub fn principals(names: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        for v in [n.to_string(), n.to_ascii_lowercase()] {
            if !v.is_empty() && !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host-ca");
        let a = HostCa::load_or_generate(&path).unwrap();
        let b = HostCa::load_or_generate(&path).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let mode = std::fs::metadata(dir.path().join("host-ca"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(a.known_hosts_line(&[]), None);
        let line = a.known_hosts_line(&["web01".into(), "[10.0.0.5]:2222".into()]);
        let line = line.unwrap();
        assert!(
            line.starts_with("@cert-authority web01,[10.0.0.5]:2222 ssh-ed25519 AAAA"),
            "{line}"
        );
        assert_eq!(line.lines().count(), 1);
    }

    #[test]
    fn certificate_names_the_target_and_verifies_against_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = HostCa::load_or_generate(&dir.path().join("host-ca")).unwrap();
        let host = PrivateKey::random(&mut rand010::rng(), Algorithm::Ed25519).unwrap();
        let now = 1_800_000_000;
        let names = principals(&["Web01", "10.0.0.5"]);
        assert_eq!(names, ["Web01", "web01", "10.0.0.5"]);
        let cert = ca
            .certify(host.public_key(), "Web01", &names, now, 3600)
            .unwrap();
        assert_eq!(cert.cert_type(), CertType::Host);
        assert_eq!(cert.valid_principals(), names.as_slice());
        assert_eq!(cert.public_key(), host.public_key().key_data());
        let fp = ca.public_key().fingerprint(Default::default());
        cert.validate_at(now, [&fp]).unwrap();
        // Another CA's certificate is not ours.
        let other = HostCa::load_or_generate(&dir.path().join("other-ca")).unwrap();
        let forged = other
            .certify(host.public_key(), "Web01", &names, now, 3600)
            .unwrap();
        assert!(forged.validate_at(now, [&fp]).is_err());
        assert!(cert.validate_at(now + 3601, [&fp]).is_err(), "expires");
    }

    #[test]
    fn patterns_name_targets_and_their_addresses_only() {
        let t = |n: &str, h: &str, p: u16| (n.to_string(), h.to_string(), p);
        let got = target_patterns(&[
            t("Web01", "10.0.0.5", 22),
            t("db", "DB.corp", 2222),
            t("odd", "*", 22),
        ]);
        assert_eq!(
            got,
            [
                "Web01",
                "web01",
                "10.0.0.5",
                "db",
                "[db]:2222",
                "[db.corp]:2222",
                "odd"
            ]
        );
    }
}
