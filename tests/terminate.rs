//! Every live thing after login shows in the sessions list with what it is
//! and ends by its id, through the API and through the CLI: a plain-user
//! connection carrying only a TCP forward, one TCP forward of it, and the
//! outer connection of `ssh -J`. (Before: the API listed them as live and
//! answered 404 to terminate; the CLI knew none of them.)

mod common;

use common::api::*;
use common::forward::*;
use common::jump::*;
use common::*;
use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// `POST /sessions/{id}/terminate` with `token`.
fn terminate(api: &Api, token: &str, id: &str) -> Reply {
    api.call(
        "POST",
        &format!("/api/v1/sessions/{id}/terminate"),
        Some(token),
        None,
    )
}

/// The id of the one live entry of `kind` in `GET /sessions` (ids in `not`
/// left out); `None` while there are none or several. Several for a moment
/// is usual: `Forwarding::start` probes the forward's port to know it
/// listens, and that probe is a short-lived forward of the same kind (taking
/// the first of two once killed the probe and left the real one running).
fn live_of(api: &Api, token: &str, kind: &str, not: &[String]) -> Option<String> {
    let r = api.call("GET", "/api/v1/sessions", Some(token), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let ids: Vec<String> = r.json()["live"]
        .as_array()?
        .iter()
        .filter(|s| s["kind"] == kind)
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .filter(|id| !not.contains(id))
        .collect();
    match ids.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// An open TCP connection through the forward, known to echo.
fn echoing(lport: u16) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", lport)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).unwrap();
    s
}

/// The socket is cut within 10 s.
fn cut(mut s: std::net::TcpStream, what: &str) {
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "{what} outlived its end"
    );
}

fn exits(c: &mut Child, what: &str) {
    wait_for(what, 10, || c.try_wait().unwrap().map(|_| ()));
}

#[test]
fn a_forward_only_connection_and_its_forwards_end_by_id_through_api_and_cli() {
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let token = token(&b, "responder", "killswitch", None);
    let echo = Service::start("127.0.0.1", Behaviour::Echo);
    b.add_tcp_target("db01", "127.0.0.1", echo.port, false);
    b.grant(&["--user", "alice", "--target", "db01"]);
    let lport = free_port();
    let forward = format!("{lport}:db01:{}", echo.port);
    let mut fwd = Forwarding::start(&b, "alice", &["-L", &forward], Some(lport));

    // One forward ends by its id (API); the connection carrying it goes on.
    let live = echoing(lport);
    let f1 = wait_for("a live forward", 10, || {
        live_of(&api, &token, "forward", &[])
    });
    let r = terminate(&api, &token, &f1);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["kind"], "forward");
    cut(live, "the forward");
    // ... and by its id through the CLI (it knows it from the audit trail).
    let live = echoing(lport);
    let f2 = wait_for("a second forward", 10, || {
        live_of(&api, &token, "forward", std::slice::from_ref(&f1))
    });
    let out = run(b.cli().args(["session", "kill", &f2]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("forward"),
        "{}",
        text(&out.stdout)
    );
    cut(live, "the second forward");

    // The plain connection itself: listed with its kind, ended by its id.
    let conn = wait_for("the connection", 10, || {
        live_of(&api, &token, "connection", &[])
    });
    let rows = text(&b.admin(&["session", "list"]).stdout);
    let row = rows.lines().find(|l| l.starts_with(&conn)).unwrap_or("");
    assert!(
        row.contains("\tlive\t") && row.contains("kind=connection"),
        "{rows}"
    );
    let r = terminate(&api, &token, &conn);
    assert_eq!(r.status, 200, "{}", r.body);
    exits(fwd.child(), "the forwarding ssh");
    // Terminating what has ended is a conflict, an unknown id is 404.
    wait_for("the row to close", 10, || {
        let rows = text(&b.admin(&["session", "list"]).stdout);
        let row = rows.lines().find(|l| l.starts_with(&conn))?.to_string();
        (!row.contains("\tlive\t")).then_some(())
    });
    let again = terminate(&api, &token, &conn);
    assert_eq!(again.status, 409, "{}", again.body);
    let none = api.call(
        "POST",
        "/api/v1/sessions/0123abcd/terminate",
        Some(&token),
        None,
    );
    assert_eq!(none.status, 404, "{}", none.body);
    let out = run(b.cli().args(["session", "kill", "0123abcd"]));
    assert!(!out.status.success() && text(&out.stderr).contains("no session or forward"));
    // The audit rows carry their session in its own column (queries by
    // session find them): the forwards under the connection, the
    // terminations under what they ended.
    let rows = b.audit_export(&[]);
    let session_of = |kind: &str, id: &str| {
        rows.iter()
            .find(|e| e["kind"] == kind && (e["detail"]["id"] == id || e["session"] == id))
            .and_then(|e| e["session"].as_str().map(str::to_string))
    };
    assert_eq!(
        session_of("forward.opened", &f1).as_deref(),
        Some(conn.as_str())
    );
    assert_eq!(
        session_of("session.terminated", &f1).as_deref(),
        Some(f1.as_str())
    );
    assert_eq!(
        session_of("session.terminated", &conn).as_deref(),
        Some(conn.as_str())
    );

    // The same connection kind, ended through the CLI.
    let mut fwd = Forwarding::start(&b, "alice", &["-L", &forward], Some(lport));
    let conn2 = wait_for("a new connection", 10, || {
        live_of(&api, &token, "connection", std::slice::from_ref(&conn))
    });
    let out = run(b.cli().args(["session", "kill", &conn2]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    exits(fwd.child(), "the second forwarding ssh");
}

#[test]
fn the_outer_connection_of_a_jump_ends_by_its_id() {
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let token = token(&b, "responder", "killswitch", None);
    let cfg = jump_config(&b, Outer::Key(&b.alice_key), Trust::HostCa, "");
    let mut child = ssh_jump(&cfg, "alice@bastion", &format!("{TARGET_USER}@web01"))
        .arg("echo started; sleep 60")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = [0u8; 8];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut line)
        .unwrap();
    assert_eq!(&line, b"started\n");
    let outer = wait_for("the outer connection", 10, || {
        live_of(&api, &token, "connection", &[])
    });
    let nested = live_of(&api, &token, "target", &[]).expect("the nested session is listed");
    assert_ne!(outer, nested);
    let out = run(b
        .cli()
        .args(["session", "kill", &outer, "--reason", "incident 7"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    exits(&mut child, "ssh -J");
    let rows = b.settled_sessions();
    for id in [&outer, &nested] {
        let row = rows
            .lines()
            .find(|l| l.starts_with(id.as_str()))
            .unwrap_or("");
        assert!(!row.contains("\tlive\t"), "{id} still live:\n{rows}");
    }
    // The nested session was killed with the outer one, for its reason
    // (halted at once, not left relaying until the outer transport drops).
    let nested_row = rows.lines().find(|l| l.starts_with(nested.as_str()));
    assert!(
        nested_row.is_some_and(|r| r.contains("killed:") && r.contains("incident 7")),
        "{rows}"
    );
}

/// Forwards through an SSH target's connection are live things of their
/// own (issue 16): a `-R` listener, a connection through it and a `-L`
/// through the target are listed with their kind and end by their id (API
/// and CLI: the listener through the CLI, which knows it only from its
/// audit row), and a revoked grant ends what is left within seconds.
#[test]
fn forwards_through_an_ssh_target_are_listed_end_by_id_and_end_on_revocation() {
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let token = token(&b, "responder", "killswitch", None);
    b.add_target("web03", &sshd);
    let grant = b.grant(&[
        "--user",
        "alice",
        "--target",
        "web03",
        "--login",
        TARGET_USER,
        "--allow",
        "shell,exec,local-forward,remote-forward",
    ]);
    let echo = Service::start("127.0.0.1", Behaviour::Echo);
    let (rport, lport) = (free_port(), free_port());
    let _r = Forwarding::start(
        &b,
        "alice+web03",
        &["-R", &format!("{rport}:127.0.0.1:{}", echo.port)],
        Some(rport),
    );
    let listener = wait_for("a live -R listener", 10, || {
        live_of(&api, &token, "remote-listener", &[])
    });
    let through_r = echoing(rport);
    let rf = wait_for("a live -R connection", 10, || {
        live_of(&api, &token, "remote-forward", &[])
    });
    let _l = Forwarding::start(
        &b,
        "alice+web03",
        &["-L", &format!("{lport}:127.0.0.1:{}", echo.port)],
        Some(lport),
    );
    let through_l = echoing(lport);
    let lf = wait_for("a live -L through web03", 10, || {
        live_of(&api, &token, "forward", &[])
    });

    // The -L connection ends by its id through the CLI (known from the
    // audit trail); the -R connection by its id through the API.
    let out = run(b.cli().args(["session", "kill", &lf]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    cut(through_l, "the -L through web03");
    let r = terminate(&api, &token, &rf);
    assert_eq!(r.status, 200, "{}", r.body);
    cut(through_r, "the -R connection");
    // The listener, by its id through the CLI (another process: it knows
    // the listener from its audit row): its end stops the target listening.
    let out = run(b.cli().args(["session", "kill", &listener]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for("the target to stop listening", 10, || {
        std::net::TcpStream::connect(("127.0.0.1", rport))
            .is_err()
            .then_some(())
    });
    let closed = wait_for("the listener's close row", 10, || {
        b.audit_details("forward.closed")
            .into_iter()
            .find(|v| v["id"] == listener.as_str())
    });
    assert_eq!(closed["kind"], "remote-listener", "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("killed")),
        "{closed}"
    );

    // A revoked grant ends a live forward through the target within seconds.
    let through_l = echoing(lport);
    let lf2 = wait_for("a second -L through web03", 10, || {
        live_of(&api, &token, "forward", std::slice::from_ref(&lf))
    });
    b.admin(&["grant", "remove", &grant]);
    cut(through_l, "the -L after its grant was revoked");
    wait_for("the forward to leave the list", 10, || {
        let r = api.call("GET", "/api/v1/sessions", Some(&token), None);
        (!r.body.contains(&lf2)).then_some(())
    });
}

/// An agent channel the target opens is a live thing too: listed with
/// kind "agent" and ended by its id, while the session carrying it goes on.
#[test]
fn an_agent_channel_is_listed_and_ends_by_id() {
    need("ssh-agent", "openssh-client");
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let token = token(&b, "responder", "killswitch", None);
    b.add_target("web03", &sshd);
    b.grant(&[
        "--user",
        "alice",
        "--target",
        "web03",
        "--login",
        TARGET_USER,
        "--allow",
        "shell,exec,agent",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    // Killed on drop: a failed assertion must not leave it holding the
    // test's stderr.
    let _agent = Reaped(
        std::process::Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the agent socket", 10, || sock.exists().then_some(()));
    // On the target: hold the forwarded agent open until it is cut.
    let hold = "python3 -c \"import os,socket; s=socket.socket(socket.AF_UNIX); \
        s.connect(os.environ['SSH_AUTH_SOCK']); print('held', flush=True); \
        print('cut' if s.recv(1) == b'' else 'data', flush=True)\"; echo after";
    let mut child = Reaped(
        b.ssh("alice+web03")
            .arg("-A")
            .env("SSH_AUTH_SOCK", &sock)
            .arg(hold)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = child.0.stdout.take().unwrap();
    let mut held = [0u8; 5];
    out.read_exact(&mut held).unwrap();
    assert_eq!(&held, b"held\n");
    let id = wait_for("a live agent channel", 10, || {
        live_of(&api, &token, "agent", &[])
    });
    let r = terminate(&api, &token, &id);
    assert_eq!(r.status, 200, "{}", r.body);
    exits(&mut child.0, "ssh -A");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    // The agent channel was cut; the session went on to run `echo after`.
    assert_eq!(rest, "cut\nafter\n");
}

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A forward through a target watches its own grant: a grant narrowed to
/// no port forwarding ends the live forward within seconds, while the
/// session (whose shell the grant still allows) goes on. (Before, only the
/// session was watched, and a narrowed grant left live forwards running.)
#[test]
fn a_grant_narrowed_to_no_forwarding_ends_the_forward_not_the_session() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    b.add_target("web03", &sshd);
    let grant = |allow: &str| {
        b.grant(&[
            "--user",
            "alice",
            "--target",
            "web03",
            "--login",
            TARGET_USER,
            "--allow",
            allow,
        ])
    };
    let wide = grant("shell,exec,local-forward");
    let echo = Service::start("127.0.0.1", Behaviour::Echo);
    let lport = free_port();
    let mut fwd = Forwarding::start(
        &b,
        "alice+web03",
        &["-L", &format!("{lport}:127.0.0.1:{}", echo.port)],
        Some(lport),
    );
    let through = echoing(lport);
    // The narrow grant first, so the session is never without one.
    grant("shell,exec");
    b.admin(&["grant", "remove", &wide]);
    cut(through, "the forward after its grant dropped forwarding");
    let closed = wait_for("the forward's close", 15, || {
        b.audit_details("forward.closed").into_iter().find(|v| {
            v["reason"]
                .as_str()
                .is_some_and(|r| r.contains("no longer allowed"))
        })
    });
    assert_eq!(closed["via"], "web03", "{closed}");
    assert!(
        fwd.child().try_wait().unwrap().is_none(),
        "the session ended with the forward"
    );
}

/// The live list carries the bytes moved so far (the counters the bridge
/// and the relay add to), not zeros: a session that sent N bytes to its
/// client and a forward that carried N bytes each way show at least N.
#[test]
fn live_entries_carry_the_bytes_moved_so_far() {
    const N: u64 = 200_000;
    let sshd = Sshd::start();
    let (b, port) = standard_with_api(&sshd);
    let api = Api::new(&b, port);
    let token = token(&b, "responder", "killswitch", None);
    let live_entry = |kind: &str| {
        let id = live_of(&api, &token, kind, &[])?;
        let r = api.call("GET", "/api/v1/sessions", Some(&token), None);
        r.json()["live"]
            .as_array()?
            .iter()
            .find(|s| s["id"] == id.as_str())
            .cloned()
    };

    // A session: N bytes down to the client, then it stays open.
    let mut child = Reaped(
        b.ssh("alice+web01")
            .arg(format!("head -c {N} /dev/zero; sleep 60"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = child.0.stdout.take().unwrap();
    let mut got = vec![0u8; N as usize];
    out.read_exact(&mut got).unwrap();
    let s = wait_for("the session's bytes listed", 10, || {
        let s = live_entry("target")?;
        (s["bytes_down"].as_u64()? >= N).then_some(s)
    });
    assert!(s["bytes_up"].as_u64().is_some(), "{s}");

    // A forward to a TCP target: N bytes each way through an echo.
    let echo = Service::start("127.0.0.1", Behaviour::Echo);
    b.add_tcp_target("db01", "127.0.0.1", echo.port, false);
    b.grant(&["--user", "alice", "--target", "db01"]);
    let lport = free_port();
    let forward = format!("{lport}:db01:{}", echo.port);
    let _fwd = Forwarding::start(&b, "alice", &["-L", &forward], Some(lport));
    let mut conn = echoing(lport);
    let block = vec![7u8; N as usize];
    conn.write_all(&block).unwrap();
    let mut back = vec![0u8; N as usize];
    conn.read_exact(&mut back).unwrap();
    let f = wait_for("the forward's bytes listed", 10, || {
        let f = live_entry("forward")?;
        (f["bytes_up"].as_u64()? >= N && f["bytes_down"].as_u64()? >= N).then_some(f)
    });
    assert_eq!(f["kind"], "forward", "{f}");
}
