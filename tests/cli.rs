//! The binary's setup paths: embedded defaults, config errors, the example
//! config in deploy/, and host-key pinning by the admin.

mod common;
use common::*;
use std::process::{Command, Stdio};

#[test]
fn embedded_defaults_create_a_private_data_dir_and_listen_on_2222() {
    use std::os::unix::fs::PermissionsExt;
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .arg("serve")
        .current_dir(cwd.path())
        .env_remove("PORTCULLIS_DATA_DIR")
        .env_remove("PORTCULLIS_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = cwd.path().join("none");
    wait_port(2222, "portcullis on embedded defaults", &log);
    let data = cwd.path().join("portcullis-data");
    let mode = |p: &str| {
        std::fs::metadata(data.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("kek"), 0o600);
    assert_eq!(mode("host_ed25519"), 0o600);
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(data.join("portcullis.db").exists());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bad_config_reports_every_problem_and_exits_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, format!("listen = \"127.0.0.1:{port}\"\nlog_format = \"xml\"\n[limits]\nlogin_grace_secs = 0\nmax_auth_attempts = 99\n")).unwrap();
    let out = run(Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .arg("serve"));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for key in ["log_format", "login_grace_secs", "max_auth_attempts"] {
        assert!(err.contains(key), "{key} missing from: {err}");
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    std::fs::write(&cfg, "listen = \"127.0.0.1:1\"\nlisten_adress = \"x\"\n").unwrap();
    let out = run(Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .arg("check-config"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("listen_adress"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn example_config_in_deploy_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/portcullis.toml");
    let out = run(Command::new(bin()).args(["--config", path, "check-config"]));
    assert!(
        out.status.success(),
        "deploy/portcullis.toml: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("/var/lib/portcullis"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn target_add_shows_the_fingerprint_and_pins_only_on_confirmation() {
    let sshd = Sshd::start();
    let b = Bastion::new();
    let port = sshd.port.to_string();
    let fp = text(&run_ok(Command::new("ssh-keygen").arg("-lf").arg(&sshd.host_pub)).stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    // No terminal and no --yes: shown, not pinned.
    let out = run(b
        .cli()
        .args([
            "target",
            "add",
            "web01",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
        ])
        .stdin(Stdio::null()));
    assert!(!out.status.success());
    assert!(text(&out.stdout).contains(&fp), "{}", text(&out.stdout));
    assert!(!text(&b.admin(&["target", "list"]).stdout).contains("web01"));
    let out = b.admin(&[
        "target",
        "add",
        "web01",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--yes",
    ]);
    assert!(text(&out.stdout).contains(&fp));
    assert!(text(&b.admin(&["target", "list"]).stdout).contains(&fp));
}

#[test]
fn admin_cli_round_trip() {
    let b = Bastion::new();
    let key = b.alice_key.with_extension("pub");
    b.admin(&["user", "add", "bob", "--key", key.to_str().unwrap()]);
    let out = run(b
        .cli()
        .args(["user", "add", "bob", "--key", key.to_str().unwrap()]));
    assert!(!out.status.success() && text(&out.stderr).contains("already exists"));
    let out = run(b.cli().args(["user", "add", "bad name"]));
    assert!(!out.status.success());
    b.admin(&["group", "add", "ops"]);
    b.admin(&["group", "member", "add", "ops", "bob"]);
    assert!(text(&b.admin(&["user", "list"]).stdout).contains("bob\tpassword=no\tkeys=1"));
    b.admin(&["user", "remove", "bob"]);
    assert!(!text(&b.admin(&["user", "list"]).stdout).contains("bob"));
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused_before_touching_it() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    // A live session with an open recording, which a second server's crash
    // recovery would otherwise seal as cut short.
    let mut live = b
        .ssh("alice+web01")
        .args(["sleep", "30"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !text(&b.admin(&["session", "list"]).stdout).contains("web01") {
        assert!(
            start.elapsed().as_secs() < 20,
            "the session never went live"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = run(b.cli().arg("serve").stdin(Stdio::null()));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("another portcullis is serving"), "{err}");
    assert!(!err.contains("cut short"), "{err}");
    // The first server still serves the session and new logins.
    assert!(live.try_wait().unwrap().is_none(), "the live session ended");
    run_ok(b.ssh("alice+web01").arg("true").stdin(Stdio::null()));
    let _ = live.kill();
    let _ = live.wait();
}

#[test]
fn nodes_sharing_a_host_ca_file_present_one_ca_and_others_their_own() {
    let shared = tempfile::tempdir().unwrap();
    let ca = shared.path().join("shared-host-ca");
    let show = |node: &str, setting: &str| {
        let dir = shared.path().join(node);
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("portcullis.toml");
        std::fs::write(&conf, setting).unwrap();
        let out = run_ok(
            Command::new(bin())
                .arg("--config")
                .arg(&conf)
                .arg("--data-dir")
                .arg(dir.join("data"))
                .args(["host-ca", "show"]),
        );
        text(&out.stdout)
    };
    let domain = "[jump]\nhost_patterns = [\"*.corp.example\"]\n";
    let setting = format!("host_ca_file = {:?}\n{domain}", ca.display().to_string());
    let a = show("a", &setting);
    let b = show("b", &setting);
    let line = "@cert-authority *.corp.example ssh-ed25519 ";
    assert!(a.starts_with(line), "{a}");
    assert_eq!(a, b, "two nodes with one host_ca_file must show one CA");
    assert!(ca.exists());
    // The default stays per data directory.
    let c = show("c", domain);
    assert!(c.starts_with(line), "{c}");
    assert_ne!(a, c);
    assert!(shared.path().join("c/data/host-ca").exists());
}
