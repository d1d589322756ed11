//! The HTTPS admin API against a real portcullis process, with real OpenSSH
//! sessions through it to a real sshd.

mod common;

use common::api::*;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn generated_certificate_is_pinned_reused_and_private() {
    let (mut b, port) = bastion_with_api("");
    b.start();
    wait_port(port, "admin API", &b.log_path());
    let cert = b.data_dir().join("api-cert.pem");
    let key = b.data_dir().join("api-key.pem");
    let pem = std::fs::read(&cert).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let api = Api::new(&b, port);
    let h = api.call("GET", "/api/v1/health", None, None);
    assert_eq!(h.status, 200, "{}", h.body);
    assert_eq!(h.json()["status"], "ok");
    assert_eq!(h.json()["checks"]["recordings"], "ok");
    assert!(b.log().contains("admin API certificate"), "{}", b.log());

    // A client that does not trust this certificate gets no answer at all.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let stranger = Api::with_tls(port, client_tls(other.cert.pem().as_bytes(), None));
    assert!(
        stranger
            .try_call("GET", "/api/v1/health", None, None)
            .is_err()
    );

    // The same certificate after a restart.
    b.stop();
    b.start();
    wait_port(port, "admin API", &b.log_path());
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        pem,
        "certificate regenerated"
    );
    assert_eq!(
        Api::new(&b, port)
            .call("GET", "/api/v1/health", None, None)
            .status,
        200
    );
}

struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: Vec<String>| {
        let k = KeyPair::generate().unwrap();
        let c = CertificateParams::new(names)
            .unwrap()
            .signed_by(&k, &ca)
            .unwrap();
        (c.pem(), k.serialize_pem())
    };
    Pki {
        ca: ca.pem(),
        server: leaf(vec!["127.0.0.1".into(), "localhost".into()]),
        client: leaf(vec!["automation".into()]),
    }
}

#[test]
fn configured_certificate_and_mutual_tls() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let w = |n: &str, s: &str| {
        let p = dir.path().join(n);
        std::fs::write(&p, s).unwrap();
        p.display().to_string()
    };
    let extra = format!(
        "cert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n",
        w("server.pem", &pki.server.0),
        w("server.key", &pki.server.1),
        w("ca.pem", &pki.ca)
    );
    let (mut b, port) = bastion_with_api(&extra);
    b.start();
    wait_port(port, "admin API", &b.log_path());
    assert!(
        !b.data_dir().join("api-cert.pem").exists(),
        "a configured certificate must be used, not a generated one"
    );
    let ca = pki.ca.as_bytes();
    let anonymous = Api::with_tls(port, client_tls(ca, None));
    let refused = anonymous.try_call("GET", "/api/v1/health", None, None);
    assert!(refused.is_err(), "served a client without a certificate");
    let foreign = pki_foreign_client();
    let stranger = Api::with_tls(
        port,
        client_tls(ca, Some((foreign.0.as_bytes(), foreign.1.as_bytes()))),
    );
    assert!(
        stranger
            .try_call("GET", "/api/v1/health", None, None)
            .is_err()
    );
    let id = (pki.client.0.as_bytes(), pki.client.1.as_bytes());
    let automation = Api::with_tls(port, client_tls(ca, Some(id)));
    let admin = token(&b, "auto", "admin", None);
    assert_eq!(
        automation.call("GET", "/api/v1/health", None, None).status,
        200
    );
    // mTLS is in addition to the token, not instead of it.
    assert_eq!(
        automation.call("GET", "/api/v1/users", None, None).status,
        401
    );
    assert_eq!(automation.get("/api/v1/users", &admin).status, 200);
}

/// A client certificate from a CA the bastion does not know.
fn pki_foreign_client() -> (String, String) {
    let other = pki();
    other.client
}

/// A value for each path parameter that names a real object where one exists.
fn fill(path: &str, session: &str, recording: &str) -> String {
    // `/search` needs its pattern.
    let path = &path.replace("/search", "/search?q=provisioned");
    path.replace(
        "{name}",
        if path.contains("/recordings/") {
            recording
        } else if path.starts_with("/api/v1/targets") {
            "web01"
        } else {
            "alice"
        },
    )
    .replace("{id}", session)
    .replace("{login}", TARGET_USER)
    .replace("{user}", "alice")
    .replace("{fingerprint}", "SHA256:none")
}

#[test]
fn route_by_scope_matrix() {
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let out = run(b.ssh("alice+web01").arg("echo matrix"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let api = Api::new(&b, port);
    let admin = token(&b, "root", "admin", None);
    let auditor = token(&b, "audit", "auditor", None);
    let kill = token(&b, "soar", "killswitch", None);
    let revoked = token(&b, "old", "admin", None);
    let rid = revoked.split('_').nth(1).unwrap().to_string();
    b.admin(&["token", "revoke", &rid]);
    let expired = token(&b, "short", "admin", Some("1s"));
    std::thread::sleep(Duration::from_millis(1100));
    let sessions = api.get("/api/v1/sessions", &admin).json();
    let session = sessions["recent"][0]["id"].as_str().unwrap().to_string();
    let recs = api.get("/api/v1/recordings", &admin).json();
    let recording = recs[0]["name"].as_str().unwrap().to_string();
    let malformed = format!("pcat_{}_{}", "0".repeat(16), "0".repeat(64));

    let mut checked = 0;
    for (method, path, access) in portcullis::admin::routes() {
        use portcullis::admin::auth::Access;
        let p = fill(&path, &session, &recording);
        let m = method.as_str();
        let body = (m != "GET" && m != "DELETE").then_some("{}");
        for (who, tok, allowed) in [
            ("admin", &admin, true),
            (
                "auditor",
                &auditor,
                matches!(access, Access::Public | Access::Read | Access::Watch),
            ),
            (
                "killswitch",
                &kill,
                matches!(access, Access::Public | Access::Kill | Access::Watch),
            ),
        ] {
            // DELETEs run last for admin so the objects stay for the others.
            if who == "admin" && m == "DELETE" {
                continue;
            }
            let r = api.call(m, &p, Some(tok), body);
            if allowed {
                assert!(
                    ![401, 403].contains(&r.status),
                    "{who} refused on {m} {p}: {} {}",
                    r.status,
                    r.body
                );
                if m == "GET" {
                    assert_eq!(r.status, 200, "{who} {m} {p}: {}", r.body);
                }
            } else {
                assert_eq!(r.status, 403, "{who} allowed on {m} {p}: {}", r.body);
                assert!(r.json()["error"].as_str().unwrap().contains(who));
            }
            checked += 1;
        }
        for (who, tok) in [
            ("no token", None),
            ("malformed token", Some("pcat_nope")),
            ("unknown token", Some(malformed.as_str())),
            ("revoked token", Some(revoked.as_str())),
            ("expired token", Some(expired.as_str())),
        ] {
            let r = api.call(m, &p, tok, body);
            if access == Access::Public {
                assert_eq!(r.status, 200, "{who} {m} {p}");
            } else {
                assert_eq!(r.status, 401, "{who} on {m} {p}: {}", r.body);
                assert!(r.json()["error"].is_string());
            }
            checked += 1;
        }
    }
    // Admin deletes, now that every other scope has been tried.
    for (method, path, _) in portcullis::admin::routes() {
        if method.as_str() == "DELETE" {
            let r = api.call(
                "DELETE",
                &fill(&path, &session, &recording),
                Some(&admin),
                None,
            );
            assert!(
                ![401, 403].contains(&r.status),
                "DELETE {path}: {}",
                r.status
            );
        }
    }
    assert!(checked > 250, "{checked}");
    // Refused writes never ran, so they were never audited as writes: only
    // admin's and the killswitch's terminate appear.
    let audit = api
        .get("/api/v1/audit?kind=api.write&limit=1000", &admin)
        .json();
    for e in audit["events"].as_array().unwrap() {
        let actor = e["actor"].as_str().unwrap();
        let subject = e["subject"].as_str().unwrap();
        assert!(
            actor.starts_with("api:root/")
                || (actor.starts_with("api:soar/")
                    && (subject.ends_with("/terminate") || subject.starts_with("/api/v1/locks"))),
            "{e}"
        );
    }
}

#[test]
fn bad_requests_get_clear_errors() {
    let (mut b, port) = bastion_with_api("max_body_bytes = 4096\n");
    b.start();
    wait_port(port, "admin API", &b.log_path());
    let api = Api::new(&b, port);
    let t = token(&b, "root", "admin", None);
    let err = |r: &Reply| r.json()["error"].as_str().unwrap().to_string();

    let r = api.expect(400, "POST", "/api/v1/groups", &t, Some("{\"name\": "));
    assert!(!err(&r).is_empty());
    let r = api.expect(
        400,
        "POST",
        "/api/v1/targets",
        &t,
        Some(r#"{"name":"x","host":"h","port":"22","host_key":"k"}"#),
    );
    assert!(err(&r).contains("port"), "{}", err(&r));
    let r = api.expect(
        400,
        "POST",
        "/api/v1/groups",
        &t,
        Some(r#"{"name":"ops","colour":"red"}"#),
    );
    assert!(err(&r).contains("colour"), "{}", err(&r));
    let r = api.expect(
        400,
        "POST",
        "/api/v1/groups",
        &t,
        Some(r#"{"name":"../etc"}"#),
    );
    assert!(err(&r).contains("name"), "{}", err(&r));
    let r = api.expect(
        400,
        "POST",
        "/api/v1/users",
        &t,
        Some(r#"{"name":"-rf","password":"x"}"#),
    );
    assert!(err(&r).contains("name"), "{}", err(&r));
    let r = api.expect(
        400,
        "POST",
        "/api/v1/grants",
        &t,
        Some(r#"{"user":"alice","target":"web01","logins":["root"],"tz":"Mars/Olympus"}"#),
    );
    assert!(err(&r).contains("tz"), "{}", err(&r));
    let big = format!("{{\"name\":\"{}\"}}", "a".repeat(10_000));
    let r = api.expect(413, "POST", "/api/v1/groups", &t, Some(&big));
    assert!(err(&r).contains("max_body_bytes"));
    let r = api.call("POST", "/api/v1/groups", Some(&t), None);
    assert!((400..500).contains(&r.status), "{}", r.status);
    let r = api.expect(404, "GET", "/api/v1/nothing-here", &t, None);
    assert!(r.content_type.starts_with("application/json"));
    assert!(!err(&r).is_empty());
    let r = api.expect(400, "GET", "/api/v1/users/%FF%FE", &t, None);
    assert!(r.content_type.starts_with("application/json"));
    let r = api.expect(400, "GET", "/api/v1/users/..%2Fetc", &t, None);
    assert!(err(&r).contains("name"), "{}", err(&r));
    let r = api.expect(405, "PATCH", "/api/v1/users", &t, None);
    assert!(!err(&r).is_empty());
    let r = api.expect(404, "GET", "/api/v1/users/nobody", &t, None);
    assert!(err(&r).contains("nobody"));
    api.expect(201, "POST", "/api/v1/groups", &t, Some(r#"{"name":"ops"}"#));
    api.expect(409, "POST", "/api/v1/groups", &t, Some(r#"{"name":"ops"}"#));
    // Nothing malformed got in.
    let groups = api.get("/api/v1/groups", &t).json();
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");
}

#[test]
fn api_provisioning_lets_real_ssh_in_and_never_shows_the_secret() {
    let sshd = Sshd::start();
    let (mut b, port) = bastion_with_api("");
    b.start();
    wait_port(port, "admin API", &b.log_path());
    let api = Api::new(&b, port);
    let t = token(&b, "root", "admin", None);
    let alice_pub = std::fs::read_to_string(b.alice_key.with_extension("pub")).unwrap();
    let host_key = std::fs::read_to_string(&sshd.host_pub).unwrap();
    let j = |v: serde_json::Value| v.to_string();
    api.expect(201, "POST", "/api/v1/users", &t, Some(&j(serde_json::json!({"name": "alice", "public_keys": [alice_pub.trim()], "service": true}))));
    api.expect(201, "POST", "/api/v1/targets", &t, Some(&j(serde_json::json!({"name": "web02", "host": "127.0.0.1", "port": sshd.port, "host_key": host_key.trim()}))));
    let cred = j(serde_json::json!({"kind": "password", "secret": TARGET_PASSWORD}));
    api.expect(
        204,
        "PUT",
        &format!("/api/v1/targets/web02/credentials/{TARGET_USER}"),
        &t,
        Some(&cred),
    );
    let g = api.expect(
        201,
        "POST",
        "/api/v1/grants",
        &t,
        Some(&j(
            serde_json::json!({"user": "alice", "target": "web02", "logins": [TARGET_USER]}),
        )),
    );
    assert_eq!(g.json()["target"], "web02");

    let out = run(b.ssh("alice+web02").arg("echo provisioned-$((6*7))"));
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), b.log());
    assert!(text(&out.stdout).contains("provisioned-42"));

    // Every GET route, as admin and auditor: the secret is never in a body.
    let creds = api.get("/api/v1/credentials", &t).json();
    assert_eq!(creds[0]["kind"], "password");
    assert_eq!(creds[0]["login"], TARGET_USER);
    let session = api.get("/api/v1/sessions", &t).json()["recent"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let recording = api.get("/api/v1/recordings", &t).json()[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let auditor = token(&b, "audit", "auditor", None);
    for (method, path, _) in portcullis::admin::routes() {
        if method.as_str() != "GET" {
            continue;
        }
        let p = path
            .replace(
                "{name}",
                if path.contains("/recordings/") {
                    &recording
                } else if path.contains("/targets/") {
                    "web02"
                } else {
                    "alice"
                },
            )
            .replace("{id}", &session)
            .replace("/search", "/search?q=provisioned");
        for tok in [&t, &auditor] {
            let r = api.get(&p, tok);
            assert_eq!(r.status, 200, "{p}: {}", r.body);
            assert!(!r.body.contains(TARGET_PASSWORD), "secret in GET {p}");
        }
    }
    // The write is audited with the token's name; the audit holds no secret.
    let audit = api.get("/api/v1/audit?kind=api&limit=1000", &auditor);
    assert!(audit.body.contains("/credentials/"), "{}", audit.body);
    assert!(audit.body.contains("api:root/"));
    b.stop();
    assert!(
        !b.log().contains(TARGET_PASSWORD),
        "secret in the bastion log"
    );
}

#[test]
fn terminating_a_live_session_disconnects_the_client() {
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let kill = token(&b, "soar", "killswitch", None);
    let auditor = token(&b, "audit", "auditor", None);
    let mut child = b
        .ssh("alice+web01")
        .arg("echo started; sleep 60")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = String::new();
    wait_until("a live session", 20, || {
        let v = api.get("/api/v1/sessions", &kill).json();
        match v["live"][0]["id"].as_str() {
            Some(s) => {
                id = s.to_string();
                true
            }
            None => false,
        }
    });
    // An auditor may look but not kill.
    api.expect(
        403,
        "POST",
        &format!("/api/v1/sessions/{id}/terminate"),
        &auditor,
        None,
    );
    let started = Instant::now();
    let r = api.expect(
        200,
        "POST",
        &format!("/api/v1/sessions/{id}/terminate"),
        &kill,
        Some(r#"{"reason":"incident 42"}"#),
    );
    assert_eq!(r.json()["terminated"], true);
    wait_until("the ssh client to exit", 10, || {
        child.try_wait().unwrap().is_some()
    });
    let elapsed = started.elapsed();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "ssh exited cleanly after a kill");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    eprintln!("terminate -> client exit: {elapsed:?}");
    wait_until("the session to leave the live list", 10, || {
        api.get("/api/v1/sessions", &kill).json()["live"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    wait_until("the session row to close", 10, || {
        api.get(&format!("/api/v1/sessions/{id}"), &kill).json()["ended_ms"].is_i64()
    });
    let s = api.get(&format!("/api/v1/sessions/{id}"), &kill).json();
    assert_eq!(s["live"], false);
    let why = s["end_reason"].as_str().unwrap();
    assert!(why.contains("incident 42"), "end reason: {why}");
    let audit = api
        .get(
            &format!("/api/v1/audit?kind=session.terminated&subject={id}"),
            &auditor,
        )
        .json();
    let e = &audit["events"][0];
    assert_eq!(e["detail"]["reason"], "incident 42");
    assert!(e["actor"].as_str().unwrap().starts_with("api:soar/"));
    // Nothing left to terminate.
    api.expect(
        409,
        "POST",
        &format!("/api/v1/sessions/{id}/terminate"),
        &kill,
        None,
    );
    let _ = Command::new("true").status();
}

#[test]
fn tokens_over_the_api_and_audit_paging() {
    let (mut b, port) = bastion_with_api("");
    b.start();
    wait_port(port, "admin API", &b.log_path());
    let api = Api::new(&b, port);
    let root = token(&b, "root", "admin", None);
    let r = api.expect(
        201,
        "POST",
        "/api/v1/tokens",
        &root,
        Some(r#"{"name":"siem","scope":"auditor","expires":"30d"}"#),
    );
    let v = r.json();
    let siem = v["token"].as_str().unwrap().to_string();
    let id = v["info"]["id"].as_str().unwrap().to_string();
    assert_eq!(api.get("/api/v1/users", &siem).status, 200);
    assert_eq!(
        api.call(
            "POST",
            "/api/v1/groups",
            Some(&siem),
            Some(r#"{"name":"x"}"#)
        )
        .status,
        403
    );
    let list = api.get("/api/v1/tokens", &root);
    assert!(
        !list.body.contains(siem.split('_').nth(2).unwrap()),
        "secret listed"
    );
    assert!(!list.body.contains("sha256"), "hash listed");
    let cli = text(&b.admin(&["token", "list"]).stdout);
    assert!(cli.contains(&id) && cli.contains("siem") && !cli.contains(&siem));
    api.expect(204, "DELETE", &format!("/api/v1/tokens/{id}"), &root, None);
    assert_eq!(api.get("/api/v1/users", &siem).status, 401);
    api.expect(404, "DELETE", &format!("/api/v1/tokens/{id}"), &root, None);

    for i in 0..5 {
        api.expect(
            201,
            "POST",
            "/api/v1/groups",
            &root,
            Some(&format!("{{\"name\":\"g{i}\"}}")),
        );
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = api
            .get(
                &format!("/api/v1/audit?kind=api.write&limit=2{after}"),
                &root,
            )
            .json();
        for e in page["events"].as_array().unwrap() {
            seen.push(e["seq"].as_i64().unwrap());
        }
        match page["next"].as_str() {
            Some(n) => after = format!("&after={n}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a page repeated an event");
    assert_eq!(
        seen.len(),
        8,
        "token create, revoke, the refused second revoke, 5 groups"
    );
    let kinds = api
        .get("/api/v1/audit?kind=api.token&limit=10", &root)
        .json();
    let k: Vec<&str> = kinds["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        k.contains(&"api.token.created") && k.contains(&"api.token.revoked"),
        "{k:?}"
    );
    let m = api.get("/api/v1/metrics", &root);
    assert!(m.body.contains("portcullis_live_sessions 0"), "{}", m.body);
    assert!(
        m.body
            .contains("portcullis_audit_events_total{kind=\"api.write\"}")
    );
}

#[test]
fn a_lock_through_the_api_ends_sessions_and_refuses_until_lifted() {
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let kill = token(&b, "soar", "killswitch", None);
    let auditor = token(&b, "audit", "auditor", None);
    let mut child = b
        .ssh("alice+web01")
        .arg("echo started; sleep 60")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("a live session", 20, || {
        api.get("/api/v1/sessions", &kill).json()["live"][0]["id"].is_string()
    });
    let body = r#"{"scope":{"kind":"user","value":"alice"},"reason":"incident 7","expires":"1h"}"#;
    api.expect(403, "POST", "/api/v1/locks", &auditor, Some(body));
    let bad = r#"{"scope":{"kind":"user","value":"../x"},"reason":"r"}"#;
    api.expect(400, "POST", "/api/v1/locks", &kill, Some(bad));
    let unknown = r#"{"scope":{"kind":"planet","value":"earth"},"reason":"r"}"#;
    api.expect(400, "POST", "/api/v1/locks", &kill, Some(unknown));
    let started = Instant::now();
    let r = api
        .expect(201, "POST", "/api/v1/locks", &kill, Some(body))
        .json();
    let lock = r["lock"]["id"].as_str().unwrap().to_string();
    assert_eq!(r["ended"].as_array().unwrap().len(), 1, "{r}");
    wait_until("the ssh client to exit", 10, || {
        child.try_wait().unwrap().is_some()
    });
    eprintln!("lock -> client exit: {:?}", started.elapsed());
    let _ = child.wait_with_output();
    let refused = run(b.ssh("alice+web01").arg("true"));
    assert!(!refused.status.success(), "a locked user got in");
    let locks = api.get("/api/v1/locks", &auditor).json();
    let l = locks
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == lock.as_str())
        .unwrap();
    assert_eq!(l["in_force"], true, "{l}");
    api.expect(204, "DELETE", &format!("/api/v1/locks/{lock}"), &kill, None);
    api.expect(404, "DELETE", &format!("/api/v1/locks/{lock}"), &kill, None);
    wait_until("the lift to take effect", 10, || {
        run(b.ssh("alice+web01").arg("true")).status.success()
    });
    let m = api.get("/api/v1/metrics", &auditor).body;
    assert!(m.contains("portcullis_locks_created_total 1"), "{m}");
    assert!(m.contains("portcullis_kill_latency"), "{m}");
}

#[test]
fn users_keys_groups_and_access_requests_round_trip() {
    let (mut b, port) = bastion_with_api("");
    b.start();
    wait_port(port, "admin API", &b.log_path());
    let api = Api::new(&b, port);
    let t = token(&b, "root", "admin", None);
    let key = std::fs::read_to_string(b.alice_key.with_extension("pub")).unwrap();
    let body = serde_json::json!({"name": "bob", "password": "bob-secret-pw-1"}).to_string();
    api.expect(201, "POST", "/api/v1/users", &t, Some(&body));
    let k = serde_json::json!({"public_key": key.trim()}).to_string();
    let fp = api
        .expect(201, "POST", "/api/v1/users/bob/keys", &t, Some(&k))
        .json()["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = api.get("/api/v1/users/bob", &t);
    assert!(
        !bob.body.contains("bob-secret-pw-1") && !bob.body.contains("argon2"),
        "{}",
        bob.body
    );
    assert_eq!(bob.json()["has_password"], true);
    assert_eq!(bob.json()["keys"][0]["fingerprint"], fp.as_str());
    api.expect(
        204,
        "PUT",
        "/api/v1/users/bob/password",
        &t,
        Some(r#"{"password":null}"#),
    );
    assert_eq!(
        api.get("/api/v1/users/bob", &t).json()["has_password"],
        false
    );
    let enc = fp.replace('/', "%2F").replace('+', "%2B");
    api.expect(
        204,
        "DELETE",
        &format!("/api/v1/users/bob/keys/{enc}"),
        &t,
        None,
    );
    assert!(
        api.get("/api/v1/users/bob", &t).json()["keys"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A request approved through the API by the admin token.
    api.expect(
        201,
        "POST",
        "/api/v1/users",
        &t,
        Some(r#"{"name":"carol","password":"carol-pw-123"}"#),
    );
    api.expect(
        201,
        "POST",
        "/api/v1/groups",
        &t,
        Some(r#"{"name":"approvers"}"#),
    );
    api.expect(
        201,
        "POST",
        "/api/v1/groups/approvers/members",
        &t,
        Some(r#"{"user":"carol"}"#),
    );
    let host = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    let target =
        serde_json::json!({"name": "db01", "host": "127.0.0.1", "port": 22, "host_key": host});
    api.expect(
        201,
        "POST",
        "/api/v1/targets",
        &t,
        Some(&target.to_string()),
    );
    let out = b.admin(&[
        "request", "new", "db01", "--login", "root", "--for", "1h", "--reason", "fix", "--as",
        "bob",
    ]);
    let id = text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let pending = api.get("/api/v1/requests?state=pending", &t).json();
    assert_eq!(pending[0]["id"], id.as_str());
    api.expect(400, "GET", "/api/v1/requests?state=maybe", &t, None);
    let path = format!("/api/v1/requests/{id}/approve");
    // The approver is the token, never a name in the body.
    api.expect(400, "POST", &path, &t, Some(r#"{"approver":"carol"}"#));
    let r = api.expect(200, "POST", &path, &t, Some("{}")).json();
    let grant = r["grant"].as_str().unwrap().to_string();
    api.expect(409, "POST", &path, &t, Some("{}"));
    let grants = api.get("/api/v1/grants", &t).json();
    assert!(
        grants
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == grant.as_str() && g["subject"] == "bob")
    );
    api.expect(204, "DELETE", &format!("/api/v1/grants/{grant}"), &t, None);
    api.expect(
        204,
        "DELETE",
        "/api/v1/groups/approvers/members/carol",
        &t,
        None,
    );
    api.expect(204, "DELETE", "/api/v1/groups/approvers", &t, None);
    api.expect(204, "DELETE", "/api/v1/users/bob", &t, None);
    api.expect(404, "GET", "/api/v1/users/bob", &t, None);
    let audit = api.get("/api/v1/audit?kind=access&limit=10", &t).json();
    let kinds: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"access.approved"), "{kinds:?}");
}
