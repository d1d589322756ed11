//! Refusals a person reads whatever the client's log level, and through a
//! shared master (issue 15, points 2 and 5).
//!
//! A refusal after login used to be a channel-open failure, which `ssh`
//! prints only at its default LogLevel and which an OpenSSH ControlMaster
//! swallows ("Session open refused by peer"). Now a refused session channel
//! is accepted, the reason written to its stderr, exit status 1 sent and the
//! channel closed: every test here reads the reason with `ssh -q`,
//! `-o LogLevel=ERROR`, through a master and with paramiko, and checks that
//! nothing ran on the target (a marker in the target account's home).

mod common;
use common::cm::{ControlMaster, run_limited};
use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One refusal kind: who logs in, with which key, and what they must read.
struct Kind {
    name: &'static str,
    user: &'static str,
    key: PathBuf,
    reason: &'static str,
}

/// A bastion where each refusal kind has its own user+target.
struct Setup {
    sshd: Sshd,
    b: Bastion,
    kinds: Vec<Kind>,
}

/// A grant window on a weekday three days away: closed now, all day.
fn closed_window() -> String {
    let day = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .weekday()
        .to_monday_zero_offset();
    let other = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][((day + 3) % 7) as usize];
    format!("{other} 09:00-10:00")
}

fn setup() -> Setup {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    b.stop();
    let grant = |user: &str, target: &str, extra: &[&str]| {
        let mut a = vec!["--user", user, "--target", target, "--login", TARGET_USER];
        a.extend_from_slice(extra);
        b.grant(&a);
    };
    b.add_target("win01", &sshd);
    grant(
        "alice",
        "win01",
        &["--window", &closed_window(), "--tz", "UTC"],
    );
    b.add_target("lk01", &sshd);
    grant("alice", "lk01", &[]);
    b.admin(&["lock", "target", "lk01", "--reason", "patching lk01"]);
    let carol = b.add_service("carol");
    grant("carol", "web01", &[]);
    b.admin(&["lock", "user", "carol", "--reason", "incident 1515"]);
    b.add_target("ng01", &sshd);
    b.add_target_pinned("down01", free_port(), &sshd.host_pub);
    b.admin_stdin(
        &[
            "credential",
            "set",
            "down01",
            TARGET_USER,
            "--password-stdin",
        ],
        &format!("{TARGET_PASSWORD}\n"),
    );
    grant("alice", "down01", &[]);
    b.add_target_pinned("bad01", sshd.port, &sshd.host_pub);
    b.admin_stdin(
        &[
            "credential",
            "set",
            "bad01",
            TARGET_USER,
            "--password-stdin",
        ],
        "not-the-password\n",
    );
    grant("alice", "bad01", &[]);
    b.add_target("fw01", &sshd);
    grant("alice", "fw01", &["--allow", "local-forward"]);
    b.start();
    let alice = b.alice_key.clone();
    let k = |name, user, key: &PathBuf, reason| Kind {
        name,
        user,
        key: key.clone(),
        reason,
    };
    let kinds = vec![
        k(
            "window",
            "alice+win01",
            &alice,
            "access to win01 is outside your time window; it opens next at",
        ),
        k("user-lock", "carol+web01", &carol, "incident 1515"),
        k("target-lock", "alice+lk01", &alice, "patching lk01"),
        k(
            "no-grant",
            "alice+ng01",
            &alice,
            "you have no grant for target ng01",
        ),
        k(
            "down",
            "alice+down01",
            &alice,
            "target down01 is unreachable",
        ),
        k(
            "credential",
            "alice+bad01",
            &alice,
            "could not log in to bad01 as tuser (credential rejected)",
        ),
        k(
            "no-session",
            "alice+fw01",
            &alice,
            "your grant allows no shell, command or file transfer on this target",
        ),
    ];
    Setup { sshd, b, kinds }
}

/// A file in the target account's home that only a command run on the
/// target can create; absent when the test starts.
fn marker(sshd: &Sshd, name: &str) -> PathBuf {
    let m = sshd.home.join(format!("ran-{name}"));
    assert!(!m.exists(), "{} exists before the attempt", m.display());
    m
}

/// The control for every marker: an allowed exec creates one in the same
/// directory as the same account.
fn target_can_write_markers(b: &Bastion, sshd: &Sshd) {
    let probe = marker(sshd, "control");
    let out = run_limited(
        b.ssh("alice+web01")
            .arg(format!("touch {}", probe.display())),
    );
    assert!(out.status.success() && probe.exists(), "{}", said(&out));
    std::fs::remove_file(&probe).unwrap();
}

fn said(out: &Output) -> String {
    format!(
        "status {:?}, stdout {:?}, stderr {:?}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// The refusal as the user must read it: exit status 1 (the refusal's, not
/// ssh's own 255), the reason on stderr as one line of its own, nothing on
/// stdout.
fn assert_read(out: &Output, kind: &Kind, how: &str) {
    let err = text(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains(kind.reason))
        .unwrap_or_else(|| {
            panic!(
                "{} via {how}: reason not on stderr: {}",
                kind.name,
                said(out)
            )
        });
    assert!(
        line.trim_end_matches('\r').starts_with("portcullis: "),
        "{} via {how}: {line:?}",
        kind.name
    );
    // CRLF under a pty (the terminal is raw), LF otherwise.
    let end = if how.contains("-tt") { "\r\n" } else { "\n" };
    assert_eq!(
        err,
        format!("{line}{end}"),
        "{} via {how}: more than the reason",
        kind.name
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{} via {how}: {}",
        kind.name,
        said(out)
    );
    assert!(
        out.stdout.is_empty(),
        "{} via {how}: {}",
        kind.name,
        said(out)
    );
}

/// Every way a session channel is opened: quiet, errors only, and riding
/// a master at the default and the quiet level.
const MODES: [&str; 5] = ["-q", "LogLevel=ERROR", "-q -tt", "master", "master -q"];

fn attempt(s: &Setup, kind: &Kind, mode: &str, master: &ControlMaster<'_>, m: &Path) -> Output {
    let cmd = format!("touch {}", m.display());
    match mode {
        "-q" => run_limited(s.b.ssh_key(kind.user, &kind.key).args(["-q", &cmd])),
        "LogLevel=ERROR" => {
            run_limited(
                s.b.ssh_key(kind.user, &kind.key)
                    .args(["-o", "LogLevel=ERROR", &cmd]),
            )
        }
        // A shell on a pty: the marker command typed into it.
        "-q -tt" => {
            let mut c = s.b.ssh_key(kind.user, &kind.key);
            c.args(["-q", "-tt"]);
            let mut child = c
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let _ = writeln!(stdin, "{cmd}; exit");
            common::cm::wait_limited(child, "ssh -q -tt")
        }
        "master" => run_limited(&mut master.command(&[&cmd])),
        "master -q" => run_limited(&mut master.command(&["-q", &cmd])),
        _ => unreachable!(),
    }
}

/// Waits until no session is live any more, then a grace period: a
/// bastion that forwarded a refused command would have the target run it
/// a moment after the client left.
fn settle(b: &Bastion) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if !text(&b.admin(&["session", "list"]).stdout).contains("\tlive\t") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
}

fn upstream_logins(sshd: &Sshd) -> usize {
    sshd.log().matches("Accepted publickey for tuser").count()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn every_refusal_is_read_at_any_log_level_and_through_a_master() {
    let s = setup();
    target_can_write_markers(&s.b, &s.sshd);
    // Control: a master on an allowed target carries commands, quietly too.
    {
        let m = ControlMaster::start(&s.b, "alice+web01");
        let out = run_limited(&mut m.command(&["-q", "echo riding"]));
        assert_eq!(text(&out.stdout), "riding\n", "{}", said(&out));
    }
    settle(&s.b);
    let logins = upstream_logins(&s.sshd);
    let recordings = files_in(&s.b.data_dir().join("recordings"));
    let mut markers = Vec::new();
    let mut slowest = (Duration::ZERO, "", "");
    for kind in &s.kinds {
        // The master's own login succeeds (it opens no session channel);
        // each refusal below rides it.
        let master = ControlMaster::start_with(&s.b, kind.user, &kind.key);
        for mode in MODES {
            let m = marker(&s.sshd, &format!("{}-{}", kind.name, mode.replace(' ', "")));
            let t = Instant::now();
            let out = attempt(&s, kind, mode, &master, &m);
            slowest = slowest.max((t.elapsed(), kind.name, mode));
            assert_read(&out, kind, mode);
            assert!(
                !text(&out.stderr).contains("refused by peer"),
                "{}",
                said(&out)
            );
            if mode.starts_with("master") {
                assert!(master.alive(), "{} via {mode}: the master died", kind.name);
            }
            markers.push((format!("{} via {mode}", kind.name), m));
        }
    }
    eprintln!("slowest refusal read: {slowest:?}");
    settle(&s.b);
    for (what, m) in &markers {
        assert!(!m.exists(), "{what}: the refused command ran on the target");
    }
    // The audit is the refusals' as before: locks audited, no session
    // started for what is refused before dialling, no upstream login, no
    // recording; the two dialled refusals end their session as refused.
    assert_eq!(
        upstream_logins(&s.sshd),
        logins,
        "a refusal logged in to the target"
    );
    assert_eq!(
        files_in(&s.b.data_dir().join("recordings")),
        recordings,
        "a refused channel was recorded"
    );
    let audit = text(&s.b.admin(&["audit", "list"]).stdout);
    assert!(audit.contains("access.locked"), "{audit}");
    let started = text(
        &s.b.admin(&["audit", "list", "--kind", "session.started"])
            .stdout,
    );
    for t in ["win01", "lk01", "ng01", "fw01", "carol"] {
        assert!(!started.contains(t), "{t} started a session: {started}");
    }
    let sessions = s.b.settled_sessions();
    for t in ["down01", "bad01"] {
        assert!(
            sessions
                .lines()
                .filter(|l| l.contains(t))
                .all(|l| l.contains("refused: ")),
            "{sessions}"
        );
    }
    let log = s.b.log();
    assert!(log.contains("session refused"), "{log}");
}

/// The closed window names its zone once (issue 15, point 5).
#[test]
fn a_closed_window_names_its_zone_once() {
    let s = setup();
    let kind = &s.kinds[0];
    let out = run_limited(s.b.ssh_key(kind.user, &kind.key).args(["-q", "true"]));
    assert_read(&out, kind, "-q");
    let err = text(&out.stderr);
    assert!(err.contains(":00 UTC\n"), "{err}");
    assert!(!err.contains("(UTC)"), "{err}");
}

/// paramiko (from `.ci/venv`, installed by `.ci/run`), installed there.
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/venv/bin/python");
    assert!(
        venv.exists(),
        "{} missing: run .ci/run (it installs paramiko into .ci/venv)",
        venv.display()
    );
    venv
}

const PARAMIKO: &str = r#"
import json, sys, paramiko
host, port, kh = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for spec in json.loads(sys.argv[4]):
    c = paramiko.SSHClient()
    c.load_host_keys(kh)
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    c.connect(host, port=port, username=spec["user"], key_filename=spec["key"],
              look_for_keys=False, allow_agent=False, timeout=10,
              banner_timeout=10, auth_timeout=10)
    _, out, err = c.exec_command(spec["cmd"], timeout=10)
    o, e = out.read().decode(), err.read().decode()
    print(json.dumps({"user": spec["user"], "status": out.channel.recv_exit_status(),
                      "stdout": o, "stderr": e}), flush=True)
    c.close()
# A session channel that asks for nothing is told after a while too.
c = paramiko.SSHClient()
c.load_host_keys(kh)
c.set_missing_host_key_policy(paramiko.RejectPolicy())
spec = json.loads(sys.argv[4])[1]
c.connect(host, port=port, username=spec["user"], key_filename=spec["key"],
          look_for_keys=False, allow_agent=False, timeout=10)
ch = c.get_transport().open_session(timeout=10)
ch.settimeout(30)
e = ch.makefile_stderr("rb").read().decode()
print(json.dumps({"user": spec["user"], "status": ch.recv_exit_status(),
                  "stdout": "", "stderr": e}), flush=True)
c.close()
"#;

#[test]
fn paramiko_reads_every_refusal_on_stderr() {
    let s = setup();
    let mut specs = vec![serde_json::json!({
        "user": "alice+web01",
        "key": s.b.alice_key,
        "cmd": "echo allowed",
    })];
    let mut markers = Vec::new();
    for kind in &s.kinds {
        let m = marker(&s.sshd, &format!("{}-paramiko", kind.name));
        specs.push(serde_json::json!({
            "user": kind.user,
            "key": kind.key,
            "cmd": format!("touch {}", m.display()),
        }));
        markers.push(m);
    }
    let out = run_limited(
        Command::new(python())
            .args(["-c", PARAMIKO, "127.0.0.1", &s.b.port.to_string()])
            .arg(s.b.known_hosts())
            .arg(serde_json::Value::Array(specs).to_string())
            .stdin(Stdio::null()),
    );
    assert!(out.status.success(), "{}", said(&out));
    let rows: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), s.kinds.len() + 2, "{}", said(&out));
    // The last: a channel with no request at all, told after 10 s.
    let idle = rows.last().unwrap();
    assert!(
        idle["stderr"].as_str().unwrap().contains(s.kinds[0].reason),
        "{idle:?}"
    );
    assert_eq!(idle["status"], 1, "{idle:?}");
    // Control: an allowed exec through the same client.
    assert_eq!(rows[0]["stdout"], "allowed\n", "{:?}", rows[0]);
    assert_eq!(rows[0]["status"], 0, "{:?}", rows[0]);
    for (kind, row) in s.kinds.iter().zip(&rows[1..=s.kinds.len()]) {
        let err = row["stderr"].as_str().unwrap();
        assert!(
            err.contains(kind.reason) && err.ends_with('\n'),
            "{}: {row:?}",
            kind.name
        );
        assert_eq!(row["status"], 1, "{}: {row:?}", kind.name);
    }
    settle(&s.b);
    for m in &markers {
        assert!(!m.exists(), "{} ran on the target", m.display());
    }
}

// ------------------------------------------------------ first contact ----

const USED: &str = "This code was already used; wait for the next one.";

/// `ssh` as a human (key, then the code from `ap`), asked for the code at
/// most `prompts` times.
fn human(b: &Bastion, user: &str, key: &Path, ap: &Askpass, prompts: u32) -> Command {
    let mut c = Command::new("ssh");
    c.args(client_opts(&b.known_hosts()))
        .args([
            "-o",
            "PreferredAuthentications=publickey,keyboard-interactive",
            "-o",
            &format!("NumberOfPasswordPrompts={prompts}"),
            "-p",
            &b.port.to_string(),
            "-i",
        ])
        .arg(key)
        .arg(format!("{user}@127.0.0.1"));
    ap.apply(&mut c);
    c
}

/// After enrollment the CLI says to wait for the next code; the burnt
/// confirmation code, tried at login, says it was already used (only to
/// someone past the first factor), and counts against the second-factor
/// budget like any wrong code.
#[test]
fn the_burnt_enrollment_code_says_wait_for_the_next_one() {
    let sshd = Sshd::start();
    // Two checked codes per window: the two replays below spend it.
    let b = Bastion::standard_with(&sshd, "[limits]\nsecond_factor_failures = 2\n");
    let key = b.add_human("hugo", "hugo-pw-1");
    let (secret, burnt, said_after) = enroll_totp_told(&b, "hugo");
    assert!(
        said_after.contains("wait for the next code"),
        "{said_after}"
    );
    let ap = Askpass::new();
    // Without the first factor (a key the bastion does not know) no code
    // prompt is shown at all, so nothing is said about codes.
    let stranger = b.dir.path().join("stranger_key");
    keygen(&stranger, "ed25519");
    ap.set_code(&burnt);
    let out = run_limited(human(&b, "hugo+web01", &stranger, &ap, 2).arg("true"));
    assert!(!out.status.success());
    assert!(ap.prompts().is_empty(), "{}", ap.prompts());
    assert!(
        !text(&out.stderr).contains("already used"),
        "{}",
        said(&out)
    );
    // The burnt code, twice on one connection: the second prompt says why.
    let out = run_limited(human(&b, "hugo+web01", &key, &ap, 2).arg("true"));
    assert!(
        !out.status.success(),
        "the burnt code logged in: {}",
        said(&out)
    );
    let prompts = ap.prompts();
    let asked: Vec<&str> = prompts
        .lines()
        .filter(|l| l.contains("erification"))
        .collect();
    assert_eq!(asked.len(), 2, "{prompts}");
    assert!(!asked[0].contains("already used"), "{prompts}");
    assert!(prompts.contains(USED), "{prompts}");
    // Both replays counted: the budget of two is spent, so even the next,
    // valid code is not checked now.
    ap.set_code(&next_code(&secret));
    let out = run_limited(human(&b, "hugo+web01", &key, &ap, 1).arg("true"));
    assert!(
        !out.status.success(),
        "replays were not counted: {}",
        said(&out)
    );
    assert!(
        b.log().contains("second-factor budget spent for this user"),
        "{}",
        b.log()
    );
}

/// A wrong code is answered as before: the next prompt says nothing of a
/// used code.
#[test]
fn a_wrong_code_says_nothing_about_used_codes() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let key = b.add_human("ida", "ida-pw-1");
    let secret = enroll_totp(&b, "ida");
    let now = unix_now();
    let valid: Vec<String> = [now - 30, now, now + 30, now + 60]
        .iter()
        .map(|t| portcullis::auth::totp::code_at(&secret, *t).unwrap())
        .collect();
    let wrong = ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|c| !valid.iter().any(|v| v == c))
        .unwrap();
    let ap = Askpass::new();
    ap.set_code(wrong);
    let out = run_limited(human(&b, "ida+web01", &key, &ap, 2).arg("true"));
    assert!(!out.status.success(), "{}", said(&out));
    let prompts = ap.prompts();
    assert_eq!(prompts.matches("erification").count(), 2, "{prompts}");
    assert!(!prompts.contains("already used"), "{prompts}");
    // Control: the right code still logs in.
    ap.set_code(&next_code(&secret));
    let out = run_limited(human(&b, "ida+web01", &key, &ap, 1).arg("id -un"));
    assert_eq!(text(&out.stdout), "tuser\n", "{}", said(&out));
}

/// The master's login succeeded while the target was up; the target goes
/// down before the first channel: a command riding the master reads why.
#[test]
fn a_target_that_went_down_under_a_master_is_explained_to_its_riders() {
    let s = setup();
    let master = ControlMaster::start(&s.b, "alice+web01");
    let pid = std::fs::read_to_string(s.sshd.dir.path().join("sshd.pid")).unwrap();
    run_ok(Command::new("kill").arg(pid.trim()));
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", s.sshd.port)).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "sshd still listens"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let kind = Kind {
        name: "down under a master",
        user: "alice+web01",
        key: s.b.alice_key.clone(),
        reason: "target web01 is unreachable",
    };
    for mode in ["master", "master -q"] {
        let m = marker(&s.sshd, &format!("down-{}", mode.replace(' ', "")));
        let out = attempt(&s, &kind, mode, &master, &m);
        assert_read(&out, &kind, mode);
        assert!(master.alive(), "the master died");
    }
}

/// `sftp` and `scp` (a subsystem, and scp's sftp or exec) read the reason too.
#[test]
fn sftp_and_scp_read_the_refusal() {
    need("sftp", "openssh-client");
    let s = setup();
    let kind = &s.kinds[0];
    let dir = tempfile::tempdir().unwrap();
    let batch = dir.path().join("batch");
    std::fs::write(&batch, "ls\n").unwrap();
    let port = s.b.port.to_string();
    let sftp = run_limited(
        Command::new("sftp")
            .args(s.b.ssh_opts_with(&kind.key))
            .args(["-q", "-P", &port, "-b"])
            .arg(&batch)
            .arg(format!("{}@127.0.0.1", kind.user)),
    );
    let local = dir.path().join("copy");
    let mut outs = vec![("sftp", sftp)];
    for legacy in [false, true] {
        let mut c = Command::new("scp");
        c.args(s.b.ssh_opts_with(&kind.key))
            .args(["-q", "-P", &port]);
        if legacy {
            c.arg("-O");
        }
        c.arg(format!("{}@127.0.0.1:/etc/hostname", kind.user))
            .arg(&local);
        outs.push((if legacy { "scp -O" } else { "scp" }, run_limited(&mut c)));
    }
    for (tool, out) in outs {
        assert!(!out.status.success(), "{tool}: {}", said(&out));
        assert!(
            text(&out.stderr).contains(kind.reason),
            "{tool}: {}",
            said(&out)
        );
    }
    assert!(!local.exists());
}

/// Everything locked (`lock all`): read quietly and through a master too.
#[test]
fn everything_locked_is_read_quietly_and_through_a_master() {
    let mut s = setup();
    s.b.stop();
    s.b.admin(&["lock", "all", "--reason", "breach drill"]);
    s.b.start();
    let kind = Kind {
        name: "all-lock",
        user: "alice+web01",
        key: s.b.alice_key.clone(),
        reason: "breach drill",
    };
    let master = ControlMaster::start(&s.b, kind.user);
    let mut markers = Vec::new();
    for mode in MODES {
        let m = marker(&s.sshd, &format!("all-{}", mode.replace(' ', "")));
        let out = attempt(&s, &kind, mode, &master, &m);
        assert_read(&out, &kind, mode);
        markers.push(m);
    }
    settle(&s.b);
    for m in markers {
        assert!(!m.exists(), "{} ran on the target", m.display());
    }
}
