//! Port-forwarding throughput, run on demand (not by CI):
//!
//!   cargo test --profile ci --test bench_forward -- --ignored --nocapture
//!
//! BENCH_BYTES (default 1 GiB) up and down through `ssh -L` to a TCP target
//! at the bastion, against OpenSSH's own `ssh -L` through the test sshd, in
//! the same run, same cipher (aes256-gcm) on the client leg. BENCH_ROUNDS
//! (default 3) rounds; reports each round and the medians of MiB/s, of the
//! ratio bastion / OpenSSH and of the CPU each server spent per GiB.
//! BENCH_ONLY=up or down runs one direction (for profiling).

mod common;

use common::forward::*;
use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Instant;

const CIPHER: &str = "aes256-gcm@openssh.com";

fn bytes() -> u64 {
    std::env::var("BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30)
}

fn mibs(n: u64, secs: f64) -> f64 {
    n as f64 / 1048576.0 / secs
}

/// Upload `n` bytes to the forward at `port`; the service answers the count.
fn upload(port: u16, n: u64) -> f64 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let chunk = vec![0u8; 256 * 1024];
    let t = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len() as u64) as usize;
        s.write_all(&chunk[..k]).unwrap();
        left -= k as u64;
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(answer.trim(), n.to_string(), "upload lost bytes");
    mibs(n, secs)
}

fn download(port: u16, n: u64) -> f64 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let t = Instant::now();
    let mut got = 0u64;
    loop {
        let k = s.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        got += k as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(got, n, "download lost bytes");
    mibs(n, secs)
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "benchmark: run on demand with --ignored --nocapture"]
fn local_forward_throughput_against_openssh() {
    let n = bytes();
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let sink = Service::start("127.0.0.1", Behaviour::Discard);
    let source = Service::start("127.0.0.1", Behaviour::Source(n));
    b.add_tcp_target("sink", "127.0.0.1", sink.port, false);
    b.add_tcp_target("source", "127.0.0.1", source.port, false);
    b.grant(&["--user", "alice", "--target", "sink"]);
    b.grant(&["--user", "alice", "--target", "source"]);

    let (pu, pd) = (free_port(), free_port());
    let _pc = Forwarding::start(
        &b,
        "alice",
        &[
            "-c",
            CIPHER,
            "-L",
            &format!("{pu}:sink:{}", sink.port),
            "-L",
            &format!("{pd}:source:{}", source.port),
        ],
        Some(pd),
    );
    let (ou, od) = (free_port(), free_port());
    let mut direct = sshd.direct();
    // Killed on drop: a panic must not leave it holding the test's stdout.
    let _openssh = Killed(
        direct
            .args(["-N", "-c", CIPHER, "-o", "ExitOnForwardFailure=yes"])
            .args(["-L", &format!("{ou}:127.0.0.1:{}", sink.port)])
            .args(["-L", &format!("{od}:127.0.0.1:{}", source.port)])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", od)).is_err() {
        assert!(start.elapsed().as_secs() < 20, "OpenSSH -L never listened");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The probe connection above made `source` send once already: let it drain.
    std::thread::sleep(std::time::Duration::from_millis(500));

    let rounds = rounds();
    let mut runs = Vec::new();
    for _ in 0..rounds {
        let r = round(&sshd, &b, [ou, pu, od, pd], n);
        println!(
            "  round: OpenSSH up {:.0} down {:.0} MiB/s, portcullis up {:.0} down {:.0} MiB/s, ratio up {:.2}x down {:.2}x, CPU/GiB sshd {:.0}/{:.0} ms bastion {:.0}/{:.0} ms",
            r.speed[0],
            r.speed[2],
            r.speed[1],
            r.speed[3],
            r.speed[1] / r.speed[0],
            r.speed[3] / r.speed[2],
            r.cpu[0],
            r.cpu[2],
            r.cpu[1],
            r.cpu[3]
        );
        runs.push(r);
    }
    let med = |f: &dyn Fn(&Round) -> f64| median(runs.iter().map(f).collect());
    println!(
        "bench_forward {} MiB x {rounds} rounds, {CIPHER}, medians:\n  OpenSSH -L via sshd   up {:.1} MiB/s  down {:.1} MiB/s\n  portcullis -L (tcp)   up {:.1} MiB/s  down {:.1} MiB/s\n  ratio                 up {:.2}x  down {:.2}x\n  CPU per GiB: sshd     up {:.0} ms  down {:.0} ms\n               bastion  up {:.0} ms  down {:.0} ms",
        n >> 20,
        med(&|r| r.speed[0]),
        med(&|r| r.speed[2]),
        med(&|r| r.speed[1]),
        med(&|r| r.speed[3]),
        med(&|r| r.speed[1] / r.speed[0]),
        med(&|r| r.speed[3] / r.speed[2]),
        med(&|r| r.cpu[0]),
        med(&|r| r.cpu[2]),
        med(&|r| r.cpu[1]),
        med(&|r| r.cpu[3]),
    );
}

/// One round's figures: [OpenSSH up, portcullis up, OpenSSH down,
/// portcullis down], MiB/s and the serving side's CPU ms per GiB.
struct Round {
    speed: [f64; 4],
    cpu: [f64; 4],
}

/// Each leg of a round right after the one it is compared with, so a burst
/// of load from elsewhere hits both. CPU time is steadier than throughput on
/// a shared machine: it shows what a change saved when the ratio is noisy.
fn round(sshd: &Sshd, b: &Bastion, ports: [u16; 4], n: u64) -> Round {
    let per_gib =
        |cpu: std::time::Duration| cpu.as_secs_f64() * 1000.0 * (1u64 << 30) as f64 / n as f64;
    let mut r = Round {
        speed: [0.0; 4],
        cpu: [0.0; 4],
    };
    // BENCH_ONLY=up|down: one direction, e.g. under `perf record -a`.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for (i, port) in ports.into_iter().enumerate() {
        if (only == "up" && i >= 2) || (only == "down" && i < 2) {
            continue;
        }
        let cpu = || {
            if i % 2 == 0 {
                sshd_cpu(sshd)
            } else {
                serve_cpu(b)
            }
        };
        let before = cpu();
        r.speed[i] = if i < 2 {
            upload(port, n)
        } else {
            download(port, n)
        };
        r.cpu[i] = per_gib(cpu() - before);
    }
    r
}

fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
