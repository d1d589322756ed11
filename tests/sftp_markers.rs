//! SFTP markers through the real OpenSSH `sftp` client and a real sshd via
//! the bastion: every file operation the client offers leaves a marker that
//! names what it did and its whole path, escaped, however long.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Waits for the channel's recording to be sealed (its trailer written).
fn sealed_cast(b: &Bastion) -> PathBuf {
    let dir = b.data_dir().join("recordings");
    for _ in 0..100 {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "chain")
                && std::fs::read_to_string(&p)
                    .unwrap_or_default()
                    .contains("\"type\":\"trailer\"")
            {
                return p.with_extension("cast");
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no sealed recording in {}", dir.display());
}

/// The marker events of a cast, in order.
fn markers(cast: &Path) -> Vec<String> {
    let body = std::fs::read_to_string(cast).unwrap();
    body.lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v[1] == "m")
        .filter_map(|v| v[2].as_str().map(str::to_string))
        .collect()
}

/// A path as a marker writes it when it needs quoting (this test's
/// paths have at most spaces and double quotes).
fn quoted(p: &str) -> String {
    format!("\"{}\"", p.replace('"', "\\\""))
}

fn sftp_batch(b: &Bastion, batch: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch");
    std::fs::write(&file, batch).unwrap();
    run(Command::new("sftp")
        .args(b.ssh_opts())
        .args(["-P", &b.port.to_string(), "-b"])
        .arg(&file)
        .arg("alice+web01@127.0.0.1"))
}

#[test]
fn every_file_operation_leaves_a_marker_with_its_whole_escaped_path() {
    need("sftp", "openssh-client");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let home = std::fs::canonicalize(&sshd.home)
        .unwrap()
        .display()
        .to_string();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src.bin");
    let content: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(&src, &content).unwrap();
    let sum = blake3::hash(&content).to_hex();
    // A name is at most 255 bytes on Linux: the long path is two long names.
    let long_dir = "d".repeat(200);
    let long_file = "f".repeat(200);
    let batch = format!(
        "mkdir \"my dir\"\n\
         mkdir {long_dir}\n\
         put {src} \"my dir/a file\"\n\
         put {src} {long_dir}/{long_file}\n\
         ln -s \"my dir/a file\" \"my dir/sym link\"\n\
         ln \"my dir/a file\" \"my dir/hard link\"\n\
         chmod 640 \"my dir/a file\"\n\
         chown 4242 \"my dir/a file\"\n\
         chgrp 4242 \"my dir/a file\"\n\
         rename \"my dir/hard link\" \"my dir/moved\"\n\
         cp \"my dir/a file\" {long_dir}/{long_file}.copy\n\
         chmod 600 {long_dir}/{long_file}\n\
         rm \"my dir/moved\"\n\
         rm \"my dir/sym link\"\n\
         mkdir 'q\"uote'\n\
         rmdir 'q\"uote'\n\
         ls \"my dir\"\n\
         df\n\
         -mkdir /root/pc-denied\n",
        src = src.display()
    );
    let out = sftp_batch(&b, &batch);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // What the target now holds is what the markers are about to claim.
    let file = sshd.home.join("my dir/a file");
    assert_eq!(std::fs::read(&file).unwrap(), content);
    assert!(
        sshd.home
            .join(&long_dir)
            .join(format!("{long_file}.copy"))
            .exists()
    );
    let cast = sealed_cast(&b);
    let got = markers(&cast);

    let dir = format!("{home}/my dir");
    let a_file = quoted(&format!("{dir}/a file"));
    let long = format!("{home}/{long_dir}/{long_file}");
    assert!(long.len() >= 400);
    let want = [
        format!("sftp mkdir {} mode=0777", quoted(&dir)),
        format!("sftp mkdir {home}/{long_dir} mode=0777"),
        format!("sftp open {a_file} (write, create, truncate) mode=0644"),
        format!("sftp upload {a_file} 1000 bytes blake3 {sum}"),
        format!("sftp open {long} (write, create, truncate) mode=0644"),
        format!("sftp upload {long} 1000 bytes blake3 {sum}"),
        // OpenSSH's client leaves a symlink's target as typed and sends it
        // first; the link is the second argument, made absolute.
        format!(
            "sftp symlink {} pointing to {}",
            quoted(&format!("{dir}/sym link")),
            quoted("my dir/a file")
        ),
        format!(
            "sftp hardlink {} to existing {a_file}",
            quoted(&format!("{dir}/hard link"))
        ),
        format!("sftp setstat {a_file} mode=0640"),
        // chown and chgrp both send both ids, the unchanged one as it was.
        format!("sftp setstat {a_file} uid=4242 gid=4242"),
        format!(
            "sftp rename {} -> {} (posix-rename@openssh.com)",
            quoted(&format!("{dir}/hard link")),
            quoted(&format!("{dir}/moved"))
        ),
        format!("sftp open {a_file} (read)"),
        format!("sftp open {long}.copy (write, create, truncate) mode=0640"),
        format!(
            "sftp copy-data from {a_file} (offset 0, to end of file) to {long}.copy (offset 0)"
        ),
        format!(
            "sftp close {long}.copy (written by copy-data on the server, no data through the bastion)"
        ),
        format!(
            "sftp close {a_file} (read by copy-data on the server, no data through the bastion)"
        ),
        format!("sftp setstat {long} mode=0600"),
        format!("sftp remove {}", quoted(&format!("{dir}/moved"))),
        format!("sftp remove {}", quoted(&format!("{dir}/sym link"))),
        format!(
            "sftp mkdir {} mode=0777",
            quoted(&format!("{home}/q\"uote"))
        ),
        format!("sftp rmdir {}", quoted(&format!("{home}/q\"uote"))),
        // `ls` asks for the directory with a trailing slash; it holds
        // `.`, `..` and `a file` by then.
        format!("sftp opendir {}", quoted(&format!("{dir}/"))),
        format!("sftp list {}: 3 entries", quoted(&format!("{dir}/"))),
        format!("sftp statvfs {home}"),
        "sftp mkdir /root/pc-denied mode=0777".to_string(),
        "sftp mkdir /root/pc-denied mode=0777 failed: permission denied".to_string(),
    ];
    let missing: Vec<&String> = want.iter().filter(|w| !got.contains(w)).collect();
    assert!(
        missing.is_empty(),
        "missing markers:\n{}\n\nrecorded:\n{}",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        got.join("\n")
    );
    let chown = format!("sftp setstat {a_file} uid=4242 gid=4242");
    assert_eq!(
        got.iter().filter(|m| **m == chown).count(),
        2,
        "chown, chgrp"
    );
    // Nothing the client did was refused but the one meant to be (and the
    // client's own probes for files it is about to create).
    let failed: Vec<&String> = got.iter().filter(|m| m.contains(" failed: ")).collect();
    assert!(
        failed.iter().all(|m| m.contains("/root/pc-denied")
            || m.starts_with("sftp stat ")
            || m.starts_with("sftp lstat ")),
        "{failed:?}"
    );
    // Recorded whole and still verifiable with the long markers in it.
    let verified = run_ok(b.cli().arg("verify").arg(&cast));
    assert!(
        text(&verified.stdout).contains("OK"),
        "{}",
        text(&verified.stdout)
    );
    // `sessions search` finds a file operation by its path: the sftp stream
    // itself is never printed or typed, so only the marker can hold it.
    let found = run_ok(b.cli().args(["sessions", "search", "pc-denied"]));
    assert!(
        text(&found.stdout).contains("marked"),
        "search did not find the marker: {}",
        text(&found.stdout)
    );
}
