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
        self.node_with(name, own, &self.url, "", "")
    }

    /// A node reaching the database at `url` (the shared one, or through a
    /// [`PgGate`]), with more `[cluster]` lines and more sections.
    pub fn node_with(
        &self,
        name: &str,
        own: &[&str],
        url: &str,
        cluster: &str,
        sections: &str,
    ) -> Bastion {
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
        top += &format!("database_url = {url:?}\n");
        let recordings = if own.contains(&"recordings_dir") {
            b.data_dir().join("recordings")
        } else {
            self.recordings()
        };
        top += &format!("recordings_dir = {:?}\n", recordings.display().to_string());
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
                "{top}[upstream]\nconnect_timeout_secs = 5\n{sections}\n[cluster]\n{named}node_expiry = {:?}\n{cluster}\n",
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

/// A TCP relay between nodes and PostgreSQL that the test can cut: a
/// database outage as a node sees it (every connection dropped, new ones
/// closed at once, as when the server is down) without stopping the CI's
/// shared server.
pub struct PgGate {
    pub port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl PgGate {
    /// Relays to the server of `url`.
    pub fn new(url: &str) -> PgGate {
        use std::sync::atomic::Ordering;
        let hostport = url.split('@').nth(1).unwrap().split('/').next().unwrap();
        let upstream: std::net::SocketAddr = hostport.parse().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (o, c) = (open.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !o.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut all = portcullis::sync::MutexExt::lock_or_recover(&*c);
                    all.push(client.try_clone().unwrap());
                    all.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        PgGate { port, open, conns }
    }

    /// `url` with the gate in place of the server.
    pub fn url(&self, url: &str) -> String {
        let hostport = url.split('@').nth(1).unwrap().split('/').next().unwrap();
        url.replacen(hostport, &format!("127.0.0.1:{}", self.port), 1)
    }

    /// The outage: every connection cut, new ones closed.
    pub fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for s in portcullis::sync::MutexExt::lock_or_recover(&*self.conns).drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The database is back.
    pub fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A real HAProxy (Debian's `haproxy`) in a temporary directory, in front
/// of nodes as `deploy/haproxy.cfg` puts it: TCP, PROXY protocol v2 to the
/// nodes, health from each node's `/api/v1/health`. Fails when missing.
pub struct Haproxy {
    pub port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// `nodes`: each node's SSH and API ports.
    pub fn start(nodes: &[(u16, u16)]) -> Haproxy {
        need("haproxy", "haproxy");
        let dir = tempfile::Builder::new()
            .prefix("pc-haproxy")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut cfg = format!(
            "global\n    maxconn 256\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1h\n    timeout server 1h\n    \
             timeout check 2s\n    retries 2\n    option redispatch\n\
             frontend ssh\n    bind 127.0.0.1:{port}\n    default_backend portcullis\n\
             backend portcullis\n    balance roundrobin\n    option httpchk GET /api/v1/health\n    \
             http-check expect status 200\n    default-server inter 300ms fall 1 rise 1\n"
        );
        for (i, (ssh, api)) in nodes.iter().enumerate() {
            cfg += &format!(
                "    server n{i} 127.0.0.1:{ssh} send-proxy-v2 check port {api} check-ssl verify none\n"
            );
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let log = dir.path().join("haproxy.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        wait_port(port, "haproxy", &log);
        Haproxy {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
