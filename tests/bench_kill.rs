//! On-demand benchmark (ignored by CI): the kill switch under load.
//!
//! Opens BENCH_KILL_SESSIONS (1000) live proxied sessions — each an
//! in-process russh client through the bastion to a real OpenSSH sshd running
//! `sleep` — then pulls the kill switch with one call and measures, per
//! session, the time from the call to the client seeing its connection
//! closed. Prints p50/p99/max. The trigger is the admin API's lock endpoint
//! (BENCH_KILL_VIA=api, default) or the CLI (`cli`, which adds a process
//! start and the server's lock poll).
//!
//!   PORTCULLIS_TEST_LOG=info cargo test --profile ci --test bench_kill -- --ignored --nocapture

mod common;
use common::*;
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct AnyHost;
impl client::Handler for AnyHost {
    type Error = russh::Error;
    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// One live session: logged in, `sleep` running on the target. Resolves
/// when the connection closes.
async fn open_session(
    port: u16,
    key: Arc<russh::keys::PrivateKey>,
) -> tokio::sync::oneshot::Receiver<Instant> {
    let mut h: Handle<AnyHost> = client::connect(
        Arc::new(client::Config::default()),
        ("127.0.0.1", port),
        AnyHost,
    )
    .await
    .expect("connect");
    let ok = h
        .authenticate_publickey("alice+web01", PrivateKeyWithHashAlg::new(key, None))
        .await
        .expect("auth");
    assert!(ok.success(), "auth refused");
    let mut ch = h.channel_open_session().await.expect("channel");
    ch.exec(true, "echo up; exec sleep 3600")
        .await
        .expect("exec");
    // Wait for the target to answer: the session is then dialled and live.
    loop {
        match ch.wait().await {
            Some(russh::ChannelMsg::Data { .. }) => break,
            Some(_) => continue,
            None => panic!("session closed before it was up"),
        }
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        while ch.wait().await.is_some() {}
        let _ = tx.send(Instant::now());
        drop(h);
    });
    rx
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn trigger(b: &Bastion, api: Option<(u16, String)>) -> Instant {
    match api {
        Some((port, token)) => {
            let client = reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap();
            // Automation keeps its connection: the TLS handshake is not the kill.
            let warm = client
                .get(format!("https://127.0.0.1:{port}/api/v1/locks"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("warm-up call");
            assert!(warm.status().is_success());
            let t0 = Instant::now();
            let r = client
                .post(format!("https://127.0.0.1:{port}/api/v1/locks"))
                .bearer_auth(token)
                .json(&serde_json::json!({"scope": {"kind": "all"}, "reason": "bench"}))
                .send()
                .await
                .expect("lock call");
            assert!(
                r.status().is_success(),
                "{}",
                r.text().await.unwrap_or_default()
            );
            eprintln!("lock API call answered after {:?}", t0.elapsed());
            t0
        }
        None => {
            let t0 = Instant::now();
            run_ok(b.cli().args(["lockdown", "--all", "--reason", "bench"]));
            t0
        }
    }
}

/// The bastion's own view: request to transport cut, per session.
async fn print_bastion_histogram(b: &Bastion, port: u16) {
    let out = b.admin(&[
        "token",
        "create",
        "--name",
        "bench-read",
        "--scope",
        "auditor",
    ]);
    let token = text(&out.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("pcat_"))
        .expect("token printed")
        .to_string();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let body = client
        .get(format!("https://127.0.0.1:{port}/api/v1/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    for l in body
        .lines()
        .filter(|l| l.starts_with("portcullis_kill_latency"))
    {
        eprintln!("  bastion {l}");
    }
}

#[test]
#[ignore = "benchmark: run on demand with --ignored --nocapture"]
fn kill_switch_latency_with_many_live_sessions() {
    let n: usize = std::env::var("BENCH_KILL_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let via_api = std::env::var("BENCH_KILL_VIA").as_deref() != Ok("cli");
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let sshd = Sshd::start();
    let api_port = free_port();
    let b = Bastion::standard_with(
        &sshd,
        &format!(
            "[limits]\nmax_unauthenticated = 4000\nmax_unauthenticated_per_source = 4000\n{}",
            if via_api {
                format!("[api]\nlisten = \"127.0.0.1:{api_port}\"\n")
            } else {
                String::new()
            }
        ),
    );
    let api = via_api.then(|| {
        let out = b.admin(&[
            "token",
            "create",
            "--name",
            "bench",
            "--scope",
            "killswitch",
        ]);
        let token = text(&out.stdout)
            .split_whitespace()
            .find(|w| w.starts_with("pcat_"))
            .expect("token printed")
            .to_string();
        (api_port, token)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let key = Arc::new(russh::keys::load_secret_key(&b.alice_key, None).unwrap());
        let t_open = Instant::now();
        let mut closed = Vec::with_capacity(n);
        let mut batch = tokio::task::JoinSet::new();
        for i in 0..n {
            batch.spawn(open_session(b.port, key.clone()));
            if batch.len() >= 8 || i + 1 == n {
                while let Some(rx) = batch.join_next().await {
                    closed.push(rx.expect("session task"));
                }
            }
        }
        eprintln!("{n} sessions live after {:?}", t_open.elapsed());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t0 = trigger(&b, api.clone()).await;
        let mut took = Vec::with_capacity(n);
        for rx in closed {
            let at = tokio::time::timeout(Duration::from_secs(30), rx)
                .await
                .expect("a session outlived the lockdown by 30 s")
                .expect("closed");
            took.push(at.duration_since(t0));
        }
        took.sort();
        if let Some((port, _)) = api {
            print_bastion_histogram(&b, port).await;
        }
        eprintln!(
            "kill switch via {}: {n} sessions closed; min {:?}, p50 {:?}, p99 {:?}, max {:?}",
            if via_api { "API" } else { "CLI" },
            took[0],
            percentile(&took, 0.50),
            percentile(&took, 0.99),
            took[took.len() - 1]
        );
    });
}
