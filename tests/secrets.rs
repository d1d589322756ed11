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
