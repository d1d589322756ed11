//! The console's session detail (issue 17) is complete: besides metadata
//! and recordings it lists the session's channels (kind, command), its
//! forwards (kind, destination, bytes, end reason), its file operations
//! (SFTP markers: op, path, bytes) and its audit events, from
//! `GET /sessions/{id}/activity` (read scope). In a real headless
//! Chromium, a command and a file path holding `<script>`/`"` markup are
//! shown as the characters they are, never as elements.

mod common;

use common::api::*;
use common::forward::*;
use common::*;
use serde_json::{Value, json};
use std::process::{Command, Stdio};

#[path = "console/cdp.rs"]
mod cdp;
#[path = "console/web.rs"]
mod web;
use web::*;

const FILE: &str = r#"<script>alert(1)<script> "q" <img src=x onerror=alert(2)>.txt"#;
const CMD_MARKUP: &str = r#"<script>alert(3)</script> "dq" <img src=y onerror=alert(4)>"#;

fn count(page: &cdp::Page, selector: &str) -> usize {
    page.eval(&format!(
        "String(document.querySelectorAll({}).length)",
        json!(selector)
    ))
    .parse()
    .unwrap()
}

fn text_of(page: &cdp::Page, selector: &str) -> String {
    page.eval(&format!(
        "(document.querySelector({}) || {{textContent: ''}}).textContent",
        json!(selector)
    ))
}

fn activity(api: &Api, token: &str, id: &str) -> Value {
    let r = api.get(&format!("/api/v1/sessions/{id}/activity"), token);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// The newest session of kind `target` whose id is not in `before`.
fn new_session(api: &Api, token: &str, before: &[String]) -> String {
    wait_for("the new session row", 15, || {
        let r = api.get("/api/v1/sessions?limit=50", token);
        r.json()["recent"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["kind"] != "connection")
            .map(|s| s["id"].as_str().unwrap().to_string())
            .find(|i| !before.contains(i))
    })
}

fn ids(api: &Api, token: &str) -> Vec<String> {
    api.get("/api/v1/sessions?limit=1000", token).json()["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn session_detail_lists_channels_forwards_files_and_audit_as_text() {
    need("chromium", "chromium");
    need("sftp", "openssh-client");
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    b.add_target("web03", &sshd);
    b.grant(&[
        "--user",
        "alice",
        "--target",
        "web03",
        "--login",
        TARGET_USER,
        "--allow",
        "shell,exec,sftp,local-forward",
    ]);
    let api = Api::new(&b, port);
    let auditor = token(&b, "aud", "auditor", None);
    let killer = token(&b, "kil", "killswitch", None);
    let (apw, asecret) = console_user(&b, "ana", Some("auditors"));

    // An SFTP upload to a path holding markup.
    let before = ids(&api, &auditor);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src.bin");
    std::fs::write(&src, vec![7u8; 1234]).unwrap();
    let batch = local.path().join("batch");
    std::fs::write(&batch, format!("put {} '{FILE}'\n", src.display())).unwrap();
    let out = run(Command::new("sftp")
        .args(b.ssh_opts())
        .args(["-P", &b.port.to_string(), "-b"])
        .arg(&batch)
        .arg("alice+web03@127.0.0.1"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sftp_id = new_session(&api, &auditor, &before);

    // A command holding markup.
    let before = ids(&api, &auditor);
    let out = b
        .ssh("alice+web03")
        .arg(format!("echo '{CMD_MARKUP}'"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cmd_id = new_session(&api, &auditor, &before);

    // A local forward through web03's connection, ended by the client.
    let echo = Service::start("127.0.0.1", Behaviour::Echo);
    let lport = free_port();
    let mut fwd = Forwarding::start(
        &b,
        "alice+web03",
        &["-L", &format!("{lport}:127.0.0.1:{}", echo.port)],
        Some(lport),
    );
    let data = pattern(50_000, 1);
    assert_eq!(sha_hex(&round_trip(lport, &data)), sha_hex(&data));
    let closed = wait_for("forward.closed", 15, || {
        audit_of(&b, "forward.closed").into_iter().next()
    });
    let fwd_id = closed["session"].as_str().unwrap().to_string();
    let _ = fwd.child().kill();

    // The API: what the page shows.
    let a = activity(&api, &auditor, &sftp_id);
    let ch = &a["channels"][0];
    assert_eq!(ch["kind"], "subsystem", "{a}");
    assert_eq!(ch["command"], "sftp", "{a}");
    let ops = a["files"][0]["ops"].as_array().unwrap();
    let upload = ops
        .iter()
        .find(|o| o["op"] == "upload")
        .unwrap_or_else(|| panic!("no upload op: {a}"));
    assert_eq!(upload["bytes"], 1234, "{upload}");
    assert!(
        upload["path"].as_str().unwrap().contains("<img src=x"),
        "{upload}"
    );
    assert!(
        a["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "session.started"),
        "{a}"
    );
    let a = activity(&api, &auditor, &cmd_id);
    assert!(
        a["channels"][0]["command"]
            .as_str()
            .unwrap()
            .contains(CMD_MARKUP),
        "{a}"
    );
    assert_eq!(a["files"], json!([]), "an echo is no file operation: {a}");
    let a = activity(&api, &auditor, &fwd_id);
    // (The first forward is the helper's probe of the listening port.)
    let f = a["forwards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["bytes_up"] == 50_000)
        .unwrap_or_else(|| panic!("no forward of 50,000 bytes: {a}"));
    assert_eq!(f["kind"], "local", "{a}");
    assert_eq!(f["destination"], format!("127.0.0.1:{}", echo.port), "{a}");
    assert!(f["reason"].is_string(), "{a}");
    // Read scope: a killswitch token may not read it; an unknown session is 404.
    assert_eq!(
        api.get(&format!("/api/v1/sessions/{sftp_id}/activity"), &killer)
            .status,
        403
    );
    assert_eq!(
        api.get("/api/v1/sessions/nope/activity", &auditor).status,
        404
    );

    // The page, in Chromium.
    let shots = b.dir.path().join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let browser = cdp::Browser::start(b.dir.path());
    let page = browser.page();
    page.navigate(&format!("https://127.0.0.1:{port}/"));
    sign_in_page(&page, "ana", &apw, &next_code(&asecret));
    page.eval(&format!("location.hash = '#/session/{sftp_id}'; true"));
    page.wait_for(
        "the file operations",
        "!!document.querySelector('#files tbody tr')",
    );
    let files = text_of(&page, "#files");
    assert!(files.contains(r#"<img src=x onerror=alert(2)>"#), "{files}");
    assert!(files.contains("upload"), "{files}");
    assert!(text_of(&page, "#channels").contains("sftp"));
    assert!(text_of(&page, "#session-audit").contains("session.started"));
    assert_eq!(count(&page, "#activity script, #activity img"), 0);
    page.screenshot(&shots.join("detail-sftp.png"));

    page.eval(&format!("location.hash = '#/session/{cmd_id}'; true"));
    page.wait_for(
        "the channels",
        "!!document.querySelector('#channels tbody tr')",
    );
    let chans = text_of(&page, "#channels .command");
    assert!(chans.contains(CMD_MARKUP), "{chans}");
    assert_eq!(count(&page, "#activity script, #activity img"), 0);
    assert_eq!(count(&page, "#files tbody tr"), 0);
    page.screenshot(&shots.join("detail-command.png"));

    page.eval(&format!("location.hash = '#/session/{fwd_id}'; true"));
    page.wait_for(
        "the forwards",
        "!!document.querySelector('#forwards tbody tr')",
    );
    let f = text_of(&page, "#forwards");
    assert!(f.contains(&format!("127.0.0.1:{}", echo.port)), "{f}");
    page.screenshot(&shots.join("detail-forward.png"));
    eprintln!("page console errors: {:?}", page.console_errors());
}

/// The audit rows of `kind` for `session`.
fn reads(b: &Bastion, kind: &str, session: &str) -> Vec<Value> {
    audit_of(b, kind)
        .into_iter()
        .filter(|e| e["session"] == session)
        .collect()
}

/// Reading a session's output — live view, replay, download — is an audit
/// event for tokens and console users alike, written before the first byte
/// is sent: when it cannot be written nothing is sent.
#[test]
fn every_read_of_session_output_is_audited_first() {
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let auditor = token(&b, "aud", "auditor", None);
    let (apw, asecret) = console_user(&b, "ana", Some("auditors"));

    // A token watches a live session (the stream ends with the session).
    let (child, id) = live_ssh(&b, &api, &auditor, "echo WATCHED-OUT; sleep 2");
    let r = api.get(&format!("/api/v1/sessions/{id}/live"), &auditor);
    assert_eq!(r.status, 200, "{}", r.body);
    let _ = ended(child);
    let w = reads(&b, "session.watched", &id);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0]["actor"].as_str().unwrap().starts_with("api:aud/"),
        "{w:?}"
    );
    let name = w[0]["detail"]["recording"].as_str().unwrap().to_string();
    assert!(name.starts_with(&id), "{name}");

    // Replay and download of the finished recording, by the token.
    let r = api.get(&format!("/api/v1/recordings/{name}/segments"), &auditor);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api.get(&format!("/api/v1/recordings/{name}/cast"), &auditor);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("WATCHED-OUT"));
    for kind in ["recording.replayed", "recording.downloaded"] {
        let e = reads(&b, kind, &id);
        assert_eq!(e.len(), 1, "{kind}: {e:?}");
        assert!(e[0]["actor"].as_str().unwrap().starts_with("api:aud/"));
        assert_eq!(e[0]["detail"]["recording"], name.as_str());
    }

    // A console user: the same kinds, as `console:USER`.
    let mut web = Web::new(&b, port);
    let (_, c) = web.sign_in("ana", &apw, &next_code(&asecret));
    assert_eq!(c.status, 200, "{}", c.body);
    let (child, id2) = live_ssh(&b, &api, &auditor, "sleep 2");
    let r = web.call("GET", &format!("/api/v1/sessions/{id2}/live"), None, true);
    assert_eq!(r.status, 200, "{}", r.body);
    let _ = ended(child);
    let w = reads(&b, "session.watched", &id2);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0]["actor"], "console:ana");
    let r = web.get(&format!("/api/v1/recordings/{name}/cast"));
    assert_eq!(r.status, 200);
    let d = reads(&b, "recording.downloaded", &id);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[1]["actor"], "console:ana");

    // Fail closed: the audit store refuses exactly these rows.
    b.db_exec(&["CREATE TRIGGER fail_reads BEFORE INSERT ON audit_events \
         WHEN NEW.kind IN ('session.watched', 'recording.replayed', 'recording.downloaded') \
         BEGIN SELECT RAISE(ABORT, 'simulated failure'); END"])
        .unwrap();
    let r = api.get(&format!("/api/v1/recordings/{name}/cast"), &auditor);
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    assert!(!r.body.contains("WATCHED-OUT"), "{}", r.body);
    let r = api.get(&format!("/api/v1/recordings/{name}/segments"), &auditor);
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    assert!(!r.body.contains("segments"), "{}", r.body);
    let (child, id3) = live_ssh(&b, &api, &auditor, "echo UNSEEN-OUT; sleep 2");
    let r = api.get(&format!("/api/v1/sessions/{id3}/live"), &auditor);
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    assert!(!r.body.contains("UNSEEN-OUT"), "{}", r.body);
    let r = web.call("GET", &format!("/api/v1/sessions/{id3}/live"), None, true);
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    assert!(!r.body.contains("UNSEEN-OUT"), "{}", r.body);
    let _ = ended(child);
}

/// SHA-256 of a text, hex (what the console stores of a cookie value).
fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// Console sign-ins live in the database: a restarted `serve` and a second
/// process on the same data dir honour the cookie; sign-out on one ends it
/// on the other; idle time is the row's; the row alone (its hash, or a
/// planted one) is no cookie; CSRF is unchanged.
#[test]
fn console_sign_ins_survive_restarts_and_are_shared_by_processes() {
    let (mut b, port) = bastion_with_api("");
    b.start();
    wait_port(port, "admin API", &b.log_path());
    let (pw, secret) = console_user(&b, "ana", Some("auditors"));
    let mut web = Web::new(&b, port);
    let (_, c) = web.sign_in("ana", &pw, &next_code(&secret));
    assert_eq!(c.status, 200, "{}", c.body);
    let csrf = web.csrf.clone().unwrap();
    let cookie = web
        .cookies
        .iter()
        .find(|(k, _)| k == "__Host-pc_session")
        .map(|(_, v)| v.clone())
        .unwrap();
    // The database holds the cookie's hash only, never the value or the CSRF token.
    let mut dump = Vec::new();
    for f in ["portcullis.db", "portcullis.db-wal"] {
        dump.extend(std::fs::read(b.data_dir().join(f)).unwrap_or_default());
    }
    let dump = String::from_utf8_lossy(&dump);
    assert!(
        dump.contains(&sha256_hex(&cookie)),
        "the row is in the database"
    );
    assert!(!dump.contains(&cookie) && !dump.contains(&csrf));

    // A restart on the same data dir: still signed in, same CSRF token.
    b.stop();
    b.start();
    wait_port(port, "admin API", &b.log_path());
    // A new client (the old one's pooled connection went with the process),
    // the same cookie.
    let cookies = web.cookies.clone();
    let mut web = Web::new(&b, port);
    web.cookies = cookies;
    web.csrf = Some(csrf.clone());
    let me = web.get("/console/me");
    assert_eq!(me.status, 200, "after a restart: {}", me.body);
    assert_eq!(me.json()["csrf"], csrf.as_str());
    assert_eq!(web.get("/api/v1/sessions").status, 200);
    // CSRF unchanged: a write without the header is refused.
    let r = web.call("POST", "/console/signout", None, false);
    assert_eq!(r.status, 403, "{}", r.body);

    // The row alone is no cookie: its hash presented as the value, and a
    // planted row whose cookie nobody knows.
    let mut thief = Web::new(&b, port);
    thief
        .cookies
        .push(("__Host-pc_session".into(), sha256_hex(&cookie)));
    assert_eq!(thief.get("/console/me").status, 401);
    assert_eq!(thief.get("/api/v1/sessions").status, 401);
    let planted = sha256_hex("nobody-knows-this-value");
    b.db_exec(&[&format!(
        "INSERT INTO console_sessions (id_sha256, user_name, role, source, created_at, last_used_at) \
         VALUES ('{planted}', 'ana', 'admin', '127.0.0.1', {now}, {now})",
        now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    )])
    .unwrap();
    let mut thief = Web::new(&b, port);
    thief.cookies.push(("__Host-pc_session".into(), planted));
    assert_eq!(thief.get("/console/me").status, 401);

    // A second node: its own data directory (one server per directory)
    // with the first one's keys, on the same database.
    let (port2, api2) = (free_port(), free_port());
    let data2 = b.dir.path().join("data2");
    std::fs::create_dir_all(&data2).unwrap();
    for e in std::fs::read_dir(b.data_dir()).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if e.file_type().unwrap().is_file()
            && !name.starts_with("portcullis.db")
            && name != "serve.lock"
        {
            std::fs::copy(e.path(), data2.join(&name)).unwrap();
        }
    }
    let conf2 = b.dir.path().join("second.toml");
    std::fs::write(
        &conf2,
        format!(
            "listen = \"127.0.0.1:{port2}\"\ndatabase_url = \"sqlite://{}?mode=rwc\"\n\
             [upstream]\nconnect_timeout_secs = 5\n[api]\nlisten = \"127.0.0.1:{api2}\"\n",
            b.data_dir().join("portcullis.db").display()
        ),
    )
    .unwrap();
    let log2 = b.dir.path().join("second.log");
    let mut second = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--config")
        .arg(&conf2)
        .arg("--data-dir")
        .arg(&data2)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log2).unwrap())
        .stderr(std::fs::File::create(b.dir.path().join("second.err")).unwrap())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", api2)).is_err() {
        let err = std::fs::read_to_string(b.dir.path().join("second.err")).unwrap_or_default();
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20)
                && second.try_wait().unwrap().is_none(),
            "the second serve did not start: {err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut web2 = Web::new(&b, api2);
    web2.cookies = web.cookies.clone();
    web2.csrf = Some(csrf.clone());
    assert_eq!(web2.get("/console/me").status, 200, "the other node");
    let r = web2.call("POST", "/console/signout", None, true);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        web.get("/console/me").status,
        401,
        "signed out on the other node"
    );
    let _ = second.kill();
    let _ = second.wait();

    // Idle time is the row's: a row last used long ago is refused (and
    // audited as an idle timeout), whichever process holds it.
    let (pw, secret) = console_user(&b, "ben", Some("auditors"));
    let mut web = Web::new(&b, port);
    let (_, c) = web.sign_in("ben", &pw, &next_code(&secret));
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(web.get("/console/me").status, 200);
    b.db_exec(&["UPDATE console_sessions SET last_used_at = last_used_at - 3600000"])
        .unwrap();
    assert_eq!(web.get("/console/me").status, 401);
    let outs = audit_of(&b, "console.signed_out");
    assert!(
        outs.iter().any(|e| e["detail"]["why"] == "idle timeout"),
        "{outs:?}"
    );
}
