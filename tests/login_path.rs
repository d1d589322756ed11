//! The login path as an attacker meets it (issue 14, points 1-4): a
//! second-factor budget per user that parallel connections cannot outrun,
//! canonical IPv4 addresses on a dual-stack listener, pre-auth caps per
//! network that never cut a user past the first factor, and the transport
//! as ssh-audit sees it.
//!
//! Every address in 127.0.0.0/8 is ours on the loopback interface, so a
//! client bound to 127.0.1.5 comes from another /24 than one on 127.0.0.1.

mod common;
use common::*;
use russh::client::{self, AuthResult, KeyboardInteractiveAuthResponse as Kbd};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct AnyHost;
impl client::Handler for AnyHost {
    type Error = russh::Error;
    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A TCP connection to the bastion on 127.0.0.1 from `source`.
async fn tcp_from(source: &str, port: u16) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    sock.connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
}

async fn ssh_from(source: &str, port: u16) -> client::Handle<AnyHost> {
    let tcp = tcp_from(source, port).await;
    client::connect_stream(Arc::new(client::Config::default()), tcp, AnyHost)
        .await
        .unwrap()
}

fn partial(r: &AuthResult) -> bool {
    matches!(
        r,
        AuthResult::Failure {
            partial_success: true,
            ..
        }
    )
}

/// First factor by key, then the code prompt: the connection waits at
/// "Verification code:" like a person reading their authenticator app.
async fn at_code_prompt(
    source: &str,
    port: u16,
    user: &str,
    key: &Path,
) -> client::Handle<AnyHost> {
    let mut h = ssh_from(source, port).await;
    let key = Arc::new(russh::keys::load_secret_key(key, None).unwrap());
    let r = h
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, None))
        .await
        .unwrap();
    assert!(partial(&r), "{r:?}");
    let r = h
        .authenticate_keyboard_interactive_start(user, None)
        .await
        .unwrap();
    assert!(matches!(r, Kbd::InfoRequest { .. }), "{r:?}");
    h
}

/// A six-digit code that is not valid now nor in the next two minutes.
fn wrong_code(secret: &[u8]) -> String {
    let now = unix_now();
    let valid: Vec<String> = (0..6)
        .map(|i| portcullis::auth::totp::code_at(secret, now - 30 + i * 30).unwrap())
        .collect();
    (0..10)
        .map(|d| d.to_string().repeat(6))
        .find(|c| !valid.contains(c))
        .unwrap()
}

/// OpenSSH as a person (key, then the code from `ap`), from `bind`.
fn human_from(b: &Bastion, user: &str, key: &Path, ap: &Askpass, bind: &str) -> Command {
    let mut c = Command::new("ssh");
    c.args(client_opts(&b.known_hosts()))
        .args([
            "-o",
            "PreferredAuthentications=publickey,keyboard-interactive",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-b",
            bind,
            "-p",
            &b.port.to_string(),
            "-i",
        ])
        .arg(key)
        .arg(format!("{user}@127.0.0.1"));
    ap.apply(&mut c);
    c
}

/// Sum of the `count`s of `login.failures` rows for `user` and exactly `factor`.
fn failures_in_audit(b: &Bastion, user: &str, factor: &str) -> u64 {
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    let want = format!("\"factor\":\"{factor}\"");
    audit
        .lines()
        .filter(|l| l.contains("login.failures") && l.contains(&format!("\t{user}\t")))
        .filter(|l| l.contains(&want))
        .map(|l| {
            let n = l.split("\"count\":").nth(1).unwrap_or("0");
            n.chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
                .parse::<u64>()
                .unwrap_or(0)
        })
        .sum()
}

// ------------------------------------------------------------ point 1 ----

/// Ten codes per 30 s for the test (the default is ten per 15 minutes).
const BUDGET: &str = "[limits]\nsecond_factor_failures = 10\nsecond_factor_window_secs = 30\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_connections_cannot_outrun_the_second_factor_budget() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard_with(&sshd, BUDGET);
    let key = b.add_human("nina", "nina-pw");
    let nina = enroll_totp(&b, "nina");
    let wrong = wrong_code(&nina);

    // An attacker holding nina's key: 20 connections from five /24s pass
    // the first factor, then all send wrong codes at once, three each.
    let mut held = Vec::new();
    for i in 0..20 {
        let source = format!("127.0.{}.{}", 10 + i % 5, i + 1);
        held.push(at_code_prompt(&source, b.port, "nina+web01", &key).await);
    }
    let tasks: Vec<_> = held
        .into_iter()
        .map(|mut h| {
            let wrong = wrong.clone();
            tokio::spawn(async move {
                let (mut answered, mut told) = (0u32, false);
                for i in 0..3 {
                    if i > 0 {
                        match h
                            .authenticate_keyboard_interactive_start("nina+web01", None)
                            .await
                        {
                            Ok(Kbd::InfoRequest { instructions, .. }) => {
                                told |= instructions.contains("codes are checked again in");
                            }
                            _ => break,
                        }
                    }
                    match h
                        .authenticate_keyboard_interactive_respond(vec![wrong.clone()])
                        .await
                    {
                        Ok(Kbd::Success) => panic!("a wrong code was accepted"),
                        Ok(_) => answered += 1,
                        Err(_) => break,
                    }
                }
                (answered, told)
            })
        })
        .collect();
    let (mut answered, mut told) = (0, false);
    for t in tasks {
        let (a, t) = t.await.unwrap();
        answered += a;
        told |= t;
    }
    assert!(answered >= 40, "the attack itself did not run: {answered}");
    assert!(
        told,
        "the prompt after a refused code says how long to wait"
    );
    let flood_ended = Instant::now();

    // nina herself, from her own network, with the right code: delayed ...
    let ap = Askpass::new();
    ap.set_code(&next_code(&nina));
    let out = run(human_from(&b, "nina+web01", &key, &ap, "127.0.1.5").arg("id -un"));
    assert!(
        !out.status.success(),
        "the right code was checked at once after {answered} wrong ones: no budget\n{}",
        b.log()
    );
    assert!(
        b.log().contains("second-factor budget spent"),
        "{}",
        b.log()
    );
    // ... and hammering while delayed does not lengthen the delay ...
    let mut tries = 1;
    let got_in = loop {
        std::thread::sleep(Duration::from_secs(3));
        ap.set_code(&next_code(&nina));
        let out = run(human_from(&b, "nina+web01", &key, &ap, "127.0.1.5").arg("id -un"));
        tries += 1;
        if out.status.success() {
            assert_eq!(text(&out.stdout), "tuser\n");
            break flood_ended.elapsed();
        }
        // ... and she is not locked out: in at the latest when the window has passed.
        assert!(
            flood_ended.elapsed() < Duration::from_secs(60),
            "still refused after {tries} tries: {}\n{}",
            text(&out.stderr),
            b.log()
        );
    };
    assert!(got_in >= Duration::from_secs(5), "{got_in:?}");

    // At most the budget was evaluated, whatever the number of connections.
    b.stop();
    let evaluated = failures_in_audit(&b, "nina", "totp");
    assert!(
        (1..=10).contains(&evaluated),
        "{evaluated} wrong codes were checked (budget 10)"
    );
    assert!(
        failures_in_audit(&b, "nina", "totp-budget") >= 40,
        "codes refused unchecked are summarised too"
    );
}

// ------------------------------------------------------------ point 2 ----

/// Restarts `b` listening on `[::]` (dual stack) at the same port.
fn listen_dual_stack(b: &mut Bastion) {
    b.stop();
    let conf = std::fs::read_to_string(&b.config).unwrap();
    let conf = conf.replacen("listen = \"127.0.0.1:", "listen = \"[::]:", 1);
    std::fs::write(&b.config, conf).unwrap();
    b.start();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_clients_of_a_dual_stack_listener_meet_ipv4_rules() {
    let sshd = Sshd::start();
    let rule = "[[lockdown.rule]]\nname = \"loopback-only\"\nsource_outside = [\"127.0.0.0/8\"]\naction = \"lock_source\"\nduration = \"1h\"\n";
    let mut b = Bastion::standard_with(&sshd, rule);
    listen_dual_stack(&mut b);
    assert!(
        b.log().contains("[::]:"),
        "not listening on [::]: {}",
        b.log()
    );

    // `source_outside = 127.0.0.0/8` lets 127.0.0.1 in ...
    let out = run(b.ssh("alice+web01").arg("id -un"));
    assert!(
        out.status.success(),
        "an IPv4 client was taken for an outsider: {}\n{}",
        text(&out.stderr),
        b.log()
    );
    // ... and the audit trail names it as IPv4.
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    let line = audit
        .lines()
        .find(|l| l.contains("login.succeeded"))
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(
        line.contains("127.0.0.1:") && !line.contains("::ffff:"),
        "{line}"
    );

    // The throttle's network is the /24: failures from 127.0.0.1 slow that
    // network down, not every IPv4 client (all of them were one "::/64").
    let _ = b.add_human("olga", "olga-pw");
    let _ = enroll_totp(&b, "olga");
    for _ in 0..2 {
        let mut h = ssh_from("127.0.0.1", b.port).await;
        for _ in 0..3 {
            let r = h.authenticate_password("olga+web01", "wrong").await;
            assert!(!matches!(r, Ok(AuthResult::Success)));
        }
    }
    let mut h = ssh_from("127.0.0.1", b.port).await;
    let r = h
        .authenticate_password("olga+web01", "olga-pw")
        .await
        .unwrap();
    assert!(!partial(&r), "six failures did not slow 127.0.0.0/24 down");
    let mut h = ssh_from("127.0.1.5", b.port).await;
    let r = h
        .authenticate_password("olga+web01", "olga-pw")
        .await
        .unwrap();
    assert!(
        partial(&r),
        "127.0.1.5 was throttled for failures of 127.0.0.1: {r:?}\n{}",
        b.log()
    );

    // A source block for 127.0.0.1 matches.
    b.admin(&["source", "block", "127.0.0.1/32", "--reason", "test"]);
    std::thread::sleep(Duration::from_millis(2500));
    let out = run(b.ssh("alice+web01").arg("true"));
    assert!(!out.status.success(), "a blocked IPv4 source got in");
    assert!(
        b.log().contains("source is blocked; dropped"),
        "{}",
        b.log()
    );
    b.admin(&["source", "unblock", "127.0.0.1/32"]);
    std::thread::sleep(Duration::from_millis(2500));
    run_ok(b.ssh("alice+web01").arg("true"));

    // A source lock for 127.0.0.1 matches.
    b.admin(&["lock", "source", "127.0.0.1/32", "--reason", "test"]);
    std::thread::sleep(Duration::from_millis(1000));
    let out = run(b.ssh("alice+web01").arg("true"));
    assert!(!out.status.success(), "a locked IPv4 source got in");
    assert!(b.log().contains("source is locked; dropped"), "{}", b.log());
}

// ------------------------------------------------------------ point 3 ----

/// Opens `n` raw connections from each of `sources` that send a version
/// line and then nothing (a flood of held handshakes).
async fn flood(sources: &[String], n: usize, port: u16) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut v = Vec::new();
    for s in sources {
        for _ in 0..n {
            let mut t = tcp_from(s, port).await;
            let _ = t.write_all(b"SSH-2.0-flood\r\n").await;
            v.push(t);
        }
    }
    v
}

/// How many of `conns` the bastion still holds open.
async fn alive(conns: Vec<tokio::net::TcpStream>) -> usize {
    use tokio::io::AsyncReadExt;
    let mut n = 0;
    for mut c in conns {
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_millis(100), c.read(&mut buf)).await {
                Err(_) => {
                    n += 1;
                    break;
                }
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => {}
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_never_cuts_a_user_at_the_code_prompt() {
    let sshd = Sshd::start();
    let b = Bastion::standard_with(
        &sshd,
        "[limits]\nmax_unauthenticated = 8\nmax_unauthenticated_per_source = 4\n",
    );
    let key = b.add_human("pia", "pia-pw");
    let pia = enroll_totp(&b, "pia");
    let mut h = at_code_prompt("127.0.0.1", b.port, "pia+web01", &key).await;

    // Twelve addresses in twelve /24s, two connections each: the total cap
    // is hit again and again.
    let sources: Vec<String> = (1..=12)
        .map(|i| format!("127.0.{}.{}", 100 + i, i))
        .collect();
    let held = flood(&sources, 2, b.port).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        b.log().contains("unauthenticated connection cap reached"),
        "{}",
        b.log()
    );
    let r = h
        .authenticate_keyboard_interactive_respond(vec![next_code(&pia)])
        .await;
    assert!(
        matches!(r, Ok(Kbd::Success)),
        "the flood cut a user at the code prompt: {r:?}\n{}",
        b.log()
    );
    let n = alive(held).await;
    assert!(n <= 8, "{n} unauthenticated connections held (cap 8)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_network_gets_a_share_of_the_pre_auth_places_not_all() {
    // Defaults: 256 in all, 32 per address, 64 per /24 (or IPv6 /64).
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let key = b.add_human("quin", "quin-pw");
    let quin = enroll_totp(&b, "quin");
    // quin sits at the code prompt from the same /24 as the flood.
    let mut h = at_code_prompt("127.0.9.200", b.port, "quin+web01", &key).await;
    let sources: Vec<String> = (1..=10).map(|i| format!("127.0.9.{i}")).collect();
    let held = flood(&sources, 10, b.port).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n = alive(held).await;
    assert!(
        n <= 64,
        "{n} unauthenticated connections held from one /24 (cap 64)"
    );
    let r = h
        .authenticate_keyboard_interactive_respond(vec![next_code(&quin)])
        .await;
    assert!(
        matches!(r, Ok(Kbd::Success)),
        "a flood from the same /24 cut a user at the code prompt: {r:?}\n{}",
        b.log()
    );
}

// ------------------------------------------------------------ point 4 ----

/// ssh-audit from PyPI, installed by `.ci/run` into `.ci/venv`.
fn ssh_audit() -> PathBuf {
    if let Ok(p) = std::env::var("PORTCULLIS_SSH_AUDIT") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/venv/bin/ssh-audit");
    if venv.exists() {
        return venv;
    }
    need(
        "ssh-audit",
        "ssh-audit (PyPI; .ci/run installs it into .ci/venv)",
    );
    PathBuf::from("ssh-audit")
}

#[test]
fn ssh_audit_finds_no_failure_no_terrapin_and_no_compression() {
    let mut b = Bastion::new();
    b.start();
    let audit = |extra: &[&str]| {
        let out = run(Command::new(ssh_audit())
            .args(["--skip-rate-test", "-n", "-p", &b.port.to_string()])
            .args(extra)
            .arg("127.0.0.1")
            .stdin(Stdio::null()));
        text(&out.stdout)
    };
    let report = audit(&[]);
    assert!(
        report.contains("(gen) banner: SSH-2.0-portcullis"),
        "{report}"
    );
    assert!(!report.contains("[fail]"), "{report}");
    assert!(
        report.contains("properly supports the strict key exchange method")
            && !report.to_lowercase().contains("vulnerable to the terrapin"),
        "{report}"
    );
    assert!(report.contains("(gen) compression: disabled"), "{report}");
    let json: serde_json::Value = serde_json::from_str(&audit(&["-j"])).unwrap();
    assert_eq!(json["cves"], serde_json::json!([]), "{json}");
    assert_eq!(json["compression"], serde_json::json!(["none"]), "{json}");
}

#[test]
fn sha1_rsa_signatures_are_not_a_first_factor() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let key = b.dir.path().join("rsa_svc_key");
    keygen(&key, "rsa");
    b.admin(&[
        "user",
        "add",
        "rosa",
        "--service",
        "--key",
        key.with_extension("pub").to_str().unwrap(),
    ]);
    b.grant(&[
        "--user",
        "rosa",
        "--target",
        "web01",
        "--login",
        TARGET_USER,
    ]);
    // rsa-sha2-512, what OpenSSH picks: in.
    let out = run(b.ssh_key("rosa+web01", &key).arg("id -un"));
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), b.log());
    // The same key signing with SHA-1 (`ssh-rsa`): out.
    let mut c = Command::new("ssh");
    c.args(b.ssh_opts_with(&key))
        .args(["-o", "PubkeyAcceptedAlgorithms=ssh-rsa"])
        .args(["-p", &b.port.to_string()])
        .arg("rosa+web01@127.0.0.1")
        .arg("id -un")
        .stdin(Stdio::null());
    let out = run(&mut c);
    assert!(
        !out.status.success(),
        "an ssh-rsa (SHA-1) signature logged in: {}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sha1_rsa_signature_sent_unasked_is_refused() {
    use russh::keys::HashAlg;
    // OpenSSH asks first (and gets no PK_OK for ssh-rsa); russh's client
    // sends the signature straight away, which reaches the other check.
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let key = b.dir.path().join("rsa_svc_key");
    keygen(&key, "rsa");
    b.admin(&[
        "user",
        "add",
        "rosa",
        "--service",
        "--key",
        key.with_extension("pub").to_str().unwrap(),
    ]);
    let key = Arc::new(russh::keys::load_secret_key(&key, None).unwrap());
    let mut h = ssh_from("127.0.0.1", b.port).await;
    let r = h
        .authenticate_publickey("rosa", PrivateKeyWithHashAlg::new(key.clone(), None))
        .await;
    assert!(
        !matches!(r, Ok(AuthResult::Success)),
        "a SHA-1 signature was accepted: {r:?}\n{}",
        b.log()
    );
    let mut h = ssh_from("127.0.0.1", b.port).await;
    let r = h
        .authenticate_publickey(
            "rosa",
            PrivateKeyWithHashAlg::new(key, Some(HashAlg::Sha256)),
        )
        .await;
    assert!(matches!(r, Ok(AuthResult::Success)), "{r:?}\n{}", b.log());
}
