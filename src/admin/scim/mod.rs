//! SCIM 2.0 (RFC 7643/7644) at `/scim/v2`: the IdP's door onto the same
//! operations as the CLI and the API (`ops::idp` over `ops::users`), with a
//! bearer token of the `scim` scope — and only that scope: no other token
//! may call it, and a `scim` token may call nothing else (`Access::allows`).
//!
//! Users and Groups are kept as the IdP's JSON beside the bastion rows, so
//! attributes the bastion does not use round-trip unchanged; what the
//! bastion acts on (userName, active, members) goes through `ops::idp`.
//! Only IdP-provisioned users and groups exist here: local (break-glass)
//! users are invisible and untouchable.

mod discovery;
pub mod filter;
mod groups;
pub mod patch;
mod users;

use super::auth::source;
use super::tokens::{self, Caller, Scope};
use crate::app::App;
use crate::audit::{self, AuditEvent};
use crate::clock::now_ms;
use crate::ops::OpsError;
use crate::store::StoreError;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub const PREFIX: &str = "/scim/v2";
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// At most this many resources in one page.
pub const MAX_RESULTS: usize = 200;

/// A SCIM error response (`urn:…:Error`), never an internal detail.
#[derive(Debug)]
pub struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }
    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }
    fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "SCIM: {what}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            format!("{what} failed"),
        )
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        let mut r = scim_json(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Exists { .. } => {
                ScimError::new(StatusCode::CONFLICT, Some("uniqueness"), e.to_string())
            }
            StoreError::Missing { .. } => ScimError::not_found(e.to_string()),
            other => ScimError::internal("database", other),
        }
    }
}

impl From<OpsError> for ScimError {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::Invalid { .. } => ScimError::bad("invalidValue", e.to_string()),
            OpsError::Store(s) => s.into(),
            OpsError::Audit(s) => ScimError::internal("audit", s),
            OpsError::Hash(h) => ScimError::internal("hashing", h),
        }
    }
}

pub type ScimResult = Result<Response, ScimError>;

/// A response with the SCIM media type.
pub fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/scim+json"),
    );
    r
}

/// A request body as JSON, whatever the content type the IdP labels it.
pub fn body_json(b: &Bytes) -> Result<Value, ScimError> {
    let v: Value = serde_json::from_slice(b)
        .map_err(|e| ScimError::bad("invalidSyntax", format!("the body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(ScimError::bad(
            "invalidSyntax",
            "the body must be a JSON object",
        ));
    }
    Ok(v)
}

/// `attributes` / `excludedAttributes` (top-level names) applied to a resource.
pub fn project(mut doc: Value, q: &HashMap<String, String>) -> Value {
    let names = |k: &str| -> Option<Vec<String>> {
        let v = q.iter().find(|(n, _)| n.eq_ignore_ascii_case(k))?.1;
        Some(
            v.split(',')
                .map(|s| filter::split_path(s.trim())[0].to_ascii_lowercase())
                .collect(),
        )
    };
    let always = ["id", "schemas"];
    if let (Some(keep), Some(obj)) = (names("attributes"), doc.as_object_mut()) {
        obj.retain(|k, _| {
            let k = k.to_ascii_lowercase();
            always.contains(&k.as_str()) || keep.contains(&k)
        });
    } else if let (Some(drop), Some(obj)) = (names("excludedAttributes"), doc.as_object_mut()) {
        obj.retain(|k, _| {
            let k = k.to_ascii_lowercase();
            always.contains(&k.as_str()) || !drop.contains(&k)
        });
    }
    doc
}

/// A filtered, paged ListResponse of rendered resources.
pub fn list_response(docs: Vec<Value>, q: &HashMap<String, String>) -> ScimResult {
    let param = |k: &str| {
        q.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    };
    let mut docs = docs;
    if let Some(f) = param("filter") {
        let f = filter::parse(f).map_err(|e| ScimError::bad("invalidFilter", e))?;
        docs.retain(|d| filter::matches(&f, d));
    }
    let num = |k: &str, default: usize| -> Result<usize, ScimError> {
        match param(k) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .map(|n| usize::try_from(n.max(0)).unwrap_or(0))
                .map_err(|_| ScimError::bad("invalidValue", format!("{k} must be an integer"))),
        }
    };
    let start = num("startIndex", 1)?.max(1);
    let count = num("count", MAX_RESULTS)?.min(MAX_RESULTS);
    let total = docs.len();
    let page: Vec<Value> = docs
        .into_iter()
        .skip(start - 1)
        .take(count)
        .map(|d| project(d, q))
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    ))
}

/// A POST `/.search` body as query parameters.
pub fn search_params(b: &Bytes) -> Result<HashMap<String, String>, ScimError> {
    let v = body_json(b)?;
    let _ = SEARCH_SCHEMA;
    let mut q = HashMap::new();
    for k in [
        "filter",
        "startIndex",
        "count",
        "attributes",
        "excludedAttributes",
    ] {
        match filter::get_ci(&v, k) {
            Some(Value::String(s)) => {
                q.insert(k.to_string(), s.clone());
            }
            Some(Value::Number(n)) => {
                q.insert(k.to_string(), n.to_string());
            }
            Some(Value::Array(a)) => {
                let s: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                q.insert(k.to_string(), s.join(","));
            }
            _ => {}
        }
    }
    Ok(q)
}

/// The location of a resource, as `meta.location`.
pub fn location(app: &App, kind: &str, id: &str) -> String {
    format!("https://{}{PREFIX}/{kind}/{id}", app.config.api.listen)
}

/// RFC 3339 of Unix milliseconds.
pub fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Only a valid token of the `scim` scope; SCIM writes are recorded as
/// `api.write` before they run, like every other API write.
async fn guard(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| zeroize::Zeroizing::new(t.trim().to_string()));
    let unauthorized = || {
        ScimError::new(
            StatusCode::UNAUTHORIZED,
            None,
            "a valid SCIM bearer token is required",
        )
        .into_response()
    };
    let Some(token) = bearer else {
        return unauthorized();
    };
    let from = source(&req);
    let caller: Caller = match tokens::authenticate(&app.store, &token, now_ms()).await {
        Ok(Ok(c)) => c,
        Ok(Err(why)) => {
            tracing::info!(reason = ?why, source = %from, "SCIM token refused");
            return unauthorized();
        }
        Err(e) => return ScimError::internal("token check", e).into_response(),
    };
    if caller.scope != Scope::Scim {
        return ScimError::new(
            StatusCode::FORBIDDEN,
            None,
            format!("the {} scope may not use SCIM", caller.scope.as_str()),
        )
        .into_response();
    }
    let read = req.method() == Method::GET
        || req.method() == Method::HEAD
        || req.uri().path().ends_with("/.search");
    if !read {
        let event = AuditEvent::ApiWrite {
            actor: caller.actor(),
            source: from,
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
        };
        if let Err(e) = audit::record(&app.store, event).await {
            return ScimError::internal("audit of the write", e).into_response();
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

async fn not_found() -> ScimError {
    ScimError::not_found("no such SCIM endpoint")
}

async fn method_not_allowed() -> ScimError {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "method not allowed here",
    )
}

/// The `/scim/v2` router, every route behind the `scim` scope.
pub fn router(app: Arc<App>) -> Router<Arc<App>> {
    use axum::routing::post;
    Router::new()
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/Users", get(users::list).post(users::create))
        .route("/Users/.search", post(users::search))
        .route(
            "/Users/{id}",
            get(users::get)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        )
        .route("/Groups", get(groups::list).post(groups::create))
        .route("/Groups/.search", post(groups::search))
        .route(
            "/Groups/{id}",
            get(groups::get)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete),
        )
        .route("/.search", post(search_all))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(app, guard))
}

/// POST `/.search` at the root: users and groups together.
async fn search_all(State(app): State<Arc<App>>, body: Bytes) -> ScimResult {
    let q = search_params(&body)?;
    let mut docs = users::all(&app).await?;
    docs.extend(groups::all(&app).await?);
    list_response(docs, &q)
}
