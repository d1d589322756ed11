//! Targets with their pinned host keys, and credentials: written, never read.

use super::bodies::{CredentialKindBody, NewTarget, SetCredential};
use super::http::{ApiError, Body, Seg, validate_name};
use crate::app::App;
use crate::clock::now_ms;
use crate::session::credential_row;
use crate::store::{CredentialKind, TargetRecord};
use crate::upstream::keys as upkeys;
use crate::vault::Purpose;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use zeroize::Zeroizing;

type Res = Result<(StatusCode, Json<Value>), ApiError>;

fn target_json(t: &TargetRecord) -> Value {
    let fp = upkeys::parse_public(&t.host_key)
        .map(|k| upkeys::fingerprint(&k))
        .unwrap_or_else(|_| "invalid".into());
    json!({"name": t.name, "host": t.host, "port": t.port, "host_key": t.host_key, "fingerprint": fp})
}

pub async fn list(State(app): State<Arc<App>>) -> Res {
    let v: Vec<Value> = app
        .store
        .list_targets()
        .await?
        .iter()
        .map(target_json)
        .collect();
    Ok((StatusCode::OK, Json(json!(v))))
}

pub async fn get(State(app): State<Arc<App>>, Seg(name): Seg<String>) -> Res {
    validate_name("name", &name)?;
    let t = app
        .store
        .target(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("target {name:?} does not exist")))?;
    Ok((StatusCode::OK, Json(target_json(&t))))
}

fn valid_host(host: &str) -> Result<(), ApiError> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with('-')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad("host: expected a host name or an IP address"))
    }
}

pub async fn create(State(app): State<Arc<App>>, Body(b): Body<NewTarget>) -> Res {
    validate_name("name", &b.name)?;
    valid_host(&b.host)?;
    if b.port == 0 {
        return Err(ApiError::bad("port: must be between 1 and 65535"));
    }
    let key =
        upkeys::parse_public(&b.host_key).map_err(|e| ApiError::bad(format!("host_key: {e}")))?;
    let t = TargetRecord {
        name: b.name,
        host: b.host,
        port: b.port,
        host_key: upkeys::to_openssh(&key),
    };
    app.store.add_target(&t, now_ms()).await?;
    Ok((StatusCode::CREATED, Json(target_json(&t))))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    Seg(name): Seg<String>,
) -> Result<StatusCode, ApiError> {
    validate_name("name", &name)?;
    app.store.remove_target(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_credentials(State(app): State<Arc<App>>) -> Res {
    let v: Vec<Value> = app
        .store
        .credential_summaries()
        .await?
        .into_iter()
        .map(|(target, login, kind, updated_ms)| {
            json!({"target": target, "login": login, "kind": kind, "updated_ms": updated_ms})
        })
        .collect();
    Ok((StatusCode::OK, Json(json!(v))))
}

/// Seals the secret with the vault (bound to target and login) and stores it.
pub async fn set_credential(
    State(app): State<Arc<App>>,
    Seg((target, login)): Seg<(String, String)>,
    Body(b): Body<SetCredential>,
) -> Result<StatusCode, ApiError> {
    validate_name("target", &target)?;
    validate_name("login", &login)?;
    let secret = Zeroizing::new(b.secret);
    if secret.is_empty() {
        return Err(ApiError::bad("secret: may not be empty"));
    }
    let (kind, purpose) = match b.kind {
        CredentialKindBody::Password => (CredentialKind::Password, Purpose::UpstreamPassword),
        CredentialKindBody::PrivateKey => {
            // The parser's message names the problem, never the key material.
            upkeys::validate_private(&secret).map_err(|e| ApiError::bad(format!("secret: {e}")))?;
            (CredentialKind::PrivateKey, Purpose::UpstreamPrivateKey)
        }
    };
    let sealed = app
        .vault
        .seal(purpose, &credential_row(&target, &login), secret.as_bytes());
    app.store
        .set_credential(&target, &login, kind, &sealed, now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
