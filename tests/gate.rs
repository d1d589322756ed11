//! Attacks on the gate through real OpenSSH (issue 13): each test tries to
//! get past a grant's permissions, its exec lists, a command rule or a live
//! grant change with the tools any user has, and checks that the attempt left
//! no trace on the target. Every marker lives in the target account's home,
//! which that account can write: a marker that is absent means the command
//! did not run, not that it could not write there (each test also proves the
//! target can write there with an allowed request).

mod common;
use common::cm::{ControlMaster, run_limited};
use common::forward::{Behaviour, Service};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A file in the target account's home that only a command run on the
/// target can create; absent when the test starts.
fn marker(sshd: &Sshd, name: &str) -> PathBuf {
    let m = sshd.home.join(format!("pwned-{name}"));
    assert!(!m.exists(), "{} exists before the attack", m.display());
    m
}

/// The control for every marker: an allowed exec (alice's default grant on
/// web01) does create a file in the same directory, as the same account.
fn target_can_write_markers(b: &Bastion, sshd: &Sshd) {
    let probe = sshd.home.join("control-writable");
    let out = run_limited(
        b.ssh("alice+web01")
            .arg(format!("touch {}", probe.display())),
    );
    assert!(
        out.status.success() && probe.exists(),
        "the control exec could not write to the marker directory: {}",
        text(&out.stderr)
    );
    std::fs::remove_file(&probe).unwrap();
}

/// Waits until whatever a refused request might have started on the target
/// had time to run: the client is told no at once, but a bastion that
/// forwarded the request anyway has the target run it a moment later, after
/// the client exited. So: until at most `live` sessions are still open (the
/// bastion has closed the others' upstream), then a grace period.
fn settle(b: &Bastion, live: usize) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let sessions = text(&b.admin(&["session", "list"]).stdout);
        if sessions.matches("\tlive\t").count() <= live {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(GRACE);
}

/// How long a forwarded command gets to leave its marker. A `touch` takes
/// milliseconds, but without any wait a bastion that forwards the request
/// and then refuses it passed: checked by moving the exec check after
/// forwarding (see `an_exec_refused_by_permission_never_reaches_the_target`).
const GRACE: Duration = Duration::from_millis(1500);

/// `template` with every `{M}` replaced by the marker path: attack strings
/// read as they would be typed (`scp -t .; touch {M}`).
fn with_marker(template: &str, m: &Path) -> String {
    template.replace("{M}", &m.display().to_string())
}

/// The one-line account of an attempt for failure messages.
fn said(out: &Output) -> String {
    format!(
        "status {:?}, stdout {:?}, stderr {:?}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// `ssh user cmd` refused by the bastion: OpenSSH reports the refused exec
/// request ("exec request failed on channel N"), and exits non-zero. A
/// command that ran and failed on the target exits non-zero too, but does
/// not say that. (A refused session channel says its reason instead:
/// tests/refusal_levels.rs.)
fn refused_by_bastion(out: &Output) -> bool {
    let err = text(&out.stderr);
    !out.status.success() && err.contains("request failed")
}

/// The same through a ControlMaster: the master prints OpenSSH's refusal
/// to its own log, and the client riding it just exits 255 with no output
/// (a command that ran exits with its own status).
fn refused_via_master(out: &Output) -> bool {
    out.status.code() == Some(255) && out.stdout.is_empty()
}

/// Tries every attack (label, command template) as an exec on `user`;
/// returns a description of each that got past the gate: its marker was
/// created, or the bastion did not refuse it.
fn attempts(b: &Bastion, sshd: &Sshd, user: &str, attacks: &[(&str, &str)]) -> Vec<String> {
    let mut tried = Vec::new();
    for (label, template) in attacks {
        let m = marker(sshd, label);
        let cmd = with_marker(template, &m);
        let out = run_limited(b.ssh(user).arg(&cmd));
        tried.push((label, cmd, m, out));
    }
    settle(b, 0);
    let mut passed = Vec::new();
    for (label, cmd, m, out) in tried {
        let ran = m.exists();
        if ran || !refused_by_bastion(&out) {
            passed.push(format!(
                "{label}: {cmd:?} {} ({})",
                if ran {
                    "RAN on the target"
                } else {
                    "was not refused"
                },
                said(&out)
            ));
        }
    }
    passed
}

fn assert_all_refused(passed: Vec<String>, b: &Bastion) {
    assert!(
        passed.is_empty(),
        "{} attack(s) got past the gate:\n  {}\nbastion log (no debug):\n{}",
        passed.len(),
        passed.join("\n  "),
        b.log()
            .lines()
            .filter(|l| !l.contains("DEBUG"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------
// 1. A transfer is a transfer only in its exact form.

/// Commands that start like a legacy-scp or rsync-server transfer but run
/// something else: each must be an exec (refused without `exec`), never a
/// file transfer under `sftp`.
const DRESSED_AS_TRANSFERS: &[(&str, &str)] = &[
    (
        "scp-t-redirect-semicolon",
        "scp -t . </dev/null >/dev/null 2>&1; touch {M}",
    ),
    ("scp-f-semicolon", "scp -f x; touch {M}"),
    (
        "scp-f-redirect-semicolon",
        "scp -f x </dev/null >/dev/null 2>&1; touch {M}",
    ),
    ("scp-t-semicolon-glued", "scp -t .;touch {M}"),
    ("scp-t-dollar-paren", "scp -t $(touch {M})"),
    ("scp-t-backticks", "scp -t `touch {M}`"),
    ("scp-t-and", "scp -t . && touch {M}"),
    ("scp-t-or", "scp -t /nonexistent/dir || touch {M}"),
    ("scp-t-pipe", "scp -t . | touch {M}"),
    ("scp-t-background", "scp -t . & touch {M}"),
    ("scp-t-newline", "scp -t .\ntouch {M}"),
    ("scp-f-newline", "scp -f x\ntouch {M}"),
    ("scp-t-tabs", "scp\t-t\t.;touch\t{M}"),
    ("scp-rt-semicolon", "scp -r -t .; touch {M}"),
    ("scp-t-redirect-creates", "scp -t . >{M}"),
    ("scp-t-dollar-brace", "scp -t ${X:-$(touch {M})}"),
    // The old gate never took rsync for a transfer (refused without exec);
    // these guard the exact-shape parser that lets `rsync --server` in.
    ("rsync-server-semicolon", "rsync --server x; touch {M}"),
    (
        "rsync-server-full-semicolon",
        "rsync --server -logDtpre.iLsfxCIvu . x; touch {M}",
    ),
    ("rsync-server-newline", "rsync --server x\ntouch {M}"),
    (
        "rsync-server-dollar-paren",
        "rsync --server -logDtpre.iLsfxCIvu . $(touch {M})",
    ),
    ("rsync-server-pipe", "rsync --server . x | touch {M}"),
];

#[test]
fn sftp_only_grant_runs_no_command_dressed_as_scp_or_rsync() {
    need("scp", "openssh-client");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    target_can_write_markers(&b, &sshd);
    b.add_target("ft01", &sshd);
    b.grant(&[
        "--user",
        "alice",
        "--target",
        "ft01",
        "--login",
        TARGET_USER,
        "--allow",
        "sftp",
    ]);
    // A plain command is refused: the grant has no exec.
    let plain = marker(&sshd, "plain");
    let out = run_limited(
        b.ssh("alice+ft01")
            .arg(format!("touch {}", plain.display())),
    );
    settle(&b, 0);
    assert!(
        refused_by_bastion(&out) && !plain.exists(),
        "{}",
        said(&out)
    );

    let passed = attempts(&b, &sshd, "alice+ft01", DRESSED_AS_TRANSFERS);
    assert_all_refused(passed, &b);

    // Control: what OpenSSH's legacy scp (-O) really sends, `scp -t up.bin`
    // and `scp -f up.bin`, is still a file transfer under `sftp`.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("blob");
    random_file(&src, 1);
    let port = b.port.to_string();
    let up = run_limited(
        Command::new("scp")
            .arg("-O")
            .args(b.ssh_opts())
            .args(["-P", &port])
            .arg(&src)
            .arg("alice+ft01@127.0.0.1:legacy-up.bin"),
    );
    assert!(up.status.success(), "scp -O upload: {}", said(&up));
    assert_eq!(
        sha256_file(&sshd.home.join("legacy-up.bin")),
        sha256_file(&src)
    );
    let back = dir.path().join("back.bin");
    let down = run_limited(
        Command::new("scp")
            .arg("-O")
            .args(b.ssh_opts())
            .args(["-P", &port])
            .arg("alice+ft01@127.0.0.1:legacy-up.bin")
            .arg(&back),
    );
    assert!(down.status.success(), "scp -O download: {}", said(&down));
    assert_eq!(sha256_file(&back), sha256_file(&src));
}

/// Transfer-shaped commands with no shell metacharacter at all that still
/// run a program of the user's choosing: scp outside sink/source mode runs
/// ssh, which runs a ProxyCommand; an rsync "server" in daemon mode reads
/// `rsyncd.conf` from the home directory and runs its `pre-xfer exec`. Both
/// files are uploaded with sftp, which the grant allows.
#[test]
fn sftp_only_grant_refuses_transfer_shaped_commands_that_run_programs() {
    need("scp", "openssh-client");
    need("sftp", "openssh-client");
    need("rsync", "rsync");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    target_can_write_markers(&b, &sshd);
    b.add_target("ft01", &sshd);
    b.grant(&[
        "--user",
        "alice",
        "--target",
        "ft01",
        "--login",
        TARGET_USER,
        "--allow",
        "sftp",
    ]);
    let proxy_mark = marker(&sshd, "scp-proxycommand");
    let daemon_mark = marker(&sshd, "rsync-daemon-pre-xfer");
    let dir = tempfile::tempdir().unwrap();
    let evil = dir.path().join("evil.sh");
    std::fs::write(
        &evil,
        format!("#!/bin/sh\ntouch {}\n", proxy_mark.display()),
    )
    .unwrap();
    let conf = dir.path().join("rsyncd.conf");
    std::fs::write(
        &conf,
        format!(
            "use chroot = no\n[m]\npath = {home}\nread only = yes\npre-xfer exec = /usr/bin/touch {mark}\n",
            home = sshd.home.display(),
            mark = daemon_mark.display()
        ),
    )
    .unwrap();
    // Control: sftp works with this grant (the upload the attacks rely on).
    let batch = dir.path().join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} evil.sh\nchmod 755 evil.sh\nput {} rsyncd.conf\n",
            evil.display(),
            conf.display()
        ),
    )
    .unwrap();
    let port = b.port.to_string();
    let put = run_limited(
        Command::new("sftp")
            .args(b.ssh_opts())
            .args(["-P", &port, "-b"])
            .arg(&batch)
            .arg("alice+ft01@127.0.0.1"),
    );
    assert!(put.status.success(), "sftp: {}", said(&put));
    assert!(sshd.home.join("evil.sh").exists() && sshd.home.join("rsyncd.conf").exists());

    // "-oProxyCommand=/…" starts with '-' and holds a 't': the old gate saw `scp -t`.
    let cmd = format!(
        "scp -oProxyCommand={}/evil.sh x 127.0.0.1:y",
        sshd.home.display()
    );
    let proxied = run_limited(b.ssh("alice+ft01").arg(&cmd));
    // The real rsync client asking for a module: it sends `rsync --server --daemon .`.
    let e = format!("ssh {} -p {}", b.ssh_opts().join(" "), b.port);
    let daemon = run_limited(
        Command::new("rsync")
            .args(["-e", &e, "--list-only"])
            .arg("alice+ft01@127.0.0.1::m/"),
    );
    settle(&b, 0);
    let mut passed = Vec::new();
    if proxy_mark.exists() || !refused_by_bastion(&proxied) {
        passed.push(format!(
            "{cmd:?} {} ({})",
            if proxy_mark.exists() {
                "RAN evil.sh on the target"
            } else {
                "was not refused"
            },
            said(&proxied)
        ));
    }
    if daemon_mark.exists() || daemon.status.success() {
        passed.push(format!(
            "rsync daemon over ssh {} ({})",
            if daemon_mark.exists() {
                "RAN its pre-xfer exec on the target"
            } else {
                "was served"
            },
            said(&daemon)
        ));
    }
    assert_all_refused(passed, &b);

    // Control: a real rsync upload (`rsync --server -logDtpre.iLsfxCIvu . synced/`)
    // is a file transfer under `sftp`.
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    random_file(&tree.join("a.bin"), 1);
    std::fs::write(tree.join("sub/b.txt"), "hello rsync\n").unwrap();
    let out = run_limited(
        Command::new("rsync")
            .args(["-a", "-e", &e])
            .arg(format!("{}/", tree.display()))
            .arg("alice+ft01@127.0.0.1:synced/"),
    );
    assert!(out.status.success(), "rsync upload: {}", said(&out));
    assert_eq!(
        sha256_file(&sshd.home.join("synced/a.bin")),
        sha256_file(&tree.join("a.bin"))
    );
}

// ---------------------------------------------------------------------------
// 2. Exec allow/deny lists mean what an administrator reads.

/// Against `--exec-allow "echo *"`: the old glob let `*` run over `;`, `&&`,
/// `|`, newlines, substitutions and redirections.
const PAST_ECHO_STAR: &[(&str, &str)] = &[
    ("semicolon", "echo hi; touch {M}"),
    ("and", "echo hi && touch {M}"),
    ("or", "echo hi || touch {M}"),
    ("or-after-failure", "echo hi >&- || touch {M}"),
    ("pipe", "echo hi | touch {M}"),
    ("background", "echo hi & touch {M}"),
    ("newline", "echo hi\ntouch {M}"),
    ("carriage-return-newline", "echo hi\r\ntouch {M}"),
    ("comment-newline", "echo hi #\ntouch {M}"),
    ("dollar-paren", "echo $(touch {M})"),
    ("backticks", "echo `touch {M}`"),
    ("quoted-dollar-paren", "echo \"$(touch {M})\""),
    ("dollar-brace-assign", "echo ${X:=$(touch {M})}"),
    ("quoted-dollar-brace", "echo \"${X:-`touch {M}`}\""),
    ("redirect-out-creates", "echo hi > {M}"),
    ("redirect-append-creates", "echo hi >> {M}"),
    ("redirect-clobber-creates", "echo hi >| {M}"),
    ("redirect-stderr-creates", "echo hi 2>{M}"),
    ("redirect-readwrite-creates", "echo hi <>{M}"),
    ("redirect-glued-creates", "echo hi>{M}"),
    ("escaped-backslash-then-semicolon", "echo \\\\; touch {M}"),
    // In single quotes a backslash is literal: the `;` is outside any quote.
    (
        "single-quote-backslash-games",
        "echo 'a\\'; touch {M}; echo '\\'",
    ),
    (
        "double-quote-then-semicolon",
        "echo \"a\"; touch {M}; echo \"b\"",
    ),
    ("assignment-prefix", "X=1 touch {M}"),
    // An assignment in front of the allowed program changes what it loads.
    ("assignment-before-allowed", "LD_PRELOAD={M} echo hi"),
    ("assignment-after-semicolon", "echo hi; X=1 touch {M}"),
    ("tab-semicolon", "echo\thi;touch\t{M}"),
];

#[test]
fn exec_allow_list_admits_no_shell_operators_redirections_or_substitutions() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    target_can_write_markers(&b, &sshd);
    b.add_target("cmd01", &sshd);
    b.grant(&[
        "--user",
        "alice",
        "--target",
        "cmd01",
        "--login",
        TARGET_USER,
        "--allow",
        "exec",
        "--exec-allow",
        "echo *",
    ]);
    let passed = attempts(&b, &sshd, "alice+cmd01", PAST_ECHO_STAR);
    assert_all_refused(passed, &b);
    // Control: the allowed command runs, quoting included.
    let out = run_limited(b.ssh("alice+cmd01").arg("echo hi"));
    assert_eq!(text(&out.stdout), "hi\n", "{}", said(&out));
    let out = run_limited(b.ssh("alice+cmd01").arg("echo 'a; b'"));
    assert_eq!(text(&out.stdout), "a; b\n", "{}", said(&out));
}

/// Against `--exec-deny "touch *"`: quoting and escapes that the shell
/// removes before it runs the program. The old glob compared the raw string,
/// so `t\ouch` was not `touch`; a deny list matches the words the shell runs.
const PAST_DENY_TOUCH: &[(&str, &str)] = &[
    ("deny-backslash-inside", "t\\ouch {M}"),
    ("deny-backslash-first", "\\touch {M}"),
    ("deny-single-quoted", "'touch' {M}"),
    ("deny-double-quoted-part", "\"to\"uch {M}"),
    ("deny-empty-quotes", "to''uch {M}"),
    ("deny-leading-space", " touch {M}"),
    ("deny-tab", "touch\t{M}"),
];

#[test]
fn exec_deny_list_matches_the_words_the_shell_runs() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    target_can_write_markers(&b, &sshd);
    b.add_target("deny01", &sshd);
    b.grant(&[
        "--user",
        "alice",
        "--target",
        "deny01",
        "--login",
        TARGET_USER,
        "--allow",
        "exec",
        "--exec-deny",
        "touch *",
    ]);
    let passed = attempts(&b, &sshd, "alice+deny01", PAST_DENY_TOUCH);
    assert_all_refused(passed, &b);
    // Control: what the list does not deny runs.
    let out = run_limited(b.ssh("alice+deny01").arg("echo hi"));
    assert_eq!(text(&out.stdout), "hi\n", "{}", said(&out));
}

/// The README's own example: `--exec-allow "pg_isready*" --exec-deny "*;*"`.
/// No PostgreSQL listens on the target, so pg_isready fails and `&&` runs
/// nothing there; the bastion must still refuse it (`||` runs the second
/// command).
const PAST_PG_ISREADY: &[(&str, &str)] = &[
    ("pg-and", "pg_isready && touch {M}"),
    ("pg-or", "pg_isready || touch {M}"),
    ("pg-pipe", "pg_isready | touch {M}"),
    ("pg-background", "pg_isready & touch {M}"),
    ("pg-newline", "pg_isready\ntouch {M}"),
    ("pg-dollar-paren", "pg_isready $(touch {M})"),
    ("pg-backticks", "pg_isready `touch {M}`"),
    ("pg-glued-dollar-paren", "pg_isready$(touch {M})"),
    ("pg-redirect-creates", "pg_isready >{M}"),
];

#[test]
fn readme_exec_list_example_is_not_bypassed() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    target_can_write_markers(&b, &sshd);
    b.add_target("db01", &sshd);
    b.grant(&[
        "--user",
        "alice",
        "--target",
        "db01",
        "--login",
        TARGET_USER,
        "--allow",
        "exec",
        "--exec-allow",
        "pg_isready*",
        "--exec-allow",
        "uptime",
        "--exec-deny",
        "*;*",
    ]);
    let passed = attempts(&b, &sshd, "alice+db01", PAST_PG_ISREADY);
    assert_all_refused(passed, &b);
    // Control: an allowed command runs.
    let out = run_limited(b.ssh("alice+db01").arg("uptime"));
    assert!(
        out.status.success() && text(&out.stdout).contains("load average"),
        "{}",
        said(&out)
    );
}

// ---------------------------------------------------------------------------
// 3. Rules and policy decide before the target sees the request.

const COMMAND_RULE: &str = r#"
[[lockdown.rule]]
name = "no-rm-rf-root"
command = 'rm\s+-rf\s+/'
action = "end_session"
"#;

#[test]
fn a_command_rule_refuses_an_exec_before_the_target_runs_any_of_it() {
    let sshd = Sshd::start();
    let b = Bastion::standard_with(&sshd, COMMAND_RULE);
    target_can_write_markers(&b, &sshd);
    let m = marker(&sshd, "rule");
    let cmd = format!(
        "touch {} ; rm -rf /nonexistent-portcullis-test",
        m.display()
    );
    let out = run_limited(b.ssh("alice+web01").arg(&cmd));
    settle(&b, 0);
    // The rule fired (so the bastion saw the command) ...
    let audit = text(&b.admin(&["audit", "list"]).stdout);
    assert!(
        audit.contains("rule.fired") && audit.contains("no-rm-rf-root"),
        "{audit}"
    );
    // ... and nothing of it ran on the target.
    assert!(
        !m.exists(),
        "the command a rule refused ran on the target first ({})",
        said(&out)
    );
    assert!(!out.status.success(), "{}", said(&out));
    // Control: another command is not caught by the rule and runs.
    let ok = run_limited(b.ssh("alice+web01").arg("echo FINE"));
    assert_eq!(text(&ok.stdout), "FINE\n", "{}", said(&ok));
}

/// The same through one ControlMaster connection: the rule ends the whole
/// connection, and the refused exec must not have started on the target
/// even though the connection already had a live upstream.
#[test]
fn a_command_rule_refuses_an_exec_on_a_live_connection_before_the_target() {
    let sshd = Sshd::start();
    let b = Bastion::standard_with(&sshd, COMMAND_RULE);
    target_can_write_markers(&b, &sshd);
    let master = ControlMaster::start(&b, "alice+web01");
    let out = run_limited(&mut master.command(&["echo warm"]));
    assert_eq!(text(&out.stdout), "warm\n", "{}", said(&out));
    let m = marker(&sshd, "rule-live");
    let cmd = format!("touch {} ; rm -rf /nonexistent-portcullis-x", m.display());
    let out = run_limited(&mut master.command(&[&cmd]));
    settle(&b, 0);
    assert!(
        !m.exists(),
        "the command a rule refused ran on the target first ({})",
        said(&out)
    );
    assert!(!out.status.success(), "{}", said(&out));
}

/// An exec refused by the grant's permissions never reaches the target,
/// also when the session's upstream is already open (a shell is allowed).
#[test]
fn an_exec_refused_by_permission_never_reaches_the_target() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    target_can_write_markers(&b, &sshd);
    b.add_target("sh01", &sshd);
    b.grant(&[
        "--user",
        "alice",
        "--target",
        "sh01",
        "--login",
        TARGET_USER,
        "--allow",
        "pty,shell,sftp",
    ]);
    let m = marker(&sshd, "no-exec-permission");
    let out = run_limited(b.ssh("alice+sh01").arg(format!("touch {}", m.display())));
    settle(&b, 0);
    assert!(!m.exists(), "the refused exec ran: {}", said(&out));
    assert!(refused_by_bastion(&out), "{}", said(&out));
    // Again on a connection whose upstream is open and busy with sftp.
    let master = ControlMaster::start(&b, "alice+sh01");
    let dir = tempfile::tempdir().unwrap();
    let batch = dir.path().join("batch");
    std::fs::write(&batch, "ls\n").unwrap();
    let sftp = || {
        run_limited(
            Command::new("sftp")
                .args(b.ssh_opts())
                .arg("-o")
                .arg(format!("ControlPath={}", master.sock.display()))
                .args(["-o", "ControlMaster=no", "-P", &b.port.to_string(), "-b"])
                .arg(&batch)
                .arg("alice+sh01@127.0.0.1"),
        )
    };
    // Control: sftp (allowed) reaches the target through the master.
    let ok = sftp();
    assert!(ok.status.success(), "{}", said(&ok));
    let m = marker(&sshd, "no-exec-permission-live");
    let out = run_limited(&mut master.command(&[&format!("touch {}", m.display())]));
    settle(&b, 1);
    assert!(!m.exists(), "the refused exec ran: {}", said(&out));
    assert!(refused_via_master(&out), "{}", said(&out));
    assert!(sftp().status.success(), "the connection broke");
}

// ---------------------------------------------------------------------------
// 6. Live connections follow the grant they hold now.

/// Rows in `session list`: each login through the bastion is one.
fn session_rows(b: &Bastion) -> usize {
    text(&b.admin(&["session", "list"]).stdout).lines().count()
}

/// Replaces alice's grant `old` on `target` with one made of `narrow`
/// (the narrow one first, so the session is never without a grant).
fn narrow_grant(b: &Bastion, target: &str, old: &str, narrow: &[&str]) {
    let mut args = vec![
        "--user",
        "alice",
        "--target",
        target,
        "--login",
        TARGET_USER,
    ];
    args.extend_from_slice(narrow);
    b.grant(&args);
    b.admin(&["grant", "remove", old]);
}

/// Probes with `probe` through the master until the bastion refuses it;
/// false if it was still let through after `within`.
fn refused_within(master: &ControlMaster<'_>, probe: &str, within: Duration) -> bool {
    let start = Instant::now();
    loop {
        if refused_via_master(&run_limited(&mut master.command(&[probe]))) {
            return true;
        }
        if start.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The re-check period is 2 s; the bastion learns of CLI changes by polling.
const REGRANT_WITHIN: Duration = Duration::from_secs(4);

#[test]
fn a_live_connection_loses_exec_when_its_grant_is_narrowed_to_sftp() {
    need("sftp", "openssh-client");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    target_can_write_markers(&b, &sshd);
    b.add_target("cm01", &sshd);
    let wide = b.grant(&[
        "--user",
        "alice",
        "--target",
        "cm01",
        "--login",
        TARGET_USER,
    ]);
    let master = ControlMaster::start(&b, "alice+cm01");
    let out = run_limited(&mut master.command(&["echo before"]));
    assert_eq!(text(&out.stdout), "before\n", "{}", said(&out));
    let rows = session_rows(&b);

    narrow_grant(&b, "cm01", &wide, &["--allow", "sftp"]);
    let narrowed = refused_within(&master, "echo probe", REGRANT_WITHIN);
    let m = marker(&sshd, "live-narrowed-to-sftp");
    let out = run_limited(&mut master.command(&[&format!("touch {}", m.display())]));
    settle(&b, 1);
    assert!(
        narrowed && !m.exists(),
        "{REGRANT_WITHIN:?} after the grant was narrowed to sftp the live connection \
         still ran commands (probe refused: {narrowed}; marker created: {}; {})",
        m.exists(),
        said(&out)
    );
    assert!(refused_via_master(&out), "{}", said(&out));
    // Control: the same connection (not a new login) still carries sftp.
    assert!(master.alive(), "the master connection was ended");
    let dir = tempfile::tempdir().unwrap();
    let batch = dir.path().join("batch");
    std::fs::write(&batch, "ls\n").unwrap();
    let ok = run_limited(
        Command::new("sftp")
            .args(b.ssh_opts())
            .arg("-o")
            .arg(format!("ControlPath={}", master.sock.display()))
            .args(["-o", "ControlMaster=no", "-P", &b.port.to_string(), "-b"])
            .arg(&batch)
            .arg("alice+cm01@127.0.0.1"),
    );
    assert!(
        ok.status.success(),
        "sftp through the master: {}",
        said(&ok)
    );
    assert_eq!(session_rows(&b), rows, "a new login was made");
}

#[test]
fn a_live_connection_follows_an_exec_allow_list_added_to_its_grant() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    target_can_write_markers(&b, &sshd);
    b.add_target("cm02", &sshd);
    let wide = b.grant(&[
        "--user",
        "alice",
        "--target",
        "cm02",
        "--login",
        TARGET_USER,
    ]);
    let master = ControlMaster::start(&b, "alice+cm02");
    let out = run_limited(&mut master.command(&["id -un"]));
    assert_eq!(text(&out.stdout), "tuser\n", "{}", said(&out));
    let rows = session_rows(&b);

    narrow_grant(
        &b,
        "cm02",
        &wide,
        &["--allow", "exec", "--exec-allow", "echo *"],
    );
    let narrowed = refused_within(&master, "id -un", REGRANT_WITHIN);
    let m = marker(&sshd, "live-allow-list");
    let out = run_limited(&mut master.command(&[&format!("touch {}", m.display())]));
    settle(&b, 1);
    assert!(
        narrowed && !m.exists(),
        "{REGRANT_WITHIN:?} after an exec allow list was put on the grant the live \
         connection still ran other commands (probe refused: {narrowed}; marker created: {}; {})",
        m.exists(),
        said(&out)
    );
    // Control: the allowed command runs on the same connection.
    let ok = run_limited(&mut master.command(&["echo still"]));
    assert_eq!(text(&ok.stdout), "still\n", "{}", said(&ok));
    assert_eq!(session_rows(&b), rows, "a new login was made");
}

// ---------------------------------------------------------------------------
// 8. A session channel with nothing allowed opens nothing.

fn upstream_logins(sshd: &Sshd) -> usize {
    sshd.log().matches("Accepted publickey for tuser").count()
}

#[test]
fn a_forward_only_grant_does_not_dial_the_target_for_a_session() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    target_can_write_markers(&b, &sshd);
    b.add_target("fw01", &sshd);
    b.grant(&[
        "--user",
        "alice",
        "--target",
        "fw01",
        "--login",
        TARGET_USER,
        "--allow",
        "local-forward",
    ]);
    let before = upstream_logins(&sshd);
    let m = marker(&sshd, "forward-only");
    let why = "your grant allows no shell, command or file transfer on this target";
    for cmd in ["true".to_string(), format!("touch {}", m.display())] {
        let out = run_limited(b.ssh("alice+fw01").arg(&cmd));
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {}", said(&out));
        assert!(text(&out.stderr).contains(why), "{cmd:?}: {}", said(&out));
    }
    // -T: a shell alone; -tt: a shell on a pty.
    for flag in ["-T", "-tt"] {
        let shell = run_limited(b.ssh("alice+fw01").arg(flag));
        assert_eq!(shell.status.code(), Some(1), "{flag}: {}", said(&shell));
        assert!(
            text(&shell.stderr).contains(why),
            "{flag}: {}",
            said(&shell)
        );
    }
    settle(&b, 0);
    assert!(!m.exists());
    let audit = text(
        &b.admin(&["audit", "list", "--kind", "session.started"])
            .stdout,
    );
    assert!(
        upstream_logins(&sshd) == before && !audit.contains("fw01"),
        "a session channel with nothing allowed dialled the target \
         ({} new upstream logins); audit:\n{audit}",
        upstream_logins(&sshd) - before
    );
    // Control: what the grant allows, a local forward, works.
    let svc = Service::start("127.0.0.1", Behaviour::Source(16));
    let fwd = run_limited(
        b.ssh("alice+fw01")
            .args(["-W", &format!("127.0.0.1:{}", svc.port)]),
    );
    assert_eq!(fwd.stdout, vec![0u8; 16], "{}", said(&fwd));
}

/// OpenSSH asks for X11 forwarding with want-reply and warns "X11 forwarding
/// request failed" on a refusal. The old bastion said yes and forwarded
/// nothing. The test sshd has `X11Forwarding no`, so a bastion that passes
/// the request on must relay the target's refusal: either way the client
/// must hear no.
#[test]
fn an_x11_request_is_refused_not_acknowledged_and_dropped() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    b.add_target("x01", &sshd);
    b.grant(&[
        "--user",
        "alice",
        "--target",
        "x01",
        "--login",
        TARGET_USER,
        "--allow",
        "pty,shell,exec,x11",
    ]);
    // Trusted forwarding: with no X server, ssh sends fake cookie data.
    let out = run_limited(
        b.ssh("alice+x01")
            .args(["-o", "ForwardX11=yes", "-o", "ForwardX11Trusted=yes"])
            .env("DISPLAY", "127.0.0.1:0")
            .arg("echo DISPLAY=$DISPLAY"),
    );
    // Control: the session itself works.
    assert!(
        out.status.success() && text(&out.stdout).starts_with("DISPLAY="),
        "{}",
        said(&out)
    );
    let forwarded = text(&out.stdout).trim() != "DISPLAY=";
    let refused = text(&out.stderr).contains("X11 forwarding request failed");
    assert!(
        refused || forwarded,
        "the bastion acknowledged X11 forwarding and forwarded nothing: {}",
        said(&out)
    );
}
