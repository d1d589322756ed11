//! The cookie door onto the API routes: a request with a console session
//! cookie (and no bearer token) is served under the scope its role maps to,
//! through the same `Access::allows` as a token; state-changing requests
//! must carry the session's CSRF token. Anything else goes to the token check.

use super::role::Role;
use super::store::{Sessions, Signed, ct_eq};
use super::{CSRF_HEADER, SESSION_COOKIE, cookie};
use crate::admin::auth::{self, Access};
use crate::admin::http::ApiError;
use crate::admin::tokens::Caller;
use crate::app::App;
use crate::audit::console::ConsoleEvent;
use crate::audit::{self, AuditEvent};
use crate::policy::{LockScope, Subject};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub fn source(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical().to_string())
        .unwrap_or_default()
}

fn unsigned() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "the console session has ended; sign in again",
    )
}

/// What a request says about its console session, owned: the request
/// body is not `Sync`, so no borrow of the request may live across an await.
pub struct Presented {
    sessions: Option<Arc<Sessions>>,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Presented {
    pub fn of(req: &Request) -> Presented {
        Presented {
            sessions: req.extensions().get::<Arc<Sessions>>().cloned(),
            cookie: cookie(req.headers(), SESSION_COOKIE).map(str::to_string),
            csrf: req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        }
    }

    /// The session's CSRF token must be in its header (not a cookie, which
    /// a cross-site request would carry along).
    pub fn csrf_ok(&self, s: &Signed) -> bool {
        self.csrf
            .as_deref()
            .is_some_and(|v| ct_eq(v.as_bytes(), s.csrf.as_bytes()))
    }

    /// Ends the presented session (sign-out) on every node.
    pub async fn close(&self, app: &App) -> Result<(), ApiError> {
        if let (Some(sessions), Some(c)) = (&self.sessions, &self.cookie) {
            sessions
                .close(&app.store, c)
                .await
                .map_err(|e| ApiError::internal("console session", e))?;
        }
        Ok(())
    }
}

/// The signed-in console user; an idled-out session is audited as signed
/// out and refused.
pub async fn signed_in(app: &App, p: &Presented) -> Result<Signed, ApiError> {
    let (Some(sessions), Some(value)) = (&p.sessions, &p.cookie) else {
        return Err(unsigned());
    };
    let now = crate::clock::now_ms();
    let idle = app.config.console.idle_timeout;
    // A store that cannot answer signs nobody in (fail closed).
    let store_err = |e| ApiError::internal("console session", e);
    for s in sessions
        .sweep(&app.store, idle, now)
        .await
        .map_err(store_err)?
    {
        idled_out(app, &s).await;
    }
    match sessions
        .touch(&app.store, value, idle, now)
        .await
        .map_err(store_err)?
    {
        Some(Ok(s)) => as_now(app, p, s).await,
        Some(Err(s)) => {
            idled_out(app, &s).await;
            Err(unsigned())
        }
        None => Err(unsigned()),
    }
}

/// The session's user as they stand at this request: the role from their
/// groups now, not at sign-in (a role fixed at sign-in would outlive an
/// offboarding until the idle timeout); in no console group any more, or
/// gone, the session ends for good.
async fn as_now(app: &App, p: &Presented, mut s: Signed) -> Result<Signed, ApiError> {
    let groups = match app.store.user(&s.user).await {
        Ok(Some(r)) => r.groups,
        Ok(None) => Vec::new(),
        Err(e) => return Err(ApiError::internal("user lookup", e)),
    };
    let Some(role) = Role::of(&groups, &app.config.console) else {
        p.close(app).await?;
        let event = AuditEvent::Console(ConsoleEvent::SignedOut {
            user: s.user.clone(),
            source: s.source.clone(),
            why: "no console role any more".into(),
        });
        if let Err(e) = audit::record(&app.store, event).await {
            tracing::error!(error = %e, "audit of a console sign-out not written");
        }
        return Err(unsigned());
    };
    s.role = role;
    Ok(s)
}

/// Refused while a lock on the signed-in user is in force: a locked
/// responder cannot terminate or lift anything. Only user locks count: a
/// lockdown of everything (or of the source a responder sits at) must not
/// lock the security team out of the console they lift it from.
pub fn unlocked(app: &App, s: &Signed) -> Result<(), ApiError> {
    let subject = Subject {
        user: Some(&s.user),
        target: None,
        source: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        session: None,
    };
    let mine = app
        .locks
        .in_force(crate::clock::now_ms())
        .into_iter()
        .find(|l| matches!(l.scope, LockScope::User(_)) && l.scope.covers(&subject));
    match mine {
        None => Ok(()),
        Some(l) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("portcullis: access is {}", crate::lockdown::kill_reason(&l)),
        )),
    }
}

async fn idled_out(app: &App, s: &Signed) {
    let event = AuditEvent::Console(ConsoleEvent::SignedOut {
        user: s.user.clone(),
        source: s.source.clone(),
        why: "idle timeout".into(),
    });
    if let Err(e) = audit::record(&app.store, event).await {
        tracing::error!(error = %e, "audit of a console idle timeout not written");
    }
}

fn is_safe(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD
}

pub async fn check(
    access: Access,
    app: Arc<App>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = req.headers().contains_key(header::AUTHORIZATION);
    if access == Access::Public || token || cookie(req.headers(), SESSION_COOKIE).is_none() {
        return auth::check(access, app, req, next).await;
    }
    let presented = Presented::of(&req);
    let (method, path, from) = (
        req.method().clone(),
        req.uri().path().to_string(),
        source(&req),
    );
    let s = signed_in(&app, &presented).await?;
    unlocked(&app, &s)?;
    let Some(scope) = s.role.scope_for(access) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the {} role may not do this", s.role.as_str()),
        ));
    };
    if !is_safe(&method) {
        if !presented.csrf_ok(&s) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token",
            ));
        }
        let event = AuditEvent::Console(ConsoleEvent::Action {
            user: s.user.clone(),
            source: from,
            method: method.to_string(),
            path,
        });
        audit_action(&app, event, access).await?;
    }
    req.extensions_mut().insert(Caller {
        id: s.id.clone(),
        name: s.user.clone(),
        scope,
        console: true,
    });
    Ok(next.run(req).await)
}

/// Written before the change, as `api.write` is for tokens. A kill-switch
/// action must not wait on the audit store (it audits itself once done,
/// with the console user as actor), so its record is not waited for.
async fn audit_action(app: &Arc<App>, event: AuditEvent, access: Access) -> Result<(), ApiError> {
    if access == Access::Kill {
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = audit::record(&app.store, event).await {
                tracing::error!(error = %e, "audit of a console action not written");
            }
        });
        return Ok(());
    }
    audit::record(&app.store, event)
        .await
        .map_err(|e| ApiError::internal("audit of the action", e))
}

macro_rules! layer_fn {
    ($name:ident, $access:expr) => {
        pub async fn $name(
            State(app): State<Arc<App>>,
            req: Request,
            next: Next,
        ) -> Result<Response, ApiError> {
            check($access, app, req, next).await
        }
    };
}

layer_fn!(admin, Access::Admin);
layer_fn!(read, Access::Read);
layer_fn!(kill, Access::Kill);
layer_fn!(watch, Access::Watch);
