//! One door for every change: the same changes made through the CLI and
//! through the admin API write the same domain audit events (the API adds
//! only `api.write`, its record of the HTTP request). API tokens are
//! created and revoked through both doors too (`ops::tokens`).

mod common;

use common::api::*;
use common::*;

/// The kinds of the domain events of administrative changes, in order.
fn change_kinds(b: &Bastion) -> Vec<(String, String)> {
    b.audit_export(&[])
        .into_iter()
        .filter_map(|e| {
            let kind = e["kind"].as_str()?.to_string();
            let domain = [
                "user.",
                "group.",
                "target.",
                "credential.",
                "mfa.",
                "api.token.",
            ]
            .iter()
            .any(|p| kind.starts_with(p));
            // A token's subject is its id, fresh in each bastion.
            let subject = match kind.starts_with("api.token.") {
                true => "<token id>".to_string(),
                false => e["subject"].as_str().unwrap_or("").to_string(),
            };
            domain.then_some((kind, subject))
        })
        .collect()
}

fn one_line(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap().trim().to_string()
}

#[test]
fn the_cli_and_the_api_write_the_same_audit_events_for_the_same_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2, host) = (
        dir.path().join("k1"),
        dir.path().join("k2"),
        dir.path().join("h"),
    );
    for k in [&k1, &k2, &host] {
        keygen(k, "ed25519");
    }
    let (k1p, k2p, hostp) = (
        k1.with_extension("pub"),
        k2.with_extension("pub"),
        host.with_extension("pub"),
    );

    // Through the CLI (with the token the API side needs, so both trails
    // start alike).
    let cli = Bastion::new();
    token(&cli, "doors", "admin", None);
    cli.admin_stdin(&["user", "add", "bob", "--password-stdin"], "pw-1\n");
    cli.admin(&[
        "user",
        "add",
        "svc",
        "--service",
        "--key",
        k1p.to_str().unwrap(),
    ]);
    cli.admin_stdin(&["user", "passwd", "bob", "--password-stdin"], "pw-2\n");
    cli.admin(&["user", "key", "add", "bob", k2p.to_str().unwrap()]);
    cli.admin(&["group", "add", "ops"]);
    cli.admin(&["group", "member", "add", "ops", "bob"]);
    cli.admin(&[
        "target",
        "add",
        "web01",
        "--host",
        "127.0.0.1",
        "--port",
        "2222",
        "--host-key-file",
        hostp.to_str().unwrap(),
    ]);
    cli.admin_stdin(
        &["credential", "set", "web01", "root", "--password-stdin"],
        "target-secret\n",
    );
    cli.admin(&["target", "remove", "web01"]);
    cli.admin(&["user", "remove", "bob"]);
    let ci = token(&cli, "ci", "auditor", Some("1h"));
    let ci_id = ci.split('_').nth(1).unwrap().to_string();
    cli.admin(&["token", "revoke", &ci_id]);

    // The same through the API.
    let (mut api_b, port) = bastion_with_api("");
    let admin = token(&api_b, "doors", "admin", None);
    api_b.start();
    wait_port(port, "admin API", &api_b.log_path());
    let api = Api::new(&api_b, port);
    let call = |method: &str, path: &str, body: serde_json::Value| {
        let body = (!body.is_null()).then(|| body.to_string());
        let r = api.call(method, path, Some(&admin), body.as_deref());
        assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.body);
    };
    use serde_json::{Value, json};
    call(
        "POST",
        "/api/v1/users",
        json!({"name": "bob", "password": "pw-1"}),
    );
    call(
        "POST",
        "/api/v1/users",
        json!({"name": "svc", "service": true, "public_keys": [one_line(&k1p)]}),
    );
    call(
        "PUT",
        "/api/v1/users/bob/password",
        json!({"password": "pw-2"}),
    );
    call(
        "POST",
        "/api/v1/users/bob/keys",
        json!({"public_key": one_line(&k2p)}),
    );
    call("POST", "/api/v1/groups", json!({"name": "ops"}));
    call("POST", "/api/v1/groups/ops/members", json!({"user": "bob"}));
    call(
        "POST",
        "/api/v1/targets",
        json!({"name": "web01", "host": "127.0.0.1", "port": 2222, "host_key": one_line(&hostp)}),
    );
    call(
        "PUT",
        "/api/v1/targets/web01/credentials/root",
        json!({"kind": "password", "secret": "target-secret"}),
    );
    call("DELETE", "/api/v1/targets/web01", Value::Null);
    call("DELETE", "/api/v1/users/bob", Value::Null);
    let body = json!({"name": "ci", "scope": "auditor", "expires": "1h"}).to_string();
    let r = api.call("POST", "/api/v1/tokens", Some(&admin), Some(&body));
    assert_eq!(r.status, 201, "{}", r.body);
    let ci_id = r.json()["info"]["id"].as_str().unwrap().to_string();
    call("DELETE", &format!("/api/v1/tokens/{ci_id}"), Value::Null);
    api_b.stop();

    let (by_cli, by_api) = (change_kinds(&cli), change_kinds(&api_b));
    assert!(by_cli.len() >= 14, "{by_cli:#?}");
    let tokens: Vec<&str> = by_cli
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("api.token."))
        .collect();
    assert_eq!(
        tokens,
        [
            "api.token.created",
            "api.token.created",
            "api.token.revoked"
        ]
    );
    assert_eq!(by_cli, by_api, "the two doors audit differently");
    let all = format!("{:?}", api_b.audit_export(&[]));
    assert!(
        all.contains("\"api:doors/"),
        "API changes are made as the token"
    );
    for secret in ["pw-1", "pw-2", "target-secret"] {
        assert!(!all.contains(secret), "{secret} reached the audit trail");
    }
}
