//! Admin API test helpers: a bastion with the API on a free port, a blocking
//! HTTPS client that trusts only the bastion's certificate, and tokens.

use super::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

pub fn api_section(port: u16, extra: &str) -> String {
    format!("[api]\nlisten = \"127.0.0.1:{port}\"\n{extra}\n")
}

/// A bastion (not started) whose admin API listens on its own port.
pub fn bastion_with_api(extra: &str) -> (Bastion, u16) {
    let port = free_port();
    (Bastion::with_config(&api_section(port, extra)), port)
}

/// `Bastion::standard` with the API on its own port.
pub fn standard_with_api(sshd: &Sshd) -> (Bastion, u16) {
    let (mut b, port) = bastion_with_api("");
    b.add_service_alice();
    b.add_target("web01", sshd);
    b.add_target_pinned("web02", sshd.port, &sshd.host_pub);
    b.admin_stdin(
        &[
            "credential",
            "set",
            "web02",
            TARGET_USER,
            "--password-stdin",
        ],
        &format!("{TARGET_PASSWORD}\n"),
    );
    for t in ["web01", "web02"] {
        b.grant(&["--user", "alice", "--target", t, "--login", TARGET_USER]);
    }
    b.start();
    wait_port(port, "admin API", &b.log_path());
    (b, port)
}

/// Creates a token through the CLI and returns its text.
pub fn token(b: &Bastion, name: &str, scope: &str, expires: Option<&str>) -> String {
    let mut args = vec!["token", "create", "--name", name, "--scope", scope];
    if let Some(e) = expires {
        args.extend(["--expires", e]);
    }
    let t = text(&b.admin(&args).stdout).trim().to_string();
    assert!(t.starts_with("pcat_"), "{t}");
    t
}

pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A blocking HTTPS client for one bastion's API.
pub struct Api {
    pub base: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Client TLS trusting only `ca_pem`, optionally presenting a client certificate.
pub fn client_tls(ca_pem: &[u8], identity: Option<(&[u8], &[u8])>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match identity {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            b.with_client_auth_cert(certs, PrivateKeyDer::from_pem_slice(key).unwrap())
                .unwrap()
        }
    }
}

impl Api {
    /// Trusts only the certificate the bastion generated in its data dir.
    pub fn new(b: &Bastion, port: u16) -> Api {
        let pem = std::fs::read(b.data_dir().join("api-cert.pem")).unwrap();
        Self::with_tls(port, client_tls(&pem, None))
    }

    pub fn with_tls(port: u16, tls: rustls::ClientConfig) -> Api {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Api {
            base: format!("https://127.0.0.1:{port}"),
            client,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// Sends a request; `Err` is a transport (TLS, connection) failure.
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> Result<Reply, reqwest::Error> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(m, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some((ct, bytes)) = body {
            req = req.header("content-type", ct).body(bytes.to_vec());
        }
        self.rt.block_on(async {
            let r = req.send().await?;
            let status = r.status().as_u16();
            let content_type = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = r.text().await?;
            Ok(Reply {
                status,
                body,
                content_type,
            })
        })
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, json: Option<&str>) -> Reply {
        self.try_call(
            method,
            path,
            token,
            json.map(|j| ("application/json", j.as_bytes())),
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"))
    }

    pub fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None)
    }

    /// Asserts the status and returns the reply.
    pub fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        token: &str,
        json: Option<&str>,
    ) -> Reply {
        let r = self.call(method, path, Some(token), json);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        r
    }
}

/// Pulls the kill switch (a lockdown of everything) through the admin API
/// the way automation does, on a connection already warmed by one call so
/// the TLS handshake is not counted; returns when the lock call was sent.
/// The kill benchmarks time the sessions' ends from this instant.
pub async fn lockdown_all(port: u16, token: &str) -> std::time::Instant {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let warm = client
        .get(format!("https://127.0.0.1:{port}/api/v1/locks"))
        .bearer_auth(token)
        .send()
        .await
        .expect("warm-up call");
    assert!(warm.status().is_success());
    let t0 = std::time::Instant::now();
    let r = client
        .post(format!("https://127.0.0.1:{port}/api/v1/locks"))
        .bearer_auth(token)
        .json(&serde_json::json!({"scope": {"kind": "all"}, "reason": "bench"}))
        .send()
        .await
        .expect("lock call");
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    eprintln!("lock API call answered after {:?}", t0.elapsed());
    t0
}
