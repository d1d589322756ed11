//! Targets with their pinned host keys, and credentials: written, never read.

use super::bodies::{CredentialKindBody, NewTarget, SetCredential};
use super::http::{ApiError, Body, Seg, validate_name};
use super::tokens::Caller;
use super::users::door;
use crate::app::App;
use crate::ops;
use crate::store::TargetRecord;
use crate::upstream::keys as upkeys;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
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

pub async fn create(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(b): Body<NewTarget>,
) -> Res {
    let new = ops::NewSshTarget {
        name: b.name,
        host: b.host,
        port: b.port,
        host_key: b.host_key,
    };
    let t = ops::add_ssh_target(&door(&app, &caller), new).await?;
    Ok((StatusCode::CREATED, Json(target_json(&t))))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(name): Seg<String>,
) -> Result<StatusCode, ApiError> {
    ops::remove_target(&door(&app, &caller), &name).await?;
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
    Extension(caller): Extension<Caller>,
    Seg((target, login)): Seg<(String, String)>,
    Body(b): Body<SetCredential>,
) -> Result<StatusCode, ApiError> {
    let secret = Zeroizing::new(b.secret);
    let secret = match b.kind {
        CredentialKindBody::Password => ops::Secret::Password(secret),
        CredentialKindBody::PrivateKey => ops::Secret::PrivateKey(secret),
    };
    let new = ops::NewCredential {
        target,
        login,
        secret,
    };
    ops::set_credential(&door(&app, &caller), &app.vault, new).await?;
    Ok(StatusCode::NO_CONTENT)
}
