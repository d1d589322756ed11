//! Grants, just-in-time access requests and API tokens.

use super::bodies::{Decision, NewGrant, NewToken};
use super::http::Params;
use super::http::{ApiError, Body, Seg, validate_name};
use super::tokens::{self, Caller, TokenError};
use crate::app::App;
use crate::grants::jit::{self, JitError};
use crate::grants::{self, GrantError};
use crate::store::{GrantRecord, StoreError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};
use std::sync::Arc;

type Res = Result<(StatusCode, Json<Value>), ApiError>;

impl From<GrantError> for ApiError {
    fn from(e: GrantError) -> ApiError {
        match e {
            GrantError::Invalid(m) => ApiError::bad(m),
            GrantError::Store(s) => s.into(),
        }
    }
}

impl From<JitError> for ApiError {
    fn from(e: JitError) -> ApiError {
        match e {
            JitError::Store(s) => s.into(),
            JitError::Unknown(_) => ApiError::not_found(e.to_string()),
            JitError::AlreadyDecided(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            JitError::SelfApproval | JitError::NotApprover(..) => {
                ApiError::new(StatusCode::FORBIDDEN, e.to_string())
            }
            JitError::Invalid(_) => ApiError::bad(e.to_string()),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> ApiError {
        match e {
            TokenError::Invalid(m) => ApiError::bad(m),
            TokenError::Store(s) => s.into(),
        }
    }
}

fn grant_json(g: &GrantRecord) -> Value {
    json!({
        "id": g.id,
        "subject_kind": g.subject.kind(),
        "subject": g.subject.name(),
        "target": g.target,
        "logins": g.logins,
        "valid_from_ms": g.valid_from_ms,
        "valid_until_ms": g.valid_until_ms,
        "max_session_secs": g.max_session_secs,
        "tz": g.time_zone,
        "window": g.windows,
        "allow": g.permissions,
        "exec_allow": g.exec_allow,
        "exec_deny": g.exec_deny,
        "origin": g.origin,
        "summary": grants::describe(g),
    })
}

pub async fn list(State(app): State<Arc<App>>) -> Res {
    let v: Vec<Value> = app
        .store
        .list_grants()
        .await?
        .iter()
        .map(grant_json)
        .collect();
    Ok((StatusCode::OK, Json(json!(v))))
}

pub async fn create(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(b): Body<NewGrant>,
) -> Res {
    let g = grants::add(&app.store, &b.into_spec(), &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(grant_json(&g))))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(id): Seg<String>,
) -> Result<StatusCode, ApiError> {
    validate_name("id", &id)?;
    grants::remove(&app.store, &id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFilter {
    #[serde(default)]
    state: Option<String>,
}

pub async fn list_requests(State(app): State<Arc<App>>, Params(f): Params<RequestFilter>) -> Res {
    if let Some(s) = &f.state
        && !matches!(s.as_str(), "pending" | "approved" | "denied")
    {
        return Err(ApiError::bad("state: expected pending, approved or denied"));
    }
    let v: Vec<Value> = app
        .store
        .list_requests(f.state.as_deref())
        .await?
        .into_iter()
        .map(|q| {
            json!({
                "id": q.id, "user": q.user, "target": q.target, "login": q.login,
                "duration_secs": q.duration_secs, "reason": q.reason, "state": q.state,
                "requested_ms": q.requested_ms, "decided_by": q.decided_by,
                "decided_ms": q.decided_ms, "grant_id": q.grant_id,
            })
        })
        .collect();
    Ok((StatusCode::OK, Json(json!(v))))
}

async fn decide(app: &App, id: &str, caller: &Caller, approve: bool) -> Res {
    validate_name("id", id)?;
    let group = &app.config.access.approvers_group;
    let actor = caller.actor();
    let by = jit::Approver::Admin {
        actor: &actor,
        name: &caller.name,
    };
    let g = jit::decide(&app.store, id, by, group, approve).await?;
    Ok((
        StatusCode::OK,
        Json(
            json!({"id": id, "state": if approve {"approved"} else {"denied"}, "grant": g.map(|g| g.id)}),
        ),
    ))
}

// The body is read only to refuse fields: who decides is the token.
pub async fn approve(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(id): Seg<String>,
    Body(_): Body<Decision>,
) -> Res {
    decide(&app, &id, &caller, true).await
}

pub async fn deny(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(id): Seg<String>,
    Body(_): Body<Decision>,
) -> Res {
    decide(&app, &id, &caller, false).await
}

pub async fn list_tokens(State(app): State<Arc<App>>) -> Res {
    Ok((StatusCode::OK, Json(json!(tokens::list(&app.store).await?))))
}

pub async fn create_token(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(b): Body<NewToken>,
) -> Res {
    let expires = b
        .expires
        .as_deref()
        .map(jit::parse_duration)
        .transpose()
        .map_err(|e| ApiError::bad(format!("expires: {e}")))?;
    let (info, text) =
        tokens::create(&app.store, &b.name, b.scope, expires, &caller.actor()).await?;
    // The one place a secret leaves the API: the caller asked for it, once.
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": text.as_str(), "info": info})),
    ))
}

pub async fn revoke_token(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(id): Seg<String>,
) -> Result<StatusCode, ApiError> {
    validate_name("id", &id)?;
    match tokens::revoke(&app.store, &id, &caller.actor()).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(TokenError::Store(StoreError::Missing { .. })) => {
            Err(ApiError::not_found(format!("no active token {id:?}")))
        }
        Err(e) => Err(e.into()),
    }
}
