//! Targets with their pinned host keys, TCP targets, what is recorded of
//! them, and the credentials the bastion uses on them (written, never read).

use super::{Ops, OpsError, name};
use crate::audit::AuditEvent;
use crate::clock::now_ms;
use crate::session::{credential_purpose, credential_row};
use crate::store::{CredentialKind, TargetRecord};
use crate::upstream::keys as upkeys;
use crate::vault::Vault;
use zeroize::Zeroizing;

pub struct NewSshTarget {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// The host key to pin, one OpenSSH line.
    pub host_key: String,
}

pub struct NewTcpTarget {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Keep the forwarded bytes both ways in a signed recording.
    pub capture: bool,
}

/// A credential's secret; dropped (and wiped) once sealed.
pub enum Secret {
    Password(Zeroizing<String>),
    PrivateKey(Zeroizing<String>),
}

pub struct NewCredential {
    pub target: String,
    pub login: String,
    pub secret: Secret,
}

/// A host name or an IP address, nothing a resolver or a shell could read
/// as something else.
fn host(h: &str) -> Result<(), OpsError> {
    let ok = !h.is_empty()
        && h.len() <= 253
        && !h.starts_with('-')
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(OpsError::invalid(
            "host",
            "expected a host name or an IP address",
        ))
    }
}

fn port(p: u16) -> Result<(), OpsError> {
    if p == 0 {
        return Err(OpsError::invalid("port", "must be between 1 and 65535"));
    }
    Ok(())
}

/// Adds an SSH target and pins its host key; answers the stored record.
pub async fn add_ssh_target(ops: &Ops, new: NewSshTarget) -> Result<TargetRecord, OpsError> {
    let n = name("name", &new.name)?;
    host(&new.host)?;
    port(new.port)?;
    let key = upkeys::parse_public(&new.host_key)
        .map_err(|e| OpsError::invalid("host_key", e.to_string()))?;
    let t = TargetRecord {
        name: n.clone(),
        host: new.host,
        port: new.port,
        host_key: upkeys::to_openssh(&key),
    };
    ops.store.add_target(&t, now_ms()).await?;
    ops.audit(AuditEvent::TargetAdded {
        target: n,
        actor: ops.actor(),
        host: t.host.clone(),
        port: t.port,
        host_key: upkeys::fingerprint(&key),
    })
    .await?;
    Ok(t)
}

pub async fn add_tcp_target(ops: &Ops, new: NewTcpTarget) -> Result<(), OpsError> {
    let n = name("name", &new.name)?;
    host(&new.host)?;
    port(new.port)?;
    ops.store
        .add_tcp_target(&n, &new.host, new.port, new.capture, now_ms())
        .await?;
    ops.audit(AuditEvent::TcpTargetAdded {
        target: n,
        actor: ops.actor(),
        host: new.host,
        port: new.port,
        capture: new.capture,
    })
    .await
}

pub async fn remove_target(ops: &Ops, target: &str) -> Result<(), OpsError> {
    let n = name("name", target)?;
    ops.store.remove_target(&n).await?;
    ops.audit(AuditEvent::TargetRemoved {
        target: n,
        actor: ops.actor(),
    })
    .await
}

/// Whether SFTP file contents and forwarded bytes are kept beside recordings.
pub async fn set_capture(ops: &Ops, target: &str, on: bool) -> Result<(), OpsError> {
    let n = name("name", target)?;
    ops.store.set_capture_files(&n, on).await?;
    ops.audit(AuditEvent::TargetCaptureSet {
        target: n,
        actor: ops.actor(),
        capture: on,
    })
    .await
}

/// Full recordings (`true`) or markers only.
pub async fn set_recording(ops: &Ops, target: &str, content: bool) -> Result<(), OpsError> {
    let n = name("name", target)?;
    ops.store.set_record_content(&n, content).await?;
    ops.audit(AuditEvent::TargetRecordingSet {
        target: n,
        actor: ops.actor(),
        content,
    })
    .await
}

/// Seals the secret with the vault (bound to target and login) and stores it.
pub async fn set_credential(
    ops: &Ops,
    vault: &Vault,
    new: NewCredential,
) -> Result<CredentialKind, OpsError> {
    let target = name("target", &new.target)?;
    let login = name("login", &new.login)?;
    let (kind, secret) = match new.secret {
        Secret::Password(s) => (CredentialKind::Password, s),
        Secret::PrivateKey(s) => {
            // The parser's message names the problem, never the key material.
            upkeys::validate_private(&s).map_err(|e| OpsError::invalid("secret", e))?;
            (CredentialKind::PrivateKey, s)
        }
    };
    if secret.is_empty() {
        return Err(OpsError::invalid("secret", "may not be empty"));
    }
    let row = credential_row(&target, &login);
    let sealed = vault.seal(credential_purpose(kind), &row, secret.as_bytes());
    ops.store
        .set_credential(&target, &login, kind, &sealed, now_ms())
        .await?;
    ops.audit(AuditEvent::CredentialSet {
        target,
        login,
        kind: kind.as_str().to_string(),
        actor: ops.actor(),
    })
    .await?;
    Ok(kind)
}
