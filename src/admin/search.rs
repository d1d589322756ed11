//! `GET /search`: text typed or printed in any recording, with the same
//! filters as `portcullis sessions search`, through the same operation
//! (`recorder::search`). Hits carry plain-text excerpts (filtered).

use super::http::{ApiError, Params, validate_name};
use crate::app::App;
use crate::clock::now_ms;
use crate::recorder::search::{self, SearchError, SearchQuery};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// Hits answered when no limit is given, and the most one answer holds.
const DEFAULT_HITS: usize = 100;
const MAX_HITS: usize = 1000;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    q: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    target: Option<String>,
    /// RFC 3339, a date, Unix ms, or an age (`24h`): sessions started then or later.
    #[serde(default)]
    since: Option<String>,
    /// The same forms: sessions started then or earlier.
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> ApiError {
        match e {
            SearchError::Invalid(m) => ApiError::bad(m),
            SearchError::Store(s) => s.into(),
            e @ SearchError::Worker(_) => ApiError::internal("search", e),
        }
    }
}

fn time(field: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    let now = now_ms();
    v.filter(|s| !s.trim().is_empty())
        .map(|s| crate::audit::parse_time(s, now))
        .transpose()
        .map_err(|_| {
            ApiError::bad(format!(
                "{field}: expected RFC 3339, a date, Unix ms or an age"
            ))
        })
}

fn name(field: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    let v = v.filter(|s| !s.is_empty());
    if let Some(n) = &v {
        validate_name(field, n)?;
    }
    Ok(v)
}

pub async fn search(
    State(app): State<Arc<App>>,
    Params(p): Params<SearchParams>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let limit = match p.limit {
        None => DEFAULT_HITS,
        Some(n) if (1..=MAX_HITS).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::bad(format!(
                "limit: expected between 1 and {MAX_HITS}"
            )));
        }
    };
    let q = SearchQuery {
        pattern: p.q,
        user: name("user", p.user)?,
        target: name("target", p.target)?,
        since_ms: time("since", p.since.as_deref())?,
        until_ms: time("until", p.until.as_deref())?,
        scan: false,
        limit: Some(limit),
    };
    let r = search::search(&app.store, &app.config.recordings_dir, &q).await?;
    Ok((StatusCode::OK, Json(json!(r))))
}
