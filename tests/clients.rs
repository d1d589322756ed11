//! Interoperability: each common SSH client stack logs in through
//! `USER+TARGET@bastion` with both factors (a key, then the TOTP code over
//! keyboard-interactive) after a refused key, runs a command (same output
//! and exit code as direct OpenSSH), a pty shell and a 1 MiB file transfer
//! round-trip, and shows a refusal's reason. Drivers: tests/clients/.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Output on stdout and stderr and a non-zero exit: compared with direct OpenSSH.
const EXEC: &str = "id -un; seq 1 100000; echo to-stderr >&2; exit 3";
/// Typed into a pty shell; `pty-42` only appears if the shell ran it.
const PTY_SCRIPT: &str = "echo pty-$((6*7)); tty; exit 7\n";
/// Login with both factors must take less than this.
const LOGIN_BAR: Duration = Duration::from_secs(2);

fn driver(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// The venv's Python with paramiko and asyncssh (PyPI, pinned; `.ci/run`
/// installs them into `.ci/venv` and exports PORTCULLIS_CLIENTS_PYTHON).
fn python() -> PathBuf {
    let p = std::env::var("PORTCULLIS_CLIENTS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/venv/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import paramiko, asyncssh"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{} cannot import paramiko and asyncssh: run .ci/run (it installs them into .ci/venv)",
        p.display()
    );
    p
}

/// A bastion in front of a real sshd, and what direct OpenSSH answers.
struct Lab {
    sshd: Sshd,
    b: Bastion,
    /// A key the bastion knows for nobody: offered first, as an agent would.
    stranger: PathBuf,
    work: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let sshd = Sshd::start();
        let b = Bastion::standard(&sshd);
        let work = tempfile::tempdir().unwrap();
        let stranger = work.path().join("stranger_key");
        keygen(&stranger, "ed25519");
        Lab {
            sshd,
            b,
            stranger,
            work,
        }
    }

    /// A person with a key and TOTP, granted web01; returns (key, code to log in with).
    fn human(&self, name: &str) -> (PathBuf, String) {
        let key = self.b.add_human(name, &format!("{name}-password-1"));
        let secret = enroll_totp(&self.b, name);
        (key, next_code(&secret))
    }

    fn host_pub(&self) -> PathBuf {
        self.b.data_dir().join("host_ed25519.pub")
    }

    fn direct_exec(&self) -> Output {
        run(self.sshd.direct().arg(EXEC).stdin(Stdio::null()))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }
}

/// Runs a JSON-printing driver; returns its result (with "error" on failure).
fn drive(mut cmd: Command) -> Value {
    let out = run(cmd.stdin(Stdio::null()));
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{cmd:?}: no JSON ({e}):\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    assert_eq!(
        out.status.success(),
        v.get("error").is_none(),
        "{cmd:?}: {v}\n{}",
        text(&out.stderr)
    );
    // What the client library itself printed (paramiko logs a channel-open
    // failure's reason at ERROR, which Python shows on stderr by default).
    v["client_stderr"] = Value::String(text(&out.stderr));
    v
}

fn login_args(cmd: &mut Command, lab: &Lab, user: &str, keys: &[&Path], code: &str) {
    cmd.arg("--port")
        .arg(lab.b.port.to_string())
        .arg("--user")
        .arg(user)
        .arg("--host-key")
        .arg(lab.host_pub());
    for k in keys {
        cmd.arg("--key").arg(k);
    }
    if !code.is_empty() {
        cmd.arg("--code").arg(code);
    }
}

/// The whole scenario for a driver printing JSON (paramiko, asyncssh, Go);
/// `base` builds the driver command. Returns the row for the README table.
fn json_client_scenario(name: &str, base: &dyn Fn() -> Command) -> String {
    let lab = Lab::new();
    let (key, code) = lab.human("carol");
    let upload = lab.path("up.bin");
    random_file(&upload, 1);
    let back = lab.path("back.bin");

    // Key refused, key accepted (partial), code: then exec, pty, SFTP.
    let mut c = base();
    login_args(&mut c, &lab, "carol+web01", &[&lab.stranger, &key], &code);
    c.arg("--exec").arg(EXEC).arg("--pty").arg(PTY_SCRIPT);
    c.arg("--put").arg(&upload).arg("up.bin");
    c.arg("--get").arg("up.bin").arg(&back);
    let v = drive(c);
    assert!(v.get("error").is_none(), "{name}: {v}\n{}", lab.b.log());
    let secs = v["login_secs"].as_f64().unwrap();
    assert!(
        secs < LOGIN_BAR.as_secs_f64(),
        "{name}: login took {secs} s"
    );
    let methods: Vec<&str> = v["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        ["publickey(refused)", "publickey", "keyboard-interactive"],
        "{name}"
    );

    let direct = lab.direct_exec();
    assert_eq!(direct.status.code(), Some(3));
    assert_eq!(v["exec"]["stdout"].as_str().unwrap(), text(&direct.stdout));
    assert_eq!(v["exec"]["stderr"].as_str().unwrap(), text(&direct.stderr));
    assert_eq!(v["exec"]["exit"].as_i64(), Some(3), "{name}");

    let pty = v["pty"]["output"].as_str().unwrap();
    assert!(pty.contains("pty-42"), "{name}: {v}");
    assert!(pty.contains("/dev/pts/"), "{name}: no tty: {pty}");
    assert_eq!(v["pty"]["exit"].as_i64(), Some(7), "{name}: {pty}");

    assert_eq!(v["sftp"], Value::Bool(true));
    assert_eq!(
        sha256_file(&upload),
        sha256_file(&lab.sshd.home.join("up.bin"))
    );
    assert_eq!(sha256_file(&upload), sha256_file(&back));

    // Key only (a service account), the agent case: a stranger's key first.
    let svc = lab.b.add_service("svc1");
    let mut c = base();
    login_args(&mut c, &lab, "svc1+web01", &[&lab.stranger, &svc], "");
    lab.b.grant(&[
        "--user",
        "svc1",
        "--target",
        "web01",
        "--login",
        TARGET_USER,
    ]);
    c.arg("--exec").arg("id -un");
    let v2 = drive(c);
    assert!(v2.get("error").is_none(), "{name}: {v2}\n{}", lab.b.log());
    assert_eq!(v2["exec"]["stdout"].as_str(), Some("tuser\n"), "{name}");

    // A refusal: its reason reaches the client.
    let mut c = base();
    login_args(&mut c, &lab, "svc1+nope", &[&svc], "");
    c.arg("--exec").arg("true");
    let v3 = drive(c);
    let shown = format!(
        "{} {} {}",
        v3["error"], v3["exec"]["stderr"], v3["client_stderr"]
    );
    assert!(
        shown.contains("you have no grant for target nope"),
        "{name}: the reason is not shown: {v3}"
    );

    // Key and code alone: the login time without the refused key's delay.
    let (key, code) = lab.human("dan");
    let mut c = base();
    login_args(&mut c, &lab, "dan+web01", &[&key], &code);
    c.arg("--exec").arg("true");
    let v4 = drive(c);
    assert!(v4.get("error").is_none(), "{name}: {v4}\n{}", lab.b.log());
    let plain = v4["login_secs"].as_f64().unwrap();
    assert!(
        plain < LOGIN_BAR.as_secs_f64(),
        "{name}: login took {plain} s"
    );
    row(v["client"].as_str().unwrap(), plain, secs)
}

/// A line of the README's "Clients" table.
fn row(client: &str, plain: f64, refused_first: f64) -> String {
    format!(
        "| {client} | publickey + keyboard-interactive (TOTP) | ok | {plain:.2} s | {refused_first:.2} s |"
    )
}

fn report(row: &str) {
    eprintln!("CLIENT-ROW {row}");
}

#[test]
fn paramiko_logs_in_with_mfa_after_a_refused_key_and_does_everything() {
    let py = python();
    let row = json_client_scenario("paramiko", &|| {
        let mut c = Command::new(&py);
        c.arg(driver("paramiko_client.py"));
        c
    });
    report(&row);
}

/// The russh patch answers a repeated `ssh-userauth` request only while
/// authentication is in progress: once a user is in, asking for the service
/// again and trying another user gets no answer, and the connection stays
/// the first user's.
#[test]
fn after_login_a_new_userauth_request_is_not_answered() {
    let py = python();
    let lab = Lab::new();
    let (key, code) = lab.human("carol");
    let _ = lab.b.add_service("svc2");
    let mut c = Command::new(&py);
    c.arg(driver("paramiko_client.py"));
    login_args(&mut c, &lab, "carol+web01", &[&key], &code);
    c.arg("--probe-after-auth").arg("svc2+web01");
    let v = drive(c);
    assert!(v.get("error").is_none(), "{v}\n{}", lab.b.log());
    assert_eq!(v["probe"]["replies"], serde_json::json!([]), "{v}");
    assert_eq!(v["probe"]["exec"]["stdout"].as_str(), Some("still-here\n"));
    assert_eq!(
        v["methods"],
        serde_json::json!(["publickey", "keyboard-interactive"])
    );
    let sessions = lab.b.settled_sessions();
    assert!(!sessions.contains("svc2"), "{sessions}");
}

#[test]
fn asyncssh_logs_in_with_mfa_after_a_refused_key_and_does_everything() {
    let py = python();
    let row = json_client_scenario("asyncssh", &|| {
        let mut c = Command::new(&py);
        c.arg(driver("asyncssh_client.py"));
        c
    });
    report(&row);
}

/// Version of an installed Debian package, for the report.
fn deb_version(package: &str) -> String {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Version}", package]));
    assert!(
        out.status.success(),
        "{package} is not installed: run .ci/run (it installs it with apt-get)"
    );
    text(&out.stdout)
}

/// The Go client, built offline in GOPATH mode from Debian's packages of
/// golang.org/x/crypto and github.com/pkg/sftp (no module download).
fn go_client() -> PathBuf {
    need("go", "golang-go");
    for (dir, package) in [
        ("golang.org/x/crypto/ssh", "golang-golang-x-crypto-dev"),
        ("github.com/pkg/sftp", "golang-github-pkg-sftp-dev"),
    ] {
        assert!(
            Path::new("/usr/share/gocode/src").join(dir).is_dir(),
            "{dir} missing: apt-get install -y {package} (or run .ci/run)"
        );
    }
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-client");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join("client");
    run_ok(
        Command::new("go")
            .args(["build", "-o"])
            .arg(&exe)
            .arg(driver("go/main.go"))
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            .env("GOCACHE", out_dir.join("cache")),
    );
    exe
}

#[test]
fn go_x_crypto_ssh_logs_in_with_mfa_after_a_refused_key_and_does_everything() {
    let exe = go_client();
    let label = format!("x/crypto/ssh {}", deb_version("golang-golang-x-crypto-dev"));
    let row = json_client_scenario("go", &|| {
        let mut c = Command::new(&exe);
        c.arg("--label").arg(&label);
        c
    });
    report(&row);
}

/// An OpenSSH agent of the test's own holding `keys` in that order (PuTTY
/// on Unix offers the keys of the agent at SSH_AUTH_SOCK, in its order).
struct Agent {
    sock: PathBuf,
    child: std::process::Child,
}

impl Agent {
    fn start(dir: &Path, keys: &[&Path]) -> Agent {
        need("ssh-agent", "openssh-client");
        let sock = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while !sock.exists() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for k in keys {
            run_ok(
                Command::new("ssh-add")
                    .arg("-q")
                    .arg(k)
                    .env("SSH_AUTH_SOCK", &sock),
            );
        }
        Agent { sock, child }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PuTTY tool (or expect driving one) with the test's own HOME: PuTTY
/// keeps a random seed (and would keep host keys) under ~/.putty.
fn putty_cmd(program: &str, home: &Path) -> Command {
    let mut c = Command::new(program);
    c.env("HOME", home);
    c
}

/// The bastion's host key as PuTTY's `-hostkey` takes it (SHA256:...).
fn sha256_fingerprint(pub_file: &Path) -> String {
    let out = run_ok(
        Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(pub_file),
    );
    text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string()
}

/// PuTTY's own key format, converted with puttygen.
fn ppk(key: &Path, home: &Path) -> PathBuf {
    let out = key.with_extension("ppk");
    run_ok(
        putty_cmd("puttygen", home)
            .arg(key)
            .args(["-O", "private", "-o"])
            .arg(&out),
    );
    out
}

/// Runs `cmd` (plink -v), timing the login from the start to PuTTY's
/// "Access granted" line on stderr. Returns (output, login time).
fn timed_plink(cmd: &mut Command) -> (Output, Duration) {
    timed_until(cmd, "Access granted")
}

/// Runs `cmd`, timing from the start to the first stderr line containing
/// `marker`. Returns (output, time to the marker).
fn timed_until(cmd: &mut Command, marker: &str) -> (Output, Duration) {
    use std::io::{BufRead, BufReader, Read};
    let t0 = std::time::Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).unwrap();
        v
    });
    let mut stderr = Vec::new();
    let mut granted = None;
    let mut lines = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while lines.read_line(&mut line).unwrap() > 0 {
        if granted.is_none() && line.contains(marker) {
            granted = Some(t0.elapsed());
        }
        stderr.extend_from_slice(line.as_bytes());
        line.clear();
    }
    let status = child.wait().unwrap();
    let out = Output {
        status,
        stdout: reader.join().unwrap(),
        stderr,
    };
    let login = granted.unwrap_or_else(|| panic!("{marker:?} never came: {}", text(&out.stderr)));
    (out, login)
}

#[test]
fn putty_plink_and_pscp_log_in_with_mfa_and_do_everything() {
    for bin in ["plink", "pscp", "puttygen"] {
        need(bin, "putty-tools");
    }
    need("expect", "expect");
    let lab = Lab::new();
    let home = lab.path("putty-home");
    std::fs::create_dir(&home).unwrap();
    let fp = sha256_fingerprint(&lab.host_pub());
    let port = lab.b.port.to_string();
    // The code in a file (-pwfile): PuTTY answers a lone non-echoed
    // keyboard-interactive prompt with it, also in batch mode.
    let code_file = |code: &str| {
        let p = lab.path(&format!("code-{code}"));
        std::fs::write(&p, code).unwrap();
        p
    };
    let batch = |code: &Path| -> Vec<String> {
        vec![
            "-batch".into(),
            "-P".into(),
            port.clone(),
            "-hostkey".into(),
            fp.clone(),
            "-pwfile".into(),
            code.display().to_string(),
        ]
    };

    // plink: an agent offering a stranger's key first, then the key, the code; exec.
    let (key, code) = lab.human("pat");
    let agent = Agent::start(lab.work.path(), &[&lab.stranger, &key]);
    let (out, login) = timed_plink(
        putty_cmd("plink", &home)
            .arg("-v")
            .args(batch(&code_file(&code)))
            .args(["-l", "pat+web01", "127.0.0.1", EXEC])
            .env("SSH_AUTH_SOCK", &agent.sock),
    );
    let err = text(&out.stderr);
    assert!(err.contains("Server refused our key"), "{err}");
    assert!(err.contains("Further authentication required"), "{err}");
    let direct = lab.direct_exec();
    assert_eq!(text(&out.stdout), text(&direct.stdout), "{err}");
    assert_eq!(out.status.code(), direct.status.code(), "{err}");
    assert!(err.contains("to-stderr\n"), "{err}");
    assert!(login < LOGIN_BAR, "plink login took {login:?}");
    drop(agent);

    // plink -t: a person types the code at the prompt, then a pty shell.
    let (key, code) = lab.human("pia");
    let out = run(putty_cmd("expect", &home)
        .arg(driver("plink_pty.exp"))
        .arg(&code)
        .arg(PTY_SCRIPT.trim_end())
        .args(["plink", "-t", "-P", &port, "-hostkey", &fp, "-i"])
        .arg(ppk(&key, &home))
        .args(["-l", "pia+web01", "127.0.0.1"]));
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{shown}");
    assert!(shown.contains("pty-42"), "{shown}");
    assert!(shown.contains("/dev/pts/"), "{shown}");

    // pscp: 1 MiB up, then down again (each a login with both factors).
    let upload = lab.path("up.bin");
    random_file(&upload, 1);
    let back = lab.path("back.bin");
    let (key, code) = lab.human("pum");
    run_ok(
        putty_cmd("pscp", &home)
            .args(batch(&code_file(&code)))
            .arg("-i")
            .arg(ppk(&key, &home))
            .arg(&upload)
            .arg("pum+web01@127.0.0.1:up.bin"),
    );
    let (key, code) = lab.human("pod");
    run_ok(
        putty_cmd("pscp", &home)
            .args(batch(&code_file(&code)))
            .arg("-i")
            .arg(ppk(&key, &home))
            .arg("pod+web01@127.0.0.1:up.bin")
            .arg(&back),
    );
    assert_eq!(
        sha256_file(&upload),
        sha256_file(&lab.sshd.home.join("up.bin"))
    );
    assert_eq!(sha256_file(&upload), sha256_file(&back));

    // The pin holds: another fingerprint and plink stops before any login.
    let other = sha256_fingerprint(&lab.sshd.host_pub);
    let out = run(putty_cmd("plink", &home)
        .args(["-batch", "-P", &port, "-hostkey", &other, "-l", "x+web01"])
        .args(["127.0.0.1", "true"])
        .stdin(Stdio::null()));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("manually configured list"), "{err}");

    // A refusal: plink shows the reason.
    let svc = lab.b.add_service("psvc");
    let out = run(putty_cmd("plink", &home)
        .args(["-batch", "-P", &port, "-hostkey", &fp, "-i"])
        .arg(ppk(&svc, &home))
        .args(["-l", "psvc+nope", "127.0.0.1", "true"])
        .stdin(Stdio::null()));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("you have no grant for target nope"), "{err}");

    // Key (-i) and code alone: the login time without the refused key.
    let (key, code) = lab.human("pal");
    let (out, plain) = timed_plink(
        putty_cmd("plink", &home)
            .arg("-v")
            .args(batch(&code_file(&code)))
            .arg("-i")
            .arg(ppk(&key, &home))
            .args(["-l", "pal+web01", "127.0.0.1", "true"]),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(plain < LOGIN_BAR, "plink login took {plain:?}");

    report(&row(
        &format!("plink/pscp {}", deb_version("putty-tools")),
        plain.as_secs_f64(),
        login.as_secs_f64(),
    ));
}

/// The reference: OpenSSH's own client through the bastion, timed to its
/// "Authenticated to" line (-v), a stranger's key offered first.
#[test]
fn openssh_reference_login_times() {
    let lab = Lab::new();
    let ap = Askpass::new();
    let mut times = Vec::new();
    for (user, first) in [("oli", None), ("ola", Some(&lab.stranger))] {
        let (key, code) = lab.human(user);
        ap.set_code(&code);
        let mut c = lab
            .b
            .ssh_human(&format!("{user}+web01"), "publickey", None, &ap);
        if let Some(k) = first {
            c.arg("-i").arg(k);
        }
        c.arg("-i").arg(&key).arg("-v").arg("true");
        let (out, login) = timed_until(&mut c, "Authenticated to");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(login < LOGIN_BAR, "ssh login took {login:?}");
        times.push(login.as_secs_f64());
    }
    let version = text(&run_ok(Command::new("ssh").arg("-V")).stderr);
    let version = version.split([',', ' ']).next().unwrap_or("").to_string();
    report(&row(&version, times[0], times[1]));
}
