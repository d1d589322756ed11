//! The security team's web console (issue 17), over real HTTPS: the headers
//! on every page, the cookie flags, CSRF on writes, sign-in with password +
//! TOTP through the shared login limits, roles mapped onto the token scopes;
//! then a real headless Chromium driven over the DevTools protocol.

mod common;

use common::api::*;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[path = "console/cdp.rs"]
mod cdp;
#[path = "console/web.rs"]
mod web;
use web::*;

fn check_headers(r: &Resp, what: &str) {
    let csp = r.header("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{what}: CSP {csp:?}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("object-src 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(!csp.contains("'unsafe-eval'"), "{what}: {csp}");
    assert!(!csp.contains("http"), "{what}: another origin in {csp}");
    assert_eq!(r.header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(r.header("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(r.header("x-frame-options"), "DENY", "{what}");
}

const PAGES: &[(&str, &str)] = &[
    ("/", "text/html"),
    ("/assets/js/main.js", "text/javascript"),
    ("/assets/js/dom.js", "text/javascript"),
    ("/assets/console.css", "text/css"),
    (
        "/assets/vendor/asciinema-player/asciinema-player.min.js",
        "text/javascript",
    ),
    (
        "/assets/vendor/asciinema-player/asciinema-player.css",
        "text/css",
    ),
];

#[test]
fn every_page_sets_csp_and_headers_and_loads_nothing_from_elsewhere() {
    let (mut b, port) = bastion_with_api("");
    b.start();
    wait_port(port, "admin API", &b.log_path());
    let mut web = Web::new(&b, port);
    for (path, kind) in PAGES {
        let r = web.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(r.header("content-type").starts_with(kind), "{path}");
        check_headers(&r, path);
    }
    // The API, the sign-in endpoints and errors carry them too.
    for path in [
        "/api/v1/health",
        "/console/me",
        "/api/v1/sessions",
        "/nope",
        "/assets/package.json",
        "/assets/../Cargo.toml",
    ] {
        check_headers(&web.get(path), path);
    }
    // The lockfile and notes under web/ are not served.
    for path in [
        "/assets/package.json",
        "/assets/package-lock.json",
        "/assets/vendor/README.md",
        "/assets/vendor/asciinema-player/LICENSE",
    ] {
        assert_eq!(web.get(path).status, 404, "{path}");
    }
    // No inline script or style in the page, every script and stylesheet
    // from this origin (a relative /assets/ path).
    let index = web.get("/").body;
    assert!(!index.contains("<style"), "{index}");
    assert!(!index.contains("style="), "{index}");
    for tag in index.split("<script").skip(1) {
        let open = tag.split('>').next().unwrap();
        assert!(
            open.contains("src=\"/assets/"),
            "inline or foreign script: {open}"
        );
        assert!(
            tag.trim_start_matches(|c| c != '>')
                .starts_with("></script>"),
            "{tag}"
        );
    }
    for href in index.split("href=\"").skip(1) {
        let h = href.split('"').next().unwrap();
        assert!(h.starts_with("/assets/") || h.starts_with('#'), "{h}");
    }
    // Our own modules never parse text as HTML and fetch only our origin.
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/web/js")).unwrap() {
        let p = entry.unwrap().path();
        let src = std::fs::read_to_string(&p).unwrap();
        for bad in [
            ".innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "http://",
            "https://",
        ] {
            assert!(!src.contains(bad), "{} uses {bad}", p.display());
        }
    }
}

#[test]
fn sign_in_cookies_csrf_terminate_and_sign_out() {
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let token = token(&b, "watch", "auditor", None);
    let (pw, secret) = console_user(&b, "rita", Some("responders"));
    let mut web = Web::new(&b, port);

    let (p, c) = web.sign_in("rita", &pw, &next_code(&secret));
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(c.json()["role"], "responder");
    let pending = p.set_cookies().join("\n");
    let session = c.set_cookies().join("\n");
    for (what, set) in [("pending", &pending), ("session", &session)] {
        for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(flag), "{what} cookie without {flag}: {set}");
        }
    }
    assert!(session.contains("__Host-pc_session="), "{session}");
    assert!(
        !c.body.contains(&web.cookies[0].1),
        "the cookie value is not in the body"
    );
    let signed_in = audit_of(&b, "console.signed_in");
    assert_eq!(signed_in.len(), 1, "{signed_in:?}");
    assert_eq!(signed_in[0]["actor"], "rita");

    // Reads with the cookie alone.
    let me = web.get("/console/me");
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(web.get("/api/v1/sessions").status, 200);
    // A responder holds no admin scope.
    let tokens = web.call(
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": "x", "scope": "admin"})),
        true,
    );
    assert_eq!(tokens.status, 403, "{}", tokens.body);

    let (victim, id) = live_ssh(&b, &api, &token, "sleep 120; echo SURVIVED");
    let path = format!("/api/v1/sessions/{id}/terminate");
    let reason = json!({"reason": "console test <b>reason</b>"});
    // A cross-site request carries the cookie but cannot know the token.
    let no_token = web.call("POST", &path, Some(reason.clone()), false);
    assert_eq!(no_token.status, 403, "{}", no_token.body);
    let real = web.csrf.replace("0".repeat(64));
    let wrong = web.call("POST", &path, Some(reason.clone()), true);
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    web.csrf = real;
    assert!(
        live_ids(&api, &token).contains(&id),
        "refused requests ended it"
    );

    let ok = web.call("POST", &path, Some(reason.clone()), true);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let err = ended(victim);
    assert!(err.contains("console test <b>reason</b>"), "{err}");
    let t = audit_of(&b, "session.terminated");
    assert!(t.iter().any(|e| e["actor"] == "console:rita"), "{t:?}");
    let actions = wait_for("console.action audited", 5, || {
        let a = audit_of(&b, "console.action");
        (!a.is_empty()).then_some(a)
    });
    assert!(
        actions[0]["subject"].as_str().unwrap().contains(&id),
        "{actions:?}"
    );

    // The markup in the reason comes back as JSON text, never as a page.
    let list = wait_for("the end reason in the list", 10, || {
        let l = web.get("/api/v1/sessions?limit=50");
        let ended = l.json()["recent"].as_array().unwrap().iter().any(|s| {
            s["id"] == id.as_str()
                && s["end_reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("<b>reason</b>"))
        });
        ended.then_some(l)
    });
    assert!(list.header("content-type").starts_with("application/json"));
    assert_eq!(list.header("x-content-type-options"), "nosniff");

    // Sign-out is a write: CSRF first.
    assert_eq!(
        web.call("POST", "/console/signout", None, false).status,
        403
    );
    let out = web.call("POST", "/console/signout", None, true);
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(web.get("/api/v1/sessions").status, 401);
    assert_eq!(web.get("/console/me").status, 401);
    let so = audit_of(&b, "console.signed_out");
    assert_eq!(so.len(), 1, "{so:?}");
}

#[test]
fn wrong_factors_are_refused_and_audited_and_roles_hold() {
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let token = token(&b, "watch", "auditor", None);
    let (pw, secret) = console_user(&b, "ana", Some("auditors"));
    let (npw, nsecret) = console_user(&b, "nora", None);

    // A cross-site form cannot post the sign-in: JSON only (a form's
    // text/plain or urlencoded body is refused before anything is checked).
    let form = Web::new(&b, port).rt.block_on(async {
        reqwest::Client::builder()
            .use_preconfigured_tls(client_tls(
                &std::fs::read(b.data_dir().join("api-cert.pem")).unwrap(),
                None,
            ))
            .build()
            .unwrap()
            .post(format!("https://127.0.0.1:{port}/console/signin"))
            .header("content-type", "text/plain")
            .body(format!(r#"{{"user":"ana","password":"{pw}"}}"#))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(form, 415);

    // Wrong password: refused, padded; no half-way cookie.
    let mut web = Web::new(&b, port);
    let t = Instant::now();
    let (p, _) = web.sign_in("ana", "not-her-password", "000000");
    assert_eq!(p.status, 401, "{}", p.body);
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t.elapsed()
    );
    assert!(p.set_cookies().is_empty());

    // Right password, wrong code: refused and audited as such.
    let mut web = Web::new(&b, port);
    let right = next_code(&secret);
    let wrong = if right == "123456" {
        "654321"
    } else {
        "123456"
    };
    let (p, c) = web.sign_in("ana", &pw, wrong);
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(c.status, 401, "{}", c.body);
    assert!(web.cookies.iter().all(|(k, _)| k != "__Host-pc_session"));
    let refused = audit_of(&b, "console.signin_refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["actor"], "ana");
    assert_eq!(refused[0]["detail"]["factor"], "totp");
    assert!(audit_of(&b, "console.signed_in").is_empty());

    // Then the right code on the same half-way cookie: an auditor.
    let c = web.call("POST", "/console/code", Some(json!({"code": right})), false);
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(c.json()["role"], "auditor");
    web.csrf = c.json()["csrf"].as_str().map(str::to_string);
    assert_eq!(web.get("/api/v1/sessions").status, 200);
    assert_eq!(web.get("/api/v1/audit?limit=5").status, 200);

    // An auditor's terminate is refused 403, CSRF token and all.
    let (victim, id) = live_ssh(&b, &api, &token, "sleep 120; echo SURVIVED");
    let r = web.call(
        "POST",
        &format!("/api/v1/sessions/{id}/terminate"),
        Some(json!({"reason": "x"})),
        true,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(live_ids(&api, &token).contains(&id));
    let mut victim = victim;
    let _ = victim.kill();
    let _ = victim.wait();

    // Both factors right but in no console group: no session.
    let mut web = Web::new(&b, port);
    let (p, c) = web.sign_in("nora", &npw, &next_code(&nsecret));
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(c.status, 403, "{}", c.body);
    assert!(web.cookies.iter().all(|(k, _)| k != "__Host-pc_session"));
    // A made-up session cookie is nobody.
    let mut forged = Web::new(&b, port);
    forged
        .cookies
        .push(("__Host-pc_session".into(), "ab".repeat(32)));
    assert_eq!(forged.get("/api/v1/sessions").status, 401);
}

/// The browser: sign in, see a live ssh session, terminate it, replay a
/// finished one. Screenshots go to the test's temp dir (path printed).
#[test]
fn a_real_browser_signs_in_terminates_and_replays() {
    need("chromium", "chromium");
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let token = token(&b, "watch", "auditor", None);
    let (pw, secret) = console_user(&b, "rex", Some("responders"));
    let (apw, asecret) = console_user(&b, "ana", Some("auditors"));
    let shots = b.dir.path().join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    // A finished interactive session with typed text to replay: the
    // target's terminal echoes what is typed, and the recording has it.
    let (out, finished_id) = typed_session(&b, "echo TYPED-$((6*7))");
    assert!(out.contains("TYPED-42"), "{out}");

    let browser = cdp::Browser::start(b.dir.path());
    let page = browser.page();
    let base = format!("https://127.0.0.1:{port}");
    page.navigate(&format!("{base}/"));
    page.wait_for("the sign-in form", "!!document.querySelector('#signin')");
    page.screenshot(&shots.join("1-signin.png"));
    sign_in_page(&page, "rex", &pw, &next_code(&secret));
    page.wait_for("the sessions page", "!!document.querySelector('#live')");
    assert_eq!(
        page.eval("document.querySelector('#role').textContent"),
        "responder"
    );
    // The session cookie is not readable from script (HttpOnly).
    assert_eq!(page.eval("document.cookie"), "");

    let (victim, id) = live_ssh(&b, &api, &token, "sleep 120; echo SURVIVED");
    let t = Instant::now();
    page.wait_for(
        "the live ssh session in the list (by polling)",
        &format!("!!document.querySelector('#live tr[data-id=\"{id}\"]')"),
    );
    eprintln!(
        "figure: live in the API to shown in the list: {:?}",
        t.elapsed()
    );
    page.screenshot(&shots.join("2-live.png"));
    // Times in the viewer's zone, the UTC instant on hover.
    let shown = page.eval("document.querySelector('#live time').textContent");
    let hover = page.eval("document.querySelector('#live time').title");
    assert!(shown.contains("GMT+1") || shown.contains("CET"), "{shown}");
    assert!(hover.ends_with("Z (UTC)"), "{hover}");
    // The columns sort: a click on User sorts by it, a second reverses.
    page.eval("document.querySelector('#live th[data-key=\"user\"]').click(); true");
    page.wait_for(
        "sorted by user",
        "document.querySelector('#live th[data-key=\"user\"]').getAttribute('aria-sort') === 'ascending'",
    );
    page.eval("document.querySelector('#live th[data-key=\"user\"]').click(); true");
    page.wait_for(
        "sorted by user, reversed",
        "document.querySelector('#live th[data-key=\"user\"]').getAttribute('aria-sort') === 'descending'",
    );
    // A responder's live row offers to lock its user, target and source.
    let locks = page.eval(&format!(
        "[...document.querySelectorAll('#live button.lock-action[data-id=\"{id}\"]')].map(b => b.dataset.kind).join(',')"
    ));
    assert_eq!(locks, "user,target,source");
    page.eval(&format!(
        "document.querySelector('#live button.terminate[data-id=\"{id}\"]').click(); true"
    ));
    page.wait_for(
        "the terminate dialog",
        "!!document.querySelector('dialog[open] #reason')",
    );
    page.eval(&format!(
        "document.querySelector('#reason').value = {r}; document.querySelector('#confirm-terminate').click(); true",
        r = json!("browser test <img src=x onerror=alert(1)>")
    ));
    let t = Instant::now();
    let err = ended(victim);
    eprintln!(
        "figure: terminate confirmed to ssh client ended: {:?}",
        t.elapsed()
    );
    assert!(
        err.contains("browser test <img src=x onerror=alert(1)>"),
        "{err}"
    );
    // The reason shows in the recent list as text, not as an element.
    page.wait_for(
        "the ended session in the recent list",
        &format!("!!document.querySelector('#recent tr[data-id=\"{id}\"]')"),
    );
    let cell = page.eval(&format!(
        "document.querySelector('#recent tr[data-id=\"{id}\"]').textContent"
    ));
    assert!(cell.contains("<img src=x onerror=alert(1)>"), "{cell}");
    assert_eq!(
        page.eval("String(document.querySelectorAll('#recent img').length)"),
        "0"
    );
    page.screenshot(&shots.join("3-terminated.png"));

    // Replay of the finished session shows what it printed.
    page.navigate(&format!("{base}/#/session/{finished_id}"));
    page.wait_for(
        "the recordings",
        "!!document.querySelector('#recordings button.replay')",
    );
    page.wait_for(
        "the verify badge",
        "!!document.querySelector('#recordings .badge.ok')",
    );
    page.eval("document.querySelector('#recordings button.replay').click(); true");
    let t = Instant::now();
    page.wait_for(
        "the typed text in the player's terminal",
        "(document.querySelector('#player') || {textContent: ''}).textContent.includes('echo TYPED-$((6*7))')",
    );
    eprintln!(
        "figure: replay clicked to typed text in the terminal: {:?}",
        t.elapsed()
    );
    page.screenshot(&shots.join("4-replay.png"));

    // Sign out, then in as an auditor: the list has no terminate button.
    page.eval("document.querySelector('#signout').click(); true");
    page.wait_for(
        "the sign-in form again",
        "!!document.querySelector('#signin')",
    );
    assert!(
        !audit_of(&b, "console.signed_out").is_empty(),
        "sign-out not audited"
    );
    sign_in_page(&page, "ana", &apw, &next_code(&asecret));
    assert_eq!(
        page.eval("document.querySelector('#role').textContent"),
        "auditor"
    );
    let (mut watched, wid) = live_ssh(&b, &api, &token, "sleep 120");
    page.eval("location.hash = '#/sessions'; true");
    page.navigate(&format!("{base}/#/sessions"));
    page.wait_for(
        "the live session in the auditor's list",
        &format!("!!document.querySelector('#live tr[data-id=\"{wid}\"]')"),
    );
    assert_eq!(
        page.eval("String(document.querySelectorAll('button.terminate').length)"),
        "0"
    );
    page.screenshot(&shots.join("5-auditor.png"));
    let _ = watched.kill();
    let _ = watched.wait();

    // A recording altered on disk shows a failed badge.
    let recs = api.get(&format!("/api/v1/recordings?session={finished_id}"), &token);
    let name = recs.json()[0]["name"].as_str().unwrap().to_string();
    let cast = b.data_dir().join("recordings").join(format!("{name}.cast"));
    let body = std::fs::read_to_string(&cast).unwrap();
    assert!(body.contains("TYPED-42"), "{body}");
    std::fs::write(&cast, body.replace("TYPED-42", "TYPED-43")).unwrap();
    page.eval(&format!("location.hash = '#/session/{finished_id}'; true"));
    page.wait_for(
        "the failed verify badge",
        "!!document.querySelector('#recordings .badge.bad')",
    );
    let badge = page.eval("document.querySelector('#recordings .badge.bad').textContent");
    assert!(badge.starts_with("FAILED"), "{badge}");
    page.screenshot(&shots.join("6-tampered.png"));
    eprintln!("screenshots in {}", shots.display());
    if let Ok(keep) = std::env::var("PORTCULLIS_CONSOLE_SHOTS") {
        for e in std::fs::read_dir(&shots).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), std::path::Path::new(&keep).join(e.file_name())).unwrap();
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

/// A console sign-in holds only as long as what granted it: taken out of
/// the responders group, the same cookie is no responder on its next
/// request; locked, it is refused; deprovisioned (no group at all), it is
/// signed out. (Before: the role was fixed at sign-in until sign-out or
/// idle timeout.)
#[test]
fn a_console_session_follows_group_changes_and_locks() {
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let (pw, secret) = console_user(&b, "rita", Some("responders"));
    b.admin(&["group", "add", "auditors"]);
    b.admin(&["group", "member", "add", "auditors", "rita"]);
    let mut web = Web::new(&b, port);
    let (_, c) = web.sign_in("rita", &pw, &next_code(&secret));
    assert_eq!(c.json()["role"], "responder");
    let lock = |web: &mut Web| {
        web.call(
            "POST",
            "/api/v1/locks",
            Some(json!({"scope": {"kind": "target", "value": "web01"}, "reason": "t"})),
            true,
        )
    };
    let first = lock(&mut web);
    assert_eq!(first.status, 201, "{}", first.body);

    // No longer a responder: an auditor now, at once.
    b.admin(&["group", "member", "remove", "responders", "rita"]);
    assert_eq!(web.get("/console/me").json()["role"], "auditor");
    assert_eq!(lock(&mut web).status, 403);
    assert_eq!(web.get("/api/v1/sessions").status, 200);

    // Locked: refused while the lock holds.
    let out = b.admin(&["lock", "user", "rita", "--reason", "offboarding"]);
    let printed = text(&out.stdout);
    let lid = printed
        .split('(')
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect(&printed)
        .to_string();
    wait_for("the lock to reach the console", 5, || {
        (web.get("/api/v1/sessions").status == 403).then_some(())
    });

    // In no console group any more: signed out for good.
    b.admin(&["group", "member", "remove", "auditors", "rita"]);
    b.admin(&["lock", "lift", &lid]);
    wait_for("the console session to end", 5, || {
        (web.get("/console/me").status == 401).then_some(())
    });
    assert_eq!(web.get("/api/v1/sessions").status, 401);
}
