//! Issue 14, points 5, 6, 7 and 14, as an attacker would try them against a
//! real bastion with real OpenSSH: an outsider cannot lock a user out with
//! the README's own rules; a kill-switch token cannot lift an admin's
//! lockdown and a lift whose audit fails does not happen; approvals and CLI
//! actors are who acted; the default rules flag planted keys and cron edits.

mod common;
use common::api::*;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `[lockdown]` example of the README, as printed there, except that
/// the office network is this machine's (a rule refusing 127.0.0.1 would
/// refuse the test itself).
fn readme_rules() -> String {
    let readme = include_str!("../README.md");
    let at = readme
        .find("Automatic rules in the config")
        .expect("README lockdown example");
    let block = &readme[at..];
    let start = block.find("```toml\n").expect("toml block") + "```toml\n".len();
    let len = block[start..].find("```").expect("end of block");
    let rules = block[start..start + len].to_string();
    assert!(rules.contains("per = \"user\"") && rules.contains("lock_user"));
    rules.replace("10.0.0.0/8", "127.0.0.0/8")
}

fn live_count(b: &Bastion) -> usize {
    text(&b.admin(&["session", "list"]).stdout)
        .lines()
        .filter(|l| l.contains("\tlive\t"))
        .count()
}

// The child is handed back to the caller, who ends it.
#[allow(clippy::zombie_processes)]
fn spawn_live(b: &Bastion, mut c: Command) -> Child {
    let before = live_count(b);
    let child = c
        .arg("sleep 60; echo SURVIVED")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("a live session", 20, || live_count(b) > before);
    child
}

#[test]
fn an_outsider_cannot_lock_a_user_with_the_readme_rules() {
    let sshd = Sshd::start();
    let b = Bastion::standard_with(&sshd, &readme_rules());
    let carol_key = b.add_human("carol", "carol-pw-123");
    let secret = enroll_totp(&b, "carol");
    let ap = Askpass::new();
    ap.set_code(&next_code(&secret));
    let mut live = spawn_live(
        &b,
        b.ssh_human("carol+web01", "publickey", Some(&carol_key), &ap),
    );
    // Anyone on the network: five wrong passwords for carol.
    let outsider = Askpass::new();
    outsider.set_password("not-carols-password");
    outsider.set_code("123456");
    for _ in 0..5 {
        let out = run(b
            .ssh_human("carol+web01", "password", None, &outsider)
            .arg("true"));
        assert!(!out.status.success());
    }
    // The rule runs in its own task and locks reach sessions within a poll.
    std::thread::sleep(Duration::from_secs(2));
    let locks = text(&b.admin(&["lock", "list"]).stdout);
    assert!(
        !locks.contains("user carol"),
        "an outsider locked carol: {locks}"
    );
    assert!(
        live.try_wait().unwrap().is_none(),
        "an outsider ended carol's live session: {}",
        text(&live.wait_with_output().unwrap().stderr)
    );
    let _ = live.kill();
    let _ = live.wait();

    // Wrong codes after a correct password are the user's own: they lock.
    b.add_human("dave", "dave-pw-123");
    let ds = enroll_totp(&b, "dave");
    let dap = Askpass::new();
    dap.set_password("dave-pw-123");
    let good = next_code(&ds);
    dap.set_code(if good == "000000" { "111111" } else { "000000" });
    for _ in 0..5 {
        let out = run(b
            .ssh_human("dave+web01", "password", None, &dap)
            .arg("true"));
        assert!(!out.status.success(), "a wrong code was accepted");
    }
    wait_until("the totp-burst lock on dave", 10, || {
        let l = text(&b.admin(&["lock", "list"]).stdout);
        l.contains("user dave") && l.contains("rule:totp-burst")
    });
}

fn lock_id(r: &Reply) -> String {
    r.json()["lock"]["id"].as_str().expect(&r.body).to_string()
}

fn in_force(api: &Api, t: &str, id: &str) -> bool {
    api.get("/api/v1/locks", t)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["id"] == id && l["in_force"] == true)
}

#[test]
fn lifting_a_lock_is_as_guarded_as_making_it() {
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let admin = token(&b, "root", "admin", None);
    let pager = token(&b, "pager", "killswitch", None);
    let other = token(&b, "pager2", "killswitch", None);
    let all = lock_id(&api.expect(
        201,
        "POST",
        "/api/v1/locks",
        &admin,
        Some(r#"{"scope":{"kind":"all"},"reason":"incident 4711"}"#),
    ));
    // A kill-switch token cannot undo an admin's lockdown, nor the CLI's.
    api.expect(403, "DELETE", &format!("/api/v1/locks/{all}"), &pager, None);
    let out = text(
        &b.admin(&["lockdown", "--all", "--reason", "cli incident"])
            .stdout,
    );
    let cli_lock = out
        .split('(')
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect(&out)
        .to_string();
    api.expect(
        403,
        "DELETE",
        &format!("/api/v1/locks/{cli_lock}"),
        &pager,
        None,
    );
    assert!(in_force(&api, &admin, &all) && in_force(&api, &admin, &cli_lock));
    // A kill-switch token lifts what it made itself, and nothing another made.
    let own = lock_id(&api.expect(
        201,
        "POST",
        "/api/v1/locks",
        &pager,
        Some(r#"{"scope":{"kind":"user","value":"alice"},"reason":"oops"}"#),
    ));
    api.expect(403, "DELETE", &format!("/api/v1/locks/{own}"), &other, None);
    api.expect(204, "DELETE", &format!("/api/v1/locks/{own}"), &pager, None);

    // The lift's audit cannot be written: the lock stays (fail closed).
    b.db_exec(&["CREATE TRIGGER fail_lift BEFORE INSERT ON audit_events \
         WHEN NEW.kind = 'lock.lifted' BEGIN SELECT RAISE(ABORT, 'simulated failure'); END"])
        .unwrap();
    let r = api.call(
        "DELETE",
        &format!("/api/v1/locks/{all}"),
        Some(&admin),
        None,
    );
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    std::thread::sleep(Duration::from_millis(600));
    assert!(in_force(&api, &admin, &all), "lifted without an audit row");
    let out = run(b.ssh("alice+web01").arg("echo IN"));
    assert!(
        !text(&out.stdout).contains("IN"),
        "let in by an unaudited lift"
    );
    let out = run(b.cli().args(["lock", "lift", &cli_lock]));
    assert!(!out.status.success(), "the CLI lifted without an audit row");
    assert!(in_force(&api, &admin, &cli_lock));

    b.db_exec(&["DROP TRIGGER fail_lift"]).unwrap();
    api.expect(204, "DELETE", &format!("/api/v1/locks/{all}"), &admin, None);
    api.expect(
        204,
        "DELETE",
        &format!("/api/v1/locks/{cli_lock}"),
        &admin,
        None,
    );
    wait_until("the lifts to take effect", 10, || {
        run(b.ssh("alice+web01").arg("true")).status.success()
    });
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    let lifts: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("lock.lifted"))
        .collect();
    assert_eq!(lifts.len(), 3, "{audit}");
    assert!(lifts.iter().all(|l| l.contains("api:")), "{audit}");
}

/// `id -u` and `id -un` of the account running the tests.
fn os_account() -> (String, String) {
    let id = |flag: &str| {
        text(&run_ok(Command::new("id").arg(flag)).stdout)
            .trim()
            .to_string()
    };
    (id("-u"), id("-un"))
}

/// A target to ask for, never dialled.
fn paper_target(b: &Bastion) {
    let host = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    b.admin(&[
        "target",
        "add",
        "web01",
        "--host",
        "127.0.0.1",
        "--host-key",
        host,
    ]);
}

fn new_request(b: &Bastion, who: &str) -> String {
    let out = b.admin(&[
        "request",
        "new",
        "web01",
        "--login",
        TARGET_USER,
        "--for",
        "1h",
        "--reason",
        "disk full",
        "--as",
        who,
    ]);
    text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn ssh_requests_lists_pending_requests_only_to_approvers() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let id = new_request(&b, "bob");
    let out = run(b.ssh("alice").arg("requests"));
    let shown = text(&out.stdout);
    assert!(
        !shown.contains(&id) && !shown.contains("disk full"),
        "a non-approver saw the requests: {shown}"
    );
    b.admin(&["group", "add", "approvers"]);
    b.admin(&["group", "member", "add", "approvers", "alice"]);
    let out = run(b.ssh("alice").arg("requests"));
    assert!(text(&out.stdout).contains(&id), "{}", text(&out.stdout));
}

#[test]
fn an_api_approval_is_recorded_as_the_token_not_a_body_name() {
    let (mut b, port) = bastion_with_api("");
    b.start();
    wait_port(port, "admin API", &b.log_path());
    let api = Api::new(&b, port);
    let root = token(&b, "root", "admin", None);
    let bob_token = token(&b, "bob", "admin", None);
    paper_target(&b);
    let id = new_request(&b, "bob");
    let path = format!("/api/v1/requests/{id}/approve");
    // A name in the body is not taken.
    api.expect(400, "POST", &path, &root, Some(r#"{"approver":"alice"}"#));
    // A token named like the requester is the requester.
    api.expect(403, "POST", &path, &bob_token, Some("{}"));
    api.expect(200, "POST", &path, &root, Some("{}"));
    let reqs = api.get("/api/v1/requests", &root).json();
    let decided = reqs
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == id.as_str())
        .unwrap()["decided_by"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(decided.starts_with("api:root/"), "{decided}");
}

#[test]
fn the_cli_actor_is_the_os_account_not_the_environment() {
    let b = Bastion::new();
    let (uid, name) = os_account();
    paper_target(&b);
    let id = new_request(&b, "dave");
    for args in [
        &["lock", "user", "dave", "--reason", "who am i"][..],
        &["request", "deny", &id],
    ] {
        let mut c = b.cli();
        c.env("USER", "mallory")
            .env("SUDO_USER", "mallory")
            .env("LOGNAME", "mallory")
            .args(args);
        let out = run(&mut c);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    let expected = format!("cli:{name}(uid {uid})");
    assert!(!audit.contains("mallory"), "{audit}");
    // A request the CLI makes for a user is made by the CLI's account.
    for kind in ["lock.created", "access.denied", "access.requested"] {
        let row = audit.lines().find(|l| l.contains(kind)).expect(&audit);
        assert!(row.contains(&expected), "{row}");
    }
}

#[test]
fn default_rules_flag_planted_keys_and_cron_edits_without_ending_the_session() {
    need("python3", "python3");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let mut c = Command::new("python3");
    c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/flag_driver.py"))
        // Typed, not run for real: neither path exists, so nothing is planted.
        .arg("echo ssh-ed25519 AAAA planted >> /nonexistent-pc/.ssh/authorized_keys")
        .arg("env PATH=/nonexistent-pc crontab -e")
        .arg("--")
        .arg("ssh")
        .args(b.ssh_opts())
        .args(["-p", &b.port.to_string()])
        .arg("alice+web02@127.0.0.1");
    let out = run(&mut c);
    let transcript = text(&out.stdout);
    assert!(
        out.status.success(),
        "the session did not go on: {transcript}\n{}",
        text(&out.stderr)
    );
    // A rule's audit row is written by its own task: poll for it.
    for rule in ["flag-ssh-keys", "flag-crontab"] {
        let fired = |audit: &str| {
            audit
                .lines()
                .any(|l| l.contains("rule.fired") && l.contains(rule))
        };
        wait_until(&format!("{rule} to fire"), 10, || {
            fired(&text(&b.admin(&["audit", "list"]).stdout))
        });
    }
    // Reading is not flagged; an exec that writes is, and still runs
    // (detection, not prevention).
    let _ = run(b
        .ssh("alice+web01")
        .arg("cat /nonexistent-pc/.ssh/known_hosts"));
    let marker = sshd.home.join("flag-marker");
    let cmd = format!(
        "touch {} ; echo x >> /nonexistent-pc/.ssh/authorized_keys",
        marker.display()
    );
    let _ = run(b.ssh("alice+web01").arg(&cmd));
    assert!(marker.exists(), "a flagging rule refused the command");
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    assert_eq!(
        audit
            .lines()
            .filter(|l| l.contains("rule.fired") && l.contains("flag-ssh-keys"))
            .count(),
        2,
        "{audit}"
    );
    assert!(!b.settled_sessions().contains("killed"));
}
