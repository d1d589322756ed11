//! Client runs under a watchdog, and an OpenSSH ControlMaster connection
//! that later clients ride (shared by the gate and refusal tests).

use super::Bastion;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// No client call may hang a test: past this it is killed and the test fails.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Runs `cmd` (stdin from /dev/null) under a watchdog.
pub fn run_limited(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    wait_limited(child, &format!("{cmd:?}"))
}

/// Everything `r` yields, read on a thread so a full pipe never stalls the child.
pub fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

/// Waits for `child`, killing it (and failing) past [`LIMIT`].
pub fn wait_limited(mut child: Child, what: &str) -> Output {
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hung for {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// An OpenSSH ControlMaster connection to the bastion; later commands ride it.
pub struct ControlMaster<'a> {
    pub b: &'a Bastion,
    pub user: String,
    key: PathBuf,
    _dir: tempfile::TempDir,
    pub sock: PathBuf,
}

impl<'a> ControlMaster<'a> {
    /// A master logged in as `user` with alice's key.
    pub fn start(b: &'a Bastion, user: &str) -> ControlMaster<'a> {
        Self::start_with(b, user, &b.alice_key)
    }

    /// A master logged in as `user` with `key` (public key, batch mode).
    pub fn start_with(b: &'a Bastion, user: &str, key: &Path) -> ControlMaster<'a> {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("cm.sock");
        let m = ControlMaster {
            b,
            user: user.into(),
            key: key.to_path_buf(),
            _dir: dir,
            sock,
        };
        // `-f` leaves a background master holding whatever stdout/stderr it
        // was given: files, not pipes, so nothing waits for it to exit.
        let log = m._dir.path().join("master.log");
        let child =
            m.b.ssh_key(&m.user, &m.key)
                .arg("-S")
                .arg(&m.sock)
                .args(["-M", "-f", "-N", "-o", "ControlPersist=60"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
        let out = wait_limited(child, "ssh -M -f -N");
        assert!(
            out.status.success() && m.alive(),
            "master: {:?} {}",
            out.status,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        m
    }

    /// A client that rides the master (`ControlMaster=no`).
    pub fn command(&self, extra: &[&str]) -> Command {
        let mut c = self.b.ssh_key(&self.user, &self.key);
        c.arg("-S")
            .arg(&self.sock)
            .args(["-o", "ControlMaster=no"])
            .args(extra);
        c
    }

    pub fn alive(&self) -> bool {
        run_limited(&mut self.command(&["-O", "check"]))
            .status
            .success()
    }
}

impl Drop for ControlMaster<'_> {
    fn drop(&mut self) {
        let _ = run_limited(&mut self.command(&["-O", "exit"]));
    }
}
