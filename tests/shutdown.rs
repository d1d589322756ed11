//! A graceful stop: SIGTERM closes the door, tells live users, waits the
//! configured grace, ends what is left, and every session gets its end row
//! and a normally sealed, verifiable recording (not "cut short").

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Whether process `pid` has exited (gone or a zombie nobody reaped yet).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn wait_exit(pid: u32, limit: Duration) -> Duration {
    let start = Instant::now();
    while !exited(pid) {
        assert!(
            start.elapsed() < limit,
            "the bastion did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    start.elapsed()
}

/// A command through the bastion that prints `started` and then runs long.
fn live(b: &Bastion, cmd: &str) -> Child {
    let mut c = b
        .ssh("alice+web01")
        .arg(format!("echo started; {cmd}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(c.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    c
}

fn terminate(b: &Bastion) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &b.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn sealed_recordings(b: &Bastion) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(b.data_dir().join("recordings"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cast"))
        .collect()
}

#[test]
fn sigterm_tells_live_users_waits_the_grace_then_ends_and_seals_everything() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard_with(&sshd, "[limits]\nshutdown_grace_secs = 3\n");
    let mut client = live(&b, "sleep 60");
    let pid = b.pid();
    let t0 = Instant::now();
    terminate(&b);
    // The door closes at once: no new connection is accepted.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", b.port)).is_err(),
        "still accepting during the shutdown"
    );
    let took = wait_exit(pid, Duration::from_secs(20));
    let status = client.wait().unwrap();
    let mut err = String::new();
    client
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(
        err.contains("shutting down"),
        "the user was not told: {err:?}"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(2800),
        "the live session was not given its grace ({took:?})"
    );
    b.forget_child();

    // Stopped cleanly: the row is ended, nothing is left "live", the
    // recording is sealed normally and verifies.
    let list = text(&b.admin(&["session", "list"]).stdout);
    assert!(!list.contains("\tlive\t"), "{list}");
    assert!(list.contains("portcullis shut down"), "{list}");
    assert!(!list.contains("cut short"), "{list}");
    let casts = sealed_recordings(&b);
    assert_eq!(casts.len(), 1, "{casts:?}");
    let chain = std::fs::read_to_string(casts[0].with_extension("chain")).unwrap();
    let cast = std::fs::read_to_string(&casts[0]).unwrap() + &chain;
    assert!(cast.contains("\"type\":\"trailer\""), "not sealed");
    assert!(!cast.contains("cut short"), "sealed as cut short");
    assert!(
        cast.contains("portcullis shut down"),
        "the trailer lacks the reason"
    );
    assert!(!b.log().contains("not written"), "{}", b.log());
    let v = run(b.cli().args(["verify", casts[0].to_str().unwrap()]));
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
    // The next start finds nothing to recover.
    b.start();
    b.stop();
    assert!(!b.log().contains("cut short"), "{}", b.log());
}

#[test]
fn a_shutdown_ends_as_soon_as_the_last_session_has() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard_with(&sshd, "[limits]\nshutdown_grace_secs = 30\n");
    let mut client = live(&b, "sleep 1");
    let pid = b.pid();
    terminate(&b);
    let took = wait_exit(pid, Duration::from_secs(15));
    assert!(client.wait().unwrap().success(), "the session was cut");
    assert!(
        took < Duration::from_secs(10),
        "waited the whole grace: {took:?}"
    );
    b.forget_child();
    let list = text(&b.admin(&["session", "list"]).stdout);
    assert!(
        !list.contains("\tlive\t") && !list.contains("cut short"),
        "{list}"
    );
}
