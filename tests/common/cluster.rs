//! Several `serve` nodes on one PostgreSQL (issue 19): a fresh schema per
//! test, shared keys and recordings directory, each node with its own data
//! directory and port. Included by `tests/cluster.rs` only.

use crate::common::*;
use std::path::{Path, PathBuf};

/// The CI's PostgreSQL (`.ci/run` exports `PORTCULLIS_TEST_PG_URL`). No
/// server is a failure, never a skip.
pub fn pg_base() -> String {
    std::env::var("PORTCULLIS_TEST_PG_URL").expect(
        "PORTCULLIS_TEST_PG_URL is not set: run the tests through .ci/run, which starts PostgreSQL",
    )
}

/// Runs `statements` on the database at `url` (through sqlx, as the
/// bastion does: no `psql` needed on the PATH).
pub fn pg_exec(url: &str, statements: &[&str]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(url).await.unwrap();
        for q in statements {
            sqlx::query(q).execute(&pool).await.unwrap();
        }
        pool.close().await;
    });
}

/// A fresh schema named after `tag` and this process; its database URL.
pub fn pg_schema(tag: &str) -> String {
    let base = pg_base();
    let schema = format!("cl{tag}{}", std::process::id());
    pg_exec(
        &base,
        &[
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            &format!("CREATE SCHEMA {schema}"),
        ],
    );
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// What the nodes of one cluster share: the database, the key files and
/// the recordings directory (kept in one temporary directory).
pub struct Shared {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub expiry: &'static str,
}

impl Shared {
    pub fn new(tag: &str, expiry: &'static str) -> Shared {
        Shared {
            dir: tempfile::Builder::new()
                .prefix("pc-cluster")
                .tempdir()
                .unwrap(),
            url: pg_schema(tag),
            expiry,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn recordings(&self) -> PathBuf {
        self.path("recordings")
    }

    /// A node (not started) named `name` (empty: no `node_name`, the data
    /// directory's id); `own` lists shared keys this node keeps in its own
    /// data directory instead (a misconfigured node).
    pub fn node(&self, name: &str, own: &[&str]) -> Bastion {
        let b = Bastion::new();
        let key = |k: &str, file: &str| -> String {
            let p = if own.contains(&k) {
                b.data_dir().join(file)
            } else {
                self.path(file)
            };
            format!("{k} = {:?}\n", p.display().to_string())
        };
        let mut top = format!("listen = \"127.0.0.1:{}\"\n", b.port);
        top += &format!("database_url = {:?}\n", self.url);
        top += &format!(
            "recordings_dir = {:?}\n",
            self.recordings().display().to_string()
        );
        top += &key("kek_file", "kek");
        top += &key("audit_key_file", "audit_ed25519");
        top += &key("audit_chain_key_file", "audit-chain.key");
        top += &key("host_ca_file", "host-ca");
        let named = if name.is_empty() {
            String::new()
        } else {
            format!("node_name = {name:?}\n")
        };
        std::fs::write(
            &b.config,
            format!(
                "{top}[upstream]\nconnect_timeout_secs = 5\n[cluster]\n{named}node_expiry = {:?}\n",
                self.expiry
            ),
        )
        .unwrap();
        b
    }
}

/// `portcullis serve` of `b` without waiting for it: its exit and output.
pub fn serve_output(b: &Bastion, secs: u64) -> std::process::Output {
    let child = b
        .cli()
        .arg("serve")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait::output_of(
        child,
        "portcullis serve",
        std::time::Duration::from_secs(secs),
    )
}

/// The session rows, as `session list` prints them.
pub fn sessions(b: &Bastion) -> String {
    text(&b.admin(&["session", "list"]).stdout)
}

/// The session `id`'s line.
pub fn session_line(b: &Bastion, id: &str) -> String {
    sessions(b)
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_default()
        .to_string()
}

/// The one `.cast` file in `dir` whose name starts with `session`.
pub fn cast_of(dir: &Path, session: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "cast")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(session))
        })
        .unwrap_or_else(|| panic!("no recording of {session} in {}", dir.display()))
}
