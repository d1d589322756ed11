//! `ssh -J` (ProxyJump) terminated at the bastion, through real OpenSSH to a
//! real sshd: the inner connection is answered by portcullis with a host
//! certificate from its host CA, and becomes an ordinary recorded,
//! credential-injected session.

mod common;
use common::jump::*;
use common::*;
use std::process::Stdio;
use std::time::Duration;

fn session_rows(b: &Bastion) -> Vec<String> {
    text(&b.admin(&["session", "list"]).stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until the newest session row is closed (the client is gone).
fn closed_row(b: &Bastion) -> String {
    for _ in 0..50 {
        let rows = session_rows(b);
        if let Some(r) = rows.first()
            && !r.contains("\tlive\t")
        {
            return r.clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no closed session row: {:?}", session_rows(b));
}

fn stderr_of(out: &std::process::Output) -> String {
    text(&out.stderr)
}

#[test]
fn jump_runs_a_command_with_the_vaulted_credential_recorded() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let cfg = jump_config(&b, Outer::Key(&b.alice_key), Trust::HostCa, "");
    // alice has no key on the target: only the vaulted tuser key gets in.
    let out = run_ok(&mut ssh_jump(
        &cfg,
        "alice@bastion",
        &format!("{TARGET_USER}@web01"),
    ).arg("echo JUMP-$((6*7)); id -un"));
    assert_eq!(text(&out.stdout), format!("JUMP-42\n{TARGET_USER}\n"));
    assert!(
        sshd.log().contains("Accepted publickey for tuser"),
        "{}",
        sshd.log()
    );

    let row = closed_row(&b);
    assert!(row.contains("\talice\t127.0.0.1:"), "{row}");
    assert!(row.contains("tuser@web01"), "{row}");
    let id = row.split('\t').next().unwrap();
    let v = run(b.cli().args(["verify", id]));
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    assert!(audit.contains("jump.opened"), "{audit}");
    // The same output is in the recording.
    let recs = std::fs::read_dir(b.data_dir().join("recordings")).unwrap();
    let casts: Vec<String> = recs
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "cast"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(casts.iter().any(|c| c.contains("JUMP-42")), "{casts:?}");
}
