//! ServiceProviderConfig, Schemas and ResourceTypes (RFC 7643 §5–7): what
//! this server supports, read by IdPs and by `scim2-tester` before anything.

use super::{GROUP_SCHEMA, PREFIX, ScimError, ScimResult, USER_SCHEMA, location, scim_json};
use crate::app::App;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

fn attr(name: &str, kind: &str, multi: bool, required: bool, mutability: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": multi,
        "description": name,
        "required": required,
        "caseExact": false,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": "none",
    })
}

fn complex(name: &str, multi: bool, mutability: &str, subs: Vec<Value>) -> Value {
    let mut a = attr(name, "complex", multi, false, mutability);
    a["subAttributes"] = json!(subs);
    a
}

fn reference(name: &str, types: &[&str], mutability: &str) -> Value {
    let mut a = attr(name, "reference", false, false, mutability);
    a["referenceTypes"] = json!(types);
    a
}

fn user_schema(app: &App) -> Value {
    let mut user_name = attr("userName", "string", false, true, "readWrite");
    user_name["uniqueness"] = json!("server");
    let rw = "readWrite";
    let ro = "readOnly";
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "A bastion user provisioned by the identity provider",
        "attributes": [
            user_name,
            complex("name", false, rw, vec![
                attr("formatted", "string", false, false, rw),
                attr("familyName", "string", false, false, rw),
                attr("givenName", "string", false, false, rw),
                attr("middleName", "string", false, false, rw),
                attr("honorificPrefix", "string", false, false, rw),
                attr("honorificSuffix", "string", false, false, rw),
            ]),
            attr("displayName", "string", false, false, rw),
            attr("active", "boolean", false, false, rw),
            complex("emails", true, rw, vec![
                attr("value", "string", false, false, rw),
                attr("display", "string", false, false, rw),
                attr("type", "string", false, false, rw),
                attr("primary", "boolean", false, false, rw),
            ]),
            complex("groups", true, ro, vec![
                attr("value", "string", false, false, ro),
                reference("$ref", &["User", "Group"], ro),
                attr("display", "string", false, false, ro),
                attr("type", "string", false, false, ro),
            ]),
        ],
        "meta": {"resourceType": "Schema", "location": schema_location(app, USER_SCHEMA)},
    })
}

fn group_schema(app: &App) -> Value {
    let rw = "readWrite";
    let mut display = attr("displayName", "string", false, true, rw);
    display["uniqueness"] = json!("server");
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": GROUP_SCHEMA,
        "name": "Group",
        "description": "A bastion group provisioned by the identity provider",
        "attributes": [
            display,
            complex("members", true, rw, vec![
                attr("value", "string", false, false, "immutable"),
                reference("$ref", &["User"], "immutable"),
                attr("display", "string", false, false, "immutable"),
                attr("type", "string", false, false, "immutable"),
            ]),
        ],
        "meta": {"resourceType": "Schema", "location": schema_location(app, GROUP_SCHEMA)},
    })
}

fn schema_location(app: &App, id: &str) -> String {
    location(app, "Schemas", id)
}

fn resource_type_doc(app: &App, name: &str) -> Value {
    let (endpoint, schema) = match name {
        "User" => ("/Users", USER_SCHEMA),
        _ => ("/Groups", GROUP_SCHEMA),
    };
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": name,
        "name": name,
        "endpoint": endpoint,
        "description": format!("{name}s provisioned by the identity provider"),
        "schema": schema,
        "schemaExtensions": [],
        "meta": {"resourceType": "ResourceType", "location": location(app, "ResourceTypes", name)},
    })
}

fn list(items: Vec<Value>) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

pub async fn service_provider_config(State(app): State<Arc<App>>) -> ScimResult {
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/portcullis/portcullis#scim",
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": super::MAX_RESULTS},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": false},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A portcullis API token of the scim scope",
                "primary": true,
            }],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": format!("https://{}{PREFIX}/ServiceProviderConfig", app.config.api.listen),
            },
        }),
    ))
}

pub async fn schemas(State(app): State<Arc<App>>) -> ScimResult {
    Ok(scim_json(
        StatusCode::OK,
        &list(vec![user_schema(&app), group_schema(&app)]),
    ))
}

pub async fn schema(State(app): State<Arc<App>>, Path(id): Path<String>) -> ScimResult {
    let doc = match id.as_str() {
        USER_SCHEMA => user_schema(&app),
        GROUP_SCHEMA => group_schema(&app),
        _ => return Err(ScimError::not_found(format!("no schema {id:?}"))),
    };
    Ok(scim_json(StatusCode::OK, &doc))
}

pub async fn resource_types(State(app): State<Arc<App>>) -> ScimResult {
    Ok(scim_json(
        StatusCode::OK,
        &list(vec![
            resource_type_doc(&app, "User"),
            resource_type_doc(&app, "Group"),
        ]),
    ))
}

pub async fn resource_type(State(app): State<Arc<App>>, Path(id): Path<String>) -> ScimResult {
    match id.as_str() {
        "User" | "Group" => Ok(scim_json(StatusCode::OK, &resource_type_doc(&app, &id))),
        _ => Err(ScimError::not_found(format!("no resource type {id:?}"))),
    }
}
