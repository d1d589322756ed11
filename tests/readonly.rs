//! Issue 15 point 3: read-only commands touch nothing. `verify` of a copied
//! recording, `check-config`, help and version, and every listing create no
//! file, no key and no database, whether or not a data directory exists; on an
//! existing one they change no byte, no mtime and add no file (SQLite's WAL
//! and shm files included), and never migrate its schema.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// What a file or directory is, down to the byte and the nanosecond.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    mode: u32,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    /// File content; a directory's is empty (its entries are listed).
    content: Vec<u8>,
}

/// Every file and directory under `root` (the root included).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut all = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let content = if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
            Vec::new()
        } else {
            std::fs::read(&p).unwrap()
        };
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        all.insert(
            p.strip_prefix(root).unwrap().to_path_buf(),
            Entry {
                mode: m.mode(),
                size: m.size(),
                mtime_ns: ns(m.mtime(), m.mtime_nsec()),
                ctime_ns: ns(m.ctime(), m.ctime_nsec()),
                content,
            },
        );
    }
    all
}

fn assert_unchanged(what: &str, before: &BTreeMap<PathBuf, Entry>, root: &Path) {
    let after = snapshot(root);
    let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let removed: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "{what}: added {added:?}, removed {removed:?}"
    );
    for (k, v) in before {
        assert!(after[k] == *v, "{what}: {} changed", k.display());
    }
}

/// The binary with no data directory or config from the environment, run in `cwd`.
fn bare(cwd: &Path) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(cwd)
        .env_remove("PORTCULLIS_DATA_DIR")
        .env_remove("PORTCULLIS_CONFIG")
        .stdin(Stdio::null());
    c
}

/// A bastion that recorded one shell session, stopped; returns the session id.
fn recorded() -> (Sshd, Bastion, String) {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    let out = run(b.ssh("alice+web01").arg("echo read-only-marker"));
    assert!(
        text(&out.stdout).contains("read-only-marker"),
        "{}",
        text(&out.stderr)
    );
    let list = b.settled_sessions();
    let id = list.lines().next().unwrap().split('\t').next().unwrap();
    let id = id.to_string();
    // Sealed (trailer signed) before the bastion stops, as any finished session.
    let cast = cast_of(&b, &id);
    for _ in 0..100 {
        if std::fs::read_to_string(&cast)
            .unwrap_or_default()
            .contains("\"type\":\"trailer\"")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    b.stop();
    (sshd, b, id)
}

fn cast_of(b: &Bastion, id: &str) -> PathBuf {
    let dir = b.data_dir().join("recordings");
    for _ in 0..50 {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(id) && name.ends_with(".cast") {
                return e.path();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no recording of {id} in {}", dir.display());
}

/// Every listing and check: none may create or change anything.
fn listings(id: &str, cast: &str) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["user", "list"]),
        v(&["target", "list"]),
        v(&["credential", "list"]),
        v(&["grant", "list"]),
        v(&["request", "list"]),
        v(&["session", "list"]),
        v(&["sessions", "list"]),
        v(&["session", "search", "read-only-marker"]),
        v(&["lock", "list", "--all"]),
        v(&["source", "list"]),
        v(&["token", "list"]),
        v(&["audit", "list"]),
        v(&["audit", "verify"]),
        v(&["audit", "export"]),
        v(&["kek", "status"]),
        v(&["verify", id]),
        v(&["verify", cast]),
        v(&["replay", id, "--idle-cap", "0"]),
        v(&["watch", id]),
    ]
}

fn always_fine() -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["--help"]),
        v(&["help"]),
        v(&["help", "user"]),
        v(&["user", "--help"]),
        v(&["--version"]),
        v(&["check-config"]),
    ]
}

fn show(args: &[String], out: &Output) -> String {
    format!(
        "{args:?}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

#[test]
fn read_only_commands_in_an_empty_directory_create_nothing() {
    let (_sshd, b, id) = recorded();
    let cast = cast_of(&b, &id);
    let cwd = tempfile::tempdir().unwrap();
    std::fs::copy(&cast, cwd.path().join("copy.cast")).unwrap();
    std::fs::copy(cast.with_extension("chain"), cwd.path().join("copy.chain")).unwrap();
    std::fs::copy(
        b.data_dir().join("audit_ed25519.pub"),
        cwd.path().join("audit.pub"),
    )
    .unwrap();
    let before = snapshot(cwd.path());

    // The offline check of a copy: works, and touches nothing.
    let args = ["verify", "copy.cast", "--key", "audit.pub"];
    let out = run(bare(cwd.path()).args(args));
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    assert!(out.status.success(), "{}", show(&args, &out));
    assert!(
        text(&out.stdout).starts_with("OK copy.cast"),
        "{}",
        show(&args, &out)
    );
    assert_unchanged("verify --key", &before, cwd.path());
    // So do replaying and following the copy.
    for args in [
        &["replay", "copy.cast", "--idle-cap", "0"][..],
        &["watch", "copy.cast"][..],
    ] {
        let out = run(bare(cwd.path()).args(args));
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        assert!(out.status.success(), "{}", show(&args, &out));
        assert!(
            text(&out.stdout).contains("read-only-marker"),
            "{}",
            show(&args, &out)
        );
        assert_unchanged(&format!("{args:?}"), &before, cwd.path());
    }

    for args in always_fine() {
        let out = run(bare(cwd.path()).args(&args));
        assert!(out.status.success(), "{}", show(&args, &out));
        assert_unchanged(&format!("{args:?}"), &before, cwd.path());
    }

    // Without a data directory a listing fails, saying what is missing.
    for args in listings(&id, "copy.cast") {
        // `verify copy.cast` without --key needs the data dir's public key.
        let out = run(bare(cwd.path()).args(&args));
        assert_unchanged(&format!("{args:?}"), &before, cwd.path());
        assert!(!out.status.success(), "{}", show(&args, &out));
        let err = text(&out.stderr);
        assert!(
            err.contains("portcullis-data") && err.contains("creates nothing"),
            "{}",
            show(&args, &out)
        );
    }
}

#[test]
fn read_only_commands_on_a_data_dir_change_no_file() {
    let (_sshd, b, id) = recorded();
    let cast = cast_of(&b, &id);
    let data = b.data_dir();
    let before = snapshot(&data);
    let mut all = listings(&id, cast.to_str().unwrap());
    all.extend(always_fine());
    let key = data.join("audit_ed25519.pub");
    all.push(vec![
        "verify".into(),
        cast.display().to_string(),
        "--key".into(),
        key.display().to_string(),
    ]);
    for args in all {
        let out = run(b.cli().args(&args).stdin(Stdio::null()));
        assert!(out.status.success(), "{}", show(&args, &out));
        assert_unchanged(&format!("{args:?}"), &before, &data);
    }
    // The listings read what is there.
    let users = text(&b.admin(&["user", "list"]).stdout);
    assert!(users.contains("alice"), "{users}");
    let verified = text(&b.admin(&["verify", &id]).stdout);
    assert!(verified.starts_with("OK "), "{verified}");
    assert!(!verified.contains("no database row"), "{verified}");
    assert_unchanged("user list, verify", &before, &data);
}

/// While the bastion runs (the database has its WAL), listings see its
/// latest writes.
#[test]
fn read_only_commands_see_a_running_bastions_latest_writes() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    assert!(b.data_dir().join("portcullis.db-wal").exists());
    run_ok(
        b.cli()
            .args(["lock", "user", "bob", "--reason", "seen-live"]),
    );
    let locks = text(&b.admin(&["lock", "list"]).stdout);
    assert!(locks.contains("seen-live"), "{locks}");
    let out = run(b.ssh("alice+web01").arg("echo live-marker"));
    assert!(text(&out.stdout).contains("live-marker"));
    let sessions = b.settled_sessions();
    assert_eq!(sessions.lines().count(), 1, "{sessions}");
}

/// A database from an older portcullis: a listing says so and leaves it as
/// it is; only a command that writes upgrades it.
#[test]
fn read_only_commands_never_migrate_an_older_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let b = Bastion::new();
    // A complete data directory, made by a command that writes.
    let out = run(bare(dir.path())
        .arg("--data-dir")
        .arg(&data)
        .args(["user", "add", "carol", "--service", "--key"])
        .arg(b.alice_key.with_extension("pub")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Its schema rolled back one step, as an older binary left it.
    let db = data.join("portcullis.db");
    let latest = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .max()
        .unwrap();
    let version: i64 = latest.split('_').next().unwrap().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let versions = |q: &'static str| {
        let url = format!("sqlite://{}", db.display());
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            if q.starts_with("DELETE") {
                sqlx::query(q).bind(version).execute(&mut c).await.unwrap();
            }
            let v: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
                .fetch_all(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
            v
        })
    };
    let left = versions("DELETE FROM _sqlx_migrations WHERE version = $1");
    assert!(!left.contains(&version));
    let before = snapshot(&data);
    for args in [["user", "list"], ["audit", "verify"], ["target", "list"]] {
        let out = run(bare(dir.path()).arg("--data-dir").arg(&data).args(args));
        assert!(!out.status.success(), "{args:?}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        assert!(err.contains("older"), "{args:?}: {err}");
        assert_unchanged(&format!("{args:?}"), &before, &data);
    }
    assert!(!versions("SELECT").contains(&version), "migrated");
}

/// Keys a read-only command needs are named when missing, never made.
#[test]
fn missing_keys_are_named_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let b = Bastion::new();
    let out = run(bare(dir.path())
        .arg("--data-dir")
        .arg(&data)
        .args(["user", "add", "carol", "--service", "--key"])
        .arg(b.alice_key.with_extension("pub")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    for key in ["kek", "audit-chain.key"] {
        assert!(data.join(key).exists(), "{key} not made by user add");
    }
    std::fs::remove_file(data.join("kek")).unwrap();
    std::fs::remove_file(data.join("audit-chain.key")).unwrap();
    let before = snapshot(&data);
    let cli = || {
        let mut c = bare(dir.path());
        c.arg("--data-dir").arg(&data);
        c
    };
    let out = run(cli().args(["kek", "status"]));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("kek"), "{}", text(&out.stderr));
    let out = run(cli().args(["audit", "verify"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("audit-chain.key"),
        "{}",
        text(&out.stderr)
    );
    // A listing that needs no key works without one.
    let out = run(cli().args(["user", "list"]));
    assert!(text(&out.stdout).contains("carol"), "{}", text(&out.stderr));
    assert_unchanged("with keys missing", &before, &data);
}

/// Commands that write still set the data directory up, and `--help` says
/// which commands create it.
#[test]
fn writing_commands_create_the_data_dir_and_help_says_which() {
    let cwd = tempfile::tempdir().unwrap();
    let help = text(&run_ok(bare(cwd.path()).arg("--help")).stdout);
    assert!(
        help.contains("create the data directory"),
        "--help does not say which commands create the data directory: {help}"
    );
    let b = Bastion::new();
    let out = run(bare(cwd.path())
        .args(["user", "add", "carol", "--service", "--key"])
        .arg(b.alice_key.with_extension("pub")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let data = cwd.path().join("portcullis-data");
    for f in ["kek", "audit-chain.key", "portcullis.db"] {
        assert!(data.join(f).exists(), "{f} missing after user add");
    }
    let users = text(&run_ok(bare(cwd.path()).args(["user", "list"])).stdout);
    assert!(users.contains("carol"), "{users}");
}
