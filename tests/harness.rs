//! The harness's own guarantees: a hung client fails its test in bounded
//! time, and a bounded run returns what `Command::output` would.

mod common;

use common::wait::{KillAfter, output_within, status_within};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

/// A real `ssh` against a listener that accepts and never says a word waits
/// for the server's banner for ever; the bounded run kills it and fails.
#[test]
fn a_hung_ssh_fails_within_the_limit() {
    common::need("ssh", "openssh-client");
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let mut ssh = Command::new("ssh");
    ssh.args([
        "-p",
        &port,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
    ])
    .args([
        "-o",
        "UserKnownHostsFile=/dev/null",
        "nobody@127.0.0.1",
        "true",
    ]);
    let t0 = Instant::now();
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        output_within(&mut ssh, Duration::from_secs(2))
    }));
    let waited = t0.elapsed();
    let message = run
        .err()
        .and_then(|p| p.downcast_ref::<String>().cloned())
        .expect("a hung ssh must fail the test");
    assert!(message.contains("did not finish within 2 s"), "{message}");
    assert!(message.contains("\"ssh\""), "names the command: {message}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    drop(silent);
}

#[test]
fn a_bounded_run_returns_what_output_would() {
    let mut sh = Command::new("sh");
    sh.args([
        "-c",
        "echo out; echo err >&2; read x; echo \"in=$x\"; exit 3",
    ]);
    let out = output_within(&mut sh, Duration::from_secs(10));
    assert_eq!(out.stdout, b"out\nin=\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status.code(), Some(3));
}

/// The caller's stdio is the caller's: `sftp` reads its commands from a
/// file given as stdin (tests/mfa.rs).
#[test]
fn a_bounded_run_keeps_the_callers_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::write(&input, "from the file\n").unwrap();
    let mut cat = Command::new("cat");
    cat.stdin(std::fs::File::open(&input).unwrap());
    let out = output_within(&mut cat, Duration::from_secs(10));
    assert_eq!(out.stdout, b"from the file\n");
}

/// What the command started goes too: a shell's `sleep` holds the pipes
/// `output` reads, so killing the shell alone would still hang.
#[test]
fn a_hung_command_and_its_children_are_killed() {
    let mut sh = Command::new("sh");
    sh.args(["-c", "echo started >&2; sleep 60; true"]);
    let t0 = Instant::now();
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        output_within(&mut sh, Duration::from_secs(1))
    }));
    let message = run
        .err()
        .and_then(|p| p.downcast_ref::<String>().cloned())
        .expect("must fail");
    assert!(message.contains("started"), "shows stderr: {message}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

#[test]
fn a_conversation_past_its_limit_is_cut() {
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let guard = KillAfter::new(child.id(), "sleep 30", Duration::from_millis(300));
    let status = status_within(&mut child, "sleep 30", Duration::from_secs(10));
    drop(guard);
    assert!(!status.success(), "killed, not finished: {status}");
}
