//! Users, their public keys and passwords (write-only), groups and members.

use super::bodies::{NewGroup, NewKey, NewMember, NewUser, SetPassword};
use super::http::{ApiError, Body, Seg, validate_name};
use super::tokens::Caller;
use crate::app::App;
use crate::audit::{self, AuditEvent};
use crate::clock::now_ms;
use crate::gateway::keys::parse_user_key;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use zeroize::Zeroizing;

type Res = Result<(StatusCode, Json<Value>), ApiError>;

fn ok(v: Value) -> Res {
    Ok((StatusCode::OK, Json(v)))
}

fn created(v: Value) -> Res {
    Ok((StatusCode::CREATED, Json(v)))
}

async fn hash(password: Zeroizing<String>) -> Result<String, ApiError> {
    if password.is_empty() {
        return Err(ApiError::bad("password: may not be empty"));
    }
    // argon2id is deliberately slow: off the async workers.
    tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::internal("password hashing", e))?
        .map_err(|e| ApiError::internal("password hashing", e))
}

fn keys(lines: &[String]) -> Result<Vec<(String, String)>, ApiError> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            parse_user_key(l).map_err(|e| ApiError::bad(format!("public_keys[{i}]: {e}")))
        })
        .collect()
}

pub async fn list(State(app): State<Arc<App>>) -> Res {
    let users = app.store.list_users().await?;
    let v: Vec<Value> = users
        .iter()
        .map(|u| json!({"name": u.name, "has_password": u.has_password, "key_count": u.key_count}))
        .collect();
    ok(json!(v))
}

pub async fn get(State(app): State<Arc<App>>, Seg(name): Seg<String>) -> Res {
    validate_name("name", &name)?;
    let u = app
        .store
        .user(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {name:?} does not exist")))?;
    let keys: Vec<Value> = app
        .store
        .user_keys(&name)
        .await?
        .into_iter()
        .map(|(fingerprint, public_key)| json!({"fingerprint": fingerprint, "public_key": public_key}))
        .collect();
    ok(json!({
        "name": u.name,
        "has_password": u.password_hash.is_some(),
        "service": u.mfa_exempt,
        "groups": u.groups,
        "keys": keys,
    }))
}

pub async fn create(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(b): Body<NewUser>,
) -> Res {
    validate_name("name", &b.name)?;
    let parsed = keys(&b.public_keys)?;
    let password = b.password.map(Zeroizing::new);
    if b.service && (password.is_some() || parsed.is_empty()) {
        return Err(ApiError::bad(
            "service: a service account has public_keys and no password",
        ));
    }
    if password.is_none() && parsed.is_empty() {
        return Err(ApiError::bad(
            "password or public_keys: a user needs a way to log in",
        ));
    }
    let hashed = match password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    app.store
        .add_user(&b.name, hashed.as_deref(), now_ms())
        .await?;
    for (fp, line) in &parsed {
        app.store.add_user_key(&b.name, fp, line).await?;
    }
    if b.service {
        app.store.set_mfa_exempt(&b.name, true).await?;
        let event = AuditEvent::MfaExemption {
            user: b.name.clone(),
            actor: caller.actor(),
            exempt: true,
        };
        audit::record(&app.store, event)
            .await
            .map_err(|e| ApiError::internal("audit", e))?;
    }
    let fps: Vec<&String> = parsed.iter().map(|(fp, _)| fp).collect();
    created(json!({"name": b.name, "service": b.service, "keys": fps}))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    Seg(name): Seg<String>,
) -> Result<StatusCode, ApiError> {
    validate_name("name", &name)?;
    app.store.remove_user(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn set_password(
    State(app): State<Arc<App>>,
    Seg(name): Seg<String>,
    Body(b): Body<SetPassword>,
) -> Result<StatusCode, ApiError> {
    validate_name("name", &name)?;
    let user = app
        .store
        .user(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {name:?} does not exist")))?;
    let hashed = match b.password.map(Zeroizing::new) {
        Some(_) if user.mfa_exempt => {
            return Err(ApiError::bad(
                "password: a service account cannot have a password",
            ));
        }
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    app.store.set_password(&name, hashed.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn add_key(
    State(app): State<Arc<App>>,
    Seg(name): Seg<String>,
    Body(b): Body<NewKey>,
) -> Res {
    validate_name("name", &name)?;
    let (fp, line) =
        parse_user_key(&b.public_key).map_err(|e| ApiError::bad(format!("public_key: {e}")))?;
    app.store.add_user_key(&name, &fp, &line).await?;
    created(json!({"fingerprint": fp}))
}

pub async fn remove_key(
    State(app): State<Arc<App>>,
    Seg((name, fingerprint)): Seg<(String, String)>,
) -> Result<StatusCode, ApiError> {
    validate_name("name", &name)?;
    app.store.remove_user_key(&name, &fingerprint).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_groups(State(app): State<Arc<App>>) -> Res {
    let v: Vec<Value> = app
        .store
        .list_groups()
        .await?
        .into_iter()
        .map(|(name, members)| json!({"name": name, "members": members}))
        .collect();
    ok(json!(v))
}

pub async fn create_group(State(app): State<Arc<App>>, Body(b): Body<NewGroup>) -> Res {
    validate_name("name", &b.name)?;
    app.store.add_group(&b.name).await?;
    created(json!({"name": b.name}))
}

pub async fn delete_group(
    State(app): State<Arc<App>>,
    Seg(name): Seg<String>,
) -> Result<StatusCode, ApiError> {
    validate_name("name", &name)?;
    app.store.remove_group(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn add_member(
    State(app): State<Arc<App>>,
    Seg(group): Seg<String>,
    Body(b): Body<NewMember>,
) -> Res {
    validate_name("group", &group)?;
    validate_name("user", &b.user)?;
    app.store.add_member(&group, &b.user).await?;
    created(json!({"group": group, "user": b.user}))
}

pub async fn remove_member(
    State(app): State<Arc<App>>,
    Seg((group, user)): Seg<(String, String)>,
) -> Result<StatusCode, ApiError> {
    validate_name("group", &group)?;
    validate_name("user", &user)?;
    app.store.remove_member(&group, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}
