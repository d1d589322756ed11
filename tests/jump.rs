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
    assert!(
        err.contains("web03:22 is not a target you are granted"),
        "{err}"
    );
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
    let conf = other.path().join("p.toml");
    std::fs::write(&conf, "[jump]\nhost_patterns = [\"web01\"]\n").unwrap();
    let foreign = text(
        &run_ok(
            std::process::Command::new(bin())
                .arg("--config")
                .arg(&conf)
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
    assert!(
        err.contains("web01:22 is not a target you are granted"),
        "{err}"
    );
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

/// The certificate lines `ssh -vv` prints about the inner host key.
fn cert_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("Server host certificate"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_jump_without_a_grant_learns_nothing_about_the_target() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    // secret01 exists (same host as web01), alice has no grant on it.
    b.add_target("secret01", &sshd);
    let cfg = jump_config(&b, Outer::Key(&b.alice_key), Trust::HostCa, "");
    let ask = |dest: &str| {
        let mut c = ssh_jump(&cfg, "alice@bastion", &format!("{TARGET_USER}@{dest}"));
        c.arg("-vv").arg("true");
        refused(&mut c)
    };
    let exists = ask("secret01");
    let missing = ask("nosuch01");
    let refusal = |err: &str, name: &str| {
        err.lines()
            .filter(|l| l.contains("open failed"))
            .map(|l| l.replace(name, "NAME"))
            .collect::<Vec<_>>()
    };
    let (a, b_) = (refusal(&exists, "secret01"), refusal(&missing, "nosuch01"));
    assert!(!a.is_empty(), "{exists}");
    assert_eq!(a, b_, "an existing target is refused like a missing one");
    assert!(
        a[0].contains("NAME:22 is not a target you are granted"),
        "{a:?}"
    );
    // No handshake with a nested server: no certificate, no principals.
    for err in [&exists, &missing] {
        assert!(cert_lines(err).is_empty(), "{:?}", cert_lines(err));
        assert!(!err.contains("Host key verification"), "{err}");
    }
    // By address too: secret01's configured host and port.
    let by_addr = refused(
        ssh_jump(&cfg, "alice@bastion", &format!("{TARGET_USER}@127.0.0.1"))
            .args(["-vv", "-p", &sshd.port.to_string()])
            .arg("true"),
    );
    assert!(!by_addr.contains("secret01"), "{by_addr}");
    assert!(
        cert_lines(&by_addr).is_empty(),
        "{:?}",
        cert_lines(&by_addr)
    );
    assert!(!sshd.log().contains("Accepted"), "{}", sshd.log());

    // A granted jump by name: the certificate names what was asked, not the
    // target's internal address.
    let ok = run_ok(
        ssh_jump(&cfg, "alice@bastion", &format!("{TARGET_USER}@web01"))
            .arg("-vv")
            .arg("true"),
    );
    let err = text(&ok.stderr);
    let principals: Vec<&str> = err
        .lines()
        .filter_map(|l| l.split("Server host certificate hostname: ").nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(principals, ["web01"], "{:?}", cert_lines(&err));
}

/// `valid from A to B` in OpenSSH's debug line, as seconds between them.
fn validity_secs(line: &str) -> i64 {
    let after = line.split("valid from ").nth(1).expect(line);
    let (from, to) = after.split_once(" to ").expect(line);
    let parse = |s: &str| {
        s.trim()
            .parse::<jiff::civil::DateTime>()
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    };
    let span = parse(to).duration_since(parse(from));
    span.as_secs()
}

#[test]
fn the_host_ca_is_trusted_only_for_targets_and_certificates_live_hours() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let shown = text(&b.admin(&["host-ca", "show"]).stdout);
    assert!(!shown.trim().is_empty());
    for line in shown.lines() {
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("@cert-authority"), "{line}");
        let hosts = words.next().unwrap();
        assert!(!hosts.contains('*') && !hosts.contains('?'), "{line}");
        assert_eq!(words.next(), Some("ssh-ed25519"), "{line}");
    }
    for name in ["web01", "web02", &format!("[127.0.0.1]:{}", sshd.port)] {
        assert!(
            shown.lines().any(|l| l
                .split_whitespace()
                .nth(1)
                .unwrap()
                .split(',')
                .any(|h| h == name)),
            "{name} missing: {shown}"
        );
    }
    // The CA line does not vouch for a host that is no target.
    let cfg = jump_config(&b, Outer::Key(&b.alice_key), Trust::HostCa, "");
    let ok = run_ok(
        ssh_jump(&cfg, "alice@bastion", &format!("{TARGET_USER}@web01"))
            .arg("-vv")
            .arg("true"),
    );
    let err = text(&ok.stderr);
    let line = cert_lines(&err)
        .into_iter()
        .find(|l| l.contains("valid from"))
        .unwrap_or_else(|| panic!("{err}"));
    let secs = validity_secs(&line);
    assert!(secs <= 13 * 3600, "certificate lives {secs} s: {line}");

    // A configured domain pattern replaces the list; `*` is refused.
    let dir = tempfile::tempdir().unwrap();
    let show = |setting: &str| {
        let conf = dir.path().join("p.toml");
        std::fs::write(&conf, setting).unwrap();
        run(std::process::Command::new(bin())
            .arg("--config")
            .arg(&conf)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["host-ca", "show"]))
    };
    let out = show("[jump]\nhost_patterns = [\"*.corp.example\"]\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("@cert-authority *.corp.example ssh-ed25519 "),
        "{}",
        text(&out.stdout)
    );
    for bad in ["*", "*.*", "?*", "!x", "a,b"] {
        let out = show(&format!("[jump]\nhost_patterns = [{bad:?}]\n"));
        assert!(!out.status.success(), "{bad} accepted");
        assert!(
            text(&out.stderr).contains("jump.host_patterns"),
            "{}",
            text(&out.stderr)
        );
    }
}
