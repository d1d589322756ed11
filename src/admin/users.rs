//! Users, their public keys and passwords (write-only), groups and members.

use super::bodies::{NewGroup, NewKey, NewMember, NewUser, SetPassword};
use super::http::{ApiError, Body, Seg, validate_name};
use super::tokens::Caller;
use crate::app::App;
use crate::ops::{self, Ops};
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

/// The API's door onto `crate::ops`: the change is made as the calling token.
pub(super) fn door(app: &App, caller: &Caller) -> Ops {
    Ops::new(app.store.clone(), caller.actor())
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
    let new = ops::NewUser {
        name: b.name,
        password: b.password.map(Zeroizing::new),
        keys: b.public_keys,
        service: b.service,
    };
    let added = ops::add_user(&door(&app, &caller), new).await?;
    created(json!({"name": added.name, "service": b.service, "keys": added.fingerprints}))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(name): Seg<String>,
) -> Result<StatusCode, ApiError> {
    ops::remove_user(&door(&app, &caller), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn set_password(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(name): Seg<String>,
    Body(b): Body<SetPassword>,
) -> Result<StatusCode, ApiError> {
    let password = b.password.map(Zeroizing::new);
    ops::set_password(&door(&app, &caller), &name, password).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn add_key(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(name): Seg<String>,
    Body(b): Body<NewKey>,
) -> Res {
    let fp = ops::add_key(&door(&app, &caller), &name, &b.public_key).await?;
    created(json!({"fingerprint": fp}))
}

pub async fn remove_key(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg((name, fingerprint)): Seg<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ops::remove_key(&door(&app, &caller), &name, &fingerprint).await?;
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

pub async fn create_group(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(b): Body<NewGroup>,
) -> Res {
    let name = ops::add_group(&door(&app, &caller), &b.name).await?;
    created(json!({"name": name}))
}

pub async fn delete_group(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(name): Seg<String>,
) -> Result<StatusCode, ApiError> {
    ops::remove_group(&door(&app, &caller), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn add_member(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(group): Seg<String>,
    Body(b): Body<NewMember>,
) -> Res {
    ops::add_member(&door(&app, &caller), &group, &b.user).await?;
    created(json!({"group": group, "user": b.user}))
}

pub async fn remove_member(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg((group, user)): Seg<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ops::remove_member(&door(&app, &caller), &group, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}
