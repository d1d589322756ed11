//! Port forwarding under policy (issue 7), with the real OpenSSH client:
//! TCP targets through -L, -W and -D (SOCKS, curl), refusals, -R and -L
//! through a target's connection, agent forwarding, a stalled destination
//! beside a live channel, audit rows with bytes, content capture.

mod common;

use common::forward::*;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An SSH target `web03` on the test sshd, granted to alice as tuser with `allow`.
fn add_web03(b: &Bastion, sshd: &Sshd, allow: &str) {
    b.add_target("web03", sshd);
    b.grant(&[
        "--user",
        "alice",
        "--target",
        "web03",
        "--login",
        TARGET_USER,
        "--allow",
        allow,
    ]);
}

fn grant_tcp(b: &Bastion, target: &str) {
    b.grant(&["--user", "alice", "--target", target]);
}

/// Waits until `kind` audit rows satisfy `pred` (the close is written after
/// the client sees the channel end).
fn wait_audit(
    b: &Bastion,
    kind: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        if let Some(v) = b.audit_details(kind).into_iter().find(|v| pred(v)) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no {kind} audit row matched; rows: {:?}\nlog:\n{}",
            b.audit_details(kind),
            b.log()
                .lines()
                .filter(|l| !l.contains("russh"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn local_forward_moves_data_both_ways_and_is_audited_with_bytes() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let echo = Service::start("127.0.0.1", Behaviour::Echo);
    b.add_tcp_target("db01", "127.0.0.1", echo.port, false);
    grant_tcp(&b, "db01");
    let listed = text(&b.admin(&["target", "list"]).stdout);
    assert!(
        listed.contains(&format!("db01\t127.0.0.1:{}\ttcp", echo.port)),
        "{listed}"
    );
    let lport = free_port();
    let _fwd = Forwarding::start(
        &b,
        "alice",
        &["-L", &format!("{lport}:db01:{}", echo.port)],
        Some(lport),
    );
    let data = pattern(8 << 20, 7);
    let back = round_trip(lport, &data);
    assert_eq!(back.len(), data.len());
    assert_eq!(sha_hex(&back), sha_hex(&data));
    let n = (8u64 << 20) as f64;
    let closed = wait_audit(&b, "forward.closed", |v| v["bytes_up"].as_f64() == Some(n));
    assert_eq!(closed["bytes_down"].as_f64(), Some(n), "{closed}");
    assert_eq!(closed["kind"], "local");
    assert_eq!(closed["target"], "db01");
    assert_eq!(closed["destination"], format!("127.0.0.1:{}", echo.port));
    assert_eq!(closed["requested"], format!("db01:{}", echo.port));
    assert!(closed["duration_ms"].as_u64().is_some(), "{closed}");
    assert_eq!(closed["reason"], "closed");
    let id = closed["id"].as_str().unwrap().to_string();
    wait_audit(&b, "forward.opened", |v| v["id"] == id.as_str());
}

#[test]
fn stdio_forward_and_proxycommand_through_a_tcp_target() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let sha = Service::start("127.0.0.1", Behaviour::Sha);
    b.add_tcp_target("hasher", "127.0.0.1", sha.port, false);
    grant_tcp(&b, "hasher");
    let data = pattern(3 << 20, 11);
    let out = b.stdio_forward("alice", &format!("hasher:{}", sha.port), &data);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{}\n", sha_hex(&data)));
    let closed = wait_audit(&b, "forward.closed", |v| v["kind"] == "stdio");
    assert_eq!(closed["bytes_up"].as_u64(), Some(3 << 20));
    assert_eq!(closed["bytes_down"].as_u64(), Some(65));

    // ProxyCommand-style: the user's own ssh to an sshd that is a TCP target.
    b.add_tcp_target("sshbox", "127.0.0.1", sshd.port, false);
    grant_tcp(&b, "sshbox");
    let kh = b.dir.path().join("kh_sshbox");
    let key = std::fs::read_to_string(&sshd.host_pub).unwrap();
    std::fs::write(&kh, format!("[sshbox]:{} {}\n", sshd.port, key.trim())).unwrap();
    let proxy = format!(
        "ssh {} -p {} -W %h:%p alice@127.0.0.1",
        b.ssh_opts().join(" "),
        b.port
    );
    let out = run(Command::new("ssh")
        .args(client_opts(&kh))
        .args([
            "-o",
            &format!("ProxyCommand={proxy}"),
            "-o",
            "BatchMode=yes",
        ])
        .arg("-i")
        .arg(&sshd.user_key)
        .args(["-p", &sshd.port.to_string()])
        .arg(format!("{TARGET_USER}@sshbox"))
        .arg("echo via-proxycommand")
        .stdin(Stdio::null()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "via-proxycommand\n");
}

#[test]
fn dynamic_socks_forward_with_curl() {
    need("curl", "curl");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let http = Service::start("127.0.0.1", Behaviour::Http("hello from the console"));
    b.add_tcp_target("console", "127.0.0.1", http.port, false);
    grant_tcp(&b, "console");
    let sport = free_port();
    let _fwd = Forwarding::start(&b, "alice", &["-D", &sport.to_string()], Some(sport));
    let curl = |host: &str| {
        run(Command::new("curl")
            .args(["-sS", "--max-time", "15", "--socks5-hostname"])
            .arg(format!("127.0.0.1:{sport}"))
            .arg(format!("http://{host}:{}/", http.port)))
    };
    let ok = curl("console");
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert_eq!(text(&ok.stdout), "hello from the console");
    let before = http.connections();
    // Another name for the same address is not the target.
    let refused = curl("localhost");
    assert!(!refused.status.success(), "{}", text(&refused.stdout));
    assert_eq!(
        http.connections(),
        before,
        "the bastion dialled a refused name"
    );
    let r = wait_audit(&b, "forward.refused", |v| {
        v["requested"] == format!("localhost:{}", http.port)
    });
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("is not a target you are granted"),
        "{r}"
    );
}

#[test]
fn refusals_for_ungranted_hosts_ports_addresses_names_and_times() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let echo = Service::start("127.0.0.1", Behaviour::Echo);
    let other = Service::start("127.0.0.2", Behaviour::Echo);
    b.add_tcp_target("db01", "127.0.0.1", echo.port, false);
    b.add_tcp_target("db02", "127.0.0.2", other.port, false);
    b.add_tcp_target("db03", "127.0.0.1", echo.port, false);
    grant_tcp(&b, "db01");
    b.grant(&[
        "--user",
        "alice",
        "--target",
        "db03",
        "--from",
        "2099-01-01T00:00:00Z",
    ]);
    // A TCP target's grant must allow forwarding.
    let bad = run(b.cli().args([
        "grant", "add", "--user", "alice", "--target", "db02", "--allow", "shell",
    ]));
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("local-forward"),
        "{}",
        text(&bad.stderr)
    );

    let p = echo.port;
    let refused = [
        (
            format!("db02:{}", other.port),
            "is not a target you are granted",
        ),
        (format!("db01:{}", p + 1), "is not a target you are granted"),
        (
            format!("127.0.0.2:{}", other.port),
            "is not a target you are granted",
        ),
        (format!("localhost:{p}"), "is not a target you are granted"),
        (format!("127.0.0.3:{p}"), "is not a target you are granted"),
        (format!("db03:{p}"), "is valid from"),
    ];
    for (dest, why) in &refused {
        let out = b.stdio_forward("alice", dest, b"x");
        assert!(!out.status.success(), "{dest} was forwarded");
        let err = text(&out.stderr);
        assert!(err.contains(why), "{dest}: {err}");
        if dest.starts_with("db02") {
            assert!(
                !err.contains("127.0.0.2"),
                "{dest}: leaks an address: {err}"
            );
        }
    }
    assert_eq!(
        other.connections(),
        0,
        "an ungranted destination was dialled"
    );
    // The target's own address works, and only it.
    let out = b.stdio_forward("alice", &format!("127.0.0.1:{p}"), b"by-address");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "by-address");
    // An SSH session without local-forward in its grant forwards nothing.
    let out = b.stdio_forward("alice+web01", &format!("127.0.0.1:{p}"), b"x");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("port forwarding is not allowed by your grant"),
        "{}",
        text(&out.stderr)
    );
    // A TCP target is not a login.
    let out = run(b.ssh("alice+db01").arg("true"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is a TCP target"),
        "{}",
        text(&out.stderr)
    );
    wait_audit(&b, "forward.refused", |v| {
        v["requested"] == format!("db02:{}", other.port)
    });
}

#[test]
fn remote_forward_allowed_and_refused_and_local_through_the_target() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    add_web03(&b, &sshd, "shell,exec,local-forward,remote-forward");
    let echo = Service::start("127.0.0.1", Behaviour::Echo);
    // -R: the target listens, its connections come back to the client.
    let rport = free_port();
    let _r = Forwarding::start(
        &b,
        "alice+web03",
        &["-R", &format!("{rport}:127.0.0.1:{}", echo.port)],
        Some(rport),
    );
    let data = pattern(2 << 20, 3);
    assert_eq!(sha_hex(&round_trip(rport, &data)), sha_hex(&data));
    let closed = wait_audit(&b, "forward.closed", |v| {
        v["kind"] == "remote" && v["bytes_up"].as_u64() == Some(2 << 20)
    });
    assert_eq!(closed["via"], "web03");
    // -L through web03's connection: web03 (the sshd) dials the destination.
    let lport = free_port();
    let _l = Forwarding::start(
        &b,
        "alice+web03",
        &["-L", &format!("{lport}:127.0.0.1:{}", echo.port)],
        Some(lport),
    );
    assert_eq!(sha_hex(&round_trip(lport, &data)), sha_hex(&data));
    // web01's grant has no remote-forward.
    let mut denied = Forwarding::start(
        &b,
        "alice+web01",
        &["-R", &format!("{}:127.0.0.1:{}", free_port(), echo.port)],
        None,
    );
    let (status, err) = denied
        .wait_exit(Duration::from_secs(20))
        .expect("ssh -R kept running although refused");
    assert!(!status.success());
    assert!(err.contains("remote port forwarding failed"), "{err}");
    wait_audit(&b, "forward.refused", |v| v["kind"] == "remote");
}

#[test]
fn a_cancelled_remote_forward_stops_listening_on_the_target() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    add_web03(&b, &sshd, "shell,exec,remote-forward");
    let echo = Service::start("127.0.0.1", Behaviour::Echo);
    let rport = free_port();
    let spec = format!("{rport}:127.0.0.1:{}", echo.port);
    let dir = tempfile::tempdir().unwrap();
    let ctl = format!("ControlPath={}", dir.path().join("ctl").display());
    let _master = Forwarding::start(
        &b,
        "alice+web03",
        &["-o", "ControlMaster=yes", "-o", &ctl, "-R", &spec],
        Some(rport),
    );
    let data = pattern(64 << 10, 5);
    assert_eq!(sha_hex(&round_trip(rport, &data)), sha_hex(&data));
    // `ssh -O cancel` sends cancel-tcpip-forward on the master's connection.
    run_ok(
        b.ssh("alice+web03")
            .args(["-o", &ctl, "-O", "cancel", "-R", &spec])
            .stdin(Stdio::null()),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", rport)).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the target still listens on {rport} after the cancel"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The connection itself stays up: the master still answers.
    run_ok(
        b.ssh("alice+web03")
            .args(["-o", &ctl, "-O", "check"])
            .stdin(Stdio::null()),
    );
}

#[test]
fn agent_forwarding_only_where_granted() {
    need("ssh-agent", "openssh-client");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    add_web03(&b, &sshd, "shell,exec,agent");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !sock.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let key = dir.path().join("agent_key");
    keygen(&key, "ed25519");
    run_ok(
        Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &sock),
    );
    let fp = text(
        &run_ok(
            Command::new("ssh-keygen")
                .arg("-lf")
                .arg(key.with_extension("pub")),
        )
        .stdout,
    );
    let fp = fp.split_whitespace().nth(1).unwrap().to_string();
    let list = |user: &str| {
        run(b
            .ssh(user)
            .arg("-A")
            .env("SSH_AUTH_SOCK", &sock)
            .arg("ssh-add -l; echo sock=$SSH_AUTH_SOCK"))
    };
    let out = list("alice+web03");
    assert!(
        text(&out.stdout).contains(&fp),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    wait_audit(&b, "agent.forwarded", |_| true);
    let closed = wait_audit(&b, "forward.closed", |v| v["kind"] == "agent");
    assert!(closed["bytes_up"].as_u64().unwrap() > 0, "{closed}");
    let out = list("alice+web01");
    assert!(!text(&out.stdout).contains(&fp), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("sock=\n"),
        "{}",
        text(&out.stdout)
    );
    let _ = agent.kill();
    let _ = agent.wait();
}

#[test]
fn a_stalled_destination_does_not_freeze_the_connection() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let stuck = Service::start("127.0.0.1", Behaviour::Stall);
    let echo = Service::start("127.0.0.1", Behaviour::Echo);
    b.add_tcp_target("stuck", "127.0.0.1", stuck.port, false);
    b.add_tcp_target("db01", "127.0.0.1", echo.port, false);
    grant_tcp(&b, "stuck");
    grant_tcp(&b, "db01");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("cm.sock");
    let (sport, eport) = (free_port(), free_port());
    run_ok(
        b.ssh("alice")
            .arg("-S")
            .arg(&sock)
            .args(["-M", "-f", "-N", "-o", "ControlPersist=yes"])
            .args(["-L", &format!("{sport}:stuck:{}", stuck.port)])
            .args(["-L", &format!("{eport}:db01:{}", echo.port)]),
    );
    // Push far more than the bastion buffers into a destination that never reads.
    let pusher = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", sport)).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..256 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let mut worst = Duration::ZERO;
    for i in 0..6 {
        let t = Instant::now();
        let out = run(b.ssh("alice").arg("-S").arg(&sock).arg("targets"));
        worst = worst.max(t.elapsed());
        assert!(
            !out.stdout.is_empty(),
            "exec {i} got nothing: {}",
            text(&out.stderr)
        );
        let back = round_trip(eport, b"still-moving");
        assert_eq!(back, b"still-moving");
        std::thread::sleep(Duration::from_millis(300));
    }
    // Bounded by the stall time (2 s) once, then immediate.
    assert!(worst < Duration::from_secs(4), "a channel waited {worst:?}");
    let closed = wait_audit(&b, "forward.closed", |v| v["target"] == "stuck");
    assert!(
        closed["reason"].as_str().unwrap().starts_with("stalled"),
        "{closed}"
    );
    let _ = run(b.ssh("alice").arg("-S").arg(&sock).args(["-O", "exit"]));
    let _ = pusher.join();
}

/// The first sealed forward capture in the bastion's recordings.
fn sealed_capture(b: &Bastion) -> std::path::PathBuf {
    let rec = b.data_dir().join("recordings");
    let start = Instant::now();
    loop {
        let found = std::fs::read_dir(&rec)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.extension().is_some_and(|e| e == "cast")
                    && std::fs::read_to_string(p)
                        .unwrap_or_default()
                        .contains("tcp-forward")
            });
        if let Some(c) = found {
            let chain = c.with_extension("chain");
            if std::fs::read_to_string(&chain)
                .unwrap_or_default()
                .contains("trailer")
            {
                return c;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no sealed capture in {rec:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The bytes of one direction of a capture (`"> "` client to destination,
/// `"< "` back), decoded from its base64 markers.
fn captured(body: &str, prefix: &str) -> Vec<u8> {
    use base64::Engine;
    let mut out = Vec::new();
    for line in body.lines().skip(1) {
        let ev: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(b64) = ev[2].as_str().and_then(|t| t.strip_prefix(prefix)) {
            out.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            );
        }
    }
    out
}

#[test]
fn forwards_through_an_ssh_target_are_captured_when_it_keeps_contents() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    add_web03(&b, &sshd, "shell,exec,local-forward");
    b.admin(&["target", "capture", "web03", "on"]);
    let echo = Service::start("127.0.0.1", Behaviour::Echo);
    let lport = free_port();
    let fwd = Forwarding::start(
        &b,
        "alice+web03",
        &["-L", &format!("{lport}:127.0.0.1:{}", echo.port)],
        Some(lport),
    );
    // Forwarding::start's probe made one (empty) forward; this one carries data.
    let data = pattern(300_000, 9);
    assert_eq!(sha_hex(&round_trip(lport, &data)), sha_hex(&data));
    drop(fwd);
    wait_audit(&b, "forward.closed", |v| {
        v["via"] == "web03" && v["bytes_up"].as_u64() == Some(300_000)
    });
    // The capture holding the data (the probe's empty one may come first), sealed.
    let rec = b.data_dir().join("recordings");
    let start = Instant::now();
    let (cast, body) = loop {
        let found = std::fs::read_dir(&rec)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "cast"))
            // Sealed first, then read: a body read before the trailer
            // appeared may lack the last events.
            .filter(|p| {
                std::fs::read_to_string(p.with_extension("chain"))
                    .unwrap_or_default()
                    .contains("trailer")
            })
            .map(|p| {
                let body = std::fs::read_to_string(&p).unwrap_or_default();
                (p, body)
            })
            .find(|(_, body)| captured(body, "> ").len() == data.len());
        if let Some(found) = found {
            break found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no sealed capture of the forwarded bytes in {rec:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(captured(&body, "> "), data);
    assert_eq!(captured(&body, "< "), data, "the echo was not captured");
    let v = run(b.cli().arg("verify").arg(&cast));
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
}

#[test]
fn captured_forwards_are_signed_recordings_of_the_raw_bytes() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let sha = Service::start("127.0.0.1", Behaviour::Sha);
    b.add_tcp_target("vault01", "127.0.0.1", sha.port, true);
    grant_tcp(&b, "vault01");
    let data = pattern(100_000, 5);
    let out = b.stdio_forward("alice", &format!("vault01:{}", sha.port), &data);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_audit(&b, "forward.closed", |v| v["target"] == "vault01");
    let cast = sealed_capture(&b);
    let body = std::fs::read_to_string(&cast).unwrap();
    let up = captured(&body, "> ");
    assert_eq!(up, data, "captured client bytes differ");
    assert!(
        body.contains("\"m\", \"< "),
        "no destination bytes captured"
    );
    let v = run(b.cli().arg("verify").arg(&cast));
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
}

#[test]
fn a_target_lock_ends_live_forwards_and_refuses_new_ones() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let echo = Service::start("127.0.0.1", Behaviour::Echo);
    b.add_tcp_target("db01", "127.0.0.1", echo.port, false);
    grant_tcp(&b, "db01");
    let lport = free_port();
    let _fwd = Forwarding::start(
        &b,
        "alice",
        &["-L", &format!("{lport}:db01:{}", echo.port)],
        Some(lport),
    );
    let mut live = std::net::TcpStream::connect(("127.0.0.1", lport)).unwrap();
    live.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    live.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    std::io::Read::read_exact(&mut live, &mut buf).unwrap();
    b.admin(&["lock", "target", "db01", "--reason", "incident 42"]);
    // The live forward is cut: the local socket reaches EOF.
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut live, &mut rest);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "forward outlived the lock"
    );
    let closed = wait_audit(&b, "forward.closed", |v| {
        v["reason"].as_str().is_some_and(|r| r.contains("killed"))
    });
    assert_eq!(closed["target"], "db01");
    let out = b.stdio_forward("alice", &format!("db01:{}", echo.port), b"x");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("incident 42"),
        "{}",
        text(&out.stderr)
    );
}
