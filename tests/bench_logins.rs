//! Login benchmark, run on demand (not by CI):
//!
//!   cargo test --release --test bench_logins -- --ignored --nocapture
//!
//! Prints full proxied sessions per second (public key, `ssh … true`) next to
//! the same against the sshd directly, and the latency a TOTP second factor
//! adds over a public key alone. Ratios, not absolute times, are the figures.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rate(n: usize, threads: usize, mk: Arc<dyn Fn() -> Command + Send + Sync>) -> f64 {
    let start = Instant::now();
    let per = n / threads;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mk = mk.clone();
            std::thread::spawn(move || {
                for _ in 0..per {
                    let out = mk().stdin(Stdio::null()).output().unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    (per * threads) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "benchmark: run on demand with --ignored --nocapture"]
fn login_rates_and_mfa_latency() {
    let sshd = Arc::new(Sshd::start());
    let b = Arc::new(Bastion::standard(&sshd));
    let (n, threads) = (240, 8);

    let s = sshd.clone();
    let direct = rate(
        n,
        threads,
        Arc::new(move || {
            let mut c = s.direct();
            c.arg("true");
            c
        }),
    );
    let bb = b.clone();
    let proxied = rate(
        n,
        threads,
        Arc::new(move || {
            let mut c = bb.ssh("alice+web01");
            c.arg("true");
            c
        }),
    );

    // Latency: public key alone (service account) vs public key + TOTP.
    let users = 15;
    let mut key_only = Vec::new();
    for _ in 0..users {
        let start = Instant::now();
        run_ok(b.ssh("alice+web01").arg("true").stdin(Stdio::null()));
        key_only.push(start.elapsed());
    }
    let ap = Askpass::new();
    let mut with_totp = Vec::new();
    for i in 0..users {
        let name = format!("bench{i}");
        let key = b.add_human(&name, "bench-pw");
        let secret = enroll_totp(&b, &name);
        ap.set_code(&next_code(&secret));
        let mut c = b.ssh_human(&format!("{name}+web01"), "publickey", Some(&key), &ap);
        c.arg("true");
        let start = Instant::now();
        let out = run(&mut c);
        with_totp.push(start.elapsed());
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let (k, t) = (median(key_only), median(with_totp));
    println!(
        "\nlogin benchmark ({threads} concurrent clients, {n} sessions each way, `ssh ... true`)"
    );
    println!("  direct OpenSSH sessions/s        {direct:8.1}");
    println!(
        "  portcullis sessions/s (pubkey)   {proxied:8.1}   ratio to direct {:.2}x",
        proxied / direct
    );
    println!("  median login, pubkey only        {k:8.1?}");
    // Signed: on a noisy machine the TOTP median can come out lower, and a
    // clamped 0 would read as a measurement.
    let added_ms = (t.as_secs_f64() - k.as_secs_f64()) * 1e3;
    println!(
        "  median login, pubkey + TOTP      {t:8.1?}   MFA adds {added_ms:+.1} ms (includes the askpass program run; below 0 is noise)"
    );
}
