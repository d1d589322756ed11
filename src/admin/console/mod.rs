//! The security team's web console, served by the admin HTTPS listener:
//! the page and its files at `/` (embedded from `web/` at build time), the
//! sign-in endpoints under `/console/`, and the cookie door onto the API
//! routes (`guard`). Every response carries a strict Content-Security-Policy.

mod assets;
pub mod guard;
pub mod role;
mod signin;
pub mod store;

use crate::app::App;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use std::sync::Arc;

pub use store::Sessions;

/// The console session cookie. `__Host-`: the browser keeps it only when
/// set with `Secure`, `Path=/` and no `Domain`.
pub const SESSION_COOKIE: &str = "__Host-pc_session";
/// The half-way cookie between the password and the code.
pub const PENDING_COOKIE: &str = "__Host-pc_pending";
/// The header the console's JS sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Nothing from another origin, no inline script or style, no framing.
/// `wasm-unsafe-eval`: asciinema-player compiles its terminal emulator
/// from WebAssembly bundled in its own (same-origin) script.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A console session for a user an IdP signed in (`admin::sso`): the
/// same role derivation from groups and the same session as a sign-in
/// with password and code.
pub async fn open_session(
    app: &App,
    sessions: &Sessions,
    user: &str,
    from: std::net::IpAddr,
) -> Result<Response, crate::admin::http::ApiError> {
    signin::open(app, sessions, user, from, std::time::Instant::now()).await
}

/// The console's own routes (the API routes are in `admin::table`).
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{*path}", get(assets::file))
        .route("/console/signin", post(signin::password))
        .route("/console/code", post(signin::code))
        .route("/console/signout", post(signin::signout))
        .route("/console/me", get(signin::me))
}

/// Security headers on every response of the listener, API included.
pub async fn headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    let keep_cache = h.contains_key(header::CACHE_CONTROL);
    let mut set = |k: HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(header::CONTENT_SECURITY_POLICY, CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    if !keep_cache {
        set(header::CACHE_CONTROL, "no-store");
    }
    r
}

/// The value of one cookie of the request.
pub fn cookie<'a>(req: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    req.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with the flags every console cookie carries.
pub fn set_cookie(name: &str, value: &str, max_age_secs: Option<u64>) -> String {
    let age = max_age_secs
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    format!("{name}={value}; HttpOnly; Secure; SameSite=Strict; Path=/{age}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_parsed_by_exact_name() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x__Host-pc_session=evil; __Host-pc_session=abc; other=1"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
        let c = set_cookie(SESSION_COOKIE, "v", None);
        for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(flag), "{c}");
        }
    }
}
