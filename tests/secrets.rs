//! The injected credentials never reach the client, the logs or the database in clear.

mod common;
use common::*;
use std::process::Stdio;

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn credentials_appear_nowhere_in_clear() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let mut client_output = Vec::new();
    for user in ["alice+web01", "alice+web02", "alice", "alice+nope"] {
        let out = run(b
            .ssh(user)
            .args(["-v", "env; set; id"])
            .stdin(Stdio::null()));
        client_output.extend(out.stdout);
        client_output.extend(out.stderr);
    }
    let key_text = std::fs::read_to_string(&sshd.user_key).unwrap();
    // The base64 body lines of the private key; the first is a header shared
    // by every unencrypted OpenSSH ed25519 key, so it proves nothing.
    let key_lines: Vec<&str> = key_text
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 40)
        .skip(1)
        .collect();
    assert!(!key_lines.is_empty());
    // The database and its journal files (the data dir also holds the
    // bastion's own host key, which is not what this test is about).
    let mut db = Vec::new();
    for e in std::fs::read_dir(b.data_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("portcullis.db")
        {
            db.extend(std::fs::read(&p).unwrap());
        }
    }
    assert!(
        contains(&db, "pcv1:"),
        "credentials should be stored as sealed envelopes"
    );
    let log = b.log();
    for (what, hay) in [
        ("client output", &client_output),
        ("database", &db),
        ("bastion log", &log.as_bytes().to_vec()),
    ] {
        assert!(
            !contains(hay, TARGET_PASSWORD),
            "target password found in {what}"
        );
        for l in &key_lines {
            assert!(!contains(hay, l), "private key material found in {what}");
        }
    }
    // And the sessions did run, so the credentials were used.
    assert!(text(&client_output).contains("uid=4242(tuser)"));
}

/// `kek new`, accept the old key, `kek rewrap`, drop the old key: every
/// credential and TOTP secret still opens, under the new key alone.
#[test]
fn a_kek_rotation_rewraps_every_secret_and_the_old_key_can_go() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    let bob_pub = b.alice_key.with_extension("pub");
    b.admin(&["user", "add", "bob", "--key", bob_pub.to_str().unwrap()]);
    enroll_totp(&b, "bob");
    b.stop();
    let old = b.data_dir().join("kek");
    let new = b.dir.path().join("kek-2026");
    let new_id = text(&b.admin(&["kek", "new", new.to_str().unwrap()]).stdout)
        .trim()
        .to_string();
    assert_eq!(new_id.len(), 16, "{new_id}");
    let base = std::fs::read_to_string(&b.config).unwrap();
    let set = |lines: &str| std::fs::write(&b.config, format!("{lines}\n{base}")).unwrap();

    // The new key alone cannot open what the old one sealed: refused whole.
    set(&format!("kek_file = {:?}", new));
    let out = run(b.cli().args(["kek", "rewrap"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nothing was changed"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&b.admin(&["kek", "status"]).stdout).contains("NOT LOADED"));

    // With the old key accepted: three secrets (two credentials, a TOTP) move.
    set(&format!(
        "kek_file = {:?}\naccepted_kek_files = [{:?}]",
        new, old
    ));
    let status = text(&b.admin(&["kek", "status"]).stdout);
    assert!(status.contains("\t3\taccepted (opens)"), "{status}");
    assert!(
        status.contains(&format!("{new_id}\t0\tcurrent")),
        "{status}"
    );
    let out = text(&b.admin(&["kek", "rewrap"]).stdout);
    assert!(out.contains("re-wrapped 3;"), "{out}");
    let out = text(&b.admin(&["kek", "rewrap"]).stdout);
    assert!(
        out.contains("re-wrapped 0;"),
        "a second run has nothing left: {out}"
    );

    // The old key is no longer needed.
    set(&format!("kek_file = {:?}", new));
    let status = text(&b.admin(&["kek", "status"]).stdout);
    assert_eq!(status.trim(), format!("{new_id}\t3\tcurrent (seals)"));
    b.start();
    for user in ["alice+web01", "alice+web02"] {
        let out = run_ok(b.ssh(user).arg("echo still-$((40+2))").stdin(Stdio::null()));
        assert_eq!(text(&out.stdout).trim(), "still-42", "{user}");
    }
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    assert!(audit.contains("vault.rewrapped"), "{audit}");
}
