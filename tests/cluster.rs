//! Several `serve` nodes on one PostgreSQL (issue 19): a node's start-up
//! recovery touches only what is its own or a dead node's; a dead node's
//! sessions are closed once, audited; nodes must share their keys; two
//! nodes starting at once on nothing both start.
//!
//! Needs the CI's PostgreSQL (`PORTCULLIS_TEST_PG_URL`): without it these
//! tests fail, they do not skip.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use cluster::*;
use common::api::{Api, api_section, token};
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Node `a` set up with alice (a service account with `a`'s key), web01
/// and a grant, through `a`'s CLI (the database is shared).
fn standard(a: &Bastion, sshd: &Sshd) {
    a.add_service_alice();
    a.add_target("web01", sshd);
    a.grant(&[
        "--user",
        "alice",
        "--target",
        "web01",
        "--login",
        TARGET_USER,
    ]);
}

/// A recorded command through node `via` that prints `started` then runs long.
fn live(via: &Bastion, key: &std::path::Path) -> Child {
    let mut c = via
        .ssh_key("alice+web01", key)
        .arg("echo started; sleep 120")
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

/// The one live session's id.
fn live_id(b: &Bastion) -> String {
    wait_for("the live session row", 10, || {
        sessions(b)
            .lines()
            .find(|l| l.contains("\tlive\t") && l.contains("kind=target"))
            .map(|l| l.split('\t').next().unwrap().to_string())
    })
}

fn audit(b: &Bastion) -> String {
    text(&b.admin(&["audit", "list"]).stdout)
}

#[test]
fn restarting_a_node_leaves_the_other_nodes_session_live_and_killable() {
    let sshd = Sshd::start();
    let shared = Shared::new("rs", "30s");
    let mut a = shared.node("alpha", &[]);
    standard(&a, &sshd);
    a.start();
    let mut b = shared.node("beta", &[]);
    b.start();
    let mut client = live(&b, &a.alice_key);
    let id = live_id(&a);
    let cast = cast_of(&shared.recordings(), &id);

    // Attack: restart the other node while beta holds the session.
    a.stop();
    a.start();

    let line = session_line(&a, &id);
    assert!(
        line.contains("\tlive\t"),
        "alpha's restart ended beta's live session: {line}\n{}",
        a.log()
    );
    // The trailer (with its end reason) goes to the .chain file.
    let chain = std::fs::read_to_string(cast.with_extension("chain")).unwrap();
    assert!(
        !chain.contains("cut short"),
        "alpha's restart sealed beta's live recording:\n{chain}"
    );
    let log = audit(&a);
    assert!(
        !log.contains("recording.cut_short") && !log.contains("node.found_dead"),
        "a false cut short / dead node in the audit:\n{log}"
    );
    assert!(
        client.try_wait().unwrap().is_none(),
        "the client's session ended"
    );

    // The kill switch still reaches it, from the restarted node's side.
    a.admin(&["session", "kill", &id, "--reason", "cluster test"]);
    let status = wait::status_within(
        &mut client,
        "the killed session's client",
        Duration::from_secs(10),
    );
    assert!(!status.success());
    wait_until("the session row ended", 10, || {
        !session_line(&a, &id).contains("\tlive\t")
    });
    b.stop();
    a.stop();
}

#[test]
fn a_node_killed_hard_has_its_sessions_closed_once_by_the_others() {
    let sshd = Sshd::start();
    let shared = Shared::new("dd", "4s");
    let mut a = shared.node("alpha", &[]);
    standard(&a, &sshd);
    a.start();
    let mut b = shared.node("beta", &[]);
    b.start();
    // Two survivors race to notice beta: one of them closes it, once.
    let mut c = shared.node("gamma", &[]);
    c.start();
    let client = live(&b, &a.alice_key);
    let id = live_id(&a);
    let cast = cast_of(&shared.recordings(), &id);

    // beta dies without a word: no end row, no trailer.
    Command::new("kill")
        .args(["-9", &b.pid().to_string()])
        .status()
        .unwrap();
    let killed = std::time::Instant::now();
    b.forget_child();
    let _ = client.wait_with_output();

    wait_until("a survivor closes beta's session", 30, || {
        !session_line(&a, &id).contains("\tlive\t")
    });
    eprintln!(
        "beta's session closed {} ms after SIGKILL (node_expiry 4 s)",
        killed.elapsed().as_millis()
    );
    let line = session_line(&a, &id);
    assert!(
        line.contains("cut short: node beta stopped answering; closed by node "),
        "{line}"
    );
    let sealed = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_to_string(cast.with_extension("chain"))
            .unwrap()
            .contains("cut short")
    });
    assert!(
        sealed,
        "beta's recording not sealed:\n{}\n{}",
        a.log(),
        c.log()
    );
    // Several heartbeats later: still exactly once.
    std::thread::sleep(Duration::from_secs(5));
    let log = audit(&a);
    let dead: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("node.found_dead"))
        .collect();
    assert_eq!(dead.len(), 1, "{log}");
    assert!(
        dead[0].contains("\"node\":\"beta\"")
            && (dead[0].contains("\"found_by\":\"alpha\"")
                || dead[0].contains("\"found_by\":\"gamma\"")),
        "{}",
        dead[0]
    );
    assert!(dead[0].contains("\"sessions\":1"), "{}", dead[0]);
    let cut = log
        .lines()
        .filter(|l| l.contains("recording.cut_short"))
        .count();
    assert_eq!(cut, 1, "{log}");
    let out = a.cli().args(["verify", &id]).output().unwrap();
    assert!(
        out.status.success() && text(&out.stdout).contains("cut short"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    c.stop();
    a.stop();
}

#[test]
fn a_node_declared_dead_ends_its_sessions_and_stops() {
    let sshd = Sshd::start();
    let shared = Shared::new("dz", "3s");
    let mut a = shared.node("alpha", &[]);
    standard(&a, &sshd);
    a.start();
    let mut b = shared.node("beta", &[]);
    b.start();
    let mut client = live(&b, &a.alice_key);
    // What another node does when beta's heartbeat stops reaching the
    // database for node_expiry (an outage on beta's side): it claims beta's
    // run and closes its rows. beta, still running, must not go on serving
    // sessions the database says are over.
    pg_exec(
        &shared.url,
        &[
            "UPDATE nodes SET state = 'dead', claimed_by = 'test' WHERE node = 'beta' AND state = 'up'",
        ],
    );
    let status = wait::status_within(&mut client, "beta's client", Duration::from_secs(15));
    assert!(
        !status.success(),
        "the session on beta went on:\n{}",
        b.log()
    );
    let exited = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        b.log().contains("another node declared node beta dead")
    });
    assert!(exited, "beta kept serving:\n{}", b.log());
    b.stop();
    a.stop();
}

#[test]
fn a_node_with_other_keys_refuses_to_start_naming_the_key() {
    let shared = Shared::new("ks", "30s");
    let mut a = shared.node("alpha", &[]);
    a.start();
    for key in [
        "audit_key_file",
        "audit_chain_key_file",
        "host_ca_file",
        "kek_file",
    ] {
        let b = shared.node("beta", &[key]);
        let out = serve_output(&b, 30);
        let err = text(&out.stderr);
        assert!(
            !out.status.success(),
            "{key}: a node with its own key started:\n{err}"
        );
        assert!(
            err.contains(&format!("{key} "))
                && err.contains("every node on one database must share"),
            "{key}: {err}"
        );
    }
    // A new host CA (the answer to a leak) once every node is stopped.
    a.stop();
    std::fs::remove_file(shared.path("host-ca")).unwrap();
    a.start();
    assert!(a.log().contains("a new host CA"), "{}", a.log());
    a.stop();
}

#[test]
fn two_nodes_started_at_once_on_nothing_both_start() {
    for round in 0..3 {
        let shared = Shared::new(&format!("cc{round}"), "30s");
        let mut a = shared.node("alpha", &[]);
        let mut b = shared.node("beta", &[]);
        let (ra, rb) = std::thread::scope(|s| {
            let ta =
                s.spawn(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.start())));
            let tb =
                s.spawn(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.start())));
            (ta.join().unwrap(), tb.join().unwrap())
        });
        assert!(
            ra.is_ok() && rb.is_ok(),
            "round {round}:\nalpha:\n{}\nbeta:\n{}",
            a.log(),
            b.log()
        );
        a.stop();
        b.stop();
    }
}

#[test]
fn a_second_live_node_with_the_same_name_is_refused() {
    let shared = Shared::new("dn", "6s");
    let mut a = shared.node("alpha", &[]);
    a.start();
    // Another data directory, the same configured name: its recovery
    // would take the live alpha's sessions for its own earlier run's.
    let twin = shared.node("alpha", &[]);
    let out = serve_output(&twin, 30);
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "a twin of a live node started:\n{err}"
    );
    assert!(
        err.contains("another running node is named \"alpha\""),
        "{err}"
    );
    a.stop();
}

#[test]
fn a_copied_data_directory_does_not_pose_as_a_live_node() {
    let shared = Shared::new("cp", "6s");
    let mut a = shared.node("", &[]);
    a.start();
    // A second host made from a copy of the first one's data directory:
    // the same node-id, so the same node to the database.
    let clone = shared.node("", &[]);
    std::fs::create_dir_all(clone.data_dir()).unwrap();
    std::fs::copy(
        a.data_dir().join("node-id"),
        clone.data_dir().join("node-id"),
    )
    .unwrap();
    let out = serve_output(&clone, 30);
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "a copy of a live node started:\n{err}"
    );
    assert!(err.contains("was the data directory copied?"), "{err}");
    // The original goes on: nothing of it was claimed.
    assert!(!audit(&a).contains("node.found_dead"), "{}", audit(&a));
    a.stop();
}

/// A live session's id that is not in `seen` (the earlier ones may still
/// be live for a moment after their kill).
fn fresh_live_id(b: &Bastion, seen: &std::collections::HashSet<String>) -> String {
    wait_for("the new live session row", 10, || {
        sessions(b)
            .lines()
            .filter(|l| l.contains("\tlive\t") && l.contains("kind=target"))
            .map(|l| l.split('\t').next().unwrap().to_string())
            .find(|id| !seen.contains(id))
    })
}

/// A node whose admin API listens on its own port, and the port.
fn node_with_api(shared: &Shared, name: &str, url: &str, cluster: &str) -> (Bastion, u16) {
    let port = free_port();
    let b = shared.node_with(name, &[], url, cluster, &api_section(port, ""));
    (b, port)
}

/// Cross-node kill latency (issue 19 point 2): a session on beta ended
/// through alpha's API, 100 times; the time from the request to the
/// client's exit. Measured and printed (goal: p99 within 100 ms, which the
/// 200 ms poll alone cannot give); asserted only loosely.
#[test]
fn cross_node_kill_latency_over_100_kills() {
    let sshd = Sshd::start();
    let shared = Shared::new("kl", "30s");
    let (mut a, port) = node_with_api(&shared, "alpha", &shared.url, "");
    standard(&a, &sshd);
    a.start();
    wait_port(port, "alpha's API", &a.log_path());
    let mut b = shared.node("beta", &[]);
    b.start();
    let tok = token(&a, "bench", "killswitch", None);
    let api = Api::new(&a, port);
    let mut seen = std::collections::HashSet::new();
    let mut ms = Vec::new();
    let n: usize = std::env::var("PORTCULLIS_KILL_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    for _ in 0..n {
        let mut client = live(&b, &a.alice_key);
        let id = fresh_live_id(&a, &seen);
        seen.insert(id.clone());
        let t0 = std::time::Instant::now();
        api.expect(
            200,
            "POST",
            &format!("/api/v1/sessions/{id}/terminate"),
            &tok,
            Some(r#"{"reason":"latency bench"}"#),
        );
        while client.try_wait().unwrap().is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "kill of {id} not seen in 10 s:\n{}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    eprintln!(
        "cross-node kill latency over {n} kills: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        ms[ms.len() - 1]
    );
    // The poll alone (every 200 ms) puts the median near 100 ms or more.
    assert!(pct(0.50) < 60.0, "median {:.1} ms: no wake-up?", pct(0.50));
    b.stop();
    a.stop();
}

/// `ssh alice+web01 echo ok` through `b`: its output, within 30 s.
fn echo(b: &Bastion) -> std::process::Output {
    wait::output_within(
        b.ssh_key("alice+web01", &b.alice_key).arg("echo ok"),
        Duration::from_secs(30),
    )
}

/// Issue 19 point 3: a database outage is visible and bounded. Before,
/// a login hung ~30 s and the client read only "Connection closed".
#[test]
fn a_database_outage_refuses_logins_at_once_with_a_message_and_health_says_why() {
    let sshd = Sshd::start();
    let shared = Shared::new("ol", "30s");
    let gate = PgGate::new(&shared.url);
    let (mut a, port) = node_with_api(&shared, "alpha", &gate.url(&shared.url), "");
    standard(&a, &sshd);
    a.start();
    wait_port(port, "alpha's API", &a.log_path());
    assert!(echo(&a).status.success(), "{}", a.log());
    let api = Api::new(&a, port);
    assert_eq!(api.call("GET", "/api/v1/health", None, None).status, 200);

    gate.cut();
    let t0 = std::time::Instant::now();
    // Every attempt ends at once; from the first seconds on, with the reason.
    let told = loop {
        let t1 = std::time::Instant::now();
        let out = echo(&a);
        let took = t1.elapsed();
        assert!(
            !out.status.success(),
            "a login went through without a database"
        );
        assert!(took < Duration::from_secs(5), "a login hung {took:?}");
        let err = text(&out.stderr);
        if err.contains("portcullis cannot reach its database; try again shortly") {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the client was not told why: {err}\n{}",
            a.log()
        );
    };
    eprintln!(
        "logins refused with the reason {} ms into the outage",
        told.as_millis()
    );
    // (An answer is reused for a second.)
    let h = wait_for("health turns red", 5, || {
        let h = api.call("GET", "/api/v1/health", None, None);
        (h.status == 503).then_some(h)
    });
    assert!(
        h.body.contains("cannot reach its database") && h.body.contains("\"database\":\"failing\""),
        "{}",
        h.body
    );

    gate.restore();
    wait_until("logins work again", 20, || echo(&a).status.success());
    wait_until("health is green again", 10, || {
        api.call("GET", "/api/v1/health", None, None).status == 200
    });
    a.stop();
}

/// `on_db_outage = "end"`: live sessions end at once, the user reads why,
/// and the row is closed when the database answers again (before, it
/// stayed "live" until the node restarted).
#[test]
fn on_db_outage_end_ends_live_sessions_with_a_message_and_closes_their_rows_later() {
    let sshd = Sshd::start();
    let shared = Shared::new("oe", "30s");
    let gate = PgGate::new(&shared.url);
    let mut a = shared.node_with(
        "alpha",
        &[],
        &gate.url(&shared.url),
        "on_db_outage = \"end\"\n",
        "",
    );
    standard(&a, &sshd);
    a.start();
    let mut client = live(&a, &a.alice_key);
    let id = live_id(&a);
    gate.cut();
    let t0 = std::time::Instant::now();
    let status = wait::status_within(&mut client, "the session's client", Duration::from_secs(10));
    eprintln!(
        "live session ended {} ms into the outage",
        t0.elapsed().as_millis()
    );
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(client.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("portcullis cannot reach its database"),
        "{err}"
    );
    gate.restore();
    wait_until("the row is closed once the database answers", 20, || {
        let l = session_line(&a, &id);
        !l.is_empty() && !l.contains("\tlive\t")
    });
    let log = audit(&a);
    assert!(
        log.lines()
            .any(|l| l.contains("session.ended") && l.contains(&id)),
        "{log}"
    );
    a.stop();
}

/// `on_db_outage = "keep"` (the default): a live session goes on through
/// an outage shorter than the fence, and its end during the outage is
/// written when the database answers.
#[test]
fn on_db_outage_keep_keeps_live_sessions_and_writes_their_end_later() {
    let sshd = Sshd::start();
    let shared = Shared::new("ok", "30s");
    let gate = PgGate::new(&shared.url);
    let mut a = shared.node_with("alpha", &[], &gate.url(&shared.url), "", "");
    standard(&a, &sshd);
    a.start();
    let mut client = a
        .ssh_key("alice+web01", &a.alice_key)
        .arg("echo started; sleep 6; echo finished")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Running (recorded, forwarded) before the outage begins.
    let mut line = String::new();
    BufReader::new(client.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    let id = live_id(&a);
    gate.cut();
    let out = wait::output_of(client, "the kept session", Duration::from_secs(30));
    assert!(
        out.status.success() && text(&out.stdout).contains("finished"),
        "the session did not survive the outage: {}{}\n{}",
        text(&out.stdout),
        text(&out.stderr),
        a.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    gate.restore();
    wait_until("the row is closed once the database answers", 20, || {
        let l = session_line(&a, &id);
        !l.is_empty() && !l.contains("\tlive\t")
    });
    let out = a.cli().args(["verify", &id]).output().unwrap();
    assert!(
        out.status.success() && !text(&out.stdout).contains("cut short"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    a.stop();
}

/// Issue 19 point 2: a kill and a lock made through the API while the
/// database is down are enforced on the node that got them, and written
/// (audited too) when it answers again. Before, the API answered 503
/// "token check failed" and nothing was locked.
#[test]
fn locks_and_kills_during_an_outage_are_enforced_here_and_written_later() {
    let sshd = Sshd::start();
    let shared = Shared::new("ow", "30s");
    let gate = PgGate::new(&shared.url);
    let (mut a, port) = node_with_api(&shared, "alpha", &gate.url(&shared.url), "");
    standard(&a, &sshd);
    a.start();
    wait_port(port, "alpha's API", &a.log_path());
    let tok = token(&a, "oncall", "killswitch", None);
    let api = Api::new(&a, port);
    // The token was seen while the database answered.
    api.expect(200, "GET", "/api/v1/locks", &tok, None);
    let mut client = live(&a, &a.alice_key);
    let id = live_id(&a);
    gate.cut();
    std::thread::sleep(Duration::from_secs(1));
    let r = api.call(
        "POST",
        &format!("/api/v1/sessions/{id}/terminate"),
        Some(&tok),
        Some(r#"{"reason":"outage kill"}"#),
    );
    assert_eq!(r.status, 200, "kill during the outage: {}", r.body);
    let status = wait::status_within(&mut client, "the killed client", Duration::from_secs(10));
    assert!(!status.success());
    let r = api.call(
        "POST",
        "/api/v1/locks",
        Some(&tok),
        Some(r#"{"scope":{"kind":"user","value":"alice"},"reason":"outage lock"}"#),
    );
    assert!(
        r.status == 200 || r.status == 201 || r.status == 202,
        "lock during the outage: {} {}",
        r.status,
        r.body
    );
    gate.restore();
    // Written when the database answers: the lock holds on every node.
    wait_until("the outage lock is stored", 20, || {
        text(&a.admin(&["lock", "list"]).stdout).contains("outage lock")
    });
    let out = echo(&a);
    assert!(
        !out.status.success() && text(&out.stderr).contains("outage lock"),
        "alice got in past the outage lock: {}",
        text(&out.stderr)
    );
    wait_until("the outage's kill switch is in the audit", 10, || {
        let log = audit(&a);
        log.contains("outage kill") && log.contains("outage lock")
    });
    wait_until("the killed row is closed", 10, || {
        !session_line(&a, &id).contains("\tlive\t")
    });
    let out = a.admin(&["audit", "verify"]);
    assert!(text(&out.stdout).starts_with("OK"), "{}", text(&out.stdout));
    a.stop();
}

/// The weakness node identity left: a node cut off from the database for
/// longer than node_expiry is claimed by another node while its sessions
/// run. Now it ends them itself at two thirds of node_expiry, so the
/// claimer finds them sealed by their own node, not cut short under it.
#[test]
fn a_node_cut_off_from_the_database_fences_itself_before_others_claim_it() {
    let sshd = Sshd::start();
    let shared = Shared::new("fz", "6s");
    let mut a = shared.node("alpha", &[]);
    standard(&a, &sshd);
    a.start();
    let gate = PgGate::new(&shared.url);
    let mut b = shared.node_with("beta", &[], &gate.url(&shared.url), "", "");
    b.start();
    let mut client = live(&b, &a.alice_key);
    let id = live_id(&a);
    let cast = cast_of(&shared.recordings(), &id);
    gate.cut();
    let t0 = std::time::Instant::now();
    let status = wait::status_within(&mut client, "beta's client", Duration::from_secs(20));
    let ended = t0.elapsed();
    assert!(!status.success());
    // The claim comes at node_expiry (6 s) after beta's last heartbeat.
    wait_until("alpha claims beta", 30, || {
        audit(&a).contains("node.found_dead")
    });
    let claimed = t0.elapsed();
    eprintln!(
        "beta ended its session {} ms into the outage; alpha claimed beta after {} ms",
        ended.as_millis(),
        claimed.as_millis()
    );
    assert!(ended < claimed, "beta's session ran until it was claimed");
    let chain = std::fs::read_to_string(cast.with_extension("chain")).unwrap();
    assert!(
        chain.contains("fenced off"),
        "beta's recording was not sealed by beta:\n{chain}"
    );
    gate.restore();
    b.stop();
    a.stop();
}

/// The `[ssh]` section naming the test's load balancer (HAProxy on
/// 127.0.0.1; clients come from other loopback addresses).
const BEHIND_LB: &str = "[ssh]\nproxy_protocol_from = [\"127.0.0.1/32\"]\n";

/// A node behind the balancer with its API on its own port.
fn lb_node(shared: &Shared, name: &str) -> (Bastion, u16) {
    let port = free_port();
    let b = shared.node_with(
        name,
        &[],
        &shared.url,
        "",
        &format!("{}{BEHIND_LB}", api_section(port, "")),
    );
    (b, port)
}

/// `ssh alice+web01@127.0.0.1 -p PORT echo ok` from source address `from`.
fn echo_from(b: &Bastion, from: &str, port: u16) -> std::process::Output {
    wait::output_within(
        std::process::Command::new("ssh")
            .args(b.ssh_opts_with(&b.alice_key))
            .args([
                "-b",
                from,
                "-p",
                &port.to_string(),
                "alice+web01@127.0.0.1",
                "echo ok",
            ])
            .stdin(Stdio::null()),
        Duration::from_secs(30),
    )
}

/// Both nodes' host keys for the balancer's port in `via`'s known_hosts.
fn trust_lb(via: &Bastion, nodes: &[&Bastion], lb: u16) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(via.known_hosts())
        .unwrap();
    for n in nodes {
        let key = std::fs::read_to_string(n.data_dir().join("host_ed25519.pub")).unwrap();
        writeln!(f, "[127.0.0.1]:{lb} {}", key.trim()).unwrap();
    }
}

/// Issue 19 point 6: two nodes behind a real HAProxy sending PROXY v2.
/// The client address it carries is the one throttles, locks and the audit
/// see; the balancer's own address without a header, and a header from
/// anyone else, are refused (sshpiper GHSA-4w53-6jvp-gg52).
#[test]
fn two_nodes_behind_haproxy_see_the_real_client_and_a_forged_header_is_refused() {
    let sshd = Sshd::start();
    let shared = Shared::new("lb", "30s");
    let (mut a, pa) = lb_node(&shared, "alpha");
    standard(&a, &sshd);
    a.start();
    let (mut b, pb) = lb_node(&shared, "beta");
    b.start();
    wait_port(pa, "alpha's API", &a.log_path());
    wait_port(pb, "beta's API", &b.log_path());
    let lb = Haproxy::start(&[(a.port, pa), (b.port, pb)]);
    trust_lb(&a, &[&a, &b], lb.port);
    // Through the balancer from 127.0.0.2: both nodes serve, each audits
    // the real client.
    wait_until("logins through the balancer", 20, || {
        echo_from(&a, "127.0.0.2", lb.port).status.success()
    });
    for _ in 0..3 {
        let out = echo_from(&a, "127.0.0.2", lb.port);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let logins: Vec<String> = audit(&a)
        .lines()
        .filter(|l| l.contains("login.succeeded"))
        .map(str::to_string)
        .collect();
    assert!(!logins.is_empty());
    for l in &logins {
        assert!(
            l.contains("127.0.0.2"),
            "a login audited without the real client: {l}"
        );
    }
    for n in [&a, &b] {
        assert!(
            n.log()
                .lines()
                .any(|l| l.contains("login succeeded") && l.contains("127.0.0.2")),
            "a node did not serve through the balancer:\n{}",
            n.log()
        );
    }
    // A source lock on the real client's address applies through the
    // balancer; another client behind the same balancer is not locked.
    a.admin(&["lock", "source", "127.0.0.2/32", "--reason", "lb test"]);
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..2 {
        let out = echo_from(&a, "127.0.0.2", lb.port);
        assert!(
            !out.status.success(),
            "the locked client got in through the balancer"
        );
    }
    let out = echo_from(&a, "127.0.0.3", lb.port);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Attack: the balancer's address without a header.
    let out = echo_from(&a, "127.0.0.1", a.port);
    assert!(
        !out.status.success(),
        "a header-less connection from the balancer's address got in"
    );
    assert!(
        a.log()
            .contains("no PROXY protocol v2 header from a load balancer")
    );

    // Attack (sshpiper GHSA-4w53): from the locked address straight to a
    // node, a forged header claiming an unlocked client. Believed, it would
    // pass the source lock and the node would send its SSH version.
    let mut forged = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    forged.extend_from_slice(&[10, 66, 0, 1, 127, 0, 0, 1, 0x30, 0x39, 0, 22]);
    forged.extend_from_slice(b"SSH-2.0-OpenSSH_9.2\r\n");
    let got = raw_exchange("127.0.0.2", a.port, &forged);
    assert!(
        !String::from_utf8_lossy(&got).contains("SSH-2.0"),
        "a forged PROXY header from a non-balancer got past the source lock"
    );
    // From an unlocked, non-balancer address plain SSH works.
    let out = echo_from(&a, "127.0.0.4", a.port);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !a.log().contains("10.66.0.1") && !audit(&a).contains("10.66.0.1"),
        "a forged PROXY header from a non-balancer was believed"
    );
    drop(lb);
    b.stop();
    a.stop();
}

/// Connects from `from` to `port`, sends `bytes`, and returns what came
/// back within 3 s.
fn raw_exchange(from: &str, port: u16, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    sock.bind(&local.into()).unwrap();
    let to: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut got = Vec::new();
    if sock.connect(&to.into()).is_err() {
        return got;
    }
    let mut s = std::net::TcpStream::from(sock);
    let _ = s.write_all(bytes);
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Issue 19 point 7: SIGTERM on one node behind HAProxy. Its live session
/// keeps its grace and then ends as a shutdown ends it; its health turns
/// red at once, so every new connection meanwhile goes to the other node.
#[test]
fn draining_one_node_behind_haproxy_keeps_the_cluster_serving() {
    let sshd = Sshd::start();
    let shared = Shared::new("dr", "30s");
    let grace = "[limits]\nshutdown_grace_secs = 6\n";
    let node = |name: &str| {
        let port = free_port();
        let b = shared.node_with(
            name,
            &[],
            &shared.url,
            "",
            &format!("{}{BEHIND_LB}{grace}", api_section(port, "")),
        );
        (b, port)
    };
    let (mut a, pa) = node("alpha");
    standard(&a, &sshd);
    a.start();
    let (mut b, pb) = node("beta");
    b.start();
    wait_port(pa, "alpha's API", &a.log_path());
    wait_port(pb, "beta's API", &b.log_path());
    let lb = Haproxy::start(&[(a.port, pa), (b.port, pb)]);
    trust_lb(&a, &[&a, &b], lb.port);
    wait_until("logins through the balancer", 20, || {
        echo_from(&a, "127.0.0.2", lb.port).status.success()
    });
    // A live session on alpha (straight from a client address).
    let mut client = std::process::Command::new("ssh")
        .args(a.ssh_opts_with(&a.alice_key))
        .args([
            "-b",
            "127.0.0.4",
            "-p",
            &a.port.to_string(),
            "alice+web01@127.0.0.1",
        ])
        .arg("echo started; sleep 120")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(client.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    let id = live_id(&a);

    Command::new("kill")
        .args(["-TERM", &a.pid().to_string()])
        .status()
        .unwrap();
    let t0 = std::time::Instant::now();
    let api = Api::new(&a, pa);
    let h = wait_for("alpha's health says draining", 3, || {
        let h = api.call("GET", "/api/v1/health", None, None);
        (h.status == 503).then_some(h)
    });
    assert!(h.body.contains("draining"), "{}", h.body);
    // During alpha's grace every new login goes through, to beta.
    let mut served = 0;
    while t0.elapsed() < Duration::from_secs(4) {
        let out = echo_from(&a, "127.0.0.2", lb.port);
        assert!(
            out.status.success(),
            "a login through the balancer failed while alpha drained: {}",
            text(&out.stderr)
        );
        served += 1;
    }
    assert!(served >= 2);
    assert!(
        client.try_wait().unwrap().is_none(),
        "alpha's live session ended before its grace"
    );
    let status = wait::status_within(&mut client, "alpha's session", Duration::from_secs(20));
    assert!(!status.success());
    wait_until("alpha's session row ends as a shutdown", 10, || {
        session_line(&b, &id).contains("portcullis shut down")
    });
    drop(lb);
    b.stop();
    a.stop();
}

/// Issue 19 point 4: another node's live session is listed as live by any
/// node's API, with the node that holds it. Before, alpha listed beta's
/// session only under `recent`, with `"live": false`.
#[test]
fn any_node_lists_every_nodes_live_sessions_with_their_node() {
    let sshd = Sshd::start();
    let shared = Shared::new("cv", "30s");
    let (mut a, pa) = node_with_api(&shared, "alpha", &shared.url, "");
    standard(&a, &sshd);
    a.start();
    wait_port(pa, "alpha's API", &a.log_path());
    let mut b = shared.node("beta", &[]);
    b.start();
    let mut client = live(&b, &a.alice_key);
    let id = live_id(&a);
    let tok = token(&a, "view", "auditor", None);
    let v = Api::new(&a, pa).get("/api/v1/sessions", &tok).json();
    let listed = v["live"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap_or_else(|| panic!("beta's session is not live on alpha: {v:#}"));
    assert_eq!(listed["node"], "beta", "{listed:#}");
    let recent = v["recent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap();
    assert_eq!(recent["live"], true, "{recent:#}");
    assert_eq!(recent["node"], "beta", "{recent:#}");
    let _ = client.kill();
    let _ = client.wait();
    b.stop();
    a.stop();
}

/// Issue 19 point 4: with per-node recordings, verifying from another
/// node names where the recording is and why it cannot be read, never a
/// word that suggests tampering (before: 503 "verification failed").
#[test]
fn a_recording_on_another_node_is_named_not_called_tampered() {
    let sshd = Sshd::start();
    let shared = Shared::new("rn", "30s");
    let port = free_port();
    let mut a = shared.node_with(
        "alpha",
        &["recordings_dir"],
        &shared.url,
        "",
        &api_section(port, ""),
    );
    standard(&a, &sshd);
    a.start();
    wait_port(port, "alpha's API", &a.log_path());
    let mut b = shared.node_with("beta", &["recordings_dir"], &shared.url, "", "");
    b.start();
    let out = wait::output_within(
        b.ssh_key("alice+web01", &a.alice_key).arg("echo ok"),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = wait_for("the ended session", 10, || {
        sessions(&a)
            .lines()
            .find(|l| l.contains("kind=target") && !l.contains("\tlive\t"))
            .map(|l| l.split('\t').next().unwrap().to_string())
    });
    let tok = token(&a, "audit", "auditor", None);
    let api = Api::new(&a, port);
    let s = api.get(&format!("/api/v1/sessions/{id}"), &tok).json();
    let name = s["recordings"][0]["name"].as_str().unwrap().to_string();
    let path = format!("/api/v1/recordings/{name}/verify");
    let r = api.get(&path, &tok);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body.contains("is on node beta, which is up"),
        "{}",
        r.body
    );
    for word in ["verification failed", "tamper", "signed", "integrity"] {
        assert!(!r.body.contains(word), "{word:?} in {}", r.body);
    }
    b.stop();
    let r = api.get(&path, &tok);
    assert!(
        r.body.contains("is on node beta, which is unreachable"),
        "{}",
        r.body
    );
    a.stop();
}

/// Issue 19 point 2, the CLI's door: `session kill` and `lock` while the
/// database does not answer are handed to the node serving the same data
/// directory, enforced there at once, and stored (audited as the CLI's
/// account) when it answers. Before, both failed on the pool time-out.
#[test]
fn cli_locks_and_kills_during_an_outage_are_handed_to_the_local_node() {
    let sshd = Sshd::start();
    let shared = Shared::new("oc", "30s");
    let gate = PgGate::new(&shared.url);
    let mut a = shared.node_with("alpha", &[], &gate.url(&shared.url), "", "");
    standard(&a, &sshd);
    a.start();
    let mut client = live(&a, &a.alice_key);
    let id = live_id(&a);
    gate.cut();
    let t0 = std::time::Instant::now();
    let out = a.admin(&["session", "kill", &id, "--reason", "cli outage kill"]);
    assert!(text(&out.stdout).contains("handed to the portcullis serving"));
    let status = wait::status_within(&mut client, "the killed client", Duration::from_secs(10));
    eprintln!(
        "CLI kill during the outage ended the session after {} ms",
        t0.elapsed().as_millis()
    );
    assert!(!status.success());
    a.admin(&["lock", "user", "alice", "--reason", "cli outage lock"]);
    gate.restore();
    wait_until("the CLI's outage lock is stored", 20, || {
        text(&a.admin(&["lock", "list"]).stdout).contains("cli outage lock")
    });
    // The audit events follow the locks (kept writes go after kept locks).
    wait_until("the outage's audit events are written", 10, || {
        let log = audit(&a);
        log.contains("cli outage kill") && log.contains("cli outage lock")
    });
    let log = audit(&a);
    for what in ["cli outage kill", "cli outage lock"] {
        let line = log
            .lines()
            .find(|l| l.contains(what) && l.contains("lock.created"))
            .unwrap_or_else(|| panic!("{what} not audited:\n{log}"));
        assert!(line.contains("cli:"), "{line}");
    }
    let out = echo(&a);
    assert!(
        !out.status.success(),
        "alice got in past the CLI's outage lock"
    );
    a.stop();
}
