//! Nothing a client sends can flood the audit table, the recordings disk or
//! the bastion's memory: failed logins are summarised, per-user audit rows
//! for forwards are capped, channels per connection are capped, and new
//! sessions are refused when the recordings disk runs low.

mod common;
use common::*;

fn audit_lines(b: &Bastion, kind: &str) -> Vec<String> {
    b.audit_export(&["--kind", kind])
        .into_iter()
        .filter(|e| e["kind"].as_str() == Some(kind))
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn a_password_spray_over_many_names_is_one_summary_row() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    let ap = Askpass::new();
    ap.set_password("Winter2026!");
    let names: Vec<String> = (0..40).map(|i| format!("spray{i:02}")).collect();
    std::thread::scope(|s| {
        for chunk in names.chunks(5) {
            let (b, ap) = (&b, &ap);
            s.spawn(move || {
                for n in chunk {
                    let out = run(b.ssh_human(n, "password", None, ap).arg("true"));
                    assert!(!out.status.success());
                }
            });
        }
    });
    b.stop(); // graceful: the tally is flushed
    let rows = audit_lines(&b, "login.failures");
    assert_eq!(
        rows.len(),
        1,
        "one row for the network and factor: {rows:#?}"
    );
    assert!(rows[0].contains("\"usernames\":40"), "{}", rows[0]);
    assert!(rows[0].contains("127.0.0.0/24"), "{}", rows[0]);
    let users = audit_lines(&b, "login.failures.user");
    assert!(users.len() <= 16, "{users:#?}");
    assert_eq!(audit_lines(&b, "login.failures.omitted").len(), 1);
}

#[test]
fn channels_per_connection_are_capped_and_places_come_back() {
    use common::forward::*;
    use std::time::{Duration, Instant};
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    // Echo holds a connection until the client's EOF, then closes it.
    let svc = Service::start("127.0.0.1", Behaviour::Echo);
    b.add_tcp_target("hold01", "127.0.0.1", svc.port, false);
    b.grant(&["--user", "alice", "--target", "hold01"]);
    let lport = free_port();
    let spec = format!("{lport}:hold01:{}", svc.port);
    let fwd = Forwarding::start(&b, "alice", &["-L", &spec], Some(lport));
    let settle = |want: usize| {
        let start = Instant::now();
        while svc.connections() < want && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        svc.connections()
    };
    let base = settle(1);
    // A browser behind `ssh -D` holds a few dozen; 100 is past any default.
    let mut held: Vec<std::net::TcpStream> = (0..100)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", lport)).unwrap())
        .collect();
    // The probe's forward has ended (the service closed after its EOF).
    let reached = settle(base + 64) - base;
    assert_eq!(reached, 64, "channels open at once: {}", fwd.stderr());
    assert!(
        fwd.stderr()
            .contains("too many channels open on this connection"),
        "{}",
        fwd.stderr()
    );
    // Closing some frees their places for new ones.
    held.truncate(10);
    std::thread::sleep(Duration::from_secs(1));
    let more: Vec<std::net::TcpStream> = (0..5)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", lport)).unwrap())
        .collect();
    let after = settle(base + 64 + 5) - base;
    assert_eq!(after, 64 + 5, "{}", fwd.stderr());
    drop((held, more));
}

/// Writes `mib` MiB into the bastion's private tmpfs recordings directory
/// (seen through its mount namespace) or, with 0, removes that file.
fn fill_recordings(b: &Bastion, mib: usize) {
    let path = std::path::PathBuf::from(format!("/proc/{}/root", b.pid()))
        .join(b.data_dir().strip_prefix("/").unwrap())
        .join("recordings/fill.bin");
    if mib == 0 {
        std::fs::remove_file(&path).unwrap();
    } else {
        std::fs::write(&path, vec![7u8; mib << 20]).unwrap();
    }
}

#[test]
fn a_low_recordings_disk_refuses_new_sessions_and_the_hard_mark_ends_live_ones() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let sshd = Sshd::start();
    let marks = "[recordings]\nlow_water_mb = 6\nhard_water_mb = 2\n";
    let mut b = Bastion::standard_with(&sshd, marks);
    b.stop();
    b.start_with_tmpfs_recordings("16m");
    run_ok(b.ssh("alice+web01").arg("true"));
    let live = b
        .ssh("alice+web01")
        .arg("sleep 3; echo LIVE-WENT-ON")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    fill_recordings(&b, 11); // ~5 MiB free: below low, above hard
    let out = run(b.ssh("alice+web01").arg("echo NEW"));
    assert!(!out.status.success(), "a new session started on a low disk");
    let err = text(&out.stderr);
    assert!(err.contains("recording storage is nearly full"), "{err}");
    let out = live.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "LIVE-WENT-ON\n", "{}", text(&out.stderr));
    // Space back: sessions start again.
    fill_recordings(&b, 0);
    run_ok(b.ssh("alice+web01").arg("true"));

    // Below the hard mark a live session ends, with the reason.
    let mut live = b
        .ssh("alice+web01")
        .arg("sleep 30")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    fill_recordings(&b, 14); // < 2 MiB free
    let start = Instant::now();
    while live.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "live session not ended below the hard mark"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = live.wait_with_output().unwrap();
    assert!(
        text(&out.stderr).contains("below its hard mark"),
        "{}",
        text(&out.stderr)
    );
    let levels = audit_lines(&b, "recording.space");
    assert!(
        levels.iter().any(|l| l.contains("\"level\":\"hard\"")),
        "{levels:?}"
    );
}

#[test]
fn forwards_and_access_requests_past_the_per_user_cap_do_not_each_write_rows() {
    use common::forward::*;
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    let svc = Service::start("127.0.0.1", Behaviour::Echo);
    b.add_tcp_target("echo01", "127.0.0.1", svc.port, false);
    b.grant(&["--user", "alice", "--target", "echo01"]);
    let lport = free_port();
    let spec = format!("{lport}:echo01:{}", svc.port);
    let fwd = Forwarding::start(&b, "alice", &["-L", &spec], Some(lport));
    // A client opening forwards as fast as it can (a scan, a busy browser).
    for i in 0..160u64 {
        let data = pattern(64, i);
        assert_eq!(round_trip(lport, &data), data, "{}", fwd.stderr());
    }
    drop(fwd);
    // Access requests: ten, then refused until the bucket refills.
    let mut refused = 0;
    for _ in 0..13 {
        let out = run(b.ssh("alice").arg("request web01 tuser 1h flood test"));
        if text(&out.stdout).contains("too many access requests")
            || text(&out.stderr).contains("too many access requests")
        {
            refused += 1;
        }
    }
    assert!(refused >= 2, "access requests were not capped");
    b.stop(); // graceful: the summaries are flushed
    let opened = audit_lines(&b, "forward.opened").len();
    assert!(
        (100..=110).contains(&opened),
        "forward.opened rows: {opened} for 160 forwards (plus the probe)"
    );
    assert_eq!(audit_lines(&b, "forward.summarising").len(), 1);
    let summary = audit_lines(&b, "forward.summary");
    assert_eq!(summary.len(), 1, "{summary:?}");
    let v: serde_json::Value = serde_json::from_str(&summary[0]).unwrap();
    let summarised = v["detail"]["forwards"].as_u64().unwrap() as usize;
    // Every forward is in the trail: one by one, or in the summary.
    assert_eq!(opened + summarised, 161, "{}", summary[0]);
    let requested = audit_lines(&b, "access.requested").len();
    assert!(requested <= 11, "access.requested rows: {requested}");
}

#[test]
fn session_channels_on_one_controlmaster_connection_are_capped() {
    use std::process::Stdio;
    let sshd = Sshd::start();
    let b = Bastion::standard_with(&sshd, "[limits]\nmax_channels_per_connection = 4\n");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("cm.sock");
    let log = dir.path().join("master.log");
    let ssh = |extra: &[&str]| {
        let mut c = b.ssh("alice+web01");
        c.arg("-S").arg(&sock).args(extra);
        c
    };
    let master = ssh(&["-M", "-f", "-N", "-o", "ControlPersist=60"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert!(
        master.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    // Six sessions at once on one connection: four fit, two are refused
    // (OpenSSH's mux client then falls back to a connection of its own).
    let children: Vec<_> = (0..6)
        .map(|_| {
            ssh(&["-o", "ControlMaster=no"])
                .arg("sleep 2; echo DONE")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let errs: Vec<String> = children
        .into_iter()
        .map(|c| text(&c.wait_with_output().unwrap().stderr))
        .collect();
    let refused = errs
        .iter()
        .filter(|e| e.contains("Session open refused by peer"))
        .count();
    assert_eq!(refused, 2, "{errs:?}");
    assert!(
        b.log().contains("too many open on this connection"),
        "{}",
        b.log()
    );
    // Their places came back when they ended.
    let out = run_ok(ssh(&["-o", "ControlMaster=no"]).arg("echo AGAIN"));
    assert_eq!(text(&out.stdout), "AGAIN\n");
    let _ = ssh(&["-O", "exit"]).stderr(Stdio::null()).status();
}
