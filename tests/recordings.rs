//! Session recordings through real OpenSSH: content, signatures, tampering,
//! masking, crash safety and fail-closed storage.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn session_ids(b: &Bastion) -> Vec<String> {
    text(&b.admin(&["session", "list"]).stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

fn recordings_dir(b: &Bastion) -> PathBuf {
    b.data_dir().join("recordings")
}

/// Waits for the channel's recording to be sealed (its trailer written).
fn sealed_cast(b: &Bastion) -> PathBuf {
    for _ in 0..50 {
        let dir = recordings_dir(b);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "chain")
                    && std::fs::read_to_string(&p)
                        .unwrap_or_default()
                        .contains("\"type\":\"trailer\"")
                {
                    return p.with_extension("cast");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no sealed recording in {}", recordings_dir(b).display());
}

fn verify(b: &Bastion, what: &str) -> std::process::Output {
    run(b.cli().args(["verify", what]))
}

#[test]
fn a_shell_session_is_recorded_signed_and_replayable() {
    need("asciinema", "asciinema");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let mut c = b.ssh("alice+web01");
    c.arg("-tt").stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"echo REC-$((6*7))\nexit\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(text(&out.stdout).contains("REC-42"));
    let cast = sealed_cast(&b);
    let body = std::fs::read_to_string(&cast).unwrap();
    assert!(body.starts_with("{\"version\":2"), "{body}");
    assert!(body.contains("REC-42") && body.contains("\"o\""), "{body}");

    let ids = session_ids(&b);
    let ok = verify(&b, &ids[0]);
    assert!(
        ok.status.success(),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    assert!(text(&ok.stdout).starts_with("OK "), "{}", text(&ok.stdout));

    // The standard tooling reads it (asciinema 2 wants a terminal: give it one).
    let cat = run_ok(
        Command::new("script")
            .args([
                "-q",
                "-c",
                &format!("asciinema cat {}", cast.display()),
                "/dev/null",
            ])
            .stdin(Stdio::null()),
    );
    assert!(text(&cat.stdout).contains("REC-42"));
    // So does our replay, fast.
    let replay = run_ok(b.cli().args(["replay", &ids[0], "--speed", "100"]));
    assert!(text(&replay.stdout).contains("REC-42"));
    // And search finds where it was printed.
    let found = run_ok(b.cli().args(["sessions", "search", "REC-42"]));
    assert!(
        text(&found.stdout).contains(&ids[0]) && text(&found.stdout).contains("printed"),
        "{}",
        text(&found.stdout)
    );
    // The sealed recording was indexed: a search for a word it lacks opens
    // nothing (unindexed recordings are always opened and scanned).
    let start = std::time::Instant::now();
    loop {
        let miss = run_ok(b.cli().args(["sessions", "search", "nowhere-in-it"]));
        if text(&miss.stderr).contains(" 0 recording(s) opened") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{}",
            text(&miss.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tampered_copy(cast: &Path, dir: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let c = dir.join("t.cast");
    let mut bytes = std::fs::read(cast).unwrap();
    edit(&mut bytes);
    std::fs::write(&c, bytes).unwrap();
    std::fs::copy(cast.with_extension("chain"), dir.join("t.chain")).unwrap();
    c
}

#[test]
fn any_edit_of_a_recording_is_detected() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    run_ok(
        b.ssh("alice+web01")
            .arg("for i in 1 2 3; do echo line-$i; done")
            .stdin(Stdio::null()),
    );
    let cast = sealed_cast(&b);
    let key = format!("{}.pub", b.data_dir().join("audit_ed25519").display());
    let dir = tempfile::tempdir().unwrap();
    let check = |c: &Path| run(b.cli().args(["verify", c.to_str().unwrap(), "--key", &key]));
    let clean = tampered_copy(&cast, dir.path(), |_| {});
    assert!(
        check(&clean).status.success(),
        "{}",
        text(&check(&clean).stdout)
    );
    type Edit = Box<dyn FnOnce(&mut Vec<u8>)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "one byte changed",
            Box::new(|b: &mut Vec<u8>| {
                let i = b.windows(6).position(|w| w == b"line-2").unwrap();
                b[i + 5] = b'9';
            }),
        ),
        (
            "truncated",
            Box::new(|b: &mut Vec<u8>| {
                let cut = b[..b.len() - 1].iter().rposition(|c| *c == b'\n').unwrap() + 1;
                b.truncate(cut);
            }),
        ),
        (
            "line appended",
            Box::new(|b: &mut Vec<u8>| b.extend_from_slice(b"[9.0, \"o\", \"forged\"]\n")),
        ),
    ];
    for (what, edit) in cases {
        let c = tampered_copy(&cast, dir.path(), edit);
        let out = check(&c);
        assert!(!out.status.success(), "{what}: not detected");
        assert!(
            text(&out.stdout).contains("FAILED"),
            "{what}: {}",
            text(&out.stdout)
        );
    }
    // Another key cannot vouch for it.
    let other = dir.path().join("other");
    let _ = portcullis::castfile::load_or_create(&other).unwrap();
    let out = run(b.cli().args([
        "verify",
        clean.to_str().unwrap(),
        "--key",
        &format!("{}.pub", other.display()),
    ]));
    assert!(!out.status.success());
}

#[test]
fn exec_sessions_are_recorded_with_the_command() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    run_ok(
        b.ssh("alice+web01")
            .arg("echo exec-out; echo exec-err >&2")
            .stdin(Stdio::null()),
    );
    let body = std::fs::read_to_string(sealed_cast(&b)).unwrap();
    assert!(
        body.contains("exec: echo exec-out; echo exec-err >&2"),
        "{body}"
    );
    assert!(
        body.contains("exec-out") && body.contains("exec-err") && body.contains("exit status 0"),
        "{body}"
    );
}

#[test]
fn a_metadata_only_target_records_markers_but_no_contents() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    b.admin(&["target", "recording", "web01", "metadata"]);
    let out = run(b
        .ssh("alice+web01")
        .arg("echo BULK-$((6*7)); exit 3")
        .stdin(Stdio::null()));
    assert_eq!(text(&out.stdout), "BULK-42\n");
    assert_eq!(out.status.code(), Some(3));
    let cast = sealed_cast(&b);
    let body = std::fs::read_to_string(&cast).unwrap();
    assert!(!body.contains("BULK-42"), "output was recorded:\n{body}");
    assert!(
        body.contains("exec: echo BULK-$((6*7)); exit 3")
            && body.contains("exit status 3")
            && body.contains("contents not recorded: this target records metadata only"),
        "{body}"
    );
    let v = verify(&b, cast.to_str().unwrap());
    assert!(v.status.success(), "{}", text(&v.stdout));
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    assert!(
        audit.contains("target.recording_set") && audit.contains("metadata"),
        "{audit}"
    );
    // Back to full: the next session's output is in its recording again.
    b.admin(&["target", "recording", "web01", "full"]);
    run_ok(
        b.ssh("alice+web01")
            .arg("echo FULL-$((6*7))")
            .stdin(Stdio::null()),
    );
    let recorded = || {
        std::fs::read_dir(recordings_dir(&b))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "cast"))
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap()
                    .contains("FULL-42")
            })
    };
    let start = std::time::Instant::now();
    while !recorded() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the full recording lacks the output"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn binary_exec_output_is_logged_as_size_and_checksum() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    // `ssh host 'tar c ...' > file`: a transfer through an exec channel.
    let out = run_ok(
        b.ssh("alice+web01")
            .arg("head -c 300000 /dev/urandom")
            .stdin(Stdio::null()),
    );
    assert_eq!(out.stdout.len(), 300_000);
    let sum = blake3::hash(&out.stdout).to_hex();
    let cast = sealed_cast(&b);
    let body = std::fs::read_to_string(&cast).unwrap();
    assert!(
        body.contains("binary output from here on")
            && body.contains(&format!("binary output: 300000 bytes blake3 {sum}")),
        "{body}"
    );
    // Logged, not stored: the cast is a few lines, not 300 kB of escapes.
    assert!(body.len() < 4096, "{} bytes", body.len());
    let v = verify(&b, cast.to_str().unwrap());
    assert!(v.status.success(), "{}", text(&v.stdout));
}

#[test]
fn input_typed_at_a_no_echo_prompt_is_not_recorded() {
    need("python3", "python3");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let secret = "hunter2-Sup3rSecret";
    let mut c = Command::new("python3");
    c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rec_driver.py"))
        .arg(secret)
        .arg("ssh")
        .args(b.ssh_opts())
        .args(["-p", &b.port.to_string()])
        .arg("alice+web01@127.0.0.1");
    let out = run(&mut c);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let body = std::fs::read_to_string(sealed_cast(&b)).unwrap();
    assert!(
        !body.contains(secret) && !body.contains("Sup3r"),
        "the secret is in the recording:\n{body}"
    );
    assert!(body.contains("hidden input"), "{body}");
    assert!(
        body.contains("VISIBLE"),
        "echoed input should stay readable:\n{body}"
    );
}

#[test]
fn a_crash_loses_at_most_a_second_and_the_recording_is_sealed_on_restart() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    let child = b
        .ssh("alice+web01")
        .arg("i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.1; done")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    Command::new("kill")
        .args(["-9", &b.pid().to_string()])
        .status()
        .unwrap();
    let _ = child.wait_with_output();
    b.forget_child();
    b.start();
    let cast = sealed_cast(&b);
    let body = std::fs::read_to_string(&cast).unwrap();
    // ~33 ticks were printed; at most about a second (10 ticks) may be lost.
    assert!(body.contains("tick-22"), "more than a second lost:\n{body}");
    let ids = session_ids(&b);
    let out = verify(&b, &ids[0]);
    assert!(
        out.status.success() && text(&out.stdout).contains("cut short"),
        "{}",
        text(&out.stdout)
    );
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    assert!(audit.contains("recording.cut_short"), "{audit}");
}

#[test]
fn full_recording_storage_ends_sessions_and_refuses_new_ones() {
    let sshd = Sshd::start();
    // The free-space marks off: this is about a write that fails (the marks
    // are tested in tests/flood.rs).
    let marks = "[recordings]\nlow_water_mb = 0\nhard_water_mb = 0\n";
    let mut b = Bastion::standard_with(&sshd, marks);
    b.stop();
    b.start_with_tmpfs_recordings("256k");
    let out = run(b
        .ssh("alice+web01")
        .arg("head -c 3000000 /dev/urandom | base64; sleep 5; echo UNRECORDED")
        .stdin(Stdio::null()));
    assert!(
        !text(&out.stdout).contains("UNRECORDED"),
        "the session outlived its recording"
    );
    // The client can be gone before the bastion has written the event.
    let start = std::time::Instant::now();
    loop {
        let audit = text(&b.admin(&["audit", "list"]).stdout);
        if audit.contains("recording.failed") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{audit}\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let again = run(b.ssh("alice+web01").arg("true").stdin(Stdio::null()));
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("recording storage is unavailable"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn pruning_old_recordings_is_an_audited_action() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    run_ok(b.ssh("alice+web01").arg("echo old").stdin(Stdio::null()));
    let cast = sealed_cast(&b);
    std::thread::sleep(Duration::from_millis(1500));
    let out = run_ok(b.cli().args(["recordings", "prune", "--older-than", "1s"]));
    assert!(
        text(&out.stdout).starts_with("1 recording(s)"),
        "{}",
        text(&out.stdout)
    );
    assert!(!cast.exists() && !cast.with_extension("chain").exists());
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    assert!(
        audit.contains("recordings.pruned") && audit.contains("\"count\":1"),
        "{audit}"
    );
}

#[test]
fn sftp_transfers_are_logged_as_operations_not_contents() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("payload.bin");
    random_file(&src, 2);
    let sum = blake3::hash(&std::fs::read(&src).unwrap()).to_hex();
    let got = dir.path().join("back.bin");
    let batch = dir.path().join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} up.bin\nget up.bin {}\nrename up.bin moved.bin\n",
            src.display(),
            got.display()
        ),
    )
    .unwrap();
    let out = run(Command::new("sftp")
        .args(b.ssh_opts())
        .args(["-P", &b.port.to_string(), "-b"])
        .arg(&batch)
        .arg("alice+web01@127.0.0.1"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = std::fs::read_to_string(sealed_cast(&b)).unwrap();
    // The upload and the download (read ahead by sftp's parallel requests)
    // both name the file's checksum.
    assert_eq!(
        body.matches(&format!("up.bin 2097152 bytes blake3 {sum}"))
            .count(),
        2,
        "{body}"
    );
    assert!(
        body.contains("sftp upload") && body.contains("sftp download"),
        "{body}"
    );
    assert!(
        body.contains("sftp rename") && body.contains("moved.bin"),
        "{body}"
    );
    assert!(
        body.len() < 100_000,
        "file contents went into the cast ({} bytes)",
        body.len()
    );
}

#[test]
fn replay_obeys_the_keyboard() {
    need("python3", "python3");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    run_ok(
        b.ssh("alice+web01")
            .arg("echo FIRST-LINE; sleep 1; echo SECOND-LINE")
            .stdin(Stdio::null()),
    );
    let _ = sealed_cast(&b);
    let id = session_ids(&b).remove(0);
    // At 1/100 speed the 1 s gap is 100 s: `q` must end it at once.
    let mut c = Command::new("python3");
    c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/replay_keys.py"))
        .args(["FIRST-LINE", "q", bin()]);
    c.arg("--config")
        .arg(&b.config)
        .arg("--data-dir")
        .arg(b.data_dir())
        .args(["replay", &id, "--speed", "0.01", "--idle-cap", "5"]);
    let out = text(&run_ok(&mut c).stdout);
    let after: f64 = out
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("AFTER-KEY ")
        .parse()
        .unwrap();
    assert!((0.0..3.0).contains(&after), "{out}");
    assert!(!out.contains("SECOND-LINE"), "{out}");
}

#[test]
fn file_contents_are_kept_only_for_targets_that_ask() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    b.admin(&["target", "capture", "web02", "on"]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("kept.bin");
    random_file(&src, 1);
    let batch = dir.path().join("batch");
    std::fs::write(&batch, format!("put {} kept.bin\n", src.display())).unwrap();
    let sftp = |target: &str| {
        run(Command::new("sftp")
            .args(b.ssh_opts())
            .args(["-P", &b.port.to_string(), "-b"])
            .arg(&batch)
            .arg(format!("alice+{target}@127.0.0.1")))
    };
    assert!(sftp("web02").status.success());
    let cast = sealed_cast(&b);
    let body = std::fs::read_to_string(&cast).unwrap();
    assert!(body.contains("content kept as 0001-kept.bin"), "{body}");
    let copy = cast.with_extension("files").join("0001-kept.bin");
    assert_eq!(sha256_file(&copy), sha256_file(&src));
    // web01 does not keep contents.
    std::fs::remove_file(cast.with_extension("chain")).unwrap();
    assert!(sftp("web01").status.success());
    let other = sealed_cast(&b);
    assert!(
        !std::fs::read_to_string(&other)
            .unwrap()
            .contains("content kept")
    );
    assert!(!other.with_extension("files").exists());
}
