//! Bearer-token checks: every route declares an `Access`; the middleware
//! turns a missing, malformed, unknown, revoked or expired token into 401, a
//! valid token of the wrong scope into 403, and a store failure into 503
//! (undecidable is no). Writes are audited before they run.

use super::http::ApiError;
use super::tokens::{self, Scope};
use crate::app::App;
use crate::audit::{self, AuditEvent};
use crate::clock::now_ms;
use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// No token (health, the OpenAPI document).
    Public,
    /// admin only.
    Admin,
    /// admin and auditor: reads of everything.
    Read,
    /// admin and killswitch: locks and terminating sessions.
    Kill,
    /// admin, auditor and killswitch: listing sessions and locks (not scim).
    Watch,
}

impl Access {
    pub fn allows(self, scope: Scope) -> bool {
        match self {
            Access::Public => true,
            Access::Admin => scope == Scope::Admin,
            Access::Read => matches!(scope, Scope::Admin | Scope::Auditor),
            Access::Kill => matches!(scope, Scope::Admin | Scope::Killswitch),
            // Every API scope but `scim`, which only provisions (`/scim/v2`).
            Access::Watch => matches!(scope, Scope::Admin | Scope::Auditor | Scope::Killswitch),
        }
    }
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub(crate) fn source(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        // Canonical, as at the SSH accept: `[::]` takes IPv4 as ::ffff:a.b.c.d.
        .map(|c| c.0.ip().to_canonical().to_string())
        .unwrap_or_default()
}

/// The middleware for one access level.
pub async fn check(
    access: Access,
    app: Arc<App>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if access == Access::Public {
        return Ok(next.run(req).await);
    }
    let unauthorized =
        || ApiError::new(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
    // Owned copies: the request body is not `Sync`, so no borrow of the
    // request may live across an await.
    let Some(token) = bearer(&req).map(|t| zeroize::Zeroizing::new(t.to_string())) else {
        return Err(unauthorized());
    };
    let from = source(&req);
    let known = req.extensions().get::<Arc<KillTokens>>().cloned();
    let caller = match tokens::authenticate(&app.store, &token, now_ms()).await {
        Ok(Ok(c)) => {
            if let Some(k) = &known {
                k.seen(&token, &c);
            }
            c
        }
        Ok(Err(why)) => {
            tracing::info!(reason = ?why, source = %from, "admin API token refused");
            return Err(unauthorized());
        }
        // No database: the kill switch still works for a token this node
        // checked while it answered (locking more, never less).
        Err(e) if access == Access::Kill && crate::store::unreachable(&e) => {
            match known.and_then(|k| k.recall(&token)) {
                Some(c) => {
                    tracing::warn!(token = %c.id, source = %from, "database unreachable: kill-switch token accepted as this node last checked it");
                    c
                }
                None => return Err(ApiError::internal("token check", e)),
            }
        }
        Err(e) => return Err(ApiError::internal("token check", e)),
    };
    if !access.allows(caller.scope) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the {} scope may not use this route", caller.scope.as_str()),
        ));
    }
    // Kill-switch writes are audited by their own events (lock.created,
    // session.terminated) once done: a lockdown must not wait on, or be
    // refused by, an audit store that is failing — locking fails closed.
    // A lift is the opposite: `lockdown::lift` audits it before it writes
    // it, and a lift that cannot be audited does not happen.
    let audited_later = access == Access::Kill;
    if req.method() != Method::GET && req.method() != Method::HEAD && !audited_later {
        let event = AuditEvent::ApiWrite {
            actor: caller.actor(),
            source: from,
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
        };
        audit::record(&app.store, event)
            .await
            .map_err(|e| ApiError::internal("audit of the write", e))?;
    }
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// Tokens of the kill-switch routes' scopes this node checked against the
/// database, kept (as a SHA-256 of the whole token, never the token) for
/// a database outage: a lock or a kill must not wait for the database.
/// Only for the `Kill` routes, and only until the token's expiry or 24 h
/// after it was last checked; a revocation needs the database anyway.
#[derive(Debug, Default)]
pub struct KillTokens(
    std::sync::Mutex<std::collections::HashMap<[u8; 32], (tokens::Caller, std::time::Instant)>>,
);

const KILL_TOKEN_MEMORY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn token_digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl KillTokens {
    fn seen(&self, token: &str, c: &tokens::Caller) {
        if !Access::Kill.allows(c.scope) {
            return;
        }
        use crate::sync::MutexExt;
        let mut m = self.0.lock_or_recover();
        m.retain(|_, (_, at)| at.elapsed() < KILL_TOKEN_MEMORY);
        if m.len() < 10_000 {
            m.insert(token_digest(token), (c.clone(), std::time::Instant::now()));
        }
    }

    fn recall(&self, token: &str) -> Option<tokens::Caller> {
        use crate::sync::MutexExt;
        let m = self.0.lock_or_recover();
        let (c, at) = m.get(&token_digest(token))?;
        (at.elapsed() < KILL_TOKEN_MEMORY).then(|| c.clone())
    }
}
