//! MFA with the stock OpenSSH client: first factor, then a TOTP code asked
//! over keyboard-interactive; replay-proof, and bound to one username.

mod common;
use common::*;
use std::process::{Command, Stdio};

fn ok_as_tuser(out: &std::process::Output, b: &Bastion, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\nbastion log:\n{}",
        text(&out.stderr),
        b.log()
    );
    assert_eq!(text(&out.stdout), "tuser\n", "{what}");
}

#[test]
fn key_or_password_then_code_and_each_code_only_once() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let ap = Askpass::new();
    let carol_key = b.add_human("carol", "carol-pw-1");
    let carol = enroll_totp(&b, "carol");
    let _ = b.add_human("dave", "dave-pw-2"); // dave logs in with his password
    let dave = enroll_totp(&b, "dave");

    // Public key + code.
    let code = next_code(&carol);
    ap.set_code(&code);
    let out = run(b
        .ssh_human("carol+web01", "publickey", Some(&carol_key), &ap)
        .arg("id -un"));
    ok_as_tuser(&out, &b, "key + TOTP");
    assert!(
        ap.prompts().contains("Verification code"),
        "{}",
        ap.prompts()
    );

    // The same code again: refused, even within its 30 s.
    let out = run(b
        .ssh_human("carol+web01", "publickey", Some(&carol_key), &ap)
        .arg("id -un"));
    assert!(!out.status.success(), "a code was accepted twice");
    assert!(
        b.log().contains("TOTP code already used (replay refused)"),
        "{}",
        b.log()
    );

    // A code from two steps ago: refused.
    ap.set_code(&portcullis::auth::totp::code_at(&carol, unix_now() - 60).unwrap());
    let out = run(b
        .ssh_human("carol+web01", "publickey", Some(&carol_key), &ap)
        .arg("id -un"));
    assert!(!out.status.success(), "an old code was accepted");

    // Password + code (another user: each has their own last step).
    ap.set_password("dave-pw-2");
    let wrong = if next_code(&dave) == "000000" {
        "111111"
    } else {
        "000000"
    };
    ap.set_code(wrong);
    let out = run(b
        .ssh_human("dave+web02", "password", None, &ap)
        .arg("id -un"));
    assert!(!out.status.success(), "a wrong code was accepted");
    ap.set_code(&next_code(&dave));
    let out = run(b
        .ssh_human("dave+web02", "password", None, &ap)
        .arg("id -un"));
    ok_as_tuser(&out, &b, "password + TOTP");

    // A wrong password never reaches the code prompt.
    let before = ap.prompts().matches("Verification").count();
    ap.set_password("nope");
    let out = run(b.ssh_human("dave+web02", "password", None, &ap).arg("true"));
    assert!(!out.status.success());
    assert_eq!(ap.prompts().matches("Verification").count(), before);
}

#[test]
fn scp_and_sftp_with_totp() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let ap = Askpass::new();
    let erin_key = b.add_human("erin", "erin-pw");
    let erin = enroll_totp(&b, "erin");
    let frank_key = b.add_human("frank", "frank-pw");
    let frank = enroll_totp(&b, "frank");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("f.bin");
    random_file(&src, 4);
    let port = b.port.to_string();
    let opts = |key: &std::path::Path| {
        let mut o = client_opts(&b.known_hosts());
        o.extend([
            "-o".into(),
            "PreferredAuthentications=publickey,keyboard-interactive".into(),
            "-i".into(),
            key.display().to_string(),
        ]);
        o
    };

    ap.set_code(&next_code(&erin));
    let mut c = Command::new("scp");
    c.args(opts(&erin_key))
        .args(["-P", &port])
        .arg(&src)
        .arg("erin+web01@127.0.0.1:scp-mfa.bin");
    ap.apply(&mut c);
    let out = run(&mut c);
    assert!(
        out.status.success(),
        "scp: {}\n{}",
        text(&out.stderr),
        b.log()
    );
    assert_eq!(
        sha256_file(&sshd.home.join("scp-mfa.bin")),
        sha256_file(&src)
    );

    ap.set_code(&next_code(&frank));
    let batch = dir.path().join("batch");
    let got = dir.path().join("got.bin");
    std::fs::write(&batch, format!("get scp-mfa.bin {}\n", got.display())).unwrap();
    // Commands on stdin rather than `-b`, which would set BatchMode and forbid prompts.
    let mut c = Command::new("sftp");
    c.args(opts(&frank_key))
        .args(["-P", &port])
        .arg("frank+web01@127.0.0.1");
    ap.apply(&mut c);
    c.stdin(std::fs::File::open(&batch).unwrap());
    let out = run(&mut c);
    assert!(
        out.status.success(),
        "sftp: {}\n{}",
        text(&out.stderr),
        b.log()
    );
    assert_eq!(sha256_file(&got), sha256_file(&src));
}

#[test]
fn no_enrolled_factor_means_no_login_and_service_accounts_are_key_only() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let ap = Askpass::new();
    let key = b.add_human("gina", "gina-pw");
    ap.set_code("123456");
    let out = run(b
        .ssh_human("gina+web01", "publickey", Some(&key), &ap)
        .arg("true"));
    assert!(!out.status.success(), "a user without TOTP got in");
    assert!(
        b.log().contains("no second factor enrolled; login refused"),
        "{}",
        b.log()
    );

    // The service account alice: key alone works, a password is impossible.
    let out = run(b.ssh("alice+web01").arg("id -un").stdin(Stdio::null()));
    ok_as_tuser(&out, &b, "service account key");
    let out = run(b
        .cli()
        .args(["user", "passwd", "alice", "--password-stdin"])
        .stdin(Stdio::null()));
    assert!(
        !out.status.success() && text(&out.stderr).contains("service account"),
        "{}",
        text(&out.stderr)
    );
    let out = run(b
        .cli()
        .args(["user", "add", "svc2", "--service", "--password-stdin"])
        .stdin(Stdio::null()));
    assert!(!out.status.success());
}

#[test]
fn an_unsigned_key_offer_is_not_a_first_factor() {
    // The client holds only alice-the-human's public key: OpenSSH offers it,
    // the server answers PK_OK, the client cannot sign and moves on to
    // keyboard-interactive. That must not count as the first factor
    // (Warpgate GHSA-3cjp-w4cp-m9c8).
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let ap = Askpass::new();
    let key = b.add_human("hank", "hank-pw");
    let hank = enroll_totp(&b, "hank");
    let only_pub = b.dir.path().join("hank_pub_only");
    std::fs::copy(key.with_extension("pub"), only_pub.with_extension("pub")).unwrap();
    ap.set_code(&next_code(&hank));
    let mut c = b.ssh_human("hank+web01", "publickey", Some(&only_pub), &ap);
    c.arg("true");
    let out = run(&mut c);
    assert!(
        !out.status.success(),
        "got in with an unsigned key offer: {}",
        text(&out.stderr)
    );
    assert!(!b.log().contains("login succeeded"), "{}", b.log());
}

#[test]
fn repeated_failures_slow_the_user_down_and_are_summarised_in_the_audit() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    let ap = Askpass::new();
    let _ = b.add_human("ivy", "ivy-pw");
    let ivy = enroll_totp(&b, "ivy");
    ap.set_password("wrong-pw");
    // Five failures are free; the sixth starts a 2 s delay (then 4, 8 … 60 s).
    for _ in 0..6 {
        let _ = run(b.ssh_human("ivy+web01", "password", None, &ap).arg("true"));
    }
    // Right password and code now, inside the delay: refused without a check.
    ap.set_password("ivy-pw");
    ap.set_code(&next_code(&ivy));
    let out = run(b.ssh_human("ivy+web01", "password", None, &ap).arg("true"));
    assert!(
        !out.status.success(),
        "throttle did not hold: {}\n{}",
        text(&out.stderr),
        b.log()
    );
    assert!(b.log().contains("login attempt throttled"), "{}", b.log());
    b.stop(); // graceful: the failure tally is flushed to the audit trail
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    let line = audit
        .lines()
        .find(|l| l.contains("login.failures") && l.contains("\"factor\":\"password\""))
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(
        line.contains("\tivy\t") && line.contains("\"count\":6"),
        "{line}"
    );
    assert!(audit.contains("\"factor\":\"throttled\""), "{audit}");
    assert!(audit.contains("mfa.totp.enrolled"), "{audit}");
    assert!(
        !audit.contains("ivy-pw") && !audit.contains("wrong-pw"),
        "{audit}"
    );
}

#[test]
fn successful_logins_are_audited_with_their_factors() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let ap = Askpass::new();
    let key = b.add_human("jo", "jo-pw");
    let jo = enroll_totp(&b, "jo");
    let code = next_code(&jo);
    ap.set_code(&code);
    ok_as_tuser(
        &run(b
            .ssh_human("jo+web01", "publickey", Some(&key), &ap)
            .arg("id -un")),
        &b,
        "jo",
    );
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    let line = audit
        .lines()
        .find(|l| l.contains("login.succeeded") && l.contains("\tjo\t"))
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(
        line.contains("publickey+totp") && line.contains("127.0.0.1:"),
        "{line}"
    );
    assert!(
        !audit.contains(&code),
        "a TOTP code reached the audit trail"
    );
    assert!(!b.log().contains(&code), "a TOTP code reached the log");
}

#[test]
fn blocked_sources_are_dropped_and_unblocked_again() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    b.admin(&["source", "block", "127.0.0.0/8", "--reason", "test"]);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let out = run(b.ssh("alice+web01").arg("true").stdin(Stdio::null()));
    assert!(!out.status.success(), "blocked source got in");
    assert!(
        b.log().contains("source is blocked; dropped"),
        "{}",
        b.log()
    );
    b.admin(&["source", "unblock", "127.0.0.0/8"]);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    run_ok(b.ssh("alice+web01").arg("true").stdin(Stdio::null()));
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    assert!(
        audit.contains("source.blocked") && audit.contains("source.unblocked"),
        "{audit}"
    );
}

#[test]
fn unauthenticated_connections_are_dropped_after_the_grace_time() {
    use std::io::{Read, Write};
    let mut b = Bastion::with_config("[limits]\nlogin_grace_secs = 2\n");
    b.start();
    // Timed from before the connect: the bastion's timer starts at its
    // accept, which a descheduled test thread may only notice much later.
    let start = std::time::Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", b.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"SSH-2.0-OpenSSH_9.2 slowloris\r\n").unwrap();
    let mut buf = [0u8; 4096];
    // What the bastion sent and how the stream ended, for the failure text:
    // an early end under load has been seen and not yet explained.
    let mut got = Vec::new();
    let ended = loop {
        match s.read(&mut buf) {
            Ok(0) => break "EOF".to_string(),
            Err(e) => break format!("error {:?}: {e}", e.kind()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let held = start.elapsed();
    assert!(
        held >= std::time::Duration::from_millis(1900) && held < std::time::Duration::from_secs(8),
        "held {held:?}, ended by {ended}, after {} bytes: {:?}; bastion log: {}",
        got.len(),
        String::from_utf8_lossy(&got[..got.len().min(200)]),
        {
            let log = b.log();
            let skip = log.chars().count().saturating_sub(3000);
            log.chars().skip(skip).collect::<String>()
        }
    );
}
