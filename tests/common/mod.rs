//! Test harness: a real OpenSSH sshd on a loopback port (in a private mount
//! namespace with test copies of the account files), a real portcullis
//! process, and the real OpenSSH client tools.
#![allow(dead_code)]

pub mod api;
pub mod audit;
pub mod cm;
pub mod forward;
pub mod stamp;
pub mod synth;
pub mod wait;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub mod jump;

pub const TARGET_USER: &str = "tuser";
/// The vaulted password of the target account; must never reach a client,
/// a log or the database in clear.
pub const TARGET_PASSWORD: &str = "Vaulted-Upstream-Secret-7f3a9c";
pub const ALICE_PASSWORD: &str = "alice-bastion-password";

pub fn need(bin: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
        || Path::new(bin).exists();
    assert!(
        found,
        "{bin} is not installed: apt-get install -y {package} (or run .ci/run, which installs it)"
    );
}

/// A loopback port nobody listens on. Ports handed out are remembered so
/// two tests running in parallel never get the same one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = portcullis::sync::MutexExt::lock_or_recover(&GIVEN);
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Polls `f` every 100 ms until it holds; panics naming `what` after `secs`.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    wait_for(what, secs, || f().then_some(()))
}

/// Polls `f` every 100 ms until it yields a value; panics naming `what`
/// after `secs`.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn wait_port(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what} did not listen on {port}; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Runs a command to its end, bounded by `wait::command_limit()`.
pub fn run(cmd: &mut Command) -> Output {
    wait::output_within(cmd, wait::command_limit())
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn keygen(path: &Path, kind: &str) {
    need("ssh-keygen", "openssh-client");
    let mut c = Command::new("ssh-keygen");
    c.args(["-q", "-N", "", "-t", kind, "-f"]).arg(path);
    if kind == "rsa" {
        c.args(["-b", "3072"]);
    }
    run_ok(&mut c);
}

/// A real sshd whose `tuser` account has a password and an authorized key.
pub struct Sshd {
    pub dir: TempDir,
    pub port: u16,
    pub host_pub: PathBuf,
    /// Private key authorized for tuser (used as the vaulted key credential).
    pub user_key: PathBuf,
    pub home: PathBuf,
    child: Child,
}

impl Sshd {
    pub fn start() -> Sshd {
        Self::start_with_key("ed25519")
    }

    pub fn start_with_key(user_key_kind: &str) -> Sshd {
        Self::start_with(user_key_kind, "")
    }

    /// With `extra` appended to the test sshd_config (e.g. `RekeyLimit`).
    pub fn start_with(user_key_kind: &str, extra: &str) -> Sshd {
        need("/usr/sbin/sshd", "openssh-server");
        need("unshare", "util-linux");
        need("openssl", "openssl");
        let dir = tempfile::Builder::new()
            .prefix("pc-sshd")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let host_key = d.join("host_ed25519");
        keygen(&host_key, "ed25519");
        let user_key = d.join("tuser_key");
        keygen(&user_key, user_key_kind);
        let ak = d.join("authorized_keys");
        std::fs::create_dir_all(&ak).unwrap();
        std::fs::copy(d.join("tuser_key.pub"), ak.join(TARGET_USER)).unwrap();
        let home = d.join("home");
        std::fs::create_dir_all(&home).unwrap();
        run_ok(Command::new("chown").arg("4242:4242").arg(&home));
        Self::accounts(d);
        let port = free_port();
        let template = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proto-fixtures/sshd_config.template"
        ))
        .unwrap();
        let conf = template
            .replace("@PORT@", &port.to_string())
            .replace("@HOST_KEY@", &host_key.display().to_string())
            .replace("@PID_FILE@", &d.join("sshd.pid").display().to_string())
            .replace("@AUTHORIZED_KEYS_DIR@", &ak.display().to_string())
            .replace(
                "@CIPHERS@",
                "aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr",
            );
        std::fs::write(d.join("sshd_config"), format!("{conf}\n{extra}\n")).unwrap();
        let script = format!(
            "set -e; mount -t tmpfs tmpfs /run; mkdir -p /run/sshd; chmod 755 /run/sshd; \
             mount -t tmpfs tmpfs /var/log; \
             for f in passwd shadow group; do mount --bind {d}/$f /etc/$f; done; \
             exec /usr/sbin/sshd -D -e -f {d}/sshd_config",
            d = d.display()
        );
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting sshd under unshare");
        wait_port(port, "sshd", &d.join("sshd.log"));
        write_known_hosts(&d.join("known_hosts"), port, &d.join("host_ed25519.pub"));
        Sshd {
            port,
            host_pub: d.join("host_ed25519.pub"),
            user_key,
            home,
            child,
            dir,
        }
    }

    /// Test copies of the account files with `tuser` added (uid 4242).
    fn accounts(d: &Path) {
        let hash = run_ok(Command::new("openssl").args(["passwd", "-6", TARGET_PASSWORD])).stdout;
        let hash = String::from_utf8(hash).unwrap().trim().to_string();
        let home = d.join("home");
        let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        passwd.push_str(&format!(
            "{TARGET_USER}:x:4242:4242:test user:{}:/bin/sh\n",
            home.display()
        ));
        let mut shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
        shadow.push_str(&format!("{TARGET_USER}:{hash}:19000:0:99999:7:::\n"));
        let mut group = std::fs::read_to_string("/etc/group").unwrap();
        group.push_str(&format!("{TARGET_USER}:x:4242:\n"));
        std::fs::write(d.join("passwd"), passwd).unwrap();
        std::fs::write(d.join("shadow"), shadow).unwrap();
        std::fs::write(d.join("group"), group).unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Direct OpenSSH command to the sshd as tuser with its key (the reference).
    pub fn direct(&self) -> Command {
        let mut c = Command::new("ssh");
        c.args(client_opts(&self.dir.path().join("known_hosts")))
            .arg("-i")
            .arg(&self.user_key)
            .args(["-p", &self.port.to_string()])
            .arg(format!("{TARGET_USER}@127.0.0.1"));
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // sshd session children may still hold the port; kill by pid file.
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("sshd.pid")) {
            let _ = Command::new("kill")
                .arg(pid.trim())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Client options as a careful user has them: the server's key known in
/// advance (strict checking) and the default log level, so refusals show.
pub fn client_opts(known_hosts: &Path) -> Vec<String> {
    let mut o: Vec<String> = [
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=10",
        "-o",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    o.push(format!("UserKnownHostsFile={}", known_hosts.display()));
    o
}

pub fn write_known_hosts(path: &Path, port: u16, pubkey_file: &Path) {
    let key = std::fs::read_to_string(pubkey_file).unwrap();
    std::fs::write(path, format!("[127.0.0.1]:{port} {}\n", key.trim())).unwrap();
}

/// A running portcullis with alice, targets and credentials set up through the CLI.
pub struct Bastion {
    pub dir: TempDir,
    pub port: u16,
    pub alice_key: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
}

/// The binary under test: this build's, or `PORTCULLIS_TEST_BIN` (for the
/// on-demand benchmarks' A/B runs of two builds with one test binary).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("PORTCULLIS_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_portcullis").to_string())
    })
}

impl Bastion {
    /// Creates the data dir and config; nothing is running yet.
    pub fn new() -> Bastion {
        Self::with_config("")
    }

    /// `extra` is appended to the generated config (e.g. a `[limits]` table).
    pub fn with_config(extra: &str) -> Bastion {
        need("ssh", "openssh-client");
        let dir = tempfile::Builder::new()
            .prefix("pc-bastion")
            .tempdir()
            .unwrap();
        let port = free_port();
        let config = dir.path().join("portcullis.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\n[upstream]\nconnect_timeout_secs = 5\n{extra}\n"
            ),
        )
        .unwrap();
        let alice_key = dir.path().join("alice_key");
        keygen(&alice_key, "ed25519");
        Bastion {
            dir,
            port,
            alice_key,
            config,
            child: None,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn cli(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(self.data_dir());
        c
    }

    pub fn admin(&self, args: &[&str]) -> Output {
        run_ok(self.cli().args(args))
    }

    /// `session list` once no row is live: a client can exit before the
    /// bastion has closed its session row.
    pub fn settled_sessions(&self) -> String {
        let start = std::time::Instant::now();
        loop {
            let list = text(&self.admin(&["session", "list"]).stdout);
            if !list.contains("\tlive\t") || start.elapsed() > Duration::from_secs(5) {
                return list;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn admin_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .cli()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = wait::output_of(
            child,
            &format!("portcullis {args:?}"),
            wait::command_limit(),
        );
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// alice (password + key); web01 = key credential, web02 = password credential,
    /// both to the same sshd as tuser; alice granted both.
    pub fn standard(sshd: &Sshd) -> Bastion {
        Self::standard_with(sshd, "")
    }

    /// `alice` as a service account (public key, no MFA) with this
    /// bastion's `alice_key`.
    pub fn add_service_alice(&self) {
        let alice_pub = self.alice_key.with_extension("pub");
        self.admin(&[
            "user",
            "add",
            "alice",
            "--service",
            "--key",
            alice_pub.to_str().unwrap(),
        ]);
    }

    /// [`Bastion::standard`] with `extra` appended to its config.
    pub fn standard_with(sshd: &Sshd, extra: &str) -> Bastion {
        let mut b = Bastion::with_config(extra);
        // A service account (public key, no MFA): the proxy tests log in many
        // times a minute, which a once-only TOTP code rightly forbids.
        b.add_service_alice();
        b.add_target("web01", sshd);
        b.add_target_pinned("web02", sshd.port, &sshd.host_pub);
        b.admin_stdin(
            &[
                "credential",
                "set",
                "web02",
                TARGET_USER,
                "--password-stdin",
            ],
            &format!("{TARGET_PASSWORD}\n"),
        );
        for t in ["web01", "web02"] {
            b.grant(&["--user", "alice", "--target", t, "--login", TARGET_USER]);
        }
        b.start();
        b
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("portcullis.log")
    }

    pub fn start(&mut self) {
        let log = std::fs::File::create(self.log_path()).unwrap();
        let child = self
            .cli()
            .arg("serve")
            // Benchmarks set PORTCULLIS_TEST_LOG=info: debug logging costs CPU.
            .env(
                "PORTCULLIS_LOG",
                std::env::var("PORTCULLIS_TEST_LOG").unwrap_or_else(|_| "debug,russh=info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_port(self.port, "portcullis", &self.log_path());
        write_known_hosts(
            &self.known_hosts(),
            self.port,
            &self.data_dir().join("host_ed25519.pub"),
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("bastion running").id()
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// SIGTERM (a graceful stop that flushes summaries), a second SIGTERM
    /// so live sessions do not wait out the shutdown grace, then SIGKILL
    /// after 5 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let term = || {
                Command::new("kill")
                    .arg("-TERM")
                    .arg(c.id().to_string())
                    .stderr(Stdio::null())
                    .status()
            };
            let _ = term();
            std::thread::sleep(Duration::from_millis(200));
            let _ = term();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `ssh` to the bastion as `user` with alice's key.
    pub fn ssh(&self, user: &str) -> Command {
        self.ssh_key(user, &self.alice_key)
    }

    /// Options for tools that take `-e`/`-S`-style ssh commands or `-o` lists.
    pub fn ssh_opts(&self) -> Vec<String> {
        self.ssh_opts_with(&self.alice_key)
    }

    /// Public key only, batch mode, the bastion's key known in advance.
    pub fn ssh_opts_with(&self, key: &Path) -> Vec<String> {
        let mut o = client_opts(&self.known_hosts());
        o.extend(
            [
                "-o",
                "BatchMode=yes",
                "-o",
                "PreferredAuthentications=publickey",
                "-i",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        o.push(key.display().to_string());
        o
    }
}

impl Drop for Bastion {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn sha256_file(p: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(p));
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

pub fn random_file(p: &Path, mib: usize) {
    run_ok(
        Command::new("head")
            .args(["-c", &format!("{}", mib << 20), "/dev/urandom"])
            .stdout(std::fs::File::create(p).unwrap()),
    );
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Enrolls `user` in TOTP through the CLI, answering the confirmation prompt
/// like a person with an authenticator app; returns the secret.
pub fn enroll_totp(b: &Bastion, user: &str) -> Vec<u8> {
    enroll_totp_told(b, user).0
}

/// [`enroll_totp`], also returning the code typed to confirm (burnt by the
/// enrollment) and what the CLI said after it.
pub fn enroll_totp_told(b: &Bastion, user: &str) -> (Vec<u8>, String, String) {
    use std::io::{BufRead, BufReader};
    let mut child = b
        .cli()
        .args(["user", "totp", "enroll", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let what = format!("portcullis user totp enroll {user}");
    let guard = wait::KillAfter::new(child.id(), &what, wait::command_limit());
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut secret = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        if let Some(s) = line.trim().strip_prefix("secret: ") {
            secret = Some(base32_decode(s));
            break;
        }
        line.clear();
    }
    let secret = secret.expect("enroll printed no secret");
    let code = portcullis::auth::totp::code_at(&secret, unix_now()).unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{code}\n").as_bytes())
        .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    drop(guard);
    let status = wait::status_within(&mut child, &what, wait::command_limit());
    assert!(status.success(), "enroll failed: {rest}");
    assert!(rest.contains("TOTP active"), "{rest}");
    (secret, code, rest)
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code for the step after the current one: accepted (±1 step drift) and
/// always later than the step claimed by an enrollment that just happened.
pub fn next_code(secret: &[u8]) -> String {
    portcullis::auth::totp::code_at(secret, unix_now() + 30).unwrap()
}

fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base32") as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// An SSH_ASKPASS program answering the bastion's prompts from files the
/// test writes: the verification code and (for password logins) the password.
pub struct Askpass {
    pub script: PathBuf,
    pub code: PathBuf,
    pub password: PathBuf,
    _dir: TempDir,
}

impl Askpass {
    pub fn new() -> Askpass {
        let dir = tempfile::tempdir().unwrap();
        let code = dir.path().join("code");
        let password = dir.path().join("password");
        let log = dir.path().join("prompts");
        let script = dir.path().join("askpass.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$1\" >> {log}\ncase \"$1\" in\n  *erification*) cat {code} ;;\n  *assword*) cat {pw} ;;\n  *) exit 1 ;;\nesac\n",
                log = log.display(),
                code = code.display(),
                pw = password.display()
            ),
        )
        .unwrap();
        run_ok(Command::new("chmod").arg("+x").arg(&script));
        std::fs::write(&code, "").unwrap();
        std::fs::write(&password, "").unwrap();
        Askpass {
            script,
            code,
            password,
            _dir: dir,
        }
    }

    pub fn set_code(&self, code: &str) {
        std::fs::write(&self.code, format!("{code}\n")).unwrap();
    }

    pub fn set_password(&self, pw: &str) {
        std::fs::write(&self.password, format!("{pw}\n")).unwrap();
    }

    pub fn prompts(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prompts")).unwrap_or_default()
    }

    /// Applies the askpass environment and turns off batch mode so prompts happen.
    pub fn apply(&self, c: &mut Command) {
        c.env("SSH_ASKPASS", &self.script)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null());
    }
}

impl Bastion {
    /// `ssh` as a human: first factor `auth` ("publickey" with `key`, or
    /// "password"), then the verification code, answered by `askpass`.
    pub fn ssh_human(
        &self,
        user: &str,
        auth: &str,
        key: Option<&Path>,
        askpass: &Askpass,
    ) -> Command {
        let mut c = Command::new("ssh");
        c.args(client_opts(&self.known_hosts()))
            .args([
                "-o",
                &format!("PreferredAuthentications={auth},keyboard-interactive"),
            ])
            .args([
                "-o",
                "NumberOfPasswordPrompts=1",
                "-p",
                &self.port.to_string(),
            ]);
        if let Some(k) = key {
            c.arg("-i").arg(k);
        }
        c.arg(format!("{user}@127.0.0.1"));
        askpass.apply(&mut c);
        c
    }

    /// Adds a human user with a password and a key of their own; returns the key path.
    pub fn add_human(&self, user: &str, password: &str) -> PathBuf {
        let key = self.dir.path().join(format!("{user}_key"));
        keygen(&key, "ed25519");
        self.admin_stdin(
            &[
                "user",
                "add",
                user,
                "--password-stdin",
                "--key",
                key.with_extension("pub").to_str().unwrap(),
            ],
            &format!("{password}\n"),
        );
        for t in ["web01", "web02"] {
            let _ = run(self.cli().args([
                "grant",
                "add",
                "--user",
                user,
                "--target",
                t,
                "--login",
                TARGET_USER,
            ]));
        }
        key
    }
}

impl Bastion {
    /// A target at `port` pinned to the key in `host_pub`, no credential, no grants.
    pub fn add_target_pinned(&self, name: &str, port: u16, host_pub: &Path) {
        let port = port.to_string();
        self.admin(&[
            "target",
            "add",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--host-key-file",
            host_pub.to_str().unwrap(),
        ]);
    }

    /// Another target on the same sshd with the vaulted key credential, no grants.
    pub fn add_target(&self, name: &str, sshd: &Sshd) {
        self.add_target_pinned(name, sshd.port, &sshd.host_pub);
        self.admin(&[
            "credential",
            "set",
            name,
            TARGET_USER,
            "--key-file",
            sshd.user_key.to_str().unwrap(),
        ]);
    }

    /// A service account (key only, no MFA) with its own key; returns the key.
    pub fn add_service(&self, user: &str) -> PathBuf {
        let key = self.dir.path().join(format!("{user}_svc_key"));
        keygen(&key, "ed25519");
        self.admin(&[
            "user",
            "add",
            user,
            "--service",
            "--key",
            key.with_extension("pub").to_str().unwrap(),
        ]);
        key
    }

    /// `ssh` as `user` with `key` (public key only, batch mode).
    pub fn ssh_key(&self, user: &str, key: &Path) -> Command {
        let mut c = Command::new("ssh");
        c.args(self.ssh_opts_with(key))
            .args(["-p", &self.port.to_string()])
            .arg(format!("{user}@127.0.0.1"))
            .stdin(Stdio::null());
        c
    }

    /// Adds a grant and returns its id.
    pub fn grant(&self, args: &[&str]) -> String {
        let mut full = vec!["grant", "add"];
        full.extend_from_slice(args);
        let out = text(&self.admin(&full).stdout);
        out.split_whitespace().nth(1).expect("grant id").to_string()
    }
}

impl Bastion {
    /// Forget a child that was killed behind our back (kill -9 tests).
    pub fn forget_child(&mut self) {
        if let Some(mut c) = self.child.take() {
            wait::status_within(&mut c, "the killed bastion", wait::command_limit());
        }
    }

    /// Runs the bastion in a private mount namespace whose recordings
    /// directory is a tmpfs of `size` (a full disk, without touching the host).
    pub fn start_with_tmpfs_recordings(&mut self, size: &str) {
        let rec = self.data_dir().join("recordings");
        std::fs::create_dir_all(&rec).unwrap();
        let log = std::fs::File::create(self.log_path()).unwrap();
        let script = format!(
            "mount -t tmpfs -o size={size},mode=0700 tmpfs {} && exec {} --config {} --data-dir {} serve",
            rec.display(),
            bin(),
            self.config.display(),
            self.data_dir().display()
        );
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            // Benchmarks set PORTCULLIS_TEST_LOG=info: debug logging costs CPU.
            .env(
                "PORTCULLIS_LOG",
                std::env::var("PORTCULLIS_TEST_LOG").unwrap_or_else(|_| "debug,russh=info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_port(self.port, "portcullis", &self.log_path());
    }
}
