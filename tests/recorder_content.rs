//! What a session channel carries is in its recording whatever the client
//! sends, through real OpenSSH: a command that looks like a transfer, piped
//! stdin, text after a NUL, a command typed with echo off; and a proven
//! transfer is summarised both ways.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn recordings_dir(b: &Bastion) -> PathBuf {
    b.data_dir().join("recordings")
}

/// The sealed recording (trailer written) whose cast contains `needle`.
fn sealed_with(b: &Bastion, needle: &str) -> (PathBuf, String) {
    for _ in 0..100 {
        for e in std::fs::read_dir(recordings_dir(b))
            .into_iter()
            .flatten()
            .flatten()
        {
            let chain = e.path();
            if chain.extension().is_none_or(|x| x != "chain") {
                continue;
            }
            let sealed = std::fs::read_to_string(&chain)
                .unwrap_or_default()
                .contains("\"type\":\"trailer\"");
            let cast = chain.with_extension("cast");
            let body = std::fs::read_to_string(&cast).unwrap_or_default();
            if sealed && body.contains(needle) {
                return (cast, body);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "no sealed recording with {needle:?} in {}",
        recordings_dir(b).display()
    );
}

/// `sessions search PATTERN`: its hit lines ("printed" or "typed").
fn search(b: &Bastion, pattern: &str) -> String {
    text(&run_ok(b.cli().args(["sessions", "search", pattern])).stdout)
}

fn verify_ok(b: &Bastion, cast: &Path) {
    let v = run(b.cli().args(["verify", cast.to_str().unwrap()]));
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
}

#[test]
fn a_command_that_looks_like_a_transfer_is_recorded_in_full() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    // Transfer-looking heads used to switch the recorder to counting bytes.
    let heads = [
        ("SCP", "scp -f x"),
        ("SCPT", "scp -t ."),
        ("RSYNC", "rsync --server --sender -e.LsfxCIvu . x"),
    ];
    for (tag, head) in heads {
        let cmd = format!("{head} </dev/null >/dev/null 2>&1; echo {tag}-SECRET-$((40+2))");
        let out = run(b.ssh("alice+web01").arg(&cmd).stdin(Stdio::null()));
        let want = format!("{tag}-SECRET-42");
        assert!(text(&out.stdout).contains(&want), "{}", text(&out.stderr));
        let (cast, body) = sealed_with(&b, &want);
        assert!(!body.contains("file transfer ("), "{body}");
        let found = search(&b, &want);
        assert!(
            found.contains("printed"),
            "{tag}: search found nothing: {found}\n{body}"
        );
        verify_ok(&b, &cast);
    }
}

#[test]
fn piped_stdin_is_recorded_and_its_cap_stated() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let mut c = b.ssh("alice+web01");
    c.arg("sh").stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"id -un; echo PIPED-$((6*7))\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(text(&out.stdout).contains("PIPED-42"));
    let (cast, body) = sealed_with(&b, "PIPED-42");
    assert!(body.contains("stdin recorded up to 1 MiB"), "{body}");
    assert!(body.contains("\"i\", \"id -un"), "{body}");
    let found = search(&b, "echo PIPED-$((6*7))");
    assert!(
        found.contains("typed"),
        "the script is not searchable: {found}"
    );
    verify_ok(&b, &cast);
}

#[test]
fn stdin_past_the_cap_is_counted_and_hashed() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let upload: Vec<u8> = (0..120_000)
        .flat_map(|i| format!("line {i:06} of a piped upload\n").into_bytes())
        .collect();
    let mut c = b.ssh("alice+web01");
    c.arg("cat >/dev/null; echo UPLOAD-DONE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = upload.clone();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&data).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(text(&out.stdout).contains("UPLOAD-DONE"));
    let (cast, body) = sealed_with(&b, "UPLOAD-DONE");
    assert!(
        body.contains("stdin cap reached after 1048576 bytes"),
        "{body:.2000}"
    );
    let sum = blake3::hash(&upload).to_hex();
    let summary = format!(
        "stdin: {} bytes blake3 {sum} (the first 1048576 recorded)",
        upload.len()
    );
    assert!(body.contains(&summary), "no {summary:?}");
    // The first MiB is there, the rest is not.
    assert!(body.contains("line 000000 of a piped upload"));
    assert!(!body.contains("line 119999 of a piped upload"));
    assert!(body.len() < 3 << 20, "{} bytes", body.len());
    verify_ok(&b, &cast);
}

#[test]
fn text_after_binary_output_is_recorded_again() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    // One NUL used to make the rest of the output a checksum.
    let cmd = "printf 'x\\000\\001'; sleep 0.2; echo 'the secret after the NUL: AFTER-NUL-42'; \
               printf '\\000hunter2\\000'";
    let out = run_ok(b.ssh("alice+web01").arg(cmd).stdin(Stdio::null()));
    assert!(text(&out.stdout).contains("AFTER-NUL-42"));
    let (cast, body) = sealed_with(&b, "AFTER-NUL-42");
    assert!(body.contains("binary output from here on"), "{body}");
    assert!(body.contains("binary output: 3 bytes blake3 "), "{body}");
    // Short text between NULs stays in its run; its strings are summarised.
    assert!(body.contains("binary output: 9 bytes blake3 "), "{body}");
    assert!(body.contains("; strings: hunter2"), "{body}");
    let found = search(&b, "AFTER-NUL-42");
    assert!(
        found.contains("printed"),
        "not found after the NUL: {found}"
    );
    verify_ok(&b, &cast);
}

#[test]
fn a_legacy_scp_upload_is_summarised_both_ways_and_kept_where_asked() {
    need("scp", "openssh-client");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    b.admin(&["target", "capture", "web02", "on"]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("up.bin");
    random_file(&src, 1);
    let file = std::fs::read(&src).unwrap();
    let scp = run(Command::new("scp")
        .arg("-O")
        .args(b.ssh_opts())
        .args(["-P", &b.port.to_string()])
        .arg(&src)
        .arg("alice+web02@127.0.0.1:scp-up.bin"));
    assert!(scp.status.success(), "{}", text(&scp.stderr));
    assert_eq!(std::fs::read(sshd.home.join("scp-up.bin")).unwrap(), file);
    let (cast, body) = sealed_with(&b, "file transfer (scp upload)");
    assert!(body.contains("\"exec: scp -t "), "{body}");
    // The stream: a "C0644 SIZE NAME\n" header, the file, a NUL.
    let copy = std::fs::read(cast.with_extension("files").join("upload")).unwrap();
    let header = copy.iter().position(|&b| b == b'\n').unwrap() + 1;
    assert_eq!(&copy[header..header + file.len()], &file[..]);
    let up = format!(
        "upload: {} bytes blake3 {}",
        copy.len(),
        blake3::hash(&copy).to_hex()
    );
    assert!(body.contains(&up), "no {up:?} in {body}");
    assert!(body.contains("download: "), "{body}");
    assert!(body.len() < 16 * 1024, "file contents went into the cast");
    verify_ok(&b, &cast);
    // Pruning the recording takes the kept contents with it.
    std::thread::sleep(Duration::from_millis(1500));
    run_ok(b.cli().args(["recordings", "prune", "--older-than", "1s"]));
    assert!(!cast.exists() && !cast.with_extension("files").exists());
}

/// Types `stty -echo`, then a command a rule forbids; exits 0 if the
/// bastion ended the session within 5 s of the command.
const ECHO_OFF_DRIVER: &str = r#"
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from ptyterm import Term
t = Term(sys.argv[2:], rows=30, cols=100)
t.send("echo READY-$((20+22))\n")
t.until("READY-42")
t.send("stty -echo\n")
time.sleep(0.5)
t.send("echo QUIET-$((6*7))\n")
t.until("QUIET-42")
start = time.time()
t.send("rm -rf /nonexistent-portcullis-echo-off\n")
end = time.time() + 10
while not t.closed and time.time() < end:
    t.read_some()
if not t.closed:
    os.kill(t.pid, signal.SIGTERM)  # the rule never acted: fail, do not hang
code = t.wait()
took = time.time() - start
print(t.text())
print("EXIT %d AFTER %.2f" % (code, took))
sys.exit(0 if took < 5 else 1)
"#;

#[test]
fn a_command_typed_with_echo_off_is_masked_but_seen_by_the_rules() {
    need("python3", "python3");
    let sshd = Sshd::start();
    let rule = "[[lockdown.rule]]\nname = \"no-rm-rf-root\"\ncommand = 'rm\\s+-rf\\s+/'\naction = \"end_session\"\n";
    let b = Bastion::standard_with(&sshd, rule);
    let out = run(Command::new("python3")
        .arg("-c")
        .arg(ECHO_OFF_DRIVER)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests"))
        .arg("ssh")
        .args(b.ssh_opts())
        .args(["-p", &b.port.to_string()])
        .arg("alice+web01@127.0.0.1"));
    let transcript = text(&out.stdout);
    assert!(
        out.status.success(),
        "the rule never saw the command: {transcript}\n{}",
        text(&out.stderr)
    );
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    assert!(
        audit.contains("rule.fired") && audit.contains("no-rm-rf-root"),
        "{audit}"
    );
    // The recording still masks what the target did not echo.
    let (_, body) = sealed_with(&b, "QUIET-42");
    assert!(!body.contains("portcullis-echo-off"), "{body}");
    assert!(body.contains("[hidden input: "), "{body}");
}

#[test]
fn header_fields_the_client_chooses_are_capped_and_kept_whole_in_markers() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    // A 60 KB command whose end is what runs; a 200-byte TERM.
    let filler = "x".repeat(60_000);
    let cmd = format!(": {filler}; echo LONG-END-$((40+2)) TERM-LEN-${{#TERM}}");
    let term = "t".repeat(200);
    let out = run(b
        .ssh("alice+web01")
        .arg("-tt")
        .arg(&cmd)
        .env("TERM", &term)
        .stdin(Stdio::null()));
    let said = text(&out.stdout);
    assert!(said.contains("LONG-END-42"), "{said}{}", text(&out.stderr));
    // The target got the whole TERM: capping is the recording's, not the session's.
    assert!(said.contains("TERM-LEN-200"), "{said}");
    let (cast, body) = sealed_with(&b, "LONG-END-42");
    let header = body.lines().next().unwrap();
    assert!(
        header.len() < 4096,
        "header not capped: {} bytes",
        header.len()
    );
    assert!(!header.contains(&term), "TERM not capped in the header");
    // The whole command is in the recording, as a marker.
    assert!(
        body.lines().any(|l| l.contains("\"m\"")
            && l.contains(&filler)
            && l.contains("LONG-END-$((40+2))")),
        "the whole command is not in a marker"
    );
    verify_ok(&b, &cast);
}
