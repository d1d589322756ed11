//! `/scim/v2/Users`: IdP users over `ops::idp` (create, replace, PATCH,
//! deprovision, delete). The stored resource is the IdP's JSON; `id`,
//! `meta`, `active` and the read-only `groups` are the bastion's.

use super::{
    ScimError, ScimResult, USER_SCHEMA, body_json, filter, list_response, location, patch, project,
    scim_json, search_params, time,
};
use crate::admin::tokens::Caller;
use crate::app::App;
use crate::ops::Ops;
use crate::ops::idp::{self, IdpUser};
use crate::store::{ScimGroupRow, ScimUserRow};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Attributes the bastion sets itself, never taken from a request.
const SERVER_OWNED: [&str; 5] = ["id", "meta", "groups", "schemas", "password"];

fn door(app: &App, caller: &Caller) -> Ops {
    Ops::new(app.store.clone(), caller.actor())
}

/// `active` as a boolean: `true`/`false`, or the strings Entra ID sends
/// (`"True"`, `"False"`, any case). `None` when absent: a new user is
/// active, an existing one keeps its state (removing the attribute never
/// reactivates anyone).
pub fn active_of(doc: &Value) -> Result<Option<bool>, ScimError> {
    match filter::get_ci(doc, "active") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(ScimError::bad("invalidValue", "active must be a boolean")),
    }
}

/// A request's resource → what `ops::idp` takes; `current` is the state
/// kept when the request says nothing of `active`.
fn idp_user(doc: Value, current: bool) -> Result<IdpUser, ScimError> {
    let said = active_of(&doc)?;
    let active = said.unwrap_or(current);
    let Value::Object(obj) = doc else {
        return Err(ScimError::bad("invalidSyntax", "a user is a JSON object"));
    };
    let mut resource = Map::new();
    for (k, v) in obj {
        let lower = k.to_ascii_lowercase();
        if SERVER_OWNED.iter().any(|s| s.eq_ignore_ascii_case(&lower)) || v.is_null() {
            continue;
        }
        let k = match lower.as_str() {
            "username" => "userName".to_string(),
            "externalid" => "externalId".to_string(),
            "active" => "active".to_string(),
            _ => k,
        };
        resource.insert(k, v);
    }
    if said.is_some() {
        resource.insert("active".into(), json!(active));
    } else {
        resource.remove("active");
    }
    let user_name = match resource.get("userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err(ScimError::bad("invalidValue", "userName is required")),
    };
    let external_id = match resource.get("externalId") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ScimError::bad(
                "invalidValue",
                "externalId must be a string",
            ));
        }
    };
    Ok(IdpUser {
        user_name,
        external_id,
        active,
        resource: Value::Object(resource),
    })
}

/// The IdP groups and their members, read once per request (two
/// queries, whatever the number of users rendered).
pub struct Directory {
    groups: Vec<(ScimGroupRow, Vec<String>)>,
}

impl Directory {
    pub async fn load(app: &App) -> Result<Directory, ScimError> {
        let members: HashMap<String, Vec<String>> =
            app.store.list_groups().await?.into_iter().collect();
        let groups = app
            .store
            .scim_groups()
            .await?
            .into_iter()
            .map(|g| {
                let m = members.get(&g.group_name).cloned().unwrap_or_default();
                (g, m)
            })
            .collect();
        Ok(Directory { groups })
    }

    /// (group id, displayName) of every IdP group `user` is in.
    fn groups_of(&self, app: &App, user: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for (g, members) in &self.groups {
            if members.iter().any(|m| m == user) {
                let doc: Value = serde_json::from_str(&g.resource).unwrap_or(Value::Null);
                let display = filter::get_ci(&doc, "displayName")
                    .cloned()
                    .unwrap_or(json!(g.group_name));
                out.push(json!({
                    "value": g.id,
                    "$ref": location(app, "Groups", &g.id),
                    "display": display,
                    "type": "direct",
                }));
            }
        }
        out
    }
}

pub async fn render(app: &App, row: &ScimUserRow) -> Result<Value, ScimError> {
    render_with(app, row, &Directory::load(app).await?)
}

fn render_with(app: &App, row: &ScimUserRow, dir: &Directory) -> Result<Value, ScimError> {
    let mut doc: Value = serde_json::from_str(&row.resource)
        .map_err(|e| ScimError::bad("invalidValue", format!("stored resource: {e}")))?;
    let groups = dir.groups_of(app, &row.user_name);
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("schemas".into(), json!([USER_SCHEMA]));
        obj.insert("id".into(), json!(row.id));
        if obj.contains_key("active") {
            obj.insert("active".into(), json!(row.active));
        }
        if !groups.is_empty() {
            obj.insert("groups".into(), json!(groups));
        }
        obj.insert(
            "meta".into(),
            json!({
                "resourceType": "User",
                "created": time(row.created_ms),
                "lastModified": time(row.updated_ms),
                "location": location(app, "Users", &row.id),
                "version": format!("W/\"{}\"", row.version),
            }),
        );
    }
    Ok(doc)
}

fn with_location(status: StatusCode, doc: &Value) -> axum::response::Response {
    let mut r = scim_json(status, doc);
    if let Some(l) = doc["meta"]["location"]
        .as_str()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        r.headers_mut().insert(header::LOCATION, l);
    }
    r
}

pub async fn all(app: &App) -> Result<Vec<Value>, ScimError> {
    let dir = Directory::load(app).await?;
    app.store
        .scim_users()
        .await?
        .iter()
        .map(|row| render_with(app, row, &dir))
        .collect()
}

async fn row(app: &App, id: &str) -> Result<ScimUserRow, ScimError> {
    app.store
        .scim_user(id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no user has id {id:?}")))
}

pub async fn list(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> ScimResult {
    list_response(all(&app).await?, &q)
}

pub async fn search(State(app): State<Arc<App>>, body: Bytes) -> ScimResult {
    let q = search_params(&body)?;
    list_response(all(&app).await?, &q)
}

pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ScimResult {
    let r = row(&app, &id).await?;
    Ok(scim_json(
        StatusCode::OK,
        &project(render(&app, &r).await?, &q),
    ))
}

pub async fn create(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ScimResult {
    let mut doc = body_json(&body)?;
    if active_of(&doc)?.is_none() {
        doc["active"] = json!(true);
    }
    let u = idp_user(doc, true)?;
    let r = idp::provision_user(&app, &door(&app, &caller), u).await?;
    Ok(with_location(StatusCode::CREATED, &render(&app, &r).await?))
}

pub async fn replace(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ScimResult {
    let current = row(&app, &id).await?;
    let u = idp_user(body_json(&body)?, current.active)?;
    let r = idp::update_user(&app, &door(&app, &caller), &id, u).await?;
    Ok(with_location(StatusCode::OK, &render(&app, &r).await?))
}

pub async fn patch(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ScimResult {
    let ops = body_json(&body)?;
    let current = row(&app, &id).await?;
    let mut doc: Value = serde_json::from_str(&current.resource).unwrap_or_else(|_| json!({}));
    patch::apply(&mut doc, &ops).map_err(|(t, d)| ScimError::bad(t, d))?;
    let u = idp_user(doc, current.active)?;
    let r = idp::update_user(&app, &door(&app, &caller), &id, u).await?;
    Ok(with_location(StatusCode::OK, &render(&app, &r).await?))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ScimResult {
    idp::remove_user(&app, &door(&app, &caller), &id).await?;
    Ok(axum::response::IntoResponse::into_response(
        StatusCode::NO_CONTENT,
    ))
}
