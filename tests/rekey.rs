//! Key re-exchange on both of a session's connections, mid-stream.
//!
//! The bastion's russh keeps less of a finished key exchange than upstream
//! russh does (issue 20's memory work): these prove a rekey still happens
//! and loses nothing, started by a stock OpenSSH client on the client
//! connection and by a stock sshd on the upstream one.

mod common;
use common::*;
use std::process::Stdio;

/// How many key exchanges a `-v`/`LogLevel DEBUG` log shows starting.
fn kex_count(log: &str) -> usize {
    log.matches("SSH2_MSG_KEXINIT sent").count()
}

/// 8 MiB up through `sha256sum`, and the same file back down, both intact.
fn round_trip(b: &Bastion, extra_ssh: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    random_file(&src, 8);
    let sum = sha256_file(&src);
    let up = run(b
        .ssh("alice+web01")
        .args(extra_ssh)
        .arg("cat > rekey.bin && sha256sum rekey.bin")
        .stdin(std::fs::File::open(&src).unwrap()));
    let up_log = text(&up.stderr);
    assert!(up.status.success(), "upload: {up_log}\n{}", b.log());
    assert_eq!(
        text(&up.stdout).split_whitespace().next(),
        Some(sum.as_str()),
        "upload arrived changed"
    );
    let back = dir.path().join("back");
    let down = run(b
        .ssh("alice+web01")
        .args(extra_ssh)
        .arg("cat rekey.bin")
        .stdout(std::fs::File::create(&back).unwrap())
        .stderr(Stdio::piped()));
    let down_log = text(&down.stderr);
    assert!(down.status.success(), "download: {down_log}\n{}", b.log());
    assert_eq!(sha256_file(&back), sum, "download arrived changed");
    (up_log, down_log)
}

#[test]
fn the_client_connection_rekeys_mid_stream_and_loses_nothing() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    // OpenSSH re-keys after every 512 KiB: 16 or more exchanges per 8 MiB.
    let (up, down) = round_trip(&b, &["-v", "-o", "RekeyLimit=512K"]);
    for (what, log) in [("upload", &up), ("download", &down)] {
        assert!(
            kex_count(log) >= 4,
            "{what}: the client re-keyed {} time(s):\n{log}",
            kex_count(log).saturating_sub(1)
        );
    }
}

#[test]
fn the_upstream_connection_rekeys_mid_stream_and_loses_nothing() {
    let sshd = Sshd::start_with("ed25519", "RekeyLimit 512K\nLogLevel DEBUG1");
    let b = Bastion::standard(&sshd);
    let before = kex_count(&sshd.log());
    round_trip(&b, &[]);
    let rekeys = kex_count(&sshd.log()) - before;
    // Two connections, one first exchange each; the rest are re-keys.
    assert!(
        rekeys >= 2 + 4,
        "the target's sshd started {rekeys} key exchange(s):\n{}",
        sshd.log()
    );
}
