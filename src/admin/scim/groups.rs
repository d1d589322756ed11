//! `/scim/v2/Groups`: IdP groups over `ops::idp`; members are IdP users
//! (by SCIM id) and every change of them is `group.member_added|removed`.

use super::{
    GROUP_SCHEMA, ScimError, ScimResult, body_json, filter, list_response, location, patch,
    project, scim_json, search_params, time,
};
use crate::admin::tokens::Caller;
use crate::app::App;
use crate::ops::Ops;
use crate::ops::idp::{self, IdpGroup};
use crate::store::ScimGroupRow;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

fn door(app: &App, caller: &Caller) -> Ops {
    Ops::new(app.store.clone(), caller.actor())
}

fn idp_group(doc: Value) -> Result<IdpGroup, ScimError> {
    let Value::Object(obj) = doc else {
        return Err(ScimError::bad("invalidSyntax", "a group is a JSON object"));
    };
    let mut resource = Map::new();
    for (k, v) in obj {
        let lower = k.to_ascii_lowercase();
        if ["id", "meta", "schemas"].contains(&lower.as_str()) || v.is_null() {
            continue;
        }
        let k = match lower.as_str() {
            "displayname" => "displayName".to_string(),
            "externalid" => "externalId".to_string(),
            "members" => "members".to_string(),
            _ => k,
        };
        resource.insert(k, v);
    }
    let display_name = match resource.get("displayName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err(ScimError::bad("invalidValue", "displayName is required")),
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
    let mut members = Vec::new();
    match resource.get("members") {
        None => {}
        Some(Value::Array(a)) => {
            for m in a {
                match filter::get_ci(m, "value") {
                    Some(Value::String(id)) => members.push(id.clone()),
                    _ => return Err(ScimError::bad("invalidValue", "each member needs a value")),
                }
            }
        }
        Some(_) => return Err(ScimError::bad("invalidValue", "members must be a list")),
    }
    Ok(IdpGroup {
        display_name,
        external_id,
        members,
        resource: Value::Object(resource),
    })
}

pub async fn render(app: &App, row: &ScimGroupRow) -> Result<Value, ScimError> {
    let now_in = app.store.members_of(&row.group_name).await?;
    render_with(app, row, &now_in, &ids_by_name(app).await?)
}

/// SCIM user id by bastion name, read once per request.
async fn ids_by_name(app: &App) -> Result<HashMap<String, String>, ScimError> {
    Ok(app
        .store
        .scim_users()
        .await?
        .into_iter()
        .map(|u| (u.user_name, u.id))
        .collect())
}

fn render_with(
    app: &App,
    row: &ScimGroupRow,
    now_in: &[String],
    ids: &HashMap<String, String>,
) -> Result<Value, ScimError> {
    let mut doc: Value = serde_json::from_str(&row.resource)
        .map_err(|e| ScimError::bad("invalidValue", format!("stored resource: {e}")))?;
    // Members as the IdP sent them, less any no longer in the group.
    let ids: Vec<&String> = now_in.iter().filter_map(|n| ids.get(n)).collect();
    if let Some(obj) = doc.as_object_mut() {
        if let Some(Value::Array(ms)) = obj.get_mut("members") {
            ms.retain(|m| {
                filter::get_ci(m, "value")
                    .and_then(Value::as_str)
                    .is_some_and(|v| ids.iter().any(|i| *i == v))
            });
            if ms.is_empty() {
                obj.remove("members");
            }
        }
        obj.insert("schemas".into(), json!([GROUP_SCHEMA]));
        obj.insert("id".into(), json!(row.id));
        obj.insert(
            "meta".into(),
            json!({
                "resourceType": "Group",
                "created": time(row.created_ms),
                "lastModified": time(row.updated_ms),
                "location": location(app, "Groups", &row.id),
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
    let ids = ids_by_name(app).await?;
    let members: HashMap<String, Vec<String>> =
        app.store.list_groups().await?.into_iter().collect();
    app.store
        .scim_groups()
        .await?
        .iter()
        .map(|row| {
            let now_in = members
                .get(&row.group_name)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            render_with(app, row, now_in, &ids)
        })
        .collect()
}

async fn row(app: &App, id: &str) -> Result<ScimGroupRow, ScimError> {
    app.store
        .scim_group(id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no group has id {id:?}")))
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
    let g = idp_group(body_json(&body)?)?;
    let r = idp::provision_group(&door(&app, &caller), g).await?;
    Ok(with_location(StatusCode::CREATED, &render(&app, &r).await?))
}

pub async fn replace(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ScimResult {
    let g = idp_group(body_json(&body)?)?;
    let r = idp::update_group(&door(&app, &caller), &id, g).await?;
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
    let mut doc = render(&app, &current).await?;
    patch::apply(&mut doc, &ops).map_err(|(t, d)| ScimError::bad(t, d))?;
    let g = idp_group(doc)?;
    let r = idp::update_group(&door(&app, &caller), &id, g).await?;
    Ok(with_location(StatusCode::OK, &render(&app, &r).await?))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ScimResult {
    idp::remove_group(&door(&app, &caller), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
