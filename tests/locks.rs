//! The kill switch through real OpenSSH: locks from the CLI end live
//! sessions with a message, refuse new ones while they last, and lift;
//! automatic rules end a session on a typed or exec'd command and lock a
//! user after a burst of wrong codes, notifying a webhook.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn session_ids(b: &Bastion, live_only: bool) -> Vec<String> {
    text(&b.admin(&["session", "list"]).stdout)
        .lines()
        .filter(|l| !live_only || l.contains("\tlive\t"))
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect()
}

/// A background `ssh ... sleep` through the bastion, once its session is
/// live; returns the client and the session id.
// The child is handed to the caller, who waits for it.
#[allow(clippy::zombie_processes)]
fn live_session(b: &Bastion, user: &str) -> (Child, String) {
    let before = session_ids(b, false);
    let mut child = b
        .ssh(user)
        .arg("sleep 120; echo SURVIVED")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(id) = session_ids(b, true)
            .into_iter()
            .find(|id| !before.contains(id))
        {
            return (child, id);
        }
        if start.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "session never went live:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the session list satisfies `pred`: after a kill the client
/// is cut first and the row is closed a moment later.
fn sessions_eventually(b: &Bastion, pred: impl Fn(&str) -> bool) {
    let start = Instant::now();
    loop {
        let sessions = text(&b.admin(&["session", "list"]).stdout);
        if pred(&sessions) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{sessions}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for the client to exit; returns how long that took and its stderr.
fn ended_within(mut c: Child, limit: Duration) -> (Duration, String) {
    let start = Instant::now();
    loop {
        if c.try_wait().unwrap().is_some() {
            let out = c.wait_with_output().unwrap();
            assert!(!text(&out.stdout).contains("SURVIVED"));
            return (start.elapsed(), text(&out.stderr));
        }
        if start.elapsed() > limit {
            let _ = c.kill();
            panic!("the session outlived the lock by {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lock_id(out: &std::process::Output) -> String {
    let o = text(&out.stdout);
    o.split('(')
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect(&o)
        .to_string()
}

#[test]
fn a_user_lock_ends_the_session_refuses_logins_and_lifts() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let (live, _) = live_session(&b, "alice+web01");
    let out = b.admin(&["lock", "user", "alice", "--reason", "incident 4711"]);
    let id = lock_id(&out);
    let (took, err) = ended_within(live, Duration::from_secs(3));
    assert!(
        err.contains("incident 4711") && err.contains("locked by"),
        "{err}"
    );
    eprintln!("CLI lock to client exit: {took:?}");
    // The session row says why; the audit chain holds the lock.
    sessions_eventually(&b, |l| {
        l.contains("killed: locked by") && l.contains("incident 4711")
    });
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    assert!(
        audit.contains("lock.created") && audit.contains("user alice"),
        "{audit}"
    );
    // New logins are refused with the reason, before any upstream dial.
    let dials = sshd.log().matches("Accepted publickey").count();
    let out = run(b.ssh("alice+web02").arg("true").stdin(Stdio::null()));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("access is locked by")
            && text(&out.stderr).contains("incident 4711"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        sshd.log().matches("Accepted publickey").count(),
        dials,
        "a locked user reached the target"
    );
    assert!(text(&b.admin(&["audit", "list"]).stdout).contains("access.locked"));
    let listed = text(&b.admin(&["lock", "list"]).stdout);
    assert!(
        listed.contains(&id) && listed.contains("until lifted"),
        "{listed}"
    );
    // Lifted: in again.
    b.admin(&["lock", "lift", &id]);
    // A running bastion learns of CLI changes by polling (every 200 ms).
    std::thread::sleep(Duration::from_millis(500));
    let out = run(b.ssh("alice+web01").arg("echo BACK").stdin(Stdio::null()));
    assert!(text(&out.stdout).contains("BACK"), "{}", text(&out.stderr));
    assert!(text(&b.admin(&["audit", "list"]).stdout).contains("lock.lifted"));
    assert!(
        !run(b.cli().args(["lock", "lift", &id])).status.success(),
        "lifted twice"
    );
}

#[test]
fn target_and_global_locks_expire_and_session_kill_ends_one() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let (on_web01, _) = live_session(&b, "alice+web01");
    let out = b.admin(&[
        "lock", "target", "web01", "--reason", "patching", "--for", "3s",
    ]);
    assert!(!lock_id(&out).is_empty());
    let (_, err) = ended_within(on_web01, Duration::from_secs(3));
    assert!(
        err.contains("target web01") && err.contains("patching"),
        "{err}"
    );
    // web02 is not covered; web01 is until the lock expires.
    let ok = run(b.ssh("alice+web02").arg("echo OTHER").stdin(Stdio::null()));
    assert!(
        text(&ok.stdout).contains("OTHER"),
        "{}\n{}",
        text(&ok.stderr),
        b.log()
            .lines()
            .filter(|l| !l.contains("DEBUG"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let refused = run(b.ssh("alice+web01").arg("true").stdin(Stdio::null()));
    assert!(
        text(&refused.stderr).contains("patching"),
        "{}",
        text(&refused.stderr)
    );
    std::thread::sleep(Duration::from_secs(3));
    let ok = run(b
        .ssh("alice+web01")
        .arg("echo EXPIRED")
        .stdin(Stdio::null()));
    assert!(text(&ok.stdout).contains("EXPIRED"), "{}", text(&ok.stderr));

    // One session by id.
    let (victim, id) = live_session(&b, "alice+web02");
    b.admin(&["session", "kill", &id, "--reason", "suspicious"]);
    let (_, err) = ended_within(victim, Duration::from_secs(3));
    assert!(err.contains("suspicious"), "{err}");

    // lockdown needs --all; with it nothing gets in.
    assert!(
        !run(b.cli().args(["lockdown", "--reason", "x"]))
            .status
            .success()
    );
    let (live, _) = live_session(&b, "alice+web02");
    b.admin(&["lockdown", "--all", "--reason", "breach", "--for", "1h"]);
    let (_, err) = ended_within(live, Duration::from_secs(3));
    assert!(
        err.contains("everything") && err.contains("breach"),
        "{err}"
    );
    let refused = run(b.ssh("alice+web02").arg("true").stdin(Stdio::null()));
    assert!(
        text(&refused.stderr).contains("breach"),
        "{}",
        text(&refused.stderr)
    );
}

/// A one-shot HTTP receiver: the bodies of the POSTs it gets.
fn webhook_receiver() -> (u16, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let mut r = BufReader::new(conn);
            let mut len = 0;
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
        }
    });
    (port, rx)
}

const COMMAND_RULE: &str = r#"
[[lockdown.rule]]
name = "no-rm-rf-root"
command = 'rm\s+-rf\s+/'
action = "end_session"
notify = true
"#;

#[test]
fn a_typed_command_rule_ends_an_interactive_session() {
    need("python3", "python3");
    let sshd = Sshd::start();
    let (hook, bodies) = webhook_receiver();
    let b = Bastion::standard_with(
        &sshd,
        &format!(
            "[lockdown]\nwebhook_url = \"http://127.0.0.1:{hook}/hook\"\n\
             allow_http_webhooks = true\n{COMMAND_RULE}"
        ),
    );
    let mut c = Command::new("python3");
    c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rule_driver.py"))
        .arg("rm -rf /nonexistent-portcullis-test")
        .arg("ssh")
        .args(b.ssh_opts())
        .args(["-p", &b.port.to_string()])
        .arg("alice+web02@127.0.0.1");
    let out = run(&mut c);
    let transcript = text(&out.stdout);
    assert!(
        out.status.success(),
        "{transcript}\n{}\n{}",
        text(&out.stderr),
        b.log()
    );
    assert!(transcript.contains("rule no-rm-rf-root"), "{transcript}");
    let body = bodies
        .recv_timeout(Duration::from_secs(10))
        .expect("no webhook");
    assert!(
        body.contains("\"rule\":\"no-rm-rf-root\"") && body.contains("\"action\":\"end_session\""),
        "{body}"
    );
    // The typed line stays on the bastion unless webhook_include_commands is set.
    assert!(
        !body.contains("nonexistent-portcullis-test") && body.contains("redacted"),
        "{body}"
    );
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    assert!(
        audit.contains("rule.fired") && audit.contains("no-rm-rf-root"),
        "{audit}"
    );
    sessions_eventually(&b, |l| l.contains("killed: locked by rule:no-rm-rf-root"));
}

#[test]
fn an_exec_command_rule_refuses_the_command_before_the_target() {
    let sshd = Sshd::start();
    let b = Bastion::standard_with(&sshd, COMMAND_RULE);
    // In the target account's home, which it can write: a marker it could
    // not write would be absent whether or not the command ran.
    let marker = sshd.home.join("must-not-exist");
    let cmd = format!(
        "touch {} ; rm -rf /nonexistent-portcullis-test",
        marker.display()
    );
    let out = run(b.ssh("alice+web01").arg(&cmd).stdin(Stdio::null()));
    assert!(!out.status.success());
    // A command forwarded before the refusal runs a moment after the client
    // has exited: look once the session is closed and a grace has passed.
    sessions_eventually(&b, |l| !l.contains("\tlive\t"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!marker.exists(), "the refused command ran on the target");
    assert!(text(&b.admin(&["audit", "list"]).stdout).contains("rule.fired"));
    // Other commands still work: the rule ended that session only.
    let ok = run(b.ssh("alice+web01").arg("echo FINE").stdin(Stdio::null()));
    assert!(text(&ok.stdout).contains("FINE"), "{}", text(&ok.stderr));
}

#[test]
fn a_burst_of_wrong_codes_locks_the_user_and_notifies() {
    let sshd = Sshd::start();
    let (hook, bodies) = webhook_receiver();
    let b = Bastion::standard_with(
        &sshd,
        &format!(
            r#"[lockdown]
webhook_url = "http://127.0.0.1:{hook}/hook"
allow_http_webhooks = true
[[lockdown.rule]]
name = "totp-burst"
failures = 3
within = "60s"
per = "user"
action = "lock_user"
duration = "1h"
notify = true
"#
        ),
    );
    let key = b.add_human("mallory", "mallory-pw");
    let secret = enroll_totp(&b, "mallory");
    let ap = Askpass::new();
    let good = next_code(&secret);
    ap.set_code(if good == "000000" { "111111" } else { "000000" });
    for _ in 0..3 {
        let out = run(b
            .ssh_human("mallory+web01", "publickey", Some(&key), &ap)
            .arg("true"));
        assert!(!out.status.success(), "a wrong code was accepted");
    }
    let body = bodies
        .recv_timeout(Duration::from_secs(10))
        .expect("no webhook");
    assert!(
        body.contains("\"rule\":\"totp-burst\"") && body.contains("\"user\":\"mallory\""),
        "{body}"
    );
    // Even the right code now only shows the lock.
    ap.set_code(&good);
    let out = run(b
        .ssh_human("mallory+web01", "publickey", Some(&key), &ap)
        .arg("echo IN"));
    assert!(!text(&out.stdout).contains("IN"));
    assert!(
        text(&out.stderr).contains("rule totp-burst"),
        "{}",
        text(&out.stderr)
    );
    let locks = text(&b.admin(&["lock", "list"]).stdout);
    assert!(
        locks.contains("user mallory") && locks.contains("rule:totp-burst"),
        "{locks}"
    );
}

#[test]
fn a_source_lock_drops_connections_before_the_handshake() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let (live, _) = live_session(&b, "alice+web01");
    b.admin(&[
        "lock",
        "source",
        "127.0.0.0/8",
        "--reason",
        "scan",
        "--for",
        "2s",
    ]);
    let (_, err) = ended_within(live, Duration::from_secs(3));
    assert!(err.contains("source 127.0.0.0/8"), "{err}");
    // Dropped at accept: no SSH version line, no login attempt.
    let out = run(b.ssh("alice+web01").arg("true").stdin(Stdio::null()));
    assert!(!out.status.success());
    assert!(
        b.log().contains("source is locked; dropped"),
        "{}",
        text(&out.stderr)
    );
    std::thread::sleep(Duration::from_secs(2));
    let ok = run(b.ssh("alice+web01").arg("echo AGAIN").stdin(Stdio::null()));
    assert!(text(&ok.stdout).contains("AGAIN"), "{}", text(&ok.stderr));
}
