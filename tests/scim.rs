//! SCIM 2.0 at `/scim/v2` (issue 18): the request sequences Okta and Entra
//! ID send, replayed over HTTPS; deprovisioning ending a live OpenSSH
//! session through the bastion; scope attacks; local users out of reach;
//! the audit trail of a SCIM change against the same change by the CLI; and
//! `scim2-cli`'s compliance tester (from `.ci/venv`) against the server.

mod common;
use common::api::*;
use common::*;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCIM: &str = "/scim/v2";

fn scim(api: &Api, method: &str, path: &str, token: &str, body: Option<Value>) -> Reply {
    let body = body.map(|b| b.to_string());
    api.try_call(
        method,
        &format!("{SCIM}{path}"),
        Some(token),
        body.as_deref()
            .map(|b| ("application/scim+json", b.as_bytes())),
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"))
}

fn expect(
    api: &Api,
    status: u16,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Value {
    let r = scim(api, method, path, token, body);
    assert_eq!(r.status, status, "{method} {path}: {}", r.body);
    if r.body.is_empty() {
        return Value::Null;
    }
    assert!(
        r.content_type.starts_with("application/scim+json"),
        "{method} {path}: {}",
        r.content_type
    );
    r.json()
}

fn filter_path(resource: &str, f: &str) -> String {
    let enc: String = f
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("/{resource}?filter={enc}")
}

/// Audit kinds (with actor and subject) written since `after`.
fn audit_since(api: &Api, admin: &str, after: i64) -> Vec<(String, String, String, i64)> {
    let r = api.expect(200, "GET", "/api/v1/audit?limit=1000", admin, None);
    r.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["seq"].as_i64().unwrap() > after)
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
                e["subject"].as_str().unwrap().to_string(),
                e["seq"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn last_seq(api: &Api, admin: &str) -> i64 {
    audit_since(api, admin, 0).last().map(|e| e.3).unwrap_or(0)
}

fn setup() -> (Sshd, Bastion, Api, String, String) {
    let (sshd, b, api, t, admin, _) = setup_port();
    (sshd, b, api, t, admin)
}

fn setup_port() -> (Sshd, Bastion, Api, String, String, u16) {
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let scim_token = token(&b, "entra", "scim", None);
    let admin = token(&b, "root", "admin", None);
    (sshd, b, api, scim_token, admin, port)
}

#[test]
fn scope_attacks_neither_way_across() {
    let (_sshd, b, api, scim_token, admin) = setup();
    let auditor = token(&b, "aud", "auditor", None);
    let kill = token(&b, "ks", "killswitch", None);
    // No token, a malformed one: 401 in SCIM's error format.
    let r = api.try_call("GET", "/scim/v2/Users", None, None).unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.json()["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(r.json()["status"], "401");
    expect(&api, 401, "GET", "/Users", "pcat_nope", None);
    // Every other scope is refused by SCIM, reads and writes.
    let carol =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "carol"});
    for t in [&admin, &auditor, &kill] {
        expect(&api, 403, "GET", "/Users", t, None);
        expect(&api, 403, "GET", "/ServiceProviderConfig", t, None);
        expect(&api, 403, "POST", "/Users", t, Some(carol.clone()));
    }
    // A scim token reaches no /api/v1 route but the public ones.
    for (m, p) in [
        ("GET", "/api/v1/users"),
        ("GET", "/api/v1/sessions"),
        ("GET", "/api/v1/locks"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/tokens"),
        ("GET", "/api/v1/metrics"),
    ] {
        let r = api.call(m, p, Some(&scim_token), None);
        assert_eq!(r.status, 403, "{m} {p}: {}", r.body);
    }
    for (m, p, body) in [
        ("POST", "/api/v1/users", r#"{"name":"x","password":"pw"}"#),
        (
            "POST",
            "/api/v1/locks",
            r#"{"scope":{"kind":"all"},"reason":"x"}"#,
        ),
        ("POST", "/api/v1/tokens", r#"{"name":"x","scope":"admin"}"#),
        ("DELETE", "/api/v1/users/alice", ""),
    ] {
        let body = (!body.is_empty()).then_some(body);
        let r = api.call(m, p, Some(&scim_token), body);
        assert_eq!(r.status, 403, "{m} {p}: {}", r.body);
    }
    assert_eq!(
        api.call("GET", "/api/v1/health", Some(&scim_token), None)
            .status,
        200
    );
    // And the scim token does work where it belongs; revoked, it does not.
    expect(&api, 200, "GET", "/Users", &scim_token, None);
    let id = scim_token.split('_').nth(1).unwrap();
    b.admin(&["token", "revoke", id]);
    expect(&api, 401, "GET", "/Users", &scim_token, None);
}

#[test]
fn local_break_glass_users_are_out_of_reach() {
    let (sshd, b, api, t, admin) = setup();
    let _ = sshd;
    // alice is local (CLI-made). SCIM neither sees her nor can take her name.
    let list = expect(
        &api,
        200,
        "GET",
        &filter_path("Users", r#"userName eq "alice""#),
        &t,
        None,
    );
    assert_eq!(list["totalResults"], 0, "{list}");
    let taken = expect(
        &api,
        409,
        "POST",
        "/Users",
        &t,
        Some(json!({"userName": "alice", "active": false})),
    );
    assert_eq!(taken["scimType"], "uniqueness");
    for m in ["GET", "PUT", "PATCH", "DELETE"] {
        let body = match m {
            "PUT" => Some(json!({"userName": "alice", "active": false})),
            "PATCH" => {
                Some(json!({"Operations": [{"op": "replace", "path": "active", "value": false}]}))
            }
            _ => None,
        };
        expect(&api, 404, m, "/Users/alice", &t, body);
    }
    // Nor can a SCIM group take in a local user, or take a local group's name.
    b.admin(&["group", "add", "breakglass"]);
    b.admin(&["group", "member", "add", "breakglass", "alice"]);
    let r = expect(
        &api,
        400,
        "POST",
        "/Groups",
        &t,
        Some(json!({"displayName": "idp-admins", "members": [{"value": "alice"}]})),
    );
    assert_eq!(r["scimType"], "invalidValue");
    expect(
        &api,
        409,
        "POST",
        "/Groups",
        &t,
        Some(json!({"displayName": "breakglass"})),
    );
    let groups = expect(&api, 200, "GET", "/Groups", &t, None);
    assert_eq!(groups["totalResults"], 0, "{groups}");
    // alice is untouched: no lock, still a member, still logs in.
    let locks = api.expect(200, "GET", "/api/v1/locks", &admin, None).json();
    assert!(
        !locks.to_string().contains("SCIM"),
        "a lock was raised: {locks}"
    );
    let out = run(b.ssh("alice+web01").arg("echo STILL").stdin(Stdio::null()));
    assert!(text(&out.stdout).contains("STILL"), "{}", text(&out.stderr));
    let user = api
        .expect(200, "GET", "/api/v1/users/alice", &admin, None)
        .json();
    assert!(user.to_string().contains("breakglass"), "{user}");
}

/// The requests Okta sends (its SCIM 2.0 test suite and app provisioning).
#[test]
fn okta_and_entra_sequences_replayed() {
    let (_sshd, _b, api, t, admin) = setup();
    let seq0 = last_seq(&api, &admin);
    // --- Okta: look up, create, read, update profile, group push, deactivate.
    let none = expect(
        &api,
        200,
        "GET",
        "/Users?filter=userName%20eq%20%22dana%40example.com%22&startIndex=1&count=100",
        &t,
        None,
    );
    assert_eq!(none["totalResults"], 0);
    assert_eq!(
        none["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    let dana = expect(
        &api,
        201,
        "POST",
        "/Users",
        &t,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "dana@example.com",
            "name": {"givenName": "Dana", "familyName": "Scully"},
            "emails": [{"primary": true, "value": "dana@example.com", "type": "work"}],
            "displayName": "Dana Scully",
            "locale": "en-US",
            "externalId": "00u1okta",
            "groups": [],
            "password": "never-stored-1!",
            "active": true
        })),
    );
    let id = dana["id"].as_str().unwrap().to_string();
    assert_eq!(dana["userName"], "dana@example.com");
    assert_eq!(dana["active"], true);
    assert_eq!(dana["meta"]["resourceType"], "User");
    assert!(dana.get("password").is_none(), "{dana}");
    // The same userName again, in another case: 409 uniqueness.
    let dup = expect(
        &api,
        409,
        "POST",
        "/Users",
        &t,
        Some(json!({"userName": "DANA@example.com"})),
    );
    assert_eq!(dup["scimType"], "uniqueness");
    let found = expect(
        &api,
        200,
        "GET",
        &filter_path("Users", r#"userName eq "Dana@Example.com""#),
        &t,
        None,
    );
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], id.as_str());
    let got = expect(&api, 200, "GET", &format!("/Users/{id}"), &t, None);
    assert_eq!(got["name"]["familyName"], "Scully");
    // Okta profile update: PUT of the whole user.
    let mut put = got.clone();
    put["name"]["familyName"] = json!("Mulder");
    let put = expect(&api, 200, "PUT", &format!("/Users/{id}"), &t, Some(put));
    assert_eq!(put["name"]["familyName"], "Mulder");
    // Okta group push: create, then PATCH members add / remove by filter.
    let g = expect(
        &api,
        201,
        "POST",
        "/Groups",
        &t,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Ops Team", "members": []
        })),
    );
    let gid = g["id"].as_str().unwrap().to_string();
    let g = expect(
        &api,
        200,
        "PATCH",
        &format!("/Groups/{gid}"),
        &t,
        Some(patch_op(
            json!([{"op": "add", "path": "members", "value": [{"value": id, "display": "dana@example.com"}]}]),
        )),
    );
    assert_eq!(g["members"][0]["value"], id.as_str());
    let user = expect(&api, 200, "GET", &format!("/Users/{id}"), &t, None);
    assert_eq!(user["groups"][0]["value"], gid.as_str(), "{user}");
    expect(
        &api,
        200,
        "PATCH",
        &format!("/Groups/{gid}"),
        &t,
        Some(patch_op(
            json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
        )),
    );
    let g = expect(&api, 200, "GET", &format!("/Groups/{gid}"), &t, None);
    assert!(g.get("members").is_none(), "{g}");
    let byname = expect(
        &api,
        200,
        "GET",
        &filter_path("Groups", r#"displayName eq "ops team""#),
        &t,
        None,
    );
    assert_eq!(byname["totalResults"], 1);
    // Okta deactivation: a path-less replace.
    let off = expect(
        &api,
        200,
        "PATCH",
        &format!("/Users/{id}"),
        &t,
        Some(patch_op(
            json!([{"op": "replace", "value": {"active": false}}]),
        )),
    );
    assert_eq!(off["active"], false);
    let locks = api
        .expect(200, "GET", "/api/v1/locks", &admin, None)
        .json()
        .to_string();
    assert!(
        locks.contains("SCIM") && locks.contains("dana_example.com"),
        "{locks}"
    );
    // Okta reactivation.
    let on = expect(
        &api,
        200,
        "PATCH",
        &format!("/Users/{id}"),
        &t,
        Some(patch_op(
            json!([{"op": "replace", "value": {"active": true}}]),
        )),
    );
    assert_eq!(on["active"], true);

    // --- Entra ID: lookup by externalId-ish filters, create, PATCH with
    // capitalised ops and paths, string booleans, member add/remove, delete.
    let q = expect(
        &api,
        200,
        "GET",
        &filter_path("Users", r#"externalId eq "e-42" and userName eq "erin""#),
        &t,
        None,
    );
    assert_eq!(q["totalResults"], 0);
    let erin = expect(
        &api,
        201,
        "POST",
        "/Users",
        &t,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "e-42", "userName": "erin", "active": true,
            "displayName": "Erin", "emails": [{"primary": true, "type": "work", "value": "erin@example.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "Erin E", "familyName": "E", "givenName": "Erin"},
            "roles": []
        })),
    );
    let eid = erin["id"].as_str().unwrap().to_string();
    let q = expect(
        &api,
        200,
        "GET",
        &filter_path("Users", r#"externalId eq "e-42""#),
        &t,
        None,
    );
    assert_eq!(q["Resources"][0]["id"], eid.as_str());
    let q = expect(
        &api,
        200,
        "GET",
        &filter_path("Users", &format!(r#"id eq "{eid}""#)),
        &t,
        None,
    );
    assert_eq!(q["totalResults"], 1);
    let p = expect(
        &api,
        200,
        "PATCH",
        &format!("/Users/{eid}"),
        &t,
        Some(patch_op(json!([
            {"op": "Replace", "path": "displayName", "value": "Erin Entra"},
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "erin@corp.example"},
            {"op": "Replace", "path": "name.familyName", "value": "Entra"},
            {"op": "Add", "value": {"title": "SRE"}},
            {"op": "Remove", "path": "title"}
        ]))),
    );
    assert_eq!(p["displayName"], "Erin Entra");
    assert_eq!(p["emails"][0]["value"], "erin@corp.example");
    assert_eq!(p["name"]["familyName"], "Entra");
    assert!(p.get("title").is_none());
    let eg = expect(
        &api,
        201,
        "POST",
        "/Groups",
        &t,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "externalId": "g-7", "displayName": "Platform", "members": []
        })),
    );
    let egid = eg["id"].as_str().unwrap().to_string();
    expect(
        &api,
        200,
        "PATCH",
        &format!("/Groups/{egid}"),
        &t,
        Some(patch_op(
            json!([{"op": "Add", "path": "members", "value": [{"value": eid}, {"value": id}]}]),
        )),
    );
    let g = expect(
        &api,
        200,
        "GET",
        &format!("/Groups/{egid}?excludedAttributes=members"),
        &t,
        None,
    );
    assert!(g.get("members").is_none(), "{g}");
    let g = expect(&api, 200, "GET", &format!("/Groups/{egid}"), &t, None);
    assert_eq!(g["members"].as_array().unwrap().len(), 2, "{g}");
    expect(
        &api,
        200,
        "PATCH",
        &format!("/Groups/{egid}"),
        &t,
        Some(patch_op(
            json!([{"op": "Remove", "path": "members", "value": [{"value": id}]}]),
        )),
    );
    let g = expect(&api, 200, "GET", &format!("/Groups/{egid}"), &t, None);
    assert_eq!(g["members"].as_array().unwrap().len(), 1, "{g}");
    expect(
        &api,
        200,
        "PATCH",
        &format!("/Groups/{egid}"),
        &t,
        Some(patch_op(
            json!([{"op": "Replace", "path": "displayName", "value": "Platform Eng"}]),
        )),
    );
    // Entra deactivation: path "active", the string "False".
    let off = expect(
        &api,
        200,
        "PATCH",
        &format!("/Users/{eid}"),
        &t,
        Some(patch_op(
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )),
    );
    assert_eq!(off["active"], false);
    let on = expect(
        &api,
        200,
        "PATCH",
        &format!("/Users/{eid}"),
        &t,
        Some(patch_op(
            json!([{"op": "Replace", "path": "active", "value": "True"}]),
        )),
    );
    assert_eq!(on["active"], true);
    // Pagination.
    let page = expect(&api, 200, "GET", "/Users?startIndex=2&count=1", &t, None);
    assert_eq!(page["totalResults"], 2);
    assert_eq!(page["itemsPerPage"], 1);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(page["Resources"][0]["id"], eid.as_str());
    // Errors in SCIM's format.
    let e = expect(
        &api,
        400,
        "GET",
        "/Users?filter=userName%20zz%20%22x%22",
        &t,
        None,
    );
    assert_eq!(e["scimType"], "invalidFilter");
    let e = expect(
        &api,
        400,
        "PATCH",
        &format!("/Users/{eid}"),
        &t,
        Some(json!({"Operations": [{"op": "jump"}]})),
    );
    assert_eq!(e["status"], "400");
    let e = expect(
        &api,
        400,
        "PATCH",
        &format!("/Users/{eid}"),
        &t,
        Some(json!({"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]})),
    );
    assert_eq!(e["scimType"], "invalidValue");
    expect(&api, 404, "GET", "/Users/0123456789abcdef", &t, None);
    expect(&api, 404, "GET", "/Nope", &t, None);
    // Entra hard delete, then the group.
    expect(&api, 204, "DELETE", &format!("/Users/{eid}"), &t, None);
    expect(&api, 404, "GET", &format!("/Users/{eid}"), &t, None);
    expect(&api, 204, "DELETE", &format!("/Groups/{egid}"), &t, None);
    expect(&api, 404, "GET", &format!("/Groups/{egid}"), &t, None);

    // Every change is on record, as the SCIM token.
    let rows = audit_since(&api, &admin, seq0);
    let kinds: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for k in [
        "user.added",
        "user.idp_updated",
        "group.added",
        "group.member_added",
        "group.member_removed",
        "group.idp_updated",
        "user.deactivated",
        "lock.created",
        "lock.lifted",
        "user.reactivated",
        "user.removed",
        "group.removed",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    for r in &rows {
        assert!(r.1.starts_with("api:entra/"), "{r:?}");
    }
    // The password Okta sent is nowhere.
    let all = api
        .expect(200, "GET", "/api/v1/audit?limit=1000", &admin, None)
        .body;
    assert!(!all.contains("never-stored-1!"));
}

#[test]
fn scim_changes_audit_like_the_cli() {
    let (_sshd, b, api, t, admin) = setup();
    let kinds = |from: i64| -> Vec<String> {
        audit_since(&api, &admin, from)
            .into_iter()
            .map(|r| r.0)
            .filter(|k| k != "api.write")
            .collect()
    };
    // An administrator: user, group, member add and remove, group and user
    // removed, through the CLI where it has the command, else the API.
    let key = b.dir.path().join("frank_key");
    keygen(&key, "ed25519");
    let s0 = last_seq(&api, &admin);
    b.admin(&[
        "user",
        "add",
        "frank",
        "--key",
        key.with_extension("pub").to_str().unwrap(),
    ]);
    b.admin(&["group", "add", "devs"]);
    b.admin(&["group", "member", "add", "devs", "frank"]);
    // (Member and group removal have only the API door besides SCIM.)
    api.expect(
        204,
        "DELETE",
        "/api/v1/groups/devs/members/frank",
        &admin,
        None,
    );
    api.expect(204, "DELETE", "/api/v1/groups/devs", &admin, None);
    b.admin(&["user", "remove", "frank"]);
    let cli = kinds(s0);
    // The same through SCIM.
    let s1 = last_seq(&api, &admin);
    let u = expect(
        &api,
        201,
        "POST",
        "/Users",
        &t,
        Some(json!({"userName": "gina"})),
    );
    let uid = u["id"].as_str().unwrap();
    let g = expect(
        &api,
        201,
        "POST",
        "/Groups",
        &t,
        Some(json!({"displayName": "qa"})),
    );
    let gid = g["id"].as_str().unwrap();
    for op in ["add", "remove"] {
        let body =
            json!({"Operations": [{"op": op, "path": "members", "value": [{"value": uid}]}]});
        expect(
            &api,
            200,
            "PATCH",
            &format!("/Groups/{gid}"),
            &t,
            Some(body),
        );
    }
    expect(&api, 204, "DELETE", &format!("/Groups/{gid}"), &t, None);
    // DELETE deprovisions first (its own rows), then removes.
    expect(&api, 204, "DELETE", &format!("/Users/{uid}"), &t, None);
    let via_scim: Vec<String> = kinds(s1)
        .into_iter()
        .filter(|k| !matches!(k.as_str(), "user.deactivated" | "lock.created"))
        .collect();
    eprintln!("CLI:  {cli:?}\nSCIM: {via_scim:?}");
    assert_eq!(cli, via_scim);
    // The subjects match too, and SCIM's actor is its token.
    let rows = audit_since(&api, &admin, s1);
    let added = rows.iter().find(|r| r.0 == "user.added").unwrap();
    assert_eq!(added.2, "gina");
    assert!(added.1.starts_with("api:entra/"), "{added:?}");
    let api_write = rows.iter().filter(|r| r.0 == "api.write").count();
    assert!(api_write >= 5, "each SCIM write is an api.write row too");
}

fn session_ids(b: &Bastion, live_only: bool) -> Vec<String> {
    text(&b.admin(&["session", "list"]).stdout)
        .lines()
        .filter(|l| !live_only || l.contains("\tlive\t"))
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect()
}

/// carol's `ssh … sleep` through the bastion, once live.
#[allow(clippy::zombie_processes)]
fn live_ssh(b: &Bastion, key: &std::path::Path, ap: &Askpass) -> Child {
    let before = session_ids(b, false);
    let mut c = b.ssh_human("carol+web01", "publickey", Some(key), ap);
    let mut child = c
        .arg("sleep 120; echo SURVIVED")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !session_ids(b, true).iter().any(|id| !before.contains(id)) {
        if start.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("carol's session never went live:\n{}", b.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

fn wait_exit(mut c: Child, limit: Duration) -> (Duration, String) {
    let start = Instant::now();
    loop {
        if c.try_wait().unwrap().is_some() {
            let out = c.wait_with_output().unwrap();
            assert!(!text(&out.stdout).contains("SURVIVED"));
            return (start.elapsed(), text(&out.stderr));
        }
        if start.elapsed() > limit {
            let _ = c.kill();
            panic!("the session outlived deprovisioning by {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for the next TOTP step, so a fresh code is not one already used.
fn next_step() {
    let s = unix_now() / 30;
    while unix_now() / 30 == s {
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn entra_deactivation_ends_a_live_ssh_session_within_a_second() {
    let (_sshd, b, api, t, admin) = setup();
    // Entra provisions carol and a group; the administrator grants the
    // group web01 and gives carol a key and a TOTP (SSO is not here yet).
    let carol = expect(
        &api,
        201,
        "POST",
        "/Users",
        &t,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "externalId": "c-1", "userName": "carol", "active": true,
            "name": {"givenName": "Carol", "familyName": "C"}
        })),
    );
    let cid = carol["id"].as_str().unwrap().to_string();
    expect(
        &api,
        201,
        "POST",
        "/Groups",
        &t,
        Some(json!({
            "displayName": "oncall", "members": [{"value": cid}]
        })),
    );
    b.grant(&[
        "--group",
        "oncall",
        "--target",
        "web01",
        "--login",
        TARGET_USER,
    ]);
    let key = b.dir.path().join("carol_key");
    keygen(&key, "ed25519");
    b.admin(&[
        "user",
        "key",
        "add",
        "carol",
        key.with_extension("pub").to_str().unwrap(),
    ]);
    let secret = enroll_totp(&b, "carol");
    let ap = Askpass::new();
    ap.set_code(&next_code(&secret));
    let live = live_ssh(&b, &key, &ap);

    // Entra's deactivation PATCH.
    let t0 = Instant::now();
    let r = scim(
        &api,
        "PATCH",
        &format!("/Users/{cid}"),
        &t,
        Some(patch_op(
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )),
    );
    let answered = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    let (after_answer, err) = wait_exit(live, Duration::from_secs(5));
    let total = answered + after_answer;
    println!(
        "SCIM deprovisioning → live ssh session ended: {total:?} (PATCH answered in {answered:?}, client gone {after_answer:?} later)"
    );
    assert!(err.contains("SCIM") && err.contains("locked by"), "{err}");

    // New logins refused; the lock names SCIM.
    next_step();
    ap.set_code(&next_code(&secret));
    let out = run(b
        .ssh_human("carol+web01", "publickey", Some(&key), &ap)
        .arg("echo IN"));
    assert!(
        !text(&out.stdout).contains("IN"),
        "a deprovisioned user got in"
    );
    let locks = api.expect(200, "GET", "/api/v1/locks", &admin, None).json();
    let lock = locks
        .as_array()
        .or_else(|| locks["locks"].as_array())
        .unwrap()
        .iter()
        .find(|l| l.to_string().contains("carol") && l["lifted_ms"].is_null())
        .cloned()
        .unwrap_or_else(|| panic!("no lock on carol: {locks}"));
    assert!(lock.to_string().contains("SCIM"), "{lock}");

    // The group grant no longer reaches her even if an administrator lifts
    // the lock while she is inactive: she is no longer eligible.
    let lock_id = lock["id"].as_str().unwrap();
    b.admin(&["lock", "lift", lock_id]);
    std::thread::sleep(Duration::from_millis(500));
    next_step();
    ap.set_code(&next_code(&secret));
    let out = run(b
        .ssh_human("carol+web01", "publickey", Some(&key), &ap)
        .arg("echo IN"));
    assert!(
        !text(&out.stdout).contains("IN"),
        "an inactive user reached a group grant"
    );

    // Reactivated by Entra: back in.
    expect(
        &api,
        200,
        "PATCH",
        &format!("/Users/{cid}"),
        &t,
        Some(patch_op(
            json!([{"op": "Replace", "path": "active", "value": "True"}]),
        )),
    );
    std::thread::sleep(Duration::from_millis(500));
    next_step();
    ap.set_code(&next_code(&secret));
    let out = run(b
        .ssh_human("carol+web01", "publickey", Some(&key), &ap)
        .arg("echo BACK"));
    assert!(text(&out.stdout).contains("BACK"), "{}", text(&out.stderr));
}

#[test]
fn reactivation_lifts_only_the_scim_lock() {
    let (_sshd, b, api, t, admin) = setup();
    let u = expect(
        &api,
        201,
        "POST",
        "/Users",
        &t,
        Some(json!({"userName": "hank", "active": false})),
    );
    let id = u["id"].as_str().unwrap().to_string();
    assert_eq!(u["active"], false);
    // An administrator's own lock on hank.
    b.admin(&["lock", "user", "hank", "--reason", "under investigation"]);
    expect(
        &api,
        200,
        "PATCH",
        &format!("/Users/{id}"),
        &t,
        Some(json!({
            "Operations": [{"op": "replace", "value": {"active": true}}]
        })),
    );
    let locks = api
        .expect(200, "GET", "/api/v1/locks", &admin, None)
        .json()
        .to_string();
    let v: Value = serde_json::from_str(&locks).unwrap();
    let arr = v.as_array().or_else(|| v["locks"].as_array()).unwrap();
    let in_force: Vec<&Value> = arr.iter().filter(|l| l["lifted_ms"].is_null()).collect();
    assert_eq!(in_force.len(), 1, "{locks}");
    assert!(in_force[0].to_string().contains("under investigation"));
}

/// `scim2-cli`'s compliance tester (`scim2 test`, running scim2-tester),
/// from `.ci/venv` where `.ci/run` installs it: every check must pass.
#[test]
fn scim2_tester_compliance_passes() {
    let tool = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/venv/bin/scim2");
    assert!(
        tool.exists(),
        "{} is missing: run .ci/run (it installs scim2-cli into .ci/venv)",
        tool.display()
    );
    let (_sshd, _b, _api, t, _admin, port) = setup_port();
    let out = Command::new(&tool)
        .args([
            "--url",
            &format!("https://127.0.0.1:{port}{SCIM}"),
            "--no-verify",
            "test",
            "--verbose",
        ])
        // The secret through the environment, not the command line.
        .env("SCIM_CLI_HEADERS", format!("Authorization: Bearer {t}"))
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    println!("{stdout}\n{}", text(&out.stderr));
    // One line per check, starting with its status.
    let status_of = |p: &str| stdout.lines().filter(|l| l.starts_with(p)).count();
    let passed = status_of("SUCCESS ");
    let skipped = status_of("SKIPPED ");
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("ERROR ") || l.starts_with("CRITICAL "))
        .collect();
    println!(
        "scim2-tester: {passed} checks passed, {skipped} skipped, {} failed",
        failed.len()
    );
    assert!(passed >= 60, "too few checks ran: {stdout}");
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    assert!(out.status.success(), "scim2 test exited {:?}", out.status);
}

/// A SCIM PATCH request body with these operations.
fn patch_op(operations: serde_json::Value) -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": operations
    })
}
