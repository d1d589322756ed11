//! Every refusal is clear to the user, logged for the admin, and safe.

mod common;
use common::*;
use std::process::{Command, Stdio};

fn refused(b: &Bastion, user: &str) -> String {
    let out = run(b.ssh(user).arg("true").stdin(Stdio::null()));
    assert!(!out.status.success(), "{user} was let in");
    text(&out.stderr)
}

/// A refusal after login: told on the session channel's stderr with exit
/// status 1 (ssh's own failures exit 255), the reason as a line of its own.
fn refused_after_login(b: &Bastion, user: &str) -> String {
    let out = run(b.ssh(user).arg("true").stdin(Stdio::null()));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{user}: {err}");
    assert!(err.lines().any(|l| l.starts_with("portcullis: ")), "{err}");
    err
}

#[test]
fn host_key_mismatch_is_refused_and_logged() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    b.stop();
    let other = b.dir.path().join("other_host");
    keygen(&other, "ed25519");
    b.add_target_pinned("evil01", sshd.port, &other.with_extension("pub"));
    b.grant(&[
        "--user",
        "alice",
        "--target",
        "evil01",
        "--login",
        TARGET_USER,
    ]);
    b.admin_stdin(
        &[
            "credential",
            "set",
            "evil01",
            TARGET_USER,
            "--password-stdin",
        ],
        &format!("{TARGET_PASSWORD}\n"),
    );
    b.start();
    let err = refused_after_login(&b, "alice+evil01");
    assert!(
        err.contains("host key of evil01 does not match the pinned key"),
        "{err}"
    );
    let expected = text(
        &run_ok(
            Command::new("ssh-keygen")
                .arg("-lf")
                .arg(other.with_extension("pub")),
        )
        .stdout,
    );
    let seen = text(&run_ok(Command::new("ssh-keygen").arg("-lf").arg(&sshd.host_pub)).stdout);
    let fp = |s: &str| s.split_whitespace().nth(1).unwrap().to_string();
    let log = b.log();
    assert!(
        log.contains(&format!("expected {}, saw {}", fp(&expected), fp(&seen))),
        "{log}"
    );
    // The credential never went to the impostor.
    assert!(!sshd.log().contains("for tuser"), "{}", sshd.log());
}

#[test]
fn malformed_usernames_are_refused_before_lookup() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    for bad in [
        "alice:web01",
        "alice%web01",
        "alice+tuser+web01+x",
        "alice+-oProxyCommand=x",
        "alice+",
    ] {
        let err = refused(&b, bad);
        assert!(err.contains("Permission denied"), "{bad}: {err}");
    }
    let log = b.log();
    assert!(
        log.matches("malformed username refused").count() >= 5,
        "{log}"
    );
    assert!(!log.contains("user lookup"), "{log}");
}

#[test]
fn unknown_target_no_grant_and_wrong_login_are_explained() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    b.stop();
    b.add_target_pinned("web03", sshd.port, &sshd.host_pub);
    b.admin(&[
        "target",
        "add-tcp",
        "db09",
        &format!("127.0.0.1:{}", sshd.port),
    ]);
    b.start();
    // Without a grant, an existing target (SSH or TCP) is refused exactly
    // like a missing one: the refusal is no directory of target names.
    let nope = refused_after_login(&b, "alice+nope");
    assert!(nope.contains("you have no grant for target nope"), "{nope}");
    for name in ["web03", "db09"] {
        let err = refused_after_login(&b, &format!("alice+{name}"));
        assert_eq!(err.replace(name, "X"), nope.replace("nope", "X"));
    }
    let err = refused_after_login(&b, "alice+root+web01");
    assert!(
        err.contains("do not include login root (allowed: tuser)"),
        "{err}"
    );
}

#[test]
fn unreachable_target_and_rejected_credential_are_explained() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    b.stop();
    b.add_target_pinned("down01", free_port(), &sshd.host_pub);
    b.add_target_pinned("web04", sshd.port, &sshd.host_pub);
    for t in ["down01", "web04"] {
        b.grant(&["--user", "alice", "--target", t, "--login", TARGET_USER]);
        b.admin_stdin(
            &["credential", "set", t, TARGET_USER, "--password-stdin"],
            "not-the-password\n",
        );
    }
    b.start();
    let err = refused_after_login(&b, "alice+down01");
    assert!(err.contains("target down01 is unreachable"), "{err}");
    let err = refused_after_login(&b, "alice+web04");
    assert!(err.contains("could not log in to web04 as tuser"), "{err}");
    assert!(!err.contains("not-the-password"));
    let sessions = text(&b.admin(&["session", "list"]).stdout);
    assert!(sessions.contains("refused: cannot reach"), "{sessions}");
}

#[test]
fn plain_user_gets_a_menu_of_targets() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let out = run(b.ssh("alice").stdin(Stdio::null()));
    assert_eq!(out.status.code(), Some(1));
    let menu = text(&out.stdout);
    assert!(menu.contains("web01") && menu.contains("web02"), "{menu}");
    assert!(menu.contains("ssh alice+web01@"), "{menu}");
}

#[test]
fn port_forwarding_is_refused_by_default() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    // Not a target's address (one is served as a ProxyJump instead: tests/jump.rs).
    let out = run(b
        .ssh("alice+web01")
        .args(["-W", &format!("127.0.0.1:{}", free_port())])
        .stdin(Stdio::null()));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("port forwarding is not allowed"),
        "{}",
        text(&out.stderr)
    );
}
