//! On-demand benchmark (ignored by CI): the kill switch under load.
//!
//! Opens BENCH_KILL_SESSIONS (1000) live proxied sessions — each an
//! in-process russh client through the bastion to a real OpenSSH sshd running
//! `sleep` — then pulls the kill switch with one call and measures, per
//! session, the time from the call to the client seeing its connection
//! closed (BENCH_KILL_MEASURE, see `Measure`), and checks that every client
//! read the lock's disconnect text. Prints p50/p99/max. The trigger is the admin API's lock endpoint
//! (BENCH_KILL_VIA=api, default) or the CLI (`cli`, which adds a process
//! start and the server's lock poll).
//!
//!   PORTCULLIS_TEST_LOG=info cargo test --profile ci --test bench_kill -- --ignored --nocapture

mod common;
use common::*;
use russh::client::{self, Handle};
use russh::keys::PrivateKeyWithHashAlg;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the client saw when its connection ended (`common::stamp`).
type Seen = common::stamp::Ended;

/// Where a session's end is stamped (BENCH_KILL_MEASURE):
/// - `disconnect` (default): when the client's SSH layer reports the
///   connection over — the server's DISCONNECT read and the client's own
///   side shut down (FIN sent), or the transport failing. The client then
///   waits for the bench to finish measuring before it frees its session,
///   so 1,000 in-process clients' teardowns (munlock of key buffers, frees)
///   are not charged to sessions still being killed.
/// - `channel`: when the client's channel stream ends, i.e. after the
///   client's session was torn down (the bench's former measure).
#[derive(Clone, Copy, PartialEq)]
enum Measure {
    Disconnect,
    Channel,
}

use common::stamp::Stamping as Client;

/// A live session's ends: the stamp used for the figures, and the channel
/// stream's end (which must come too: the connection really closed).
struct Live {
    seen: tokio::sync::oneshot::Receiver<Seen>,
    ended: tokio::sync::oneshot::Receiver<Instant>,
}

/// One live session: logged in, `sleep` running on the target.
async fn open_session(
    port: u16,
    key: Arc<russh::keys::PrivateKey>,
    release: tokio_util::sync::CancellationToken,
) -> Live {
    let (handler, seen) = Client::new(release);
    let mut h: Handle<Client> = client::connect(
        Arc::new(client::Config::default()),
        ("127.0.0.1", port),
        handler,
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
    let (tx, ended) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        while ch.wait().await.is_some() {}
        let _ = tx.send(Instant::now());
        drop(h);
    });
    Live { seen, ended }
}

/// BENCH_KILL_PERF=FILE: a system-wide `perf record` (CLOCK_MONOTONIC
/// stamps, like `Instant`) over the kill, for `perf report --time`.
fn perf_window() -> Option<std::process::Child> {
    let out = std::env::var("BENCH_KILL_PERF").ok()?;
    let child = std::process::Command::new("perf")
        .args([
            "record",
            "-a",
            "-k",
            "CLOCK_MONOTONIC",
            "-F",
            "4000",
            "-o",
            &out,
        ])
        .args(
            std::env::var("BENCH_KILL_PERF_ARGS")
                .ok()
                .as_deref()
                .map(|a| a.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default(),
        )
        .args(["--", "sleep", "3"])
        .spawn()
        .expect("perf");
    std::thread::sleep(Duration::from_millis(2000));
    Some(child)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn trigger(b: &Bastion, api: Option<(u16, String)>) -> Instant {
    match api {
        // Automation keeps its connection: the TLS handshake is not the kill.
        Some((port, token)) => common::api::lockdown_all(port, &token).await,
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
            "[limits]\nmax_unauthenticated = 4000\nmax_unauthenticated_per_source = 4000\nmax_unauthenticated_per_network = 4000\n{}",
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
    let measure = match std::env::var("BENCH_KILL_MEASURE").as_deref() {
        Ok("channel") => Measure::Channel,
        _ => Measure::Disconnect,
    };
    rt.block_on(async {
        let key = Arc::new(russh::keys::load_secret_key(&b.alice_key, None).unwrap());
        let release = tokio_util::sync::CancellationToken::new();
        if measure == Measure::Channel {
            release.cancel();
        }
        let t_open = Instant::now();
        let mut live = Vec::with_capacity(n);
        let mut batch = tokio::task::JoinSet::new();
        for i in 0..n {
            batch.spawn(open_session(b.port, key.clone(), release.clone()));
            if batch.len() >= 8 || i + 1 == n {
                while let Some(s) = batch.join_next().await {
                    live.push(s.expect("session task"));
                }
            }
        }
        eprintln!("{n} sessions live after {:?}", t_open.elapsed());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let perf = perf_window();
        let t0 = trigger(&b, api.clone()).await;
        if perf.is_some() {
            eprintln!("t0 = {t0:?}");
        }
        let (took, told) = collect(live, t0, measure, &release).await;
        if let Some((port, _)) = api {
            print_bastion_histogram(&b, port).await;
        }
        eprintln!(
            "kill switch via {}, measured at {}: {n} sessions closed; min {:?}, p50 {:?}, p99 {:?}, max {:?}",
            if via_api { "API" } else { "CLI" },
            match measure {
                Measure::Disconnect => "the client's disconnect",
                Measure::Channel => "the client's channel end",
            },
            took[0],
            percentile(&took, 0.50),
            percentile(&took, 0.99),
            took[took.len() - 1]
        );
        assert_eq!(
            told, n,
            "every killed client must read \"portcullis: session ended: locked by ...\""
        );
        if let Some(mut p) = perf {
            let _ = p.wait();
        }
    });
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("a session outlived the lockdown by 30 s")
}

/// Per session, the time from the trigger to the measured end (sorted), and
/// how many clients read the lock's disconnect text. Every channel must end
/// too, after `release` lets the clients tear down.
async fn collect(
    live: Vec<Live>,
    t0: Instant,
    measure: Measure,
    release: &tokio_util::sync::CancellationToken,
) -> (Vec<Duration>, usize) {
    let mut seen = Vec::with_capacity(live.len());
    let mut ended = Vec::with_capacity(live.len());
    for l in live {
        seen.push(within(l.seen).await.expect("disconnect reported"));
        ended.push(l.ended);
    }
    release.cancel();
    let mut took = Vec::with_capacity(seen.len());
    for ((at, _), rx) in seen.iter().zip(ended) {
        let end = within(rx).await.expect("channel ended");
        took.push(match measure {
            Measure::Disconnect => at.duration_since(t0),
            Measure::Channel => end.duration_since(t0),
        });
    }
    took.sort();
    let told = seen
        .iter()
        .filter(|(_, m)| {
            m.as_deref()
                .is_some_and(|m| m.starts_with("portcullis: session ended: locked by"))
        })
        .count();
    (took, told)
}
