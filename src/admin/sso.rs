//! The browser side of SSO on the admin listener (issue 18):
//!
//! - `GET /sso/providers`: the configured providers, for the console's
//!   "Sign in with …" buttons;
//! - `GET /sso/console/{provider}`: starts a console sign-in at the IdP;
//! - `GET /sso/ssh/{token}`: the SSH link's page — the connection's source
//!   address and short code to compare with the terminal, and a link on;
//! - `GET /sso/ssh/{token}/go`: opens the link (once) and starts its
//!   sign-in at the IdP;
//! - `GET /sso/callback`: the IdP's answer, checked by `sso`, then the
//!   group mapping applied (`ops::sso`) and the console session opened or
//!   the SSH link completed.
//!
//! Every start sets `__Host-pc_sso` (SameSite=Lax: it comes back on the
//! IdP's top-level redirect) and the callback must present it: a sign-in
//! finishes only in the browser that began it. Pages are plain HTML with
//! no script (the listener's strict CSP holds); every value shown is escaped.

use super::console::{self, Sessions, cookie};
use crate::app::App;
use crate::audit::{self, AuditEvent, IdpEvent};
use crate::ops::sso::{Outcome, SignIn, apply_sign_in};
use crate::sso::SsoError;
use crate::sso::links::{LinkState, Purpose};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub const BINDING_COOKIE: &str = "__Host-pc_sso";

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/sso/providers", get(providers))
        .route("/sso/console/{provider}", get(console_start))
        .route("/sso/ssh/{token}", get(ssh_page))
        .route("/sso/ssh/{token}/go", get(ssh_go))
        .route("/sso/callback", get(callback))
}

fn esc(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} — portcullis</title>\
         <link rel=\"stylesheet\" href=\"/assets/console.css\"></head><body class=\"sso\"><main>\
         <h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

fn failed(e: &SsoError) -> Response {
    let status = match e {
        SsoError::Unreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
        SsoError::NoProvider(_) => StatusCode::NOT_FOUND,
        SsoError::Link(_) => StatusCode::GONE,
        _ => StatusCode::FORBIDDEN,
    };
    page(
        status,
        "Sign-in refused",
        &format!("<p class=\"error\">{}</p>", esc(&e.to_string())),
    )
}

/// A redirect to the IdP with a fresh binding cookie.
fn to_idp(url: &str, binding: &str, ttl: u64) -> Response {
    let c = format!(
        "{BINDING_COOKIE}={binding}; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age={ttl}"
    );
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let (Ok(l), Ok(c)) = (HeaderValue::from_str(url), HeaderValue::from_str(&c)) {
        r.headers_mut().insert(header::LOCATION, l);
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

async fn providers(State(app): State<Arc<App>>) -> Response {
    Json(serde_json::json!({ "providers": app.sso.provider_names() })).into_response()
}

async fn console_start(State(app): State<Arc<App>>, Path(provider): Path<String>) -> Response {
    let binding = console::store::secret();
    match app.sso.begin(&provider, Purpose::Console, &binding).await {
        Ok(url) => to_idp(&url, &binding, app.config.sso.link_ttl.as_secs()),
        Err(e) => failed(&e),
    }
}

async fn ssh_page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let v = match app.sso.link_view(&token) {
        Ok(v) => v,
        Err(e) => return failed(&e),
    };
    page(
        StatusCode::OK,
        "SSH sign-in",
        &format!(
            "<p>An SSH connection is waiting for <strong>{user}</strong> to sign in.</p>\
             <dl><dt>From</dt><dd id=\"source\">{source}</dd><dt>Code</dt><dd id=\"code\">{code}</dd></dl>\
             <p>Continue only if this is your connection and the code is the one your terminal shows.</p>\
             <p><a id=\"go\" href=\"/sso/ssh/{token}/go\">The code matches: sign in with {provider}</a></p>",
            user = esc(&v.user),
            source = esc(&v.source),
            code = esc(&v.code),
            token = esc(&token),
            provider = esc(&v.provider),
        ),
    )
}

async fn ssh_go(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let binding = console::store::secret();
    match app.sso.link_begin(&token, &binding).await {
        Ok(url) => to_idp(&url, &binding, app.config.sso.link_ttl.as_secs()),
        Err(e) => failed(&e),
    }
}

async fn refuse(app: &App, provider: &str, purpose: &str, from: &str, e: &SsoError) -> Response {
    let event = AuditEvent::Idp(IdpEvent::SsoRefused {
        user: match e {
            SsoError::WrongUser { expected, .. } => expected.clone(),
            _ => String::new(),
        },
        provider: provider.to_string(),
        purpose: purpose.to_string(),
        source: from.to_string(),
        reason: e.to_string(),
    });
    if let Err(err) = audit::record(&app.store, event).await {
        tracing::error!(error = %err, "audit of a refused SSO sign-in not written");
    }
    tracing::info!(source = %from, purpose, reason = %e, "SSO sign-in refused");
    failed(e)
}

async fn callback(
    State(app): State<Arc<App>>,
    Extension(sessions): Extension<Arc<Sessions>>,
    conn: ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let from_ip = conn.0.ip().to_canonical();
    let from = from_ip.to_string();
    let (Some(state), Some(code)) = (q.get("state"), q.get("code")) else {
        let e = match q.get("error") {
            Some(_) => SsoError::Refused("the identity provider did not sign you in"),
            None => SsoError::UnknownState,
        };
        return refuse(&app, "", "", &from, &e).await;
    };
    let binding = cookie(&headers, BINDING_COOKIE);
    let (purpose, id) = match app.sso.finish(state, code, binding).await {
        Ok(r) => r,
        Err(r) => return refuse(&app, &r.provider, r.purpose, &from, &r.error).await,
    };
    let kind = match &purpose {
        Purpose::Console => "console",
        Purpose::Ssh { .. } => "ssh",
    };
    let create = app
        .config
        .sso
        .provider(&id.provider)
        .is_some_and(|p| p.create_users);
    let ops = crate::ops::Ops::new(app.store.clone(), format!("sso:{}", id.provider));
    let s = SignIn {
        provider: &id.provider,
        username: &id.username,
        groups: &id.groups,
        managed: &id.managed,
        create_users: create,
    };
    let applied = apply_sign_in(&ops, &s).await;
    let fail = |why: &str| {
        if let Purpose::Ssh { link } = &purpose {
            app.sso
                .link_complete(link, LinkState::Failed(why.to_string()));
        }
    };
    match applied {
        Ok(Outcome::Ready(_)) => {}
        Ok(Outcome::Unknown) => {
            fail("not a bastion user");
            let e = SsoError::Refused(
                "you signed in at the identity provider, but you have no account on this bastion",
            );
            return refuse(&app, &id.provider, kind, &from, &e).await;
        }
        Err(e) => {
            fail("the sign-in could not be applied");
            tracing::error!(error = %e, "SSO sign-in not applied");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in failed",
                "<p class=\"error\">the sign-in could not be recorded; try again</p>",
            );
        }
    }
    match purpose {
        Purpose::Ssh { link } => {
            // The SSH connection audits the sign-in with its login.
            app.sso.link_complete(&link, LinkState::Done(Box::new(id)));
            page(
                StatusCode::OK,
                "Signed in",
                "<p id=\"done\">You are signed in. Return to your terminal: the SSH login continues.</p>",
            )
        }
        Purpose::Console => {
            let event = AuditEvent::Idp(IdpEvent::SsoSignedIn {
                user: id.username.clone(),
                provider: id.provider.clone(),
                subject: id.subject.clone(),
                purpose: "console".into(),
                source: from.clone(),
            });
            if let Err(e) = audit::record(&app.store, event).await {
                tracing::error!(error = %e, "audit of an SSO sign-in not written; refused");
                return page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in failed",
                    "<p class=\"error\">the sign-in could not be recorded; try again</p>",
                );
            }
            match console::open_session(&app, &sessions, &id.username, from_ip).await {
                Ok(mut r) => {
                    *r.status_mut() = StatusCode::SEE_OTHER;
                    r.headers_mut()
                        .insert(header::LOCATION, HeaderValue::from_static("/"));
                    r
                }
                Err(e) => page(
                    e.status,
                    "Sign-in refused",
                    &format!("<p class=\"error\">{}</p>", esc(&e.message)),
                ),
            }
        }
    }
}
