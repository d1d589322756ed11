//! SSO (issue 18) against a real OpenID Provider (oidc-provider, started
//! by the test from tests/oidc/provider.mjs) with the stock `ssh`: the SSH
//! link flow end to end, and every way past it we could think of — a
//! replayed or expired link, another person's IdP account on the link, an
//! ID token with a wrong audience, nonce, signature or expiry — refused;
//! key rotation at the IdP followed; the group mapping granting and
//! taking away access; the IdP down failing closed while local accounts
//! keep working.

#[path = "console/cdp.rs"]
#[allow(dead_code)]
mod cdp;
mod common;
#[path = "sso/fixture.rs"]
mod fixture;

use common::api::Api;
use common::*;
use fixture::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

fn accounts(bob_groups: &[&str]) -> serde_json::Value {
    json!({
        "bob": {"password": "bob-idp-pw", "groups": bob_groups},
        "mallory": {"password": "mallory-idp-pw", "groups": ["eng"]},
        "olga": {"password": "olga-idp-pw", "groups": []},
    })
}

struct World {
    sshd: Sshd,
    idp: Idp,
    b: Bastion,
    api_port: u16,
    bob_key: PathBuf,
}

/// bob: a key, SSO as his second factor, a grant to web01 (directly, or
/// through the `ops` group when `through_group`).
fn world(extra: &str, through_group: bool, bob_groups: &[&str]) -> World {
    let sshd = Sshd::start();
    let api_port = free_port();
    let idp = Idp::start(api_port, &accounts(bob_groups));
    let rule = "\n[[sso.ssh]]\nprovider = \"corp\"\nmode = \"second-factor\"\nusers = [\"bob\"]\n";
    let mut b = bastion_for(api_port, &idp, extra, rule);
    b.add_target("web01", &sshd);
    let key = b.dir.path().join("bob_key");
    keygen(&key, "ed25519");
    b.admin(&[
        "user",
        "add",
        "bob",
        "--key",
        key.with_extension("pub").to_str().unwrap(),
    ]);
    b.admin(&["group", "add", "ops"]);
    if through_group {
        b.grant(&[
            "--group",
            "ops",
            "--target",
            "web01",
            "--login",
            TARGET_USER,
        ]);
    } else {
        b.grant(&["--user", "bob", "--target", "web01", "--login", TARGET_USER]);
    }
    b.start();
    wait_port(api_port, "admin API", &b.log_path());
    World {
        sshd,
        idp,
        b,
        api_port,
        bob_key: key,
    }
}

fn finish(child: Child, what: &str) -> std::process::Output {
    common::cm::wait_limited(child, what)
}

fn kinds(b: &Bastion, kind: &str) -> Vec<serde_json::Value> {
    b.audit_export(&[])
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[test]
fn ssh_link_flow_with_stock_ssh_end_to_end_and_the_link_works_once() {
    let w = world("", false, &["eng"]);
    let ap = SsoAskpass::new();
    let child = ssh_sso(&w.b, "bob+web01", &w.bob_key, &ap)
        .arg("echo signed-in-with-sso")
        .spawn()
        .unwrap();
    let (link, code) = ap.link(0);
    assert!(
        link.starts_with(&format!("https://127.0.0.1:{}/sso/ssh/", w.api_port)),
        "{link}"
    );
    let mut br = Browser::new(&w.b);
    // The page shows the connection's source and the code of the prompt.
    let page = br.request("GET", &link, None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&code), "{}", page.body);
    assert!(page.body.contains("127.0.0.1:"), "{}", page.body);
    assert!(!page.body.contains("<script"), "{}", page.body);
    let go = br.request("GET", &format!("{link}/go"), None);
    assert_eq!(go.status, 303, "{}", go.body);
    // While that sign-in is under way, the link is spent for anyone else.
    let mut other = Browser::new(&w.b);
    for url in [link.clone(), format!("{link}/go")] {
        let again = other.request("GET", &url, None);
        assert_eq!(again.status, 410, "{url}: {}", again.body);
    }
    let done = br.follow(&go.location.clone().unwrap(), "bob", "bob-idp-pw");
    assert_eq!(done.status, 200, "{}\n{}", done.body, w.b.log());
    assert!(done.body.contains("You are signed in"), "{}", done.body);
    let out = finish(child, "ssh with SSO");
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), w.b.log());
    assert_eq!(text(&out.stdout), "signed-in-with-sso\n");
    assert!(ap.prompts().contains(&code), "the code is in the prompt");

    // Audited with the IdP's subject.
    let ok = kinds(&w.b, "login.succeeded");
    assert!(
        ok.iter()
            .any(|e| e["detail"]["factors"] == "publickey+sso:corp"),
        "{ok:#?}"
    );
    let sso = kinds(&w.b, "sso.signed_in");
    assert_eq!(sso.len(), 1, "{sso:#?}");
    assert_eq!(sso[0]["detail"]["subject"], "bob");
    assert_eq!(sso[0]["detail"]["purpose"], "ssh");
    assert_eq!(sso[0]["subject"], "bob");

    // Replayed: the link and its /go are refused once used.
    let mut other = Browser::new(&w.b);
    for url in [link.clone(), format!("{link}/go")] {
        let again = other.request("GET", &url, None);
        assert_eq!(again.status, 410, "{url}: {}", again.body);
    }
    // The secret is nowhere in what the bastion wrote.
    assert!(!w.b.log().contains(CLIENT_SECRET));
    let trail = serde_json::to_string(&w.b.audit_export(&[])).unwrap();
    assert!(!trail.contains(CLIENT_SECRET));
    drop(w.sshd);
}

/// The sign-in must be bob's: mallory signing in at the IdP on bob's link
/// (say, a link sent to her) does not log bob's connection in.
#[test]
fn a_link_completed_by_another_idp_user_is_refused() {
    let w = world("", false, &["eng"]);
    let ap = SsoAskpass::new();
    let child = ssh_sso(&w.b, "bob+web01", &w.bob_key, &ap)
        .arg("echo should-not-run")
        .spawn()
        .unwrap();
    let (link, _) = ap.link(0);
    let mut br = Browser::new(&w.b);
    let page = br.follow(&format!("{link}/go"), "mallory", "mallory-idp-pw");
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("mallory"), "{}", page.body);
    let out = finish(child, "ssh with mallory's sign-in");
    assert!(
        !out.status.success(),
        "bob logged in with mallory's IdP sign-in"
    );
    assert!(!text(&out.stdout).contains("should-not-run"));
    assert!(kinds(&w.b, "login.succeeded").is_empty());
    assert!(!kinds(&w.b, "sso.refused").is_empty());
}

/// The callback must come from the browser that opened the link: a
/// callback URL replayed from elsewhere (no binding cookie) is refused.
#[test]
fn a_callback_from_another_browser_or_replayed_is_refused() {
    let w = world("", false, &["eng"]);
    let ap = SsoAskpass::new();
    let child = ssh_sso(&w.b, "bob+web01", &w.bob_key, &ap)
        .arg("true")
        .spawn()
        .unwrap();
    let (link, _) = ap.link(0);
    let mut br = Browser::new(&w.b);
    // Walk up to the callback, but do not follow it.
    let mut page = br.request("GET", &format!("{link}/go"), None);
    let mut callback = None;
    for _ in 0..20 {
        let Some(next) = page.location.clone() else {
            if page.url.contains("/interaction/") {
                page = br.request(
                    "POST",
                    &format!("{}/login", page.url),
                    Some(&[("login", "bob"), ("password", "bob-idp-pw")]),
                );
                continue;
            }
            break;
        };
        if next.contains("/sso/callback") {
            callback = Some(next);
            break;
        }
        page = br.request("GET", &next, None);
    }
    let callback = callback.expect("the IdP redirected to the callback");
    let mut attacker = Browser::new(&w.b);
    let stolen = attacker.request("GET", &callback, None);
    assert_eq!(stolen.status, 403, "{}", stolen.body);
    // The state is spent: the right browser now gets nothing either.
    let late = br.request("GET", &callback, None);
    assert_eq!(late.status, 403, "{}", late.body);
    let out = finish(child, "ssh");
    assert!(!out.status.success(), "logged in by a replayed callback");
    assert!(kinds(&w.b, "login.succeeded").is_empty());
}

#[test]
fn an_expired_link_is_refused_and_the_prompt_does_not_hang() {
    let w = world("link_ttl = \"5s\"", false, &["eng"]);
    let ap = SsoAskpass::new();
    let t0 = Instant::now();
    let child = ssh_sso(&w.b, "bob+web01", &w.bob_key, &ap)
        .arg("true")
        .spawn()
        .unwrap();
    let (link, _) = ap.link(0);
    std::thread::sleep(Duration::from_secs(6));
    let mut br = Browser::new(&w.b);
    let page = br.request("GET", &link, None);
    assert_eq!(page.status, 410, "{}", page.body);
    let go = br.request("GET", &format!("{link}/go"), None);
    assert_eq!(go.status, 410, "{}", go.body);
    let out = finish(child, "ssh with an expired link");
    assert!(!out.status.success());
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "the keyboard-interactive round waited {:?}",
        t0.elapsed()
    );
    assert!(kinds(&w.b, "login.succeeded").is_empty());
}

/// Each misbehaviour of the IdP, then the same flow must fail; a key
/// rotation (a new kid in the JWKS) must succeed.
#[test]
fn id_tokens_with_a_wrong_audience_issuer_nonce_signature_or_expiry_are_refused() {
    let w = world("", false, &["eng"]);
    for (mode, why) in [
        ("aud", "audience"),
        ("iss", "issuer"),
        ("nonce", "nonce"),
        ("sig", "ignature"),
        ("expired", "xpired"),
    ] {
        w.idp.mode(mode);
        let ap = SsoAskpass::new();
        let child = ssh_sso(&w.b, "bob+web01", &w.bob_key, &ap)
            .arg("echo should-not-run")
            .spawn()
            .unwrap();
        let (link, _) = ap.link(0);
        let mut br = Browser::new(&w.b);
        let page = br.follow(&format!("{link}/go"), "bob", "bob-idp-pw");
        assert_eq!(page.status, 403, "{mode}: {}", page.body);
        assert!(page.body.contains(why), "{mode}: {}", page.body);
        let out = finish(child, mode);
        assert!(!out.status.success(), "{mode}: logged in");
        assert!(
            kinds(&w.b, "login.succeeded").is_empty(),
            "{mode}: logged in"
        );
    }
    // Rotation: the token's key is not in the cached JWKS; fetched again.
    w.idp.mode("rotate");
    let ap = SsoAskpass::new();
    let child = ssh_sso(&w.b, "bob+web01", &w.bob_key, &ap)
        .arg("echo rotated")
        .spawn()
        .unwrap();
    let (link, _) = ap.link(0);
    let page = Browser::new(&w.b).follow(&format!("{link}/go"), "bob", "bob-idp-pw");
    assert_eq!(page.status, 200, "{}\n{}", page.body, w.b.log());
    let out = finish(child, "rotate");
    assert_eq!(text(&out.stdout), "rotated\n", "{}", text(&out.stderr));
    assert!(w.b.log().contains("fetching the JWKS again"));
}

/// The IdP's groups map to the bastion's `ops` group, which holds the
/// grant: in `eng` at the IdP, bob gets in; out of `eng`, his next sign-in
/// takes `ops` (and the access) away. The console role follows the same way.
#[test]
fn group_mapping_grants_access_and_a_group_removed_at_the_idp_takes_it_away() {
    let w = world("", true, &["eng", "sec"]);
    let b = &w.b;
    b.admin(&["group", "add", "auditors"]);
    let sign_in = |cmd: &str| {
        let ap = SsoAskpass::new();
        let child = ssh_sso(b, "bob+web01", &w.bob_key, &ap)
            .arg(cmd)
            .spawn()
            .unwrap();
        let (link, _) = ap.link(0);
        let page = Browser::new(b).follow(&format!("{link}/go"), "bob", "bob-idp-pw");
        assert_eq!(page.status, 200, "{}", page.body);
        finish(child, "ssh")
    };
    let out = sign_in("echo in-through-ops");
    assert_eq!(
        text(&out.stdout),
        "in-through-ops\n",
        "{}\n{}",
        text(&out.stderr),
        b.log()
    );
    // The console: an auditor through `sec` → `auditors`.
    let mut br = Browser::new(b);
    let start = format!("https://127.0.0.1:{}/sso/console/corp", w.api_port);
    let page = br.follow(&start, "bob", "bob-idp-pw");
    assert_eq!(page.status, 200, "{}", page.body);
    let me = br.request(
        "GET",
        &format!("https://127.0.0.1:{}/console/me", w.api_port),
        None,
    );
    assert_eq!(me.status, 200, "{}", me.body);
    assert!(me.body.contains("\"role\":\"auditor\""), "{}", me.body);

    // Removed from both groups at the IdP.
    w.idp.set_accounts(&accounts(&[]));
    let out = sign_in("echo should-not-run");
    assert!(
        !text(&out.stdout).contains("should-not-run"),
        "access kept after the group was removed at the IdP"
    );
    let removed = kinds(b, "group.member_removed");
    assert!(
        removed.iter().any(|e| e["actor"] == "sso:corp"),
        "{removed:#?}"
    );
    let mut br = Browser::new(b);
    let page = br.follow(&start, "bob", "bob-idp-pw");
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("no console role"), "{}", page.body);
    let _ = Api::new(b, w.api_port);
}

/// The IdP unreachable: SSO fails closed with a message, on the page and
/// in the next prompt; a local account (key + TOTP) still logs in.
#[test]
fn idp_down_fails_closed_with_a_message_and_local_accounts_still_work() {
    let mut w = world("", false, &["eng"]);
    let carol_key = w.b.add_human("carol", "carol-pw");
    let carol = enroll_totp(&w.b, "carol");
    w.idp.stop();
    let ap = SsoAskpass::new();
    let child = ssh_sso_tries(&w.b, "bob+web01", &w.bob_key, &ap, 2)
        .arg("true")
        .spawn()
        .unwrap();
    let (link, _) = ap.link(0);
    let page = Browser::new(&w.b).request("GET", &format!("{link}/go"), None);
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("cannot be reached"), "{}", page.body);
    // The next prompt (a fresh link) says why, even under `ssh -q`.
    let (second, _) = ap.link(1);
    assert_ne!(second, link);
    let p = ap.prompts();
    assert!(
        p.lines()
            .any(|l| l.contains("SSO sign-in failed") && l.contains("cannot be reached")),
        "{p}"
    );
    // Still down: the fresh link fails the same way, and ssh gives up.
    let page = Browser::new(&w.b).request("GET", &format!("{second}/go"), None);
    assert_eq!(page.status, 503, "{}", page.body);
    let out = finish(child, "ssh with the IdP down");
    assert!(!out.status.success());
    assert!(kinds(&w.b, "login.succeeded").is_empty());

    let cap = Askpass::new();
    cap.set_code(&next_code(&carol));
    let out = run(w
        .b
        .ssh_human("carol+web01", "publickey", Some(&carol_key), &cap)
        .arg("id -un"));
    assert!(
        out.status.success(),
        "local account refused: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "tuser\n");
}

/// The console in a real headless Chromium: the "Sign in with corp"
/// button, the IdP's form, back signed in with the role the IdP's groups
/// map to; with no mapped group left at the IdP, the next sign-in has no
/// console role. The password sign-in form is still there beside it.
#[test]
fn console_sign_in_with_sso_in_chromium() {
    need("chromium", "chromium");
    let w = world("", false, &["sec"]);
    w.b.admin(&["group", "add", "auditors"]);
    let browser = cdp::Browser::start(w.b.dir.path());
    let page = browser.page();
    let base = format!("https://127.0.0.1:{}", w.api_port);
    page.navigate(&format!("{base}/"));
    page.wait_for("the SSO button", "!!document.querySelector('#sso-corp')");
    assert_eq!(
        page.eval("!!document.querySelector('#signin #password')"),
        "true"
    );
    page.eval("document.querySelector('#sso-corp').click(); true");
    page.wait_for(
        "the IdP's form",
        "!!document.querySelector('input[name=login]')",
    );
    page.eval(
        "document.querySelector('input[name=login]').value = 'bob'; \
         document.querySelector('input[name=password]').value = 'bob-idp-pw'; \
         document.querySelector('form').submit(); true",
    );
    page.wait_for("signed in", "!!document.querySelector('#role')");
    assert_eq!(
        page.eval("document.querySelector('#role').textContent"),
        "auditor"
    );
    assert_eq!(
        page.eval("document.querySelector('#user').textContent"),
        "bob"
    );
    let errors = page.console_errors();
    assert!(
        !errors
            .iter()
            .any(|e| e.contains("Content Security Policy") || e.contains("Refused to")),
        "CSP refusals: {errors:?}"
    );
    let signed = kinds(&w.b, "sso.signed_in");
    assert!(
        signed.iter().any(|e| e["detail"]["purpose"] == "console"),
        "{signed:#?}"
    );

    // Out of `sec` at the IdP: the next SSO sign-in gives no console.
    w.idp.set_accounts(&accounts(&[]));
    let page = browser.page();
    page.navigate(&format!("{base}/sso/console/corp"));
    page.wait_for(
        "the IdP or the answer",
        "document.readyState === 'complete'",
    );
    page.wait_for(
        "the refusal",
        "document.body && /no console role/.test(document.body.innerText)",
    );
}

/// SSO as the only interactive factor (no key, no TOTP) for the users a
/// rule says; keyboard-interactive is no first factor for anyone else.
#[test]
fn sso_as_the_only_factor_for_the_users_a_rule_names_and_no_one_else() {
    let sshd = Sshd::start();
    let api_port = free_port();
    let idp = Idp::start(api_port, &accounts(&[]));
    let rule = "\n[[sso.ssh]]\nprovider = \"corp\"\nmode = \"only\"\nusers = [\"olga\"]\n";
    let mut b = bastion_for(api_port, &idp, "", rule);
    b.add_target("web01", &sshd);
    b.admin_stdin(
        &["user", "add", "olga", "--password-stdin"],
        "unused-pw-9\n",
    );
    b.grant(&[
        "--user",
        "olga",
        "--target",
        "web01",
        "--login",
        TARGET_USER,
    ]);
    let carol_key = b.add_human("carol", "carol-pw");
    let _ = enroll_totp(&b, "carol");
    b.start();
    wait_port(api_port, "admin API", &b.log_path());

    let _ = carol_key;
    let kbd = |user: &str, ap: &SsoAskpass| ssh_kbd(&b, user, ap);
    let ap = SsoAskpass::new();
    let child = kbd("olga+web01", &ap).arg("echo only-sso").spawn().unwrap();
    let (link, _) = ap.link(0);
    let page = Browser::new(&b).follow(&format!("{link}/go"), "olga", "olga-idp-pw");
    assert_eq!(page.status, 200, "{}", page.body);
    let out = finish(child, "SSO-only ssh");
    assert_eq!(
        text(&out.stdout),
        "only-sso\n",
        "{}\n{}",
        text(&out.stderr),
        b.log()
    );
    let ok = kinds(&b, "login.succeeded");
    assert!(
        ok.iter().any(|e| e["detail"]["factors"] == "sso:corp"),
        "{ok:#?}"
    );

    // carol (key + TOTP) gets no SSO link and no login from keyboard-interactive alone.
    let ap = SsoAskpass::new();
    let out = finish(
        kbd("carol+web01", &ap).arg("true").spawn().unwrap(),
        "carol kbd",
    );
    assert!(!out.status.success());
    assert!(!ap.prompts().contains("/sso/ssh/"), "{}", ap.prompts());
    assert_eq!(kinds(&b, "login.succeeded").len(), 1);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The bastion's own added latency of an SSO second factor against TOTP,
/// the person excluded: from the moment the last human step is done (the
/// browser is sent to the callback / the askpass hands over the code) to
/// the end of `ssh … true`; the rest of the login (key, session, command)
/// is the same on both sides and cancels out in the difference.
#[test]
fn figures_sso_second_factor_against_totp() {
    const N: usize = 5;
    let w = world("", false, &["eng"]);
    let b = &w.b;
    // TOTP: one user per run (a code counts once per 30 s step).
    let mut totp = Vec::new();
    for i in 0..N {
        let user = format!("tot{i}");
        let key = b.add_human(&user, "pw-unused-1");
        let secret = enroll_totp(b, &user);
        let dir = tempfile::tempdir().unwrap();
        let stamp = dir.path().join("stamp");
        let code = dir.path().join("code");
        std::fs::write(&code, format!("{}\n", next_code(&secret))).unwrap();
        let script = dir.path().join("askpass.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncat {c}\ndate +%s%N > {s}\n",
                c = code.display(),
                s = stamp.display()
            ),
        )
        .unwrap();
        run_ok(std::process::Command::new("chmod").arg("+x").arg(&script));
        let mut c = std::process::Command::new("ssh");
        c.args(client_opts(&b.known_hosts()))
            .args([
                "-o",
                "PreferredAuthentications=publickey,keyboard-interactive",
                "-p",
                &b.port.to_string(),
                "-i",
            ])
            .arg(&key)
            .arg(format!("{user}+web01@127.0.0.1"))
            .arg("true")
            .env("SSH_ASKPASS", &script)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(std::process::Stdio::null());
        let out = run(&mut c);
        let end = std::time::SystemTime::now();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let ns: u128 = std::fs::read_to_string(&stamp)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let answered = std::time::UNIX_EPOCH + Duration::from_nanos(ns as u64);
        totp.push(end.duration_since(answered).unwrap());
    }
    // SSO: the browser sent to the callback (the IdP's sign-in done).
    let mut sso = Vec::new();
    let mut callback_rt = Vec::new();
    for _ in 0..N {
        let ap = SsoAskpass::new();
        let child = ssh_sso(b, "bob+web01", &w.bob_key, &ap)
            .arg("true")
            .spawn()
            .unwrap();
        let (link, _) = ap.link(0);
        let mut br = Browser::new(b);
        let mut page = br.request("GET", &format!("{link}/go"), None);
        let callback = loop {
            let next = match page.location.clone() {
                Some(n) => n,
                None => {
                    page = br.request(
                        "POST",
                        &format!("{}/login", page.url),
                        Some(&[("login", "bob"), ("password", "bob-idp-pw")]),
                    );
                    continue;
                }
            };
            if next.contains("/sso/callback") {
                break next;
            }
            page = br.request("GET", &next, None);
        };
        let t = Instant::now();
        let done = br.request("GET", &callback, None);
        callback_rt.push(t.elapsed());
        assert_eq!(done.status, 200, "{}", done.body);
        let out = finish(child, "ssh");
        sso.push(t.elapsed());
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let (t, s, c) = (median(totp), median(sso), median(callback_rt));
    eprintln!("figure: TOTP answered -> ssh done, median of {N}: {t:?}");
    eprintln!("figure: SSO callback sent -> ssh done, median of {N}: {s:?}");
    eprintln!(
        "figure: SSO callback round trip (code exchange, ID token check, groups), median: {c:?}"
    );
    eprintln!(
        "figure: SSO second factor adds {:?} over TOTP (bastion's own work)",
        s.saturating_sub(t)
    );
}

/// A failed SSO sign-in spends a place in the user's second-factor
/// budget, like a wrong code: with a budget of one, after mallory's
/// sign-in on bob's link, bob's next link is refused unchecked and says so.
#[test]
fn sso_failures_spend_the_same_second_factor_budget_as_codes() {
    let w = world("[limits]\nsecond_factor_failures = 1\n", false, &["eng"]);
    let ap = SsoAskpass::new();
    let child = ssh_sso(&w.b, "bob+web01", &w.bob_key, &ap)
        .arg("true")
        .spawn()
        .unwrap();
    let (link, _) = ap.link(0);
    let page = Browser::new(&w.b).follow(&format!("{link}/go"), "mallory", "mallory-idp-pw");
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(!finish(child, "first").status.success());

    // bob's own sign-in now: the budget is spent, the answer is no.
    let ap = SsoAskpass::new();
    let child = ssh_sso_tries(&w.b, "bob+web01", &w.bob_key, &ap, 2)
        .arg("echo should-not-run")
        .spawn()
        .unwrap();
    let (link, _) = ap.link(0);
    let (second, _) = ap.link(1);
    let p = ap.prompts();
    assert!(p.contains("too many failed sign-ins"), "{p}");
    for l in [link, second] {
        let page = Browser::new(&w.b).follow(&format!("{l}/go"), "bob", "bob-idp-pw");
        assert_ne!(page.status, 200, "{}", page.body);
    }
    let out = finish(child, "second");
    assert!(!text(&out.stdout).contains("should-not-run"));
    assert!(kinds(&w.b, "login.succeeded").is_empty());
}

/// An IdP user the bastion does not know: refused with a clear message,
/// unless the provider creates users — then created as the IdP's, with
/// the role its groups map to, and audited as made by `sso:corp`.
#[test]
fn unknown_idp_users_are_refused_unless_the_provider_creates_them() {
    for create in [false, true] {
        let api_port = free_port();
        let idp = Idp::start(
            api_port,
            &json!({"olga": {"password": "olga-idp-pw", "groups": ["sec"]}}),
        );
        let extra = if create { "create_users = true" } else { "" };
        let mut b = bastion_with(api_port, &idp, "", extra, "");
        b.admin(&["group", "add", "auditors"]);
        b.start();
        wait_port(api_port, "admin API", &b.log_path());
        let mut br = Browser::new(&b);
        let base = format!("https://127.0.0.1:{api_port}");
        let page = br.follow(&format!("{base}/sso/console/corp"), "olga", "olga-idp-pw");
        let me = br.request("GET", &format!("{base}/console/me"), None);
        let added = kinds(&b, "user.added");
        if create {
            assert_eq!(page.status, 200, "{}", page.body);
            assert!(me.body.contains("\"role\":\"auditor\""), "{}", me.body);
            assert!(
                added
                    .iter()
                    .any(|e| e["actor"] == "sso:corp" && e["subject"] == "olga"),
                "{added:#?}"
            );
        } else {
            assert_eq!(page.status, 403, "{}", page.body);
            assert!(
                page.body.contains("no account on this bastion"),
                "{}",
                page.body
            );
            assert_eq!(me.status, 401, "{}", me.body);
            assert!(added.is_empty(), "{added:#?}");
        }
    }
}
