//! Bounded waits for the processes the harness runs (ssh, scp, sftp, the
//! CLI, the bastion): a client that hangs fails its test, naming the
//! command and showing its stderr, instead of hanging CI.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one harness command may run: `PORTCULLIS_TEST_COMMAND_SECS`,
/// else 300 s (far above the slowest benchmark transfer; the point is that
/// a hang ends).
pub fn command_limit() -> Duration {
    let secs = std::env::var("PORTCULLIS_TEST_COMMAND_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

/// `Command::output` with a time limit, the caller's stdio settings kept
/// (it is `output` itself, run on a helper thread). The command carries a
/// unique mark in its environment; past `limit` every process bearing the
/// mark (the command and whatever it started) is killed, and the test
/// panics with the command and its stderr.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let what = format!("{cmd:?}");
    let mark = format!(
        "{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    cmd.env(MARK, &mark);
    let mut moved = std::mem::replace(cmd, Command::new("true"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let out = moved.output();
        let _ = tx.send((moved, out));
    });
    let (back, out) = match rx.recv_timeout(limit) {
        Ok(done) => done,
        Err(_) => {
            kill_marked(&mark);
            let stderr = match rx.recv_timeout(Duration::from_secs(10)) {
                Ok((_, Ok(out))) => String::from_utf8_lossy(&out.stderr).into_owned(),
                _ => "(not collected)".into(),
            };
            panic!(
                "{what} did not finish within {} s and was killed; stderr:\n{stderr}",
                limit.as_secs()
            );
        }
    };
    *cmd = back;
    out.unwrap_or_else(|e| panic!("spawning {what}: {e}"))
}

/// The environment variable that marks the processes of one bounded run.
const MARK: &str = "PORTCULLIS_TEST_RUN";

/// Kills every process of ours whose environment carries this run's mark.
fn kill_marked(mark: &str) {
    let needle = format!("{MARK}={mark}\0").into_bytes();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let name = p.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(env) = std::fs::read(p.path().join("environ")) else {
            continue; // not ours, or gone
        };
        if env.windows(needle.len()).any(|w| w == needle.as_slice()) {
            let _ = Command::new("kill").args(["-KILL", &name]).status();
        }
    }
}

/// `Child::wait_with_output` with a time limit (pipes the caller set up are
/// read to their end; a child past `limit` is killed and the test panics).
pub fn output_of(mut child: Child, what: &str, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    drop(child.stdin.take());
    let out = child.stdout.take().map(read_all);
    let err = child.stderr.take().map(read_all);
    let status = match status_by(&mut child, deadline) {
        Some(s) => s,
        None => {
            kill(&mut child);
            let stderr = err.map(|e| e.recv_timeout(Duration::from_secs(2)).unwrap_or_default());
            panic!(
                "{what} did not finish within {} s and was killed; stderr:\n{}",
                limit.as_secs(),
                String::from_utf8_lossy(&stderr.unwrap_or_default())
            );
        }
    };
    // A process the child started may hold its pipes open past its exit.
    let rest = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(5));
    let collect = |rx: Option<mpsc::Receiver<Vec<u8>>>, name: &str| {
        rx.map(|rx| {
            rx.recv_timeout(rest).unwrap_or_else(|_| {
                panic!("{what} exited ({status}) but its {name} stayed open past the limit")
            })
        })
        .unwrap_or_default()
    };
    Output {
        stdout: collect(out, "stdout"),
        stderr: collect(err, "stderr"),
        status,
    }
}

/// `Child::wait` with a time limit; past it the child is killed and the
/// test panics, naming `what`.
pub fn status_within(child: &mut Child, what: &str, limit: Duration) -> ExitStatus {
    status_by(child, Instant::now() + limit).unwrap_or_else(|| {
        kill(child);
        panic!(
            "{what} did not exit within {} s and was killed",
            limit.as_secs()
        )
    })
}

/// Kills the process `pid` (with `kill -KILL`) if it still runs after
/// `limit`, unless the guard was dropped first: bounds a conversation with
/// a child (reading its prompts) that has no single wait to bound.
pub struct KillAfter {
    disarm: Option<mpsc::Sender<()>>,
}

impl KillAfter {
    pub fn new(pid: u32, what: &str, limit: Duration) -> KillAfter {
        let (tx, rx) = mpsc::channel::<()>();
        let what = what.to_string();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!(
                    "harness: {what} still ran after {} s; killing it",
                    limit.as_secs()
                );
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        });
        KillAfter { disarm: Some(tx) }
    }
}

impl Drop for KillAfter {
    fn drop(&mut self) {
        if let Some(tx) = self.disarm.take() {
            let _ = tx.send(());
        }
    }
}

/// Polls until the child exits or the deadline passes (`None`). The poll
/// starts at 1 ms and backs off to 10 ms, so short commands are not slowed.
fn status_by(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Ok(None) => return None,
            Err(e) => panic!("waiting for a child process: {e}"),
        }
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn read_all(mut r: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}
