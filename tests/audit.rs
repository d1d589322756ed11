//! The tamper-evident audit log through the real binary: tampering named by
//! `audit verify`, the database refusing edits, JSON-lines export of a real
//! ssh session, streaming to syslog (UDP) and stdout, failing closed.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// A bastion (not serving) with a few admin events in its chain: seqs 1..=6.
fn with_events() -> Bastion {
    let b = Bastion::new();
    let key = b.alice_key.with_extension("pub");
    b.admin(&["user", "add", "alice", "--key", key.to_str().unwrap()]);
    b.admin(&["group", "add", "ops"]);
    b.admin(&["group", "member", "add", "ops", "alice"]);
    b.admin(&["group", "add", "dba"]);
    b.admin(&["group", "member", "add", "dba", "alice"]);
    b.admin(&["group", "add", "web"]);
    let (ok, out) = b.audit_verify();
    assert!(ok && out.starts_with("OK: 6 events, head seq 6"), "{out}");
    b
}

fn failed_with(b: &Bastion, want: &[&str]) {
    let (ok, out) = b.audit_verify();
    assert!(!ok, "tampering not detected:\n{out}");
    for w in want {
        assert!(out.contains(w), "expected {w:?} in:\n{out}");
    }
    assert!(out.contains("FAILED"), "{out}");
}

#[test]
fn verify_names_the_seq_of_each_kind_of_tampering() {
    let b = with_events();
    b.tamper(&["UPDATE audit_events SET actor = 'cli:nobody' WHERE seq = 3"]);
    failed_with(&b, &["seq 3: edited"]);

    let b = with_events();
    b.tamper(&["DELETE FROM audit_events WHERE seq = 4"]);
    failed_with(&b, &["seq 4: deleted"]);

    let b = with_events();
    b.tamper(&[
        "UPDATE audit_events SET seq = -1 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 5",
        "UPDATE audit_events SET seq = 5 WHERE seq = -1",
    ]);
    failed_with(
        &b,
        &[
            "seq 2: reordered (holds the event sealed as seq 5)",
            "seq 5: reordered (holds the event sealed as seq 2)",
        ],
    );

    // Without the key an attacker can only hash with something else.
    let b = with_events();
    let fake = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    b.tamper(&[&format!(
        "UPDATE audit_events SET subject = 'nobody', hash = '{fake}' WHERE seq = 3"
    )]);
    failed_with(&b, &["seq 3: forged"]);

    let b = with_events();
    b.tamper(&["DELETE FROM audit_events WHERE seq = 6"]);
    failed_with(&b, &["seq 6: deleted", "chain head is seq 6"]);
}

#[test]
fn the_database_refuses_update_and_delete_and_restores_its_guards() {
    let b = with_events();
    for sql in [
        "UPDATE audit_events SET actor = 'x' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
    ] {
        let e = b.db_exec(&[sql]).unwrap_err();
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    // A dropped trigger comes back with the next start of any command that
    // writes (one that only reads changes nothing: tests/readonly.rs).
    b.db_exec(&["DROP TRIGGER audit_events_no_delete"]).unwrap();
    b.admin(&["group", "add", "restorers"]);
    let e = b
        .db_exec(&["DELETE FROM audit_events WHERE seq = 1"])
        .unwrap_err();
    assert!(e.contains("append-only"), "{e}");
    let (ok, out) = b.audit_verify();
    assert!(ok, "{out}");
}

#[test]
fn export_holds_a_real_session_in_order_and_no_secret() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let out = run_ok(b.ssh("alice+web01").arg("echo audited"));
    assert_eq!(text(&out.stdout), "audited\n");
    // session.ended is written when the connection is gone; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let ev = b.audit_export(&[]);
        if ev.iter().any(|e| e["kind"] == "session.ended") || Instant::now() > deadline {
            break ev;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], i as i64 + 1, "{e}");
        for k in ["kind", "actor", "source", "subject", "prev_hash", "hash"] {
            assert!(e[k].is_string(), "{k} in {e}");
        }
        assert!(e["detail"].is_object(), "{e}");
        let t = e["time"].as_str().unwrap();
        assert!(
            t.parse::<jiff::Timestamp>().is_ok() && t.ends_with('Z'),
            "{t}"
        );
    }
    for pair in events.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    let find = |kind: &str| {
        events
            .iter()
            .position(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {events:#?}\n{}", b.log()))
    };
    let (login, started, ended) = (
        find("login.succeeded"),
        find("session.started"),
        find("session.ended"),
    );
    assert!(login < started && started < ended, "{events:#?}");
    let (s, e) = (&events[started], &events[ended]);
    assert_eq!(s["session"], e["session"]);
    assert!(
        s["session"].as_str().is_some_and(|id| id.len() == 32),
        "{s}"
    );
    assert_eq!(
        (s["actor"].as_str(), s["subject"].as_str()),
        (Some("alice"), Some("web01"))
    );
    assert_eq!(s["detail"]["login"], TARGET_USER);
    assert!(e["detail"]["bytes_down"].as_u64().unwrap() >= 8, "{e}");
    assert!(e["detail"]["reason"].is_string(), "{e}");
    // Admin changes made through the CLI are there too, and never the secret.
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    for k in [
        "user.added",
        "target.added",
        "credential.set",
        "grant.added",
    ] {
        assert!(kinds.contains(&k), "{k} missing: {kinds:?}");
    }
    let all = std::fs::read_to_string(b.dir.path().join("export.jsonl")).unwrap();
    assert!(!all.contains(TARGET_PASSWORD) && !all.contains("PRIVATE KEY"));
    // Filters: a kind prefix and a time range.
    let only = b.audit_export(&["--kind", "session", "--since", "1h"]);
    assert!(!only.is_empty());
    assert!(
        only.iter()
            .all(|e| e["kind"].as_str().unwrap().starts_with("session."))
    );
    assert!(b.audit_export(&["--until", "2000-01-01"]).is_empty());
    let (ok, out) = b.audit_verify();
    assert!(ok, "{out}");
}

#[test]
fn events_stream_to_syslog_over_udp_including_cli_changes() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let mut b = Bastion::with_config(&format!(
        "[audit]\nstream = \"syslog\"\nsyslog_address = \"udp://127.0.0.1:{port}\"\n"
    ));
    b.start();
    // Made by another process (the admin CLI): the server streams it too.
    b.admin(&["group", "add", "streamed"]);
    let mut buf = [0u8; 65536];
    // A signal (another test's child exiting) may interrupt the wait: retry.
    let n = loop {
        match sock.recv(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r.unwrap_or_else(|e| panic!("nothing received: {e}\n{}", b.log())),
        }
    };
    let frame = String::from_utf8_lossy(&buf[..n]).to_string();
    // RFC 5424: <PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG
    let parts: Vec<&str> = frame.splitn(8, ' ').collect();
    assert_eq!(parts[0], "<86>1", "{frame}");
    assert!(parts[1].parse::<jiff::Timestamp>().is_ok(), "{frame}");
    assert_eq!(
        (parts[3], parts[4]),
        ("portcullis", b.pid().to_string().as_str())
    );
    assert_eq!((parts[5], parts[6]), ("group.added", "-"), "{frame}");
    let v: serde_json::Value = serde_json::from_str(parts[7]).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["subject"].as_str()),
        (Some("group.added"), Some("streamed"))
    );
    assert!(v["seq"].as_i64().unwrap() >= 1 && v["hash"].as_str().unwrap().len() == 64);
}

#[test]
fn events_stream_to_stdout_as_json_lines() {
    let mut b = Bastion::with_config("[audit]\nstream = \"stdout\"\n");
    b.start();
    b.admin(&["group", "add", "ops"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The harness sends the server's stdout and stderr to one log.
        let line = b
            .log()
            .lines()
            .find(|l| l.starts_with('{') && l.contains("\"group.added\""))
            .map(str::to_string);
        if let Some(l) = line {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            assert_eq!(v["subject"], "ops");
            break;
        }
        assert!(Instant::now() < deadline, "{}", b.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn logins_are_refused_when_the_audit_log_cannot_be_written() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    run_ok(b.ssh("alice+web01").arg("true"));
    // An attacker (or a broken database) removes the chain head: no append can work.
    b.db_exec(&[
        "DROP TRIGGER audit_head_no_delete",
        "DELETE FROM audit_head",
    ])
    .unwrap();
    let out = run(b.ssh("alice+web01").arg("echo should-not-run"));
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("should-not-run"));
    assert!(
        b.log().contains("audit write failed; refusing login"),
        "{}",
        b.log()
    );
    let (ok, out) = b.audit_verify();
    assert!(!ok, "{out}");
}

#[test]
fn the_target_is_not_dialled_when_session_started_cannot_be_written() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    run_ok(b.ssh("alice+web01").arg("true"));
    std::thread::sleep(Duration::from_millis(300));
    let accepted = sshd.log().matches("Accepted").count();
    assert!(accepted >= 1, "{}", sshd.log());
    // The audit store fails exactly for this event (as a full disk would).
    b.db_exec(&[
        "CREATE TRIGGER fail_session_start BEFORE INSERT ON audit_events \
         WHEN NEW.kind = 'session.started' BEGIN SELECT RAISE(ABORT, 'simulated failure'); END",
    ])
    .unwrap();
    let out = run(b.ssh("alice+web01").arg("echo should-not-run"));
    assert!(!out.status.success() && !text(&out.stdout).contains("should-not-run"));
    assert!(
        text(&out.stderr).contains("the session cannot be audited, so it is refused"),
        "{}",
        text(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        sshd.log().matches("Accepted").count(),
        accepted,
        "the target was dialled"
    );
    assert!(
        b.log().contains("session.started not written"),
        "{}",
        b.log()
    );
    // The login itself was audited; its row (written at login) is ended
    // with the refusal, and nothing is left live.
    let sessions = b.settled_sessions();
    assert_eq!(sessions.lines().count(), 2, "{sessions}");
    let newest = sessions.lines().next().unwrap();
    assert!(
        newest.contains("refused: session.started not written") && !newest.contains("\tlive\t"),
        "{sessions}"
    );
}

#[test]
fn a_host_key_mismatch_is_audited_with_both_fingerprints() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
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
    assert!(!run(b.ssh("alice+evil01").arg("true")).status.success());
    let fp = |p: &std::path::Path| {
        let out = text(&run_ok(std::process::Command::new("ssh-keygen").arg("-lf").arg(p)).stdout);
        out.split_whitespace().nth(1).unwrap().to_string()
    };
    let ev = b.audit_export(&["--kind", "upstream"]);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    let e = &ev[0];
    assert_eq!(e["kind"], "upstream.host_key_mismatch");
    assert_eq!(
        (e["actor"].as_str(), e["subject"].as_str()),
        (Some("alice"), Some("evil01"))
    );
    assert_eq!(e["detail"]["expected"], fp(&other.with_extension("pub")));
    assert_eq!(e["detail"]["seen"], fp(&sshd.host_pub));
    assert!(e["session"].is_string(), "{e}");
}

/// Issue 14 point 8: a database writer plants a row in `audit_legacy` (the
/// table rows from before the chain waited in). The real key never seals
/// it: the next admin command and the server refuse to open the chain, and
/// `audit verify` does not say OK.
#[test]
fn a_row_planted_in_audit_legacy_is_never_sealed() {
    let b = with_events();
    b.db_exec(&[
        "CREATE TABLE IF NOT EXISTS audit_legacy (id TEXT PRIMARY KEY, ts BIGINT NOT NULL, \
         kind TEXT NOT NULL, actor TEXT NOT NULL, source TEXT NOT NULL, \
         subject TEXT NOT NULL, detail TEXT NOT NULL)",
        "INSERT INTO audit_legacy (id, ts, kind, actor, source, subject, detail) \
         VALUES ('x', 1, 'grant.created', 'cli:root', '', 'mallory', '{\"target\":\"*\"}')",
    ])
    .unwrap();
    // The next CLI command (it opens the chain to audit itself).
    let out = run(b.cli().args(["group", "add", "after"]));
    assert!(!out.status.success(), "the CLI sealed a planted row");
    assert!(
        text(&out.stderr).contains("audit_legacy"),
        "{}",
        text(&out.stderr)
    );
    let (ok, said) = b.audit_verify();
    assert!(!ok && said.contains("audit_legacy"), "{said}");
    assert!(said.contains("FAILED") && !said.contains("OK:"), "{said}");
    // The server refuses to start, saying why.
    let mut serve = b
        .cli()
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while serve.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(15) {
            let _ = serve.kill();
            panic!("serve started with a planted audit_legacy row");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = serve.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("audit_legacy"),
        "{}",
        text(&out.stderr)
    );
    // Nothing was appended by any of it.
    b.db_exec(&["DELETE FROM audit_legacy"]).unwrap();
    let (ok, said) = b.audit_verify();
    assert!(ok && said.starts_with("OK: 6 events"), "{said}");
}
