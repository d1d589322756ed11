//! Port-forwarding throughput, run on demand (not by CI):
//!
//!   cargo test --profile ci --test bench_forward -- --ignored --nocapture
//!
//! BENCH_BYTES (default 1 GiB) up and down through `ssh -L` to a TCP target
//! at the bastion, against OpenSSH's own `ssh -L` through the test sshd, in
//! the same run, same cipher (aes256-gcm) on the client leg. Reports MiB/s
//! and the ratio bastion / OpenSSH.

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
    let mut openssh = direct
        .args(["-N", "-c", CIPHER, "-o", "ExitOnForwardFailure=yes"])
        .args(["-L", &format!("{ou}:127.0.0.1:{}", sink.port)])
        .args(["-L", &format!("{od}:127.0.0.1:{}", source.port)])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", od)).is_err() {
        assert!(start.elapsed().as_secs() < 20, "OpenSSH -L never listened");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The probe connection above made `source` send once already: let it drain.
    std::thread::sleep(std::time::Duration::from_millis(500));

    let o_up = upload(ou, n);
    let p_up = upload(pu, n);
    let o_down = download(od, n);
    let p_down = download(pd, n);
    let _ = openssh.kill();
    let _ = openssh.wait();
    println!(
        "bench_forward {} MiB, {CIPHER}:\n  OpenSSH -L via sshd   up {o_up:.1} MiB/s  down {o_down:.1} MiB/s\n  portcullis -L (tcp)   up {p_up:.1} MiB/s  down {p_down:.1} MiB/s\n  ratio                 up {:.2}x  down {:.2}x",
        n >> 20,
        p_up / o_up,
        p_down / o_down
    );
}
