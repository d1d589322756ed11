//! Issue 14 point 9: an attacker with write access to the recordings
//! directory (not to the audit key) edits, deletes or swaps files. Recovery
//! and `verify` check the files against what the database recorded, and
//! against the session asked for.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn session_ids(b: &Bastion) -> Vec<String> {
    text(&b.admin(&["session", "list"]).stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

fn recordings_dir(b: &Bastion) -> PathBuf {
    b.data_dir().join("recordings")
}

fn verify(b: &Bastion, what: &str) -> std::process::Output {
    run(b.cli().args(["verify", what]))
}

/// The one shell recording of `session` (`<session>-<channel>`).
fn files_of(b: &Bastion, session: &str) -> (PathBuf, PathBuf) {
    for e in std::fs::read_dir(recordings_dir(b)).unwrap().flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with(session) && name.ends_with(".cast") {
            return (p.clone(), p.with_extension("chain"));
        }
    }
    panic!("no recording of {session}");
}

fn wait_sealed(b: &Bastion, n: usize) {
    for _ in 0..100 {
        let sealed = std::fs::read_dir(recordings_dir(b))
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains("\"type\":\"trailer\"")
            })
            .count();
        if sealed >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("recordings not sealed");
}

#[test]
fn swapped_signed_recordings_fail_verify() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    for word in ["FIRST", "SECOND"] {
        let out = run(b.ssh("alice+web01").arg(format!("echo {word}")));
        assert!(text(&out.stdout).contains(word));
    }
    wait_sealed(&b, 2);
    let ids = session_ids(&b);
    assert_eq!(ids.len(), 2, "{ids:?}");
    let (a, b_) = (files_of(&b, &ids[0]), files_of(&b, &ids[1]));
    for id in &ids {
        let ok = verify(&b, id);
        assert!(ok.status.success(), "{}", text(&ok.stdout));
    }
    // Both pairs are validly signed; put B's files under A's names.
    std::fs::copy(&b_.0, &a.0).unwrap();
    std::fs::copy(&b_.1, &a.1).unwrap();
    let out = verify(&b, &ids[0]);
    let said = text(&out.stdout);
    assert!(!out.status.success(), "swapped recording verified: {said}");
    assert!(said.contains("FAILED"), "{said}");
    // Also when the file is named directly.
    let out = verify(&b, a.0.to_str().unwrap());
    assert!(!out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn a_file_that_disagrees_with_the_database_fails_verify() {
    // The files are untouched and verify on their own; the final digest the
    // database stored when the recording was sealed says otherwise, as it
    // would after the files were replaced by others that verify on their own.
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let out = run(b.ssh("alice+web01").arg("echo ONE"));
    assert!(text(&out.stdout).contains("ONE"));
    wait_sealed(&b, 1);
    let ids = session_ids(&b);
    assert!(verify(&b, &ids[0]).status.success());
    let db = b.data_dir().join("portcullis.db");
    let st = Command::new("sqlite3")
        .arg(&db)
        .arg(
            "UPDATE recordings SET sha256 = \
             '00000000000000000000000000000000000000000000000000000000000000aa'",
        )
        .status()
        .unwrap();
    assert!(st.success());
    let out = verify(&b, &ids[0]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
}

/// Starts a live session, kills the bastion with SIGKILL, and returns it
/// stopped with the open recording's files.
fn crash_mid_session(b: &mut Bastion) -> (String, PathBuf, PathBuf) {
    let child = b
        .ssh("alice+web01")
        .arg("i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.1; done")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    Command::new("kill")
        .args(["-9", &b.pid().to_string()])
        .status()
        .unwrap();
    let _ = child.wait_with_output();
    b.forget_child();
    let ids = session_ids(b);
    let (cast, chain) = files_of(b, &ids[0]);
    (ids[0].clone(), cast, chain)
}

fn wait_for(b: &Bastion, what: impl Fn() -> bool) {
    for _ in 0..100 {
        if what() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out; log:\n{}", b.log());
}

fn audit_after_recovery(b: &Bastion) -> String {
    wait_for(b, || {
        let a = text(&b.admin(&["audit", "list"]).stdout);
        a.contains("recording.cut_short") || a.contains("recording.failed")
    });
    text(&b.admin(&["audit", "list"]).stdout)
}

#[test]
fn recovery_says_when_the_chain_was_deleted() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    let (id, _cast, chain) = crash_mid_session(&mut b);
    std::fs::remove_file(&chain).unwrap();
    b.start();
    let audit = audit_after_recovery(&b);
    let out = verify(&b, &id);
    let said = text(&out.stdout);
    // Sealed (a crash can lose the chain too), but never silently.
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("not covered") && said.contains(".chain file was missing"),
        "silently signed: {said}"
    );
    assert!(audit.contains("\"chain_rebuilt\":true"), "{audit}");
}

#[test]
fn events_appended_while_the_bastion_was_down_are_sealed_as_unsigned() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    let (id, cast, _chain) = crash_mid_session(&mut b);
    let mut body = std::fs::read_to_string(&cast).unwrap();
    if !body.ends_with('\n') {
        body.truncate(body.rfind('\n').unwrap() + 1);
    }
    body.push_str("[99.0, \"o\", \"FORGED-LINE\\r\\n\"]\n");
    std::fs::write(&cast, body).unwrap();
    b.start();
    let audit = audit_after_recovery(&b);
    let out = verify(&b, &id);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("not covered by any signature"), "{said}");
    assert!(!audit.contains("\"unsigned_events\":0"), "{audit}");
}

#[test]
fn recovery_refuses_an_edit_made_with_the_chain_deleted() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    let (id, cast, chain) = crash_mid_session(&mut b);
    // While the bastion is down: delete the chain, rewrite an early event
    // (one the database's last checkpoint covers).
    std::fs::remove_file(&chain).unwrap();
    let body = std::fs::read_to_string(&cast).unwrap();
    assert!(body.contains("tick-3"), "{body}");
    std::fs::write(&cast, body.replace("tick-3", "tock-3")).unwrap();
    b.start();
    let audit = audit_after_recovery(&b);
    assert!(
        audit.contains("recording.failed") && !audit.contains("recording.cut_short"),
        "{audit}"
    );
    let out = verify(&b, &id);
    assert!(!out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn recovery_refuses_a_recording_rolled_back_past_the_database_checkpoint() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    let (id, cast, chain) = crash_mid_session(&mut b);
    // Cut the cast back to its header plus two events, and drop the chain: on
    // its own it looks like a session that ended at once.
    let body = std::fs::read_to_string(&cast).unwrap();
    let keep: String = body.split_inclusive('\n').take(3).collect();
    std::fs::write(&cast, keep).unwrap();
    std::fs::remove_file(&chain).unwrap();
    b.start();
    let audit = audit_after_recovery(&b);
    assert!(
        audit.contains("recording.failed") && !audit.contains("recording.cut_short"),
        "{audit}"
    );
    let out = verify(&b, &id);
    assert!(!out.status.success(), "{}", text(&out.stdout));
}

/// A recorded user prints what would attack the auditor's terminal: a window
/// title (OSC 0), a clipboard write (OSC 52), a DCS string, an APC, a
/// device-attributes request whose answer lands in the auditor's input, and
/// mouse reporting. `replay` and `watch` show the text around them, keep
/// colours, and drop the rest; `replay --raw` keeps every byte.
#[test]
fn replay_and_watch_do_not_pass_terminal_attacks_to_the_auditor() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let script = r"printf 'BEFORE\033]0;pwned-title\007\033]52;c;ZWNobyBwd25lZA==\007\033P+q544e\033\\\033_apc\033\\\033[c\033[?1000h\033[31mRED\033[0mAFTER\n'";
    let out = run(b.ssh("alice+web01").arg(script));
    assert!(text(&out.stdout).contains("AFTER"), "{}", text(&out.stderr));
    wait_sealed(&b, 1);
    let id = &session_ids(&b)[0];
    for attack in [
        &["replay", id.as_str(), "--idle-cap", "0"][..],
        &["watch", id],
    ] {
        let shown = run(b.cli().args(attack)).stdout;
        let shown = String::from_utf8_lossy(&shown);
        assert!(
            shown.contains("BEFORE") && shown.contains("AFTER"),
            "{attack:?}: {shown:?}"
        );
        assert!(
            shown.contains("\x1b[31mRED\x1b[0m"),
            "colours lost: {shown:?}"
        );
        for bad in [
            "\x1b]",
            "\x1bP",
            "\x1b_",
            "\x1b[c",
            "\x1b[?1000h",
            "pwned-title",
            "ZWNobyBwd25lZA",
        ] {
            assert!(!shown.contains(bad), "{attack:?} passed {bad:?}: {shown:?}");
        }
    }
    let raw = run(b.cli().args(["replay", id, "--idle-cap", "0", "--raw"])).stdout;
    assert!(
        String::from_utf8_lossy(&raw).contains("\x1b]52;c;"),
        "--raw dropped bytes"
    );
}
