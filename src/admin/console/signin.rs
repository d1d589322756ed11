//! Sign-in with the user's own factors: the password, then the TOTP code,
//! through `auth::login` like an SSH login (throttle, second-factor budget,
//! lockdown rules, failure summaries). Every refusal is padded to the same
//! delay and says nothing about which part was wrong.

use super::guard::{Presented, signed_in};
use super::role::Role;
use super::store::{PENDING_TTL, Sessions};
use super::{PENDING_COOKIE, SESSION_COOKIE, cookie, set_cookie};
use crate::admin::http::{ApiError, Body};
use crate::app::App;
use crate::audit::console::ConsoleEvent;
use crate::audit::{self, AuditEvent};
use crate::auth::budget::Budget;
use crate::auth::login::{self as shared, Code};
use crate::auth::totp;
use crate::lockdown::rules::Stage;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// As the SSH gateway's: refusals take this long from the attempt's start.
const REJECT_DELAY: Duration = Duration::from_millis(500);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Password {
    user: String,
    password: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    code: String,
}

fn ip(c: &ConnectInfo<SocketAddr>) -> IpAddr {
    c.0.ip().to_canonical()
}

async fn refused(start: Instant, status: StatusCode, msg: &str) -> ApiError {
    tokio::time::sleep_until((start + REJECT_DELAY).into()).await;
    ApiError::new(status, msg)
}

const WRONG: &str = "wrong user name or password";

/// Step one: the password. A right one (of a user with a code enrolled)
/// gives a short-lived half-way cookie for step two.
pub async fn password(
    State(app): State<Arc<App>>,
    Extension(sessions): Extension<Arc<Sessions>>,
    conn: ConnectInfo<SocketAddr>,
    Body(b): Body<Password>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let from = ip(&conn);
    if crate::names::Name::parse(&b.user).is_err() {
        return Err(refused(start, StatusCode::UNAUTHORIZED, WRONG).await);
    }
    if shared::throttled(&app.throttle, &b.user, from) {
        return Err(refused(
            start,
            StatusCode::TOO_MANY_REQUESTS,
            "too many attempts; wait and try again",
        )
        .await);
    }
    let rec = match app.store.user(&b.user).await {
        Ok(r) => r,
        Err(e) => return Err(ApiError::internal("user lookup", e)),
    };
    let stored = rec.as_ref().and_then(|r| r.password_hash.clone());
    let pw = zeroize::Zeroizing::new(b.password);
    let ok = app.passwords.verify(stored, &pw).await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many sign-ins in progress; try again",
        )
    })?;
    let Some(rec) = rec.filter(|_| ok) else {
        note_failure(&app, &b.user, from, "password", Stage::Before);
        return Err(refused(start, StatusCode::UNAUTHORIZED, WRONG).await);
    };
    // The console always asks for the code: service accounts have none.
    let enrolled = matches!(app.store.totp(&rec.name).await, Ok(Some(_)));
    if rec.mfa_exempt || !enrolled {
        note_failure(&app, &rec.name, from, "mfa-not-enrolled", Stage::After);
        return Err(refused(start, StatusCode::UNAUTHORIZED, WRONG).await);
    }
    let pending = sessions.pend(&rec.name, from, start);
    let c = set_cookie(PENDING_COOKIE, &pending, Some(PENDING_TTL.as_secs()));
    Ok(([(header::SET_COOKIE, c)], Json(json!({"next": "code"}))).into_response())
}

/// As the SSH gateway's `note_failure`: the shared count, then the
/// lockdown rules in their own task (a rule's lock must not delay the answer).
fn note_failure(app: &Arc<App>, user: &str, ip: IpAddr, factor: &'static str, stage: Stage) {
    shared::failed(&app.throttle, &app.metrics, user, ip, factor);
    if !app.config.lockdown.rules.is_empty() {
        let (app, user) = (app.clone(), user.to_string());
        tokio::spawn(
            async move { crate::lockdown::rules::on_failure(&app, &user, ip, stage).await },
        );
    }
}

async fn refuse_code(app: &App, user: &str, from: IpAddr, factor: &str) {
    let event = AuditEvent::Console(ConsoleEvent::SignInRefused {
        user: user.to_string(),
        source: from.to_string(),
        factor: factor.to_string(),
    });
    if let Err(e) = audit::record(&app.store, event).await {
        tracing::error!(error = %e, "audit of a refused console sign-in not written");
    }
}

/// Step two: the code, under the user's second-factor budget; a right one
/// opens the console session (audited first: no audit, no session).
pub async fn code(
    State(app): State<Arc<App>>,
    Extension(sessions): Extension<Arc<Sessions>>,
    conn: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Body(b): Body<CodeBody>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let from = ip(&conn);
    let again = "sign in again with your password";
    let Some(pc) = cookie(&headers, PENDING_COOKIE).map(str::to_string) else {
        return Err(refused(start, StatusCode::UNAUTHORIZED, again).await);
    };
    let Some(p) = sessions.pending(&pc, from, start) else {
        return Err(refused(start, StatusCode::UNAUTHORIZED, again).await);
    };
    let reservation = match app.mfa_budget.reserve(&p.user, start) {
        Budget::Check(r) => r,
        Budget::Wait(w) => {
            app.throttle.tally(&p.user, from, "totp-budget");
            refuse_code(&app, &p.user, from, "totp-budget").await;
            let msg = format!(
                "too many wrong codes for this account: codes are checked again in about {} s",
                w.as_secs().max(1)
            );
            return Err(refused(start, StatusCode::TOO_MANY_REQUESTS, &msg).await);
        }
    };
    let checked = if b.code.len() <= totp::MAX_ANSWER_LEN {
        shared::check_code(&app.store, &app.vault, &p.user, b.code.as_bytes()).await
    } else {
        Code::Wrong
    };
    if checked != Code::Right {
        note_failure(&app, &p.user, from, "totp", Stage::After);
        refuse_code(&app, &p.user, from, "totp").await;
        let msg = match checked {
            Code::Used => "this code was already used; wait for the next one",
            _ => "wrong code",
        };
        return Err(refused(start, StatusCode::UNAUTHORIZED, msg).await);
    }
    app.mfa_budget.refund(reservation);
    sessions.unpend(&pc);
    open(&app, &sessions, &p.user, from, start).await
}

/// Both factors passed: the role from the user's groups now, then the session.
pub(super) async fn open(
    app: &App,
    sessions: &Sessions,
    user: &str,
    from: IpAddr,
    start: Instant,
) -> Result<Response, ApiError> {
    let groups = match app.store.user(user).await {
        Ok(Some(r)) => r.groups,
        Ok(None) => Vec::new(),
        Err(e) => return Err(ApiError::internal("user lookup", e)),
    };
    let Some(role) = Role::of(&groups, &app.config.console) else {
        refuse_code(app, user, from, "no-console-role").await;
        return Err(refused(
            start,
            StatusCode::FORBIDDEN,
            "this account has no console role",
        )
        .await);
    };
    let event = AuditEvent::Console(ConsoleEvent::SignedIn {
        user: user.to_string(),
        source: from.to_string(),
        role: role.as_str().into(),
    });
    audit::record(&app.store, event)
        .await
        .map_err(|e| ApiError::internal("audit of the sign-in", e))?;
    app.throttle.success(user, from);
    let (value, s) = sessions
        .open(&app.store, user, role, from, crate::clock::now_ms())
        .await
        .map_err(|e| ApiError::internal("console session", e))?;
    let cookies = [
        set_cookie(SESSION_COOKIE, &value, None),
        set_cookie(PENDING_COOKIE, "", Some(0)),
    ];
    let mut r = Json(me_json(app, &s)).into_response();
    for c in cookies {
        if let Ok(v) = header::HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(r)
}

fn me_json(app: &App, s: &super::store::Signed) -> serde_json::Value {
    json!({"user": s.user, "role": s.role.as_str(), "csrf": s.csrf,
           "idle_timeout_secs": app.config.console.idle_timeout.as_secs()})
}

/// Who is signed in, with the CSRF token for the page's requests.
pub async fn me(State(app): State<Arc<App>>, req: Request) -> Result<Response, ApiError> {
    let p = Presented::of(&req);
    drop(req);
    let s = signed_in(&app, &p).await?;
    Ok(Json(me_json(&app, &s)).into_response())
}

pub async fn signout(State(app): State<Arc<App>>, req: Request) -> Result<Response, ApiError> {
    let p = Presented::of(&req);
    drop(req);
    let s = signed_in(&app, &p).await?;
    if !p.csrf_ok(&s) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token",
        ));
    }
    p.close(&app).await?;
    let event = AuditEvent::Console(ConsoleEvent::SignedOut {
        user: s.user.clone(),
        source: s.source.clone(),
        why: "signed out".into(),
    });
    if let Err(e) = audit::record(&app.store, event).await {
        tracing::error!(error = %e, "audit of a console sign-out not written");
    }
    let c = set_cookie(SESSION_COOKIE, "", Some(0));
    Ok(([(header::SET_COOKIE, c)], Json(json!({"signed_out": true}))).into_response())
}
