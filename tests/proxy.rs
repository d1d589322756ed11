//! End to end: real OpenSSH client → portcullis → real OpenSSH sshd.

mod common;
use common::*;
use std::process::{Command, Stdio};

#[test]
fn exec_keeps_stdout_stderr_apart_and_passes_exit_code() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    for target in ["alice+web01", "alice+web02", "alice+tuser+web01"] {
        let out = run(b
            .ssh(target)
            .arg("echo out-$(id -un); echo err >&2; exit 7"));
        assert_eq!(
            out.status.code(),
            Some(7),
            "{target}: {}\nlog:\n{}",
            text(&out.stderr),
            b.log()
        );
        assert_eq!(text(&out.stdout), "out-tuser\n", "{target}");
        assert_eq!(text(&out.stderr), "err\n", "{target}");
    }
}

#[test]
fn stdin_eof_and_large_exec_stream() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    random_file(&src, 8);
    let out = run_ok(
        b.ssh("alice+web01")
            .arg("sha256sum")
            .stdin(std::fs::File::open(&src).unwrap()),
    );
    assert_eq!(
        text(&out.stdout).split_whitespace().next().unwrap(),
        sha256_file(&src)
    );
}

#[test]
fn exit_signal_matches_direct_openssh() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let direct = run(sshd.direct().arg("kill -TERM $$"));
    let proxied = run(b.ssh("alice+web01").arg("kill -TERM $$"));
    assert_eq!(
        proxied.status.code(),
        direct.status.code(),
        "direct: {:?} proxied: {:?} {}",
        direct.status,
        proxied.status,
        text(&proxied.stderr)
    );
    assert_ne!(proxied.status.code(), Some(0));
}

#[test]
fn scp_and_sftp_64_mib_both_ways() {
    need("scp", "openssh-client");
    need("sftp", "openssh-client");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("blob");
    random_file(&src, 64);
    let sum = sha256_file(&src);
    let port = b.port.to_string();

    // scp up, then down under another name.
    run_ok(
        Command::new("scp")
            .args(b.ssh_opts())
            .args(["-P", &port])
            .arg(&src)
            .arg("alice+web01@127.0.0.1:up.bin"),
    );
    assert_eq!(sha256_file(&sshd.home.join("up.bin")), sum);
    let back = dir.path().join("back.bin");
    run_ok(
        Command::new("scp")
            .args(b.ssh_opts())
            .args(["-P", &port])
            .arg("alice+web02@127.0.0.1:up.bin")
            .arg(&back),
    );
    assert_eq!(sha256_file(&back), sum);

    // sftp batch: put and get.
    let batch = dir.path().join("batch");
    let got = dir.path().join("got.bin");
    std::fs::write(
        &batch,
        format!(
            "put {} sftp.bin\nget sftp.bin {}\n",
            src.display(),
            got.display()
        ),
    )
    .unwrap();
    let out = run(Command::new("sftp")
        .args(b.ssh_opts())
        .args(["-P", &port, "-b"])
        .arg(&batch)
        .arg("alice+web01@127.0.0.1"));
    assert!(
        out.status.success(),
        "sftp: {}\n{}",
        text(&out.stderr),
        b.log()
    );
    assert_eq!(sha256_file(&sshd.home.join("sftp.bin")), sum);
    assert_eq!(sha256_file(&got), sum);
}

#[test]
fn rsync_over_the_bastion() {
    need("rsync", "rsync");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    random_file(&tree.join("a.bin"), 3);
    std::fs::write(tree.join("sub/b.txt"), "hello rsync\n").unwrap();
    let e = format!("ssh {} -p {}", b.ssh_opts().join(" "), b.port);
    let out = run(Command::new("rsync")
        .args(["-a", "-e", &e])
        .arg(format!("{}/", tree.display()))
        .arg("alice+web01@127.0.0.1:synced/"));
    assert!(
        out.status.success(),
        "rsync: {}\n{}",
        text(&out.stderr),
        b.log()
    );
    assert_eq!(
        sha256_file(&sshd.home.join("synced/a.bin")),
        sha256_file(&tree.join("a.bin"))
    );
    assert_eq!(
        std::fs::read_to_string(sshd.home.join("synced/sub/b.txt")).unwrap(),
        "hello rsync\n"
    );
}

/// An OpenSSH ControlMaster connection to the bastion; commands ride it.
struct ControlMaster<'a> {
    b: &'a Bastion,
    user: String,
    _dir: tempfile::TempDir,
    sock: std::path::PathBuf,
}

impl<'a> ControlMaster<'a> {
    fn start(b: &'a Bastion, user: &str) -> ControlMaster<'a> {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("cm.sock");
        let m = ControlMaster {
            b,
            user: user.into(),
            _dir: dir,
            sock,
        };
        run_ok(&mut m.command(&["-M", "-f", "-N", "-o", "ControlPersist=yes"]));
        m
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut c = self.b.ssh(&self.user);
        c.arg("-S").arg(&self.sock).args(extra);
        c
    }
}

#[test]
fn control_master_carries_two_channels_on_one_upstream() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let master = ControlMaster::start(&b, "alice+web01");
    let cm = |extra: &[&str]| master.command(extra);
    // A long-running channel producing output slowly, and quick ones beside it.
    let slow = cm(&["sleep 3; echo slow-done"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for i in 0..3 {
        let out = run_ok(&mut cm(&[&format!("echo quick-{i}")]));
        assert_eq!(text(&out.stdout), format!("quick-{i}\n"));
    }
    let slow = slow.wait_with_output().unwrap();
    assert_eq!(text(&slow.stdout), "slow-done\n");
    run(&mut cm(&["-O", "exit"]));
    // One client connection → one upstream login → one session row.
    let sessions = text(&b.admin(&["session", "list"]).stdout);
    assert_eq!(sessions.lines().count(), 1, "{sessions}");
    let logins = sshd.log().matches("Accepted publickey for tuser").count();
    assert_eq!(logins, 1, "{}", sshd.log());
}

#[test]
fn sessions_table_records_who_where_and_bytes() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    run_ok(
        b.ssh("alice+web01")
            .arg("head -c 100000 /dev/zero")
            .stdin(Stdio::null()),
    );
    let list = b.settled_sessions();
    let line = list.lines().next().expect("a session row");
    assert!(line.contains("\talice\t127.0.0.1:"), "{line}");
    assert!(line.contains("tuser@web01"), "{line}");
    assert!(!line.contains("\tlive\t"), "{line}");
    let down = line.split("down=").nth(1).unwrap().split('\t').next();
    let down: u64 = down.unwrap().trim().parse().unwrap();
    assert!(down >= 100_000, "{line}");
}

#[test]
fn a_channel_whose_reader_stalls_does_not_stall_its_neighbours() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let master = ControlMaster::start(&b, "alice+web01");
    let cm = |extra: &[&str]| master.command(extra);
    // 4 MB that nobody reads for a while: the client stops granting window.
    let mut slow = cm(&["head -c 4000000 /dev/zero; echo END"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let start = Instant::now();
    for i in 0..3 {
        let out = run_ok(&mut cm(&[&format!("echo quick-{i}")]));
        assert_eq!(text(&out.stdout), format!("quick-{i}\n"));
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "neighbours stalled: {:?}",
        start.elapsed()
    );
    let mut all = Vec::new();
    slow.stdout.take().unwrap().read_to_end(&mut all).unwrap();
    assert!(slow.wait().unwrap().success());
    assert_eq!(all.len(), 4_000_004);
    assert!(all.ends_with(b"END\n"));
    run(&mut cm(&["-O", "exit"]));
}

#[test]
fn vaulted_rsa_and_ecdsa_keys_authenticate_upstream() {
    for kind in ["rsa", "ecdsa"] {
        let sshd = Sshd::start_with_key(kind);
        let b = Bastion::standard(&sshd);
        let out = run(b.ssh("alice+web01").arg("id -un").stdin(Stdio::null()));
        assert!(
            out.status.success(),
            "{kind}: {}\n{}",
            text(&out.stderr),
            b.log()
        );
        assert_eq!(text(&out.stdout), "tuser\n");
        if kind == "rsa" {
            // rsa-sha2-512/256 chosen from server-sig-algs, never SHA-1 ssh-rsa.
            assert!(
                sshd.log().contains("Accepted publickey for tuser"),
                "{}",
                sshd.log()
            );
            assert!(!sshd.log().contains("ssh-rsa SHA1"), "{}", sshd.log());
        }
    }
}
