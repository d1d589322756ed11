//! The HTTPS admin API: bearer tokens with scopes, JSON in and out, served
//! with rustls beside the SSH gateway on the same `Arc<App>`. The only
//! module that imports the HTTP stack.
//!
//! Every route is declared once in `table()` with the `Access` it needs; the
//! router, the scope matrix test and the OpenAPI check all read that table.

mod activity;
pub mod auth;
pub mod bodies;
pub mod console;
mod evidence;
mod grants;
pub mod http;
mod live;
mod live_replay;
mod locks;
mod ops;
pub mod scim;
mod search;
mod sessions;
pub mod sso;
mod targets;
pub mod tls;
pub mod tokens;
mod users;

use crate::app::App;
use auth::Access;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, delete, get, post, put};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin API TLS: {0}")]
    Tls(String),
    #[error("admin API cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub const PREFIX: &str = "/api/v1";

type Handler = MethodRouter<Arc<App>>;

/// Every route: method, path (axum syntax, below `PREFIX`), who may call it.
fn table() -> Vec<(Method, &'static str, Access, Handler)> {
    use Access::*;
    use Method as M;
    vec![
        (M::GET, "/health", Public, get(ops::health)),
        (M::GET, "/openapi.json", Public, get(ops::openapi)),
        (M::GET, "/metrics", Read, get(ops::metrics)),
        (M::GET, "/users", Read, get(users::list)),
        (M::POST, "/users", Admin, post(users::create)),
        (M::GET, "/users/{name}", Read, get(users::get)),
        (M::DELETE, "/users/{name}", Admin, delete(users::delete)),
        (
            M::PUT,
            "/users/{name}/password",
            Admin,
            put(users::set_password),
        ),
        (M::POST, "/users/{name}/keys", Admin, post(users::add_key)),
        (
            M::DELETE,
            "/users/{name}/keys/{fingerprint}",
            Admin,
            delete(users::remove_key),
        ),
        (M::GET, "/groups", Read, get(users::list_groups)),
        (M::POST, "/groups", Admin, post(users::create_group)),
        (
            M::DELETE,
            "/groups/{name}",
            Admin,
            delete(users::delete_group),
        ),
        (
            M::POST,
            "/groups/{name}/members",
            Admin,
            post(users::add_member),
        ),
        (
            M::DELETE,
            "/groups/{name}/members/{user}",
            Admin,
            delete(users::remove_member),
        ),
        (M::GET, "/targets", Read, get(targets::list)),
        (M::POST, "/targets", Admin, post(targets::create)),
        (M::GET, "/targets/{name}", Read, get(targets::get)),
        (M::DELETE, "/targets/{name}", Admin, delete(targets::delete)),
        (
            M::PUT,
            "/targets/{name}/credentials/{login}",
            Admin,
            put(targets::set_credential),
        ),
        (M::GET, "/credentials", Read, get(targets::list_credentials)),
        (M::GET, "/grants", Read, get(grants::list)),
        (M::POST, "/grants", Admin, post(grants::create)),
        (M::DELETE, "/grants/{id}", Admin, delete(grants::delete)),
        (M::GET, "/requests", Read, get(grants::list_requests)),
        (
            M::POST,
            "/requests/{id}/approve",
            Admin,
            post(grants::approve),
        ),
        (M::POST, "/requests/{id}/deny", Admin, post(grants::deny)),
        (M::GET, "/tokens", Read, get(grants::list_tokens)),
        (M::POST, "/tokens", Admin, post(grants::create_token)),
        (
            M::DELETE,
            "/tokens/{id}",
            Admin,
            delete(grants::revoke_token),
        ),
        (M::GET, "/sessions", Watch, get(sessions::list)),
        (M::GET, "/sessions/{id}", Watch, get(sessions::get)),
        (M::GET, "/sessions/{id}/live", Read, get(live::live)),
        (
            M::GET,
            "/sessions/{id}/activity",
            Read,
            get(activity::activity),
        ),
        (
            M::POST,
            "/sessions/{id}/terminate",
            Kill,
            post(sessions::terminate),
        ),
        (
            M::GET,
            "/sessions/{id}/evidence",
            Read,
            get(evidence::session_bundle),
        ),
        (M::GET, "/recordings", Read, get(sessions::list_recordings)),
        (
            M::GET,
            "/recordings/{name}/cast",
            Read,
            get(sessions::download),
        ),
        (
            M::GET,
            "/recordings/{name}/segments",
            Read,
            get(live_replay::index),
        ),
        (
            M::GET,
            "/recordings/{name}/segment",
            Read,
            get(live_replay::segment),
        ),
        (
            M::GET,
            "/recordings/{name}/verify",
            Read,
            get(sessions::verify),
        ),
        (M::GET, "/audit", Read, get(sessions::audit_query)),
        (M::GET, "/audit/export", Read, get(evidence::audit_export)),
        (M::GET, "/search", Read, get(search::search)),
        (M::GET, "/locks", Watch, get(locks::list)),
        (M::POST, "/locks", Kill, post(locks::create)),
        (M::DELETE, "/locks/{id}", Kill, delete(locks::lift)),
    ]
}

/// (method, full path, access) of every route, for tests and documentation.
pub fn routes() -> Vec<(Method, String, Access)> {
    table()
        .into_iter()
        .map(|(m, p, a, _)| (m, format!("{PREFIX}{p}"), a))
        .collect()
}

/// A bearer token, or a console session cookie (plus its CSRF token on
/// writes): both are checked against the route's `Access` by scope.
fn guard(app: &Arc<App>, access: Access, h: Handler) -> Handler {
    use console::guard as g;
    match access {
        Access::Public => h,
        Access::Admin => h.route_layer(from_fn_with_state(app.clone(), g::admin)),
        Access::Read => h.route_layer(from_fn_with_state(app.clone(), g::read)),
        Access::Kill => h.route_layer(from_fn_with_state(app.clone(), g::kill)),
        Access::Watch => h.route_layer(from_fn_with_state(app.clone(), g::watch)),
    }
}

pub fn router(app: Arc<App>) -> Router {
    let mut r: Router<Arc<App>> = Router::new();
    for (_, path, access, h) in table() {
        r = r.route(&format!("{PREFIX}{path}"), guard(&app, access, h));
    }
    r.nest(scim::PREFIX, scim::router(app.clone()))
        .merge(console::routes())
        .merge(sso::routes())
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(DefaultBodyLimit::max(app.config.api.max_body_bytes))
        .layer(axum::Extension(Arc::new(ops::HealthCache::default())))
        .layer(axum::Extension(Arc::new(auth::KillTokens::default())))
        .layer(axum::Extension(Arc::new(console::Sessions::default())))
        .layer(axum::middleware::from_fn(console::headers))
        .with_state(app)
}

/// Starts the API when enabled; it stops when `shutdown` is cancelled.
/// Returns the bound address and the serving task.
pub async fn start(
    app: Arc<App>,
    shutdown: CancellationToken,
) -> Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>, AdminError> {
    let api = &app.config.api;
    if !api.enabled {
        return Ok(None);
    }
    let tls = tls::server_config(api, &app.config.data_dir)?;
    let bind = |source| AdminError::Bind {
        addr: api.listen,
        source,
    };
    let listener = std::net::TcpListener::bind(api.listen).map_err(bind)?;
    listener.set_nonblocking(true).map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )
    .handle(handle.clone());
    let service = router(app).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        let stopper = tokio::spawn(async move {
            shutdown.cancelled().await;
            handle.graceful_shutdown(Some(Duration::from_secs(2)));
        });
        if let Err(e) = server.serve(service).await {
            tracing::error!(error = %e, "admin API stopped");
        }
        stopper.abort();
    });
    tracing::info!(%addr, "admin API listening (HTTPS)");
    Ok(Some((addr, task)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_documents_every_route_and_its_access() {
        let doc: serde_json::Value = serde_json::from_str(ops::OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let routes = routes();
        for (method, path, access) in &routes {
            let op = &paths
                .get(path)
                .unwrap_or_else(|| panic!("{path} missing from openapi.json"))
                [method.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{method} {path} missing from openapi.json");
            let want = serde_json::to_value(access).unwrap();
            assert_eq!(op["x-portcullis-access"], want, "{method} {path}");
        }
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(
            documented,
            routes.len(),
            "openapi.json has operations that are not routed"
        );
    }
}
