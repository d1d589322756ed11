//! The console's investigation and control pages in a real headless
//! Chromium: search finds a word typed in a finished `ssh -tt` session and
//! links to the session at the hit; a lock made on the page refuses a login
//! until it is lifted there; lockdown of everything needs the typed word;
//! an auditor gets no lock or approve buttons (and the requests are
//! refused); nobody approves their own access request; markup in a
//! command, a lock reason or a request reason is shown as text; the
//! read-only pages hold no secret. Screenshots in the test's temp dir.

mod common;

use common::api::*;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[path = "console/cdp.rs"]
mod cdp;
#[path = "console/web.rs"]
mod web;
use web::*;

const MARKUP: &str = r#"<script>alert(1)</script> "q" <img src=x onerror=alert(2)>"#;

/// `ssh alice+web01 true`: whether it got through, and its stderr.
fn login(b: &Bastion) -> (bool, String) {
    let out = b
        .ssh("alice+web01")
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.success(), text(&out.stderr))
}

fn shot(page: &cdp::Page, dir: &Path, name: &str) {
    page.screenshot(&dir.join(format!("{name}.png")));
}

fn go(page: &cdp::Page, hash: &str) {
    page.eval(&format!("location.hash = {}; true", json!(hash)));
}

fn count(page: &cdp::Page, selector: &str) -> usize {
    page.eval(&format!(
        "String(document.querySelectorAll({}).length)",
        json!(selector)
    ))
    .parse()
    .unwrap()
}

fn set(page: &cdp::Page, selector: &str, value: &str) {
    page.eval(&format!(
        "(() => {{ const e = document.querySelector({s}); e.value = {v}; \
         e.dispatchEvent(new Event('input', {{bubbles: true}})); return true; }})()",
        s = json!(selector),
        v = json!(value)
    ));
}

fn click(page: &cdp::Page, selector: &str) {
    page.eval(&format!(
        "document.querySelector({}).click(); true",
        json!(selector)
    ));
}

/// A write from inside the signed-in page, with the session's own CSRF
/// token (what a user could do from the browser's console): the status.
fn page_write(page: &cdp::Page, method: &str, path: &str, body: Option<serde_json::Value>) -> u16 {
    let init = json!({
        "method": method,
        "credentials": "same-origin",
        "headers": {"content-type": "application/json"},
        "body": body.map(|b| b.to_string()),
    });
    page.eval(&format!(
        "fetch('/console/me').then(r => r.json()).then(me => {{ const init = {init}; \
         init.headers['X-CSRF-Token'] = me.csrf; if (init.body === null) delete init.body; \
         return fetch({path}, init); }}).then(r => String(r.status))",
        path = json!(path)
    ))
    .parse()
    .unwrap()
}

fn sign_out(page: &cdp::Page) {
    click(page, "#signout");
    page.wait_for("the sign-in form", "!!document.querySelector('#signin')");
}

#[test]
fn investigation_and_control_pages_in_a_real_browser() {
    need("chromium", "chromium");
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let admin_token = token(&b, "adm", "admin", None);
    let (rpw, rsecret) = console_user(&b, "rex", Some("responders"));
    let (apw, asecret) = console_user(&b, "ana", Some("auditors"));
    let (dpw, dsecret) = console_user(&b, "ada", Some("admins"));
    let shots = b.dir.path().join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let in_force = || -> Vec<serde_json::Value> {
        api.get("/api/v1/locks", &admin_token)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["in_force"] == true)
            .cloned()
            .collect()
    };

    // Two finished sessions: a word typed key by key in a terminal, and a
    // command printing markup.
    let (_, typed_id) = typed_session(&b, "echo QUOKKA-$((40+2))-TYPED");
    let out = b
        .ssh("alice+web01")
        .arg(format!("echo 'MARKUPHIT {}'", MARKUP.replace('\'', "")))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    let browser = cdp::Browser::start(b.dir.path());
    let page = browser.page();
    let base = format!("https://127.0.0.1:{port}");
    page.navigate(&format!("{base}/"));
    sign_in_page(&page, "rex", &rpw, &next_code(&rsecret));
    for id in [
        "nav-search",
        "nav-audit",
        "nav-locks",
        "nav-requests",
        "nav-people",
    ] {
        assert_eq!(count(&page, &format!("#{id}")), 1, "{id}");
    }

    // Search: through the form, as an analyst would.
    click(&page, "#nav-search");
    page.wait_for(
        "the search form",
        "!!document.querySelector('#search-form')",
    );
    set(&page, "#q", "QUOKKA-$((40+2))-TYPED");
    page.eval("document.querySelector('#search-form').requestSubmit(); true");
    let t = Instant::now();
    page.wait_for(
        "a typed hit",
        "!!document.querySelector('#search-results .kind.typed')",
    );
    eprintln!("figure: search submitted to hits shown: {:?}", t.elapsed());
    let href = page.eval("document.querySelector('#search-results a.hit').getAttribute('href')");
    assert!(
        href.starts_with(&format!("#/session/{typed_id}?t=")),
        "{href} (session {typed_id})"
    );
    let t: f64 = href.rsplit("?t=").next().unwrap().parse().unwrap();
    assert!(t > 0.5, "{href}: the offset is where it was typed");
    // Each hit offers the session's evidence bundle.
    let bundle = page.eval(
        "fetch(document.querySelector('#search-results a.evidence').href).then(r => `${r.status} ${r.headers.get('content-type')}`)",
    );
    assert_eq!(bundle, "200 application/x-tar");
    // The echo is a hit too: printed.
    assert!(count(&page, "#search-results .kind.printed") >= 1);
    shot(&page, &shots, "1-search");
    // A printed hit whose text is markup: shown as characters.
    go(&page, "#/search?q=MARKUPHIT");
    page.wait_for(
        "the markup hit",
        "!!document.querySelector('#search-results .excerpt')",
    );
    let ex = page.eval("document.querySelector('#search-results .excerpt').textContent");
    assert!(ex.contains(r#"<script>alert(1)</script> "q""#), "{ex}");
    assert_eq!(
        count(&page, "#search-results script, #search-results img"),
        0
    );
    shot(&page, &shots, "2-search-markup");

    // Locks: create one on alice with a markup reason; it refuses her login.
    go(&page, "#/locks");
    page.wait_for("the lock form", "!!document.querySelector('#lock-form')");
    assert!(login(&b).0, "alice logs in before the lock");
    page.eval("document.querySelector('#new-kind').value = 'user'; true");
    set(&page, "#new-value", "alice");
    set(&page, "#new-reason", MARKUP);
    set(&page, "#new-expires", "1h");
    page.eval("document.querySelector('#lock-form').requestSubmit(); true");
    page.wait_for(
        "the lock in the list",
        "!!document.querySelector('#locks button.lift')",
    );
    let row = page.eval("document.querySelector('#locks tbody tr').textContent");
    assert!(row.contains(MARKUP), "{row}");
    assert_eq!(count(&page, "#locks script, #locks img"), 0);
    let (ok, err) = login(&b);
    assert!(!ok && err.contains("locked"), "a locked user got in: {err}");
    shot(&page, &shots, "3-locked");
    click(&page, "#locks button.lift");
    page.wait_for(
        "no lift button",
        "!document.querySelector('#locks button.lift')",
    );
    assert!(in_force().is_empty(), "{:?}", in_force());
    let (ok, err) = login(&b);
    assert!(ok, "still refused after the lift: {err}");

    // Lockdown: nothing without the typed word, even when forced.
    set(&page, "#lockdown-reason", "incident 42");
    set(&page, "#lockdown-word", "lockdown");
    assert_eq!(
        page.eval("String(document.querySelector('#lockdown-all').disabled)"),
        "true"
    );
    page.eval("document.querySelector('#lockdown-form').requestSubmit(); true");
    page.wait_for(
        "the refusal",
        "document.querySelector('#lockdown-error').textContent.includes('LOCKDOWN')",
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(in_force().is_empty(), "{:?}", in_force());
    assert!(login(&b).0);
    set(&page, "#lockdown-word", "LOCKDOWN");
    assert_eq!(
        page.eval("String(document.querySelector('#lockdown-all').disabled)"),
        "false"
    );
    click(&page, "#lockdown-all");
    page.wait_for(
        "the lockdown in the list",
        "!!document.querySelector('#locks button.lift')",
    );
    let locks = in_force();
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0]["scope"]["kind"], "all");
    assert!(!login(&b).0, "a login got through a lockdown");
    shot(&page, &shots, "4-lockdown");
    click(&page, "#locks button.lift");
    page.wait_for("lifted", "!document.querySelector('#locks button.lift')");
    assert!(in_force().is_empty());

    // Access requests: ada's own and bob's (with a markup reason).
    b.add_human("bob", "bob-pw-12345678");
    let request = |who: &str, reason: &str| {
        let out = b.admin(&[
            "request", "new", "web02", "--login", "root", "--for", "1h", "--reason", reason,
            "--as", who,
        ]);
        text(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let own = request("ada", "mine");
    let bobs = request("bob", MARKUP);
    // A responder sees the list, decides nothing.
    go(&page, "#/requests");
    page.wait_for(
        "the requests",
        "!!document.querySelector('#requests tbody tr')",
    );
    assert_eq!(count(&page, "button.approve, button.deny"), 0);
    sign_out(&page);

    // An admin: bob's can be approved, her own cannot (no button, and the
    // server refuses it through her console session too).
    sign_in_page(&page, "ada", &dpw, &next_code(&dsecret));
    go(&page, "#/requests");
    page.wait_for(
        "bob's request",
        &format!("!!document.querySelector('button.approve[data-id=\"{bobs}\"]')"),
    );
    assert_eq!(
        count(&page, &format!("button.approve[data-id=\"{own}\"]")),
        0
    );
    assert_eq!(count(&page, "#requests .own"), 1);
    let table = page.eval("document.querySelector('#requests').textContent");
    assert!(table.contains(MARKUP), "{table}");
    assert_eq!(count(&page, "#requests script, #requests img"), 0);
    shot(&page, &shots, "5-requests");
    let approve_own = format!("/api/v1/requests/{own}/approve");
    assert_eq!(
        page_write(&page, "POST", &approve_own, Some(json!({}))),
        403
    );
    click(&page, &format!("button.approve[data-id=\"{bobs}\"]"));
    page.wait_for(
        "bob's request approved",
        &format!(
            "!document.querySelector('button.approve[data-id=\"{bobs}\"]') && \
             document.querySelector('#requests').textContent.includes('approved')"
        ),
    );
    let pending = api
        .get("/api/v1/requests?state=pending", &admin_token)
        .json();
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    assert_eq!(pending[0]["id"], own.as_str());
    sign_out(&page);

    // An auditor: no lock, lift or approve controls, and the requests are refused.
    let lock =
        json!({"scope": {"kind": "user", "value": "bob"}, "reason": "by admin", "expires": "1h"});
    api.expect(
        201,
        "POST",
        "/api/v1/locks",
        &admin_token,
        Some(&lock.to_string()),
    );
    sign_in_page(&page, "ana", &apw, &next_code(&asecret));
    go(&page, "#/locks");
    page.wait_for(
        "the locks list",
        "!!document.querySelector('#locks tbody tr')",
    );
    for sel in [
        "#lock-form",
        "#lockdown-form",
        "button.lift",
        "button.lock-action",
    ] {
        assert_eq!(count(&page, sel), 0, "{sel} shown to an auditor");
    }
    shot(&page, &shots, "6-auditor-locks");
    go(&page, "#/requests");
    page.wait_for(
        "the requests",
        "!!document.querySelector('#requests tbody tr')",
    );
    assert_eq!(count(&page, "button.approve, button.deny"), 0);
    let lock_id = in_force()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        page_write(&page, "POST", "/api/v1/locks", Some(lock.clone())),
        403
    );
    let lift = format!("/api/v1/locks/{lock_id}");
    assert_eq!(page_write(&page, "DELETE", &lift, None), 403);
    assert_eq!(
        page_write(&page, "POST", &approve_own, Some(json!({}))),
        403
    );
    assert_eq!(in_force().len(), 1);

    // The read-only pages: no secret anywhere in them.
    go(&page, "#/people");
    page.wait_for(
        "the people tables",
        "!!document.querySelector('#people-users tbody tr') && !!document.querySelector('#people-grants tbody tr') \
         && !!document.querySelector('#people-credentials tbody tr') && !!document.querySelector('#people-targets tbody tr')",
    );
    let all = page.eval("document.body.innerText");
    assert!(all.contains("web02") && all.contains("ana"), "{all}");
    let b32 = base32(&asecret);
    for secret in [apw.as_str(), rpw.as_str(), TARGET_PASSWORD, "$argon2", &b32] {
        assert!(!all.contains(secret), "{secret:?} on the page:\n{all}");
    }
    shot(&page, &shots, "7-people");

    // The audit log: the lock with its markup reason as text; the export.
    go(&page, "#/audit?kind=lock");
    page.wait_for(
        "lock events",
        "!!document.querySelector('#audit-events tbody tr')",
    );
    let t = page.eval("document.querySelector('#audit-events').textContent");
    assert!(t.contains("lock.created") && t.contains("alert(1)"), "{t}");
    assert_eq!(count(&page, "#audit-events script, #audit-events img"), 0);
    shot(&page, &shots, "8-audit");
    let export = page.eval(
        "fetch(document.querySelector('#audit-export').href, {credentials: 'same-origin'}).then(r => r.text())",
    );
    let lines: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty(), "{export}");
    assert!(
        lines
            .iter()
            .all(|l| l["kind"].as_str().unwrap().starts_with("lock")),
        "{export}"
    );
    let exported = audit_of(&b, "audit.exported");
    assert!(
        exported.iter().any(|e| e["actor"] == "console:ana"),
        "{exported:?}"
    );

    eprintln!("screenshots in {}", shots.display());
    if let Ok(keep) = std::env::var("PORTCULLIS_CONSOLE_SHOTS") {
        for e in std::fs::read_dir(&shots).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), Path::new(&keep).join(e.file_name())).unwrap();
        }
    }
    assert!(
        !page
            .console_errors()
            .iter()
            .any(|e| e.contains("Content Security Policy")),
        "CSP violations: {:?}",
        page.console_errors()
    );
}
