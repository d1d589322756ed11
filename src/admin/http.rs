//! Error bodies and the JSON body extractor: every failure is
//! `{"error": "..."}` with a 4xx/5xx status, never an HTML page or a secret.

use axum::Json;
use axum::extract::{FromRequest, Request, rejection::JsonRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// A failure whose details stay in the log: the response names no internals.
    pub fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "admin API: {what}");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("{what} failed"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        use crate::store::StoreError::*;
        match e {
            Exists { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            Missing { .. } => ApiError::not_found(e.to_string()),
            other => ApiError::internal("database", other),
        }
    }
}

impl From<crate::ops::OpsError> for ApiError {
    fn from(e: crate::ops::OpsError) -> ApiError {
        use crate::ops::OpsError::*;
        match e {
            Invalid { .. } => ApiError::bad(e.to_string()),
            Store(s) => s.into(),
            Audit(s) => ApiError::internal("audit", s),
            Hash(h) => ApiError::internal("password hashing", h),
        }
    }
}

/// `Json<T>` whose rejections are our error bodies: bad syntax, wrong types
/// and unknown fields are 400 naming the field, an oversized body is 413.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(rejection(e)),
        }
    }
}

fn rejection(e: JsonRejection) -> ApiError {
    let status = match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    let text = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "request body is larger than api.max_body_bytes".into(),
        // Already names the field (serde path) and the problem; never echoes values we hold.
        _ => clip(&e.body_text()),
    };
    ApiError::new(status, text)
}

fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}

/// Parses one API body the way a request would (used by the fuzz target).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| clip(&e.to_string()))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}

pub fn validate_name(field: &str, value: &str) -> Result<(), ApiError> {
    crate::names::Name::parse(value)
        .map(|_| ())
        .map_err(|e| ApiError::bad(format!("{field}: {e}")))
}

/// `Query<T>` whose rejections are our error bodies (400 naming the parameter).
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Params(q.0))
            .map_err(|e| ApiError::bad(clip(&e.body_text())))
    }
}

/// An optional JSON body: empty means `T::default()`.
pub struct OptBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body is larger than api.max_body_bytes",
                ),
                _ => ApiError::bad(clip(&e.body_text())),
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptBody(T::default()));
        }
        parse(&bytes).map(OptBody).map_err(ApiError::bad)
    }
}

/// `Path<T>` whose rejections (e.g. bad percent-encoding) are our error bodies.
pub struct Seg<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for Seg<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Seg(p.0))
            .map_err(|e| ApiError::bad(clip(&e.body_text())))
    }
}
