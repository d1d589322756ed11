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

/// Runs `c`, expects it to fail, and returns its stderr.
fn refused(c: &mut std::process::Command) -> String {
    let out = run(c);
    assert!(
        !out.status.success(),
        "{c:?} succeeded: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

#[test]
fn jump_runs_a_command_with_the_vaulted_credential_recorded() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let cfg = jump_config(&b, Outer::Key(&b.alice_key), Trust::HostCa, "");
    // alice has no key on the target: only the vaulted tuser key gets in.
    let out = run_ok(
        ssh_jump(&cfg, "alice@bastion", &format!("{TARGET_USER}@web01"))
            .arg("echo JUMP-$((6*7)); id -un"),
    );
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

    // The user's own name as the inner username means the grant's default login.
    let out = run_ok(ssh_jump(&cfg, "alice@bastion", "alice@web02").arg("id -un"));
    assert_eq!(text(&out.stdout), format!("{TARGET_USER}\n"));
}

#[test]
fn a_human_with_totp_jumps_with_one_code_for_both_connections() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let key = b.add_human("bob", "bob-bastion-password");
    let secret = enroll_totp(&b, "bob");
    let ask = Askpass::new();
    ask.set_code(&next_code(&secret));
    let cfg = jump_config(&b, Outer::KeyAndTotp(&key), Trust::HostCa, "");
    let mut c = ssh_jump(&cfg, "bob@bastion", &format!("{TARGET_USER}@web01"));
    ask.apply(&mut c);
    let out = run_ok(c.arg("echo MFA-JUMP"));
    assert_eq!(text(&out.stdout), "MFA-JUMP\n");
    // One verification code, asked once, for the outer connection only.
    assert_eq!(
        ask.prompts().matches("erification").count(),
        1,
        "{}",
        ask.prompts()
    );
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    assert!(audit.contains("publickey+totp"), "{audit}");
    assert!(closed_row(&b).contains("\tbob\t"), "{:?}", session_rows(&b));
}

#[test]
fn scp_through_jump_copies_both_ways() {
    need("scp", "openssh-client");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let cfg = jump_config(&b, Outer::Key(&b.alice_key), Trust::HostCa, "");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("blob");
    random_file(&src, 16);
    let sum = sha256_file(&src);
    let scp = || {
        let mut c = std::process::Command::new("scp");
        c.arg("-F").arg(&cfg).args(["-J", "alice@bastion"]);
        c
    };
    run_ok(
        scp()
            .arg(&src)
            .arg(format!("{TARGET_USER}@web01:jump-up.bin")),
    );
    assert_eq!(sha256_file(&sshd.home.join("jump-up.bin")), sum);
    let back = dir.path().join("back.bin");
    run_ok(
        scp()
            .arg(format!("{TARGET_USER}@web02:jump-up.bin"))
            .arg(&back),
    );
    assert_eq!(sha256_file(&back), sum);
}

#[test]
fn jumps_outside_the_grants_or_without_the_ca_are_refused() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    b.add_target("web03", &sshd);
    let cfg = jump_config(&b, Outer::Key(&b.alice_key), Trust::HostCa, "");
    let jump = |dest: &str| ssh_jump(&cfg, "alice@bastion", dest);

    let err = refused(jump(&format!("{TARGET_USER}@web03")).arg("true"));
    assert!(err.contains("you have no grant for target web03"), "{err}");
    let err = refused(jump("root@web01").arg("true"));
    assert!(
        err.contains("do not include login root") && err.contains(TARGET_USER),
        "{err}"
    );
    // An address two targets share names neither: refused, never passed through.
    let err = refused(
        jump(&format!("{TARGET_USER}@127.0.0.1"))
            .args(["-p", &sshd.port.to_string()])
            .arg("true"),
    );
    assert!(err.contains("several targets"), "{err}");
    // Not an SSH target: the ordinary forwarding rules (refused here).
    let err = refused(jump(&format!("{TARGET_USER}@intranet")).arg("true"));
    assert!(err.contains("open failed"), "{err}");
    assert!(!err.contains("Host key verification"), "{err}");
    // No bytes reached the target for any of them.
    assert!(!sshd.log().contains("Accepted"), "{}", sshd.log());

    // Without the CA line the nested host key is not trusted.
    let untrusted = jump_config(&b, Outer::Key(&b.alice_key), Trust::Nothing, "");
    let err =
        refused(ssh_jump(&untrusted, "alice@bastion", &format!("{TARGET_USER}@web01")).arg("true"));
    assert!(err.contains("Host key verification failed"), "{err}");
    // A certificate from another CA is not trusted either.
    let other = tempfile::tempdir().unwrap();
    let foreign = text(
        &run_ok(
            std::process::Command::new(bin())
                .arg("--data-dir")
                .arg(other.path())
                .args(["host-ca", "show"]),
        )
        .stdout,
    );
    let ours = text(&b.admin(&["host-ca", "show"]).stdout);
    assert_ne!(foreign, ours);
    let kh = std::fs::read_to_string(&cfg).unwrap();
    let kh_path = kh
        .lines()
        .filter_map(|l| l.trim().strip_prefix("UserKnownHostsFile "))
        .next_back()
        .unwrap()
        .to_string();
    std::fs::write(&kh_path, foreign).unwrap();
    let err = refused(jump(&format!("{TARGET_USER}@web01")).arg("true"));
    assert!(err.contains("Host key verification failed"), "{err}");
    assert!(!sshd.log().contains("Accepted"), "{}", sshd.log());
}

#[test]
fn proxyjump_in_ssh_config_works_and_revocation_ends_the_session() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let carol = b.add_service("carol");
    b.add_target("rev01", &sshd);
    let grant = b.grant(&[
        "--user",
        "carol",
        "--target",
        "rev01",
        "--login",
        TARGET_USER,
    ]);
    let extra = format!("Host web01 rev01\n  User {TARGET_USER}\n  ProxyJump carol@bastion\n");
    let cfg = jump_config(&b, Outer::Key(&carol), Trust::HostCa, &extra);
    let ssh = |host: &str| {
        let mut c = std::process::Command::new("ssh");
        c.arg("-F").arg(&cfg).arg(host).stdin(Stdio::null());
        c
    };
    // carol's grants do not include web01; rev01 works.
    let err = refused(ssh("web01").arg("true"));
    assert!(err.contains("no grant for target web01"), "{err}");
    let out = run_ok(ssh("rev01").arg("echo CFG-JUMP"));
    assert_eq!(text(&out.stdout), "CFG-JUMP\n");

    // The nested session is enforced like a direct one: revoking the grant ends it.
    let child = ssh("rev01")
        .arg("sleep 60")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    b.admin(&["grant", "remove", &grant]);
    let removed = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        removed.elapsed() < Duration::from_secs(8),
        "revocation took {:?}",
        removed.elapsed()
    );
    assert!(
        text(&out.stderr).contains("access withdrawn"),
        "{}",
        text(&out.stderr)
    );
    let row = closed_row(&b);
    assert!(
        row.contains("rev01") && row.contains("grant withdrawn"),
        "{row}"
    );
}
