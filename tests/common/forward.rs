//! Test services behind TCP targets and `ssh` port-forwarding processes.

use super::*;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone)]
pub enum Behaviour {
    /// Sends back every byte it receives.
    Echo,
    /// Reads to EOF, answers the SHA-256 (hex) of what it read.
    Sha,
    /// Answers any request with an HTTP/1.0 200 and this body.
    Http(&'static str),
    /// Accepts, then never reads nor closes.
    Stall,
    /// Reads to EOF, answers how many bytes it read (benchmarks).
    Discard,
    /// Writes this many zero bytes, then closes (benchmarks).
    Source(u64),
}

/// A TCP service on `ip`, one thread per connection.
pub struct Service {
    pub port: u16,
    pub accepted: Arc<AtomicUsize>,
}

impl Service {
    pub fn start(ip: &str, behaviour: Behaviour) -> Service {
        let l = std::net::TcpListener::bind((ip, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let b = behaviour.clone();
                std::thread::spawn(move || serve(s, b));
            }
        });
        Service { port, accepted }
    }

    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn serve(mut s: TcpStream, b: Behaviour) {
    let mut buf = vec![0u8; 64 * 1024];
    match b {
        Behaviour::Echo => {
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = s.shutdown(Shutdown::Write);
        }
        Behaviour::Sha => {
            let mut h = Sha256::new();
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            let _ = s.write_all(format!("{}\n", hex::encode(h.finalize())).as_bytes());
        }
        Behaviour::Http(body) => {
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
                body.len()
            );
        }
        Behaviour::Discard => {
            let mut n = 0u64;
            while let Ok(k) = s.read(&mut buf) {
                if k == 0 {
                    break;
                }
                n += k as u64;
            }
            let _ = s.write_all(format!("{n}\n").as_bytes());
        }
        Behaviour::Source(total) => {
            let zeros = vec![0u8; buf.len()];
            let mut left = total;
            while left > 0 {
                let k = left.min(zeros.len() as u64) as usize;
                if s.write_all(&zeros[..k]).is_err() {
                    return;
                }
                left -= k as u64;
            }
        }
        Behaviour::Stall => {
            std::thread::sleep(Duration::from_secs(600));
            drop(s);
        }
    }
}

pub fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Deterministic pseudo-random bytes (xorshift), cheap and incompressible enough.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sends `data` to 127.0.0.1:`port`, half-closes, returns all it reads back.
pub fn round_trip(port: u16, data: &[u8]) -> Vec<u8> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    let mut r = s;
    r.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    back
}

/// A background `ssh -N` holding port forwards; killed on drop.
pub struct Forwarding {
    child: Child,
    stderr: PathBuf,
    _dir: TempDir,
}

impl Forwarding {
    /// The `ssh` process, to watch it end.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// `ssh -N -o ExitOnForwardFailure=yes <forward args> user@bastion`,
    /// waiting until `wait_port` (a local listener it opens) accepts.
    pub fn start(b: &Bastion, user: &str, args: &[&str], wait_port: Option<u16>) -> Forwarding {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("ssh.err");
        let child = b
            .ssh(user)
            .args(["-N", "-o", "ExitOnForwardFailure=yes"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut f = Forwarding {
            child,
            stderr,
            _dir: dir,
        };
        if let Some(p) = wait_port {
            let start = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                if let Ok(Some(st)) = f.child.try_wait() {
                    panic!("ssh exited ({st}): {}", f.stderr());
                }
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "forward never listened: {}",
                    f.stderr()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        f
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for the ssh process to exit on its own; its status and stderr.
    pub fn wait_exit(&mut self, within: Duration) -> Option<(std::process::ExitStatus, String)> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some((st, self.stderr()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bastion {
    /// `portcullis target add-tcp NAME HOST:PORT [--capture]`.
    pub fn add_tcp_target(&self, name: &str, host: &str, port: u16, capture: bool) {
        let addr = format!("{host}:{port}");
        let mut args = vec!["target", "add-tcp", name, addr.as_str()];
        if capture {
            args.push("--capture");
        }
        self.admin(&args);
    }

    /// Audit events of exactly `kind` (newest first): the detail JSON of each.
    pub fn audit_details(&self, kind: &str) -> Vec<serde_json::Value> {
        let mut rows: Vec<serde_json::Value> = self
            .audit_export(&["--kind", kind])
            .into_iter()
            .filter(|e| e["kind"].as_str() == Some(kind))
            .map(|e| e["detail"].clone())
            .collect();
        rows.reverse();
        rows
    }

    /// `ssh -W host:port user@bastion` with `input` on stdin.
    pub fn stdio_forward(&self, user: &str, dest: &str, input: &[u8]) -> Output {
        let mut child = self
            .ssh(user)
            .args(["-W", dest])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let w = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let what = format!("ssh -W {dest} {user}@bastion");
        let out = super::wait::output_of(child, &what, super::wait::command_limit());
        w.join().unwrap();
        out
    }
}

/// CPU time (all threads, from the scheduler's per-thread counters) that
/// `b`'s `portcullis serve` process has used so far; benchmarks compare it
/// before and after a transfer.
pub fn serve_cpu(b: &Bastion) -> Duration {
    let config = b.config.to_string_lossy().into_owned();
    let pid = find_pid(|args| args.iter().any(|a| a == "serve") && args.contains(&config));
    cpu_of(pid)
}

/// The same for the test sshd and every process it forked (the session
/// processes that do its crypto).
pub fn sshd_cpu(sshd: &Sshd) -> Duration {
    let pid = std::fs::read_to_string(sshd.dir.path().join("sshd.pid")).unwrap();
    let root: u32 = pid.trim().parse().unwrap();
    let mut tree = vec![root];
    let mut i = 0;
    while let Some(&parent) = tree.get(i) {
        tree.extend(children(parent));
        i += 1;
    }
    tree.into_iter().map(cpu_of).sum()
}

fn processes() -> impl Iterator<Item = (u32, std::path::PathBuf)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
}

fn find_pid(matches: impl Fn(&[String]) -> bool) -> u32 {
    processes()
        .find(|(_, path)| {
            let cmd = std::fs::read(path.join("cmdline")).unwrap_or_default();
            let args: Vec<String> = cmd
                .split(|&c| c == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            matches(&args)
        })
        .expect("no such process")
        .0
}

fn children(parent: u32) -> Vec<u32> {
    processes()
        .filter(|(_, path)| {
            let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
            // The fields after the parenthesised command name: state, ppid, ...
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            rest.split_whitespace().nth(1) == Some(parent.to_string().as_str())
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// On-CPU time of every thread of `pid` (0 once it is gone).
fn cpu_of(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}
