//! Locks (the kill switch): list, create, lift. Creating persists first,
//! then ends every matching live session (`lockdown::create`).

use super::http::{ApiError, Body, Seg, validate_name};
use super::tokens::{Caller, Scope};
use crate::app::App;
use crate::clock::now_ms;
use crate::lockdown::{self, LockError, LockSpec};
use crate::policy::LockScope;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};
use std::sync::Arc;

type Res = Result<(StatusCode, Json<Value>), ApiError>;

/// `{"scope": {"kind": "user", "value": "alice"}, "reason": "...", "expires": "1h"}`
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLock {
    pub scope: LockScope,
    pub reason: String,
    /// A duration (90s, 15m, 2h, 1d); none = until lifted.
    #[serde(default)]
    pub expires: Option<String>,
    /// For `all` from the console: the word the user typed, which must be
    /// [`CONFIRM_ALL`] (a slip of the mouse does not lock everyone out).
    #[serde(default)]
    pub confirm: Option<String>,
}

/// What a console user types to lock everything.
pub const CONFIRM_ALL: &str = "LOCKDOWN";

impl From<LockError> for ApiError {
    fn from(e: LockError) -> ApiError {
        match e {
            LockError::Invalid(m) => ApiError::bad(m),
            LockError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            e @ LockError::NotAudited(_) => ApiError::internal("auditing the lift", e),
            LockError::Store(s) => s.into(),
            e @ LockError::NoSuchSession(_) => ApiError::not_found(e.to_string()),
            e @ LockError::AlreadyEnded(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            // Enforced here, not stored: say so; the caller must retry.
            e @ LockError::NotPersisted(..) => ApiError::internal("storing the lock", e),
        }
    }
}

fn check_scope(s: &LockScope) -> Result<(), ApiError> {
    match s {
        LockScope::User(n) => validate_name("scope.value", n),
        LockScope::Target(n) => validate_name("scope.value", n),
        LockScope::Session(n) => validate_name("scope.value", n),
        LockScope::Source(_) | LockScope::All => Ok(()),
    }
}

pub async fn list(State(app): State<Arc<App>>) -> Res {
    let locks = lockdown::list(&app).await?;
    let now = now_ms();
    let v: Vec<Value> = locks
        .iter()
        .map(|l| {
            let mut j = json!(l);
            j["in_force"] = json!(l.in_force(now));
            j
        })
        .collect();
    Ok((StatusCode::OK, Json(json!(v))))
}

pub async fn create(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(b): Body<NewLock>,
) -> Res {
    check_scope(&b.scope)?;
    if caller.console && b.scope == LockScope::All && b.confirm.as_deref() != Some(CONFIRM_ALL) {
        return Err(ApiError::bad(format!(
            "confirm: type {CONFIRM_ALL} to lock everything"
        )));
    }
    let expires_ms = match b.expires.as_deref() {
        None => None,
        Some(d) => {
            let secs = crate::grants::jit::parse_duration(d)
                .map_err(|e| ApiError::bad(format!("expires: {e}")))?;
            let ms = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            Some(now_ms().saturating_add(ms))
        }
    };
    let spec = LockSpec {
        scope: b.scope,
        reason: b.reason,
        author: caller.actor(),
        expires_ms,
    };
    match lockdown::create(&app, spec).await {
        Ok(outcome) => Ok((StatusCode::CREATED, Json(json!(outcome)))),
        // In force on this node, written when the database answers.
        Err(LockError::NotPersisted(e, outcome)) if crate::store::unreachable(&e) => {
            let mut body = json!(outcome);
            body["stored"] = json!(false);
            body["note"] = json!(
                "the database does not answer: the lock is in force on this node and is stored when it answers"
            );
            Ok((StatusCode::ACCEPTED, Json(body)))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn lift(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(id): Seg<String>,
) -> Result<StatusCode, ApiError> {
    validate_name("id", &id)?;
    let actor = caller.actor();
    let by = lockdown::Lifter {
        actor: &actor,
        admin: caller.scope == Scope::Admin,
    };
    if lockdown::lift(&app, &id, by).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no lock in force with id {id:?}"
        )))
    }
}
