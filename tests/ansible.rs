//! Issue 15 point 4: Ansible through the bastion, with the files README.md
//! documents (tests/ansible/): ping, command, copy and fetch for a service
//! account over the `ssh` and the `paramiko` connection plugins, and for a
//! person with TOTP riding a master connection opened with the code typed
//! once. And the `USER+TARGET` remote tmp problem: without `remote_tmp`,
//! Ansible makes a literal `~svc+web01` directory on the target; with the
//! documented setting it makes none.
//!
//! ansible-core and paramiko come from PyPI into `.ci/venv` (`.ci/run`
//! installs them and exports PORTCULLIS_ANSIBLE_BIN); a missing install fails.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

const FILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ansible");

/// The directory holding `ansible` and `ansible-playbook`.
fn ansible_bin() -> PathBuf {
    let dir = std::env::var_os("PORTCULLIS_ANSIBLE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/venv/bin")));
    assert!(
        dir.join("ansible-playbook").exists() && dir.join("ansible").exists(),
        "ansible-core is not installed in {}: run .ci/run (it pip-installs the pinned \
         ansible-core and paramiko into .ci/venv) or set PORTCULLIS_ANSIBLE_BIN",
        dir.display()
    );
    dir
}

/// Whether `text` still holds a `@NAME@` placeholder.
fn unfilled(text: &str) -> bool {
    text.split('@')
        .skip(1)
        .step_by(2)
        .any(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        && text.matches('@').count() >= 2
}

/// A scratch directory for one Ansible setup: config, inventory, its own
/// HOME (Ansible's local state, paramiko's known_hosts), a payload to copy.
struct Project {
    dir: tempfile::TempDir,
    payload: PathBuf,
}

impl Project {
    /// Fills `NAME.cfg` and `NAME.ini` from tests/ansible/ with `values`.
    fn new(name: &str, values: &[(&str, String)]) -> Project {
        let dir = tempfile::Builder::new().prefix("pc-ans").tempdir().unwrap();
        let d = dir.path();
        for ext in ["cfg", "ini", "ssh_config"] {
            let Ok(mut text) = std::fs::read_to_string(format!("{FILES}/{name}.{ext}")) else {
                assert_eq!(ext, "ssh_config", "{name}.{ext} missing");
                continue;
            };
            text = text.replace("@DIR@", &d.display().to_string());
            for (k, v) in values {
                text = text.replace(&format!("@{k}@"), v);
            }
            assert!(
                !unfilled(&text),
                "unfilled placeholder in {name}.{ext}: {text}"
            );
            std::fs::write(d.join(format!("{name}.{ext}")), text).unwrap();
        }
        std::fs::rename(d.join(format!("{name}.cfg")), d.join("ansible.cfg")).unwrap();
        let _ = std::fs::rename(d.join(format!("{name}.ssh_config")), d.join("ssh_config"));
        std::fs::create_dir_all(d.join("home/.ssh")).unwrap();
        let payload = d.join("payload.bin");
        random_file(&payload, 1);
        Project { dir, payload }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `ansible` or `ansible-playbook` with this project's config and HOME.
    fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(ansible_bin().join(name));
        let d = self.path();
        c.current_dir(d)
            .env("ANSIBLE_CONFIG", d.join("ansible.cfg"))
            .env("HOME", d.join("home"))
            .env("ANSIBLE_HOME", d.join("home/.ansible"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_FORCE_COLOR", "0")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("SSH_ASKPASS")
            .env_remove("DISPLAY")
            .stdin(Stdio::null());
        c
    }

    /// The playbook (ping, command, copy, fetch), with `target_dir` on the target.
    fn playbook(&self, target_dir: &Path, extra: &[&str]) -> Output {
        let fetched = self.path().join("fetched.bin");
        for host in ["web01", "web02"] {
            let _ = std::fs::remove_file(self.fetched(host));
        }
        let mut c = self.tool("ansible-playbook");
        c.arg(format!("{FILES}/playbook.yml"))
            .arg("-e")
            .arg(format!("payload={}", self.payload.display()))
            .arg("-e")
            .arg(format!("target_dir={}", target_dir.display()))
            .arg("-e")
            .arg(format!("fetched={}", fetched.display()))
            .args(extra);
        run(&mut c)
    }

    /// Where the playbook's fetch puts `host`'s copy.
    fn fetched(&self, host: &str) -> PathBuf {
        self.path().join(format!("fetched.bin.{host}"))
    }

    /// Asserts a playbook run did all four things, really, on the target.
    fn assert_played(&self, out: &Output, target_dir: &Path, how: &str) {
        let all = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{how}: {all}");
        assert!(
            all.contains("ansible-through-portcullis web01"),
            "{how}: command output missing: {all}"
        );
        assert!(
            all.contains("ok=7") && all.contains("failed=0") && all.contains("unreachable=0"),
            "{how}: {all}"
        );
        let sent = sha256_file(&self.payload);
        assert!(all.contains(&sent), "{how}: target digest differs: {all}");
        assert_eq!(sha256_file(&target_dir.join("payload.bin")), sent, "{how}");
        assert_eq!(
            sha256_file(&self.fetched("web01")),
            sent,
            "{how}: fetched copy differs"
        );
        std::fs::remove_file(target_dir.join("payload.bin")).unwrap();
    }
}

/// Sessions the bastion recorded for `user` on web01.
fn sessions_of(b: &Bastion, user: &str) -> usize {
    b.settled_sessions()
        .lines()
        .filter(|l| l.split('\t').nth(1) == Some(user) && l.contains("@web01\t"))
        .count()
}

/// Entries in the target account's home whose name starts with `~`.
fn tilde_dirs(home: &Path) -> Vec<String> {
    std::fs::read_dir(home)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('~'))
        .collect()
}

/// A directory on the target the test account can write to.
fn target_dir(sshd: &Sshd) -> PathBuf {
    let d = sshd.home.join("work");
    std::fs::create_dir_all(&d).unwrap();
    run_ok(Command::new("chown").arg("4242:4242").arg(&d));
    d
}

/// Stops the OpenSSH masters the ssh plugin left (ControlPersist) in `dir`.
fn stop_masters(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let _ = Command::new("ssh")
            .args(["-F", "/dev/null", "-o"])
            .arg(format!("ControlPath={}", e.path().display()))
            .args(["-O", "exit", "x"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Stops the masters in a directory when dropped, a failed test's too.
struct Masters(PathBuf);

impl Drop for Masters {
    fn drop(&mut self) {
        stop_masters(&self.0);
    }
}

fn service_project(b: &Bastion, key: &Path) -> Project {
    key_project(b, "svc", key)
}

/// The service account's setup (`service.cfg`, `service.ini`) for `user`.
fn key_project(b: &Bastion, user: &str, key: &Path) -> Project {
    Project::new(
        "service",
        &[
            ("USER", user.to_string()),
            ("PORT", b.port.to_string()),
            ("KEY", key.display().to_string()),
            ("KNOWN_HOSTS", b.known_hosts().display().to_string()),
        ],
    )
}

#[test]
fn a_service_account_runs_ping_command_copy_fetch_over_ssh_and_paramiko() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let key = b.add_service("svc");
    b.grant(&["--user", "svc", "--target", "web01", "--login", TARGET_USER]);
    let p = service_project(&b, &key);
    let _masters = Masters(p.path().join("cp"));
    // paramiko reads the bastion's key from ~/.ssh/known_hosts.
    std::fs::copy(b.known_hosts(), p.path().join("home/.ssh/known_hosts")).unwrap();
    let dir = target_dir(&sshd);

    for plugin in ["ssh", "paramiko"] {
        let before = sessions_of(&b, "svc");
        let start = Instant::now();
        let out = run(p.tool("ansible").args(["web", "-m", "ping", "-c", plugin]));
        let ping = start.elapsed();
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{plugin} ad-hoc ping: {all}");
        assert!(all.contains("\"ping\": \"pong\""), "{plugin}: {all}");
        let start = Instant::now();
        let out = p.playbook(&dir, &["-c", plugin]);
        let play = start.elapsed();
        p.assert_played(&out, &dir, plugin);
        eprintln!("ansible -c {plugin}: ad-hoc ping {ping:?}, playbook {play:?}");
        // It went through the bastion as svc (ssh: one master connection
        // for the whole run; paramiko: a connection per task or so).
        stop_masters(&p.path().join("cp"));
        let after = sessions_of(&b, "svc");
        assert!(after > before, "{plugin}: {}", b.settled_sessions());
    }
    assert!(
        tilde_dirs(&sshd.home).is_empty(),
        "{:?}",
        tilde_dirs(&sshd.home)
    );
}

/// The documented `remote_tmp` is what keeps a literal `~svc+web01`
/// directory off the target: without it, Ansible makes one.
#[test]
fn the_documented_remote_tmp_leaves_no_tilde_directory_on_the_target() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let key = b.add_service("svc");
    b.grant(&["--user", "svc", "--target", "web01", "--login", TARGET_USER]);
    let p = service_project(&b, &key);
    let _masters = Masters(p.path().join("cp"));
    let cfg = p.path().join("ansible.cfg");
    let documented = std::fs::read_to_string(&cfg).unwrap();
    assert!(documented.contains("remote_tmp = $HOME/.ansible/tmp"));

    // Without the setting (Ansible's default, `~/.ansible/tmp`).
    let default: String = documented
        .lines()
        .filter(|l| !l.starts_with("remote_tmp"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&cfg, default).unwrap();
    let out = run(p.tool("ansible").args(["web", "-m", "ping"]));
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert_eq!(
        tilde_dirs(&sshd.home),
        vec!["~svc+web01".to_string()],
        "the problem this setting fixes did not show"
    );
    std::fs::remove_dir_all(sshd.home.join("~svc+web01")).unwrap();

    // With it: the same run leaves nothing of the kind.
    std::fs::write(&cfg, documented).unwrap();
    let dir = target_dir(&sshd);
    let out = p.playbook(&dir, &[]);
    p.assert_played(&out, &dir, "ssh, documented remote_tmp");
    stop_masters(&p.path().join("cp"));
    assert!(
        tilde_dirs(&sshd.home).is_empty(),
        "{:?}",
        tilde_dirs(&sshd.home)
    );
}

/// A person with TOTP: one master connection opened with the code typed
/// once (here answered by SSH_ASKPASS), then a whole playbook rides it
/// without a prompt.
#[test]
fn a_person_with_totp_types_the_code_once_per_run() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let key = b.add_human("hank", ALICE_PASSWORD);
    let secret = enroll_totp(&b, "hank");
    let p = Project::new(
        "human",
        &[
            ("PORT", b.port.to_string()),
            ("USER", "hank".to_string()),
            ("KNOWN_HOSTS", b.known_hosts().display().to_string()),
        ],
    );
    let dir = target_dir(&sshd);
    let _masters = Masters(p.path().to_path_buf());

    // Without a master, Ansible fails at once (BatchMode) instead of hanging.
    let start = Instant::now();
    let out = run(p.tool("ansible").args(["web", "-m", "ping"]));
    assert!(!out.status.success());
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
    assert!(
        text(&out.stdout).contains("UNREACHABLE"),
        "{}",
        text(&out.stdout)
    );

    // The master: key, then the code, once.
    let askpass = Askpass::new();
    askpass.set_code(&next_code(&secret));
    let control = p.path().join("cm-%C");
    let mut master = b.ssh_human("hank+web01", "publickey", Some(&key), &askpass);
    master
        .arg("-o")
        .arg(format!("ControlPath={}", control.display()))
        .args([
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=600",
            "-f",
            "-N",
        ]);
    let start = Instant::now();
    let out = run(&mut master);
    assert!(out.status.success(), "master: {}", text(&out.stderr));
    eprintln!("master opened (key + code) in {:?}", start.elapsed());
    // From here on any prompt would be a failure: no code to give.
    askpass.set_code("000000");

    let start = Instant::now();
    let out = run(p.tool("ansible").args(["web", "-m", "ping"]));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "ad-hoc ping on the master: {all}");
    eprintln!("ad-hoc ping over the master: {:?}", start.elapsed());
    let start = Instant::now();
    let out = p.playbook(&dir, &[]);
    eprintln!("playbook over the master: {:?}", start.elapsed());
    p.assert_played(&out, &dir, "human over the master");

    let prompts = askpass.prompts();
    assert_eq!(
        prompts.matches("erification").count(),
        1,
        "the code was asked more than once: {prompts}"
    );
    stop_masters(p.path());
    // One login, every step a session channel of it, all recorded as hank's.
    assert!(sessions_of(&b, "hank") >= 1, "{}", b.settled_sessions());
    assert!(
        tilde_dirs(&sshd.home).is_empty(),
        "{:?}",
        tilde_dirs(&sshd.home)
    );
}

/// A person with TOTP and several targets: one master connection to the
/// bastion itself, opened with the code typed once, and every target reached
/// through it with ProxyJump; Ansible logs in as the real login on each.
#[test]
fn a_person_reaches_several_targets_with_one_code_through_proxyjump() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let key = b.add_human("hank", ALICE_PASSWORD);
    let secret = enroll_totp(&b, "hank");
    let p = Project::new(
        "jump",
        &[
            ("PORT", b.port.to_string()),
            ("USER", "hank".to_string()),
            ("KNOWN_HOSTS", b.known_hosts().display().to_string()),
        ],
    );
    let ca = text(&b.admin(&["host-ca", "show"]).stdout);
    std::fs::write(p.path().join("targets_known_hosts"), ca).unwrap();
    let dir = target_dir(&sshd);
    let _masters = Masters(p.path().to_path_buf());

    let askpass = Askpass::new();
    askpass.set_code(&next_code(&secret));
    let mut master = Command::new("ssh");
    master
        .arg("-F")
        .arg(p.path().join("ssh_config"))
        .arg("-i")
        .arg(&key)
        .args([
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=600",
            "-o",
            "BatchMode=no",
            "-o",
            "PreferredAuthentications=publickey,keyboard-interactive",
            "-f",
            "-N",
            "bastion",
        ]);
    askpass.apply(&mut master);
    let out = run(&mut master);
    assert!(out.status.success(), "master: {}", text(&out.stderr));
    askpass.set_code("000000");

    let start = Instant::now();
    let out = p.playbook(&dir, &[]);
    eprintln!(
        "playbook on 2 targets over one master: {:?}",
        start.elapsed()
    );
    p.assert_played(&out, &dir, "proxyjump over one master");
    let all = text(&out.stdout);
    assert!(
        all.contains("ansible-through-portcullis web02"),
        "web02 not reached: {all}"
    );
    assert_eq!(
        sha256_file(&p.fetched("web02")),
        sha256_file(&p.payload),
        "web02's fetched copy differs"
    );
    let prompts = askpass.prompts();
    assert_eq!(
        prompts.matches("erification").count(),
        1,
        "the code was asked more than once: {prompts}"
    );
    let list = b.settled_sessions();
    for t in ["web01", "web02"] {
        assert!(
            list.lines()
                .any(|l| l.split('\t').nth(1) == Some("hank") && l.contains(&format!("@{t}\t"))),
            "no session of hank on {t}: {list}"
        );
    }
    assert!(
        tilde_dirs(&sshd.home).is_empty(),
        "{:?}",
        tilde_dirs(&sshd.home)
    );
}

/// The `paramiko` plugin logs in afresh for every task, so a person can give
/// it one code for one task: an ad-hoc ping with the code as
/// `ansible_password`. paramiko first sends it as a password; a server that
/// answers "keyboard-interactive only" then gets it at the code prompt,
/// which the bastion does after a verified key (`password_after_key`).
/// Before, it took the password for a first-factor attempt (audited as a
/// failed password), answered "publickey,password", and paramiko gave up.
#[test]
fn a_person_with_totp_pings_over_the_paramiko_plugin() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let key = b.dir.path().join("hank_key");
    keygen(&key, "ed25519");
    b.admin(&[
        "user",
        "add",
        "hank",
        "--key",
        key.with_extension("pub").to_str().unwrap(),
    ]);
    b.grant(&[
        "--user",
        "hank",
        "--target",
        "web01",
        "--login",
        TARGET_USER,
    ]);
    let secret = enroll_totp(&b, "hank");
    let p = key_project(&b, "hank", &key);
    std::fs::copy(b.known_hosts(), p.path().join("home/.ssh/known_hosts")).unwrap();
    let start = Instant::now();
    let out = run(p
        .tool("ansible")
        .args(["web", "-m", "ping", "-c", "paramiko", "-e"])
        .arg(format!("ansible_password={}", next_code(&secret))));
    let took = start.elapsed();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "paramiko, key + code: {all}");
    assert!(all.contains("\"ping\": \"pong\""), "{all}");
    eprintln!("ansible -c paramiko, key + code: ping in {took:?}");
    assert!(took.as_secs() < 10, "took {took:?}");
    assert_eq!(sessions_of(&b, "hank"), 1, "{}", b.settled_sessions());
}
