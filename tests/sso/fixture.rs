//! The SSO fixtures: a real OpenID Provider (`tests/oidc/provider.mjs`,
//! the npm package oidc-provider) on loopback, a bastion configured for
//! it, and a small "browser" (an HTTP client with a cookie jar that
//! follows redirects one by one) to play the person at the keyboard.

use super::common::api::{api_section, client_tls};
use super::common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const CLIENT_SECRET: &str = "oidc-client-secret-5b1e9d7c";

/// The test IdP, killed on drop.
pub struct Idp {
    pub port: u16,
    pub accounts: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

impl Idp {
    /// Starts the provider for a bastion whose admin listener is `api_port`.
    pub fn start(api_port: u16, accounts: &serde_json::Value) -> Idp {
        need("node", "nodejs");
        let dir = oidc_dir();
        if !dir.join("node_modules/oidc-provider").exists() {
            run_ok(
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(&dir),
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("accounts.json");
        std::fs::write(&file, accounts.to_string()).unwrap();
        let log = tmp.path().join("idp.log");
        let port = free_port();
        let child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .env("PORT", port.to_string())
            .env("ACCOUNTS_FILE", &file)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env(
                "REDIRECT_URIS",
                format!("https://127.0.0.1:{api_port}/sso/callback"),
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(tmp.path().join("idp.err")).unwrap())
            .spawn()
            .unwrap();
        wait_port(port, "oidc-provider", &log);
        Idp {
            port,
            accounts: file,
            child: Some(child),
            log,
            _dir: tmp,
        }
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_accounts(&self, accounts: &serde_json::Value) {
        std::fs::write(&self.accounts, accounts.to_string()).unwrap();
    }

    /// Switches the provider's misbehaviour (see provider.mjs).
    pub fn mode(&self, mode: &str) {
        let out = run_ok(Command::new("curl").args([
            "-s",
            "-X",
            "POST",
            &format!("{}/_test/mode/{mode}", self.issuer()),
        ]));
        assert_eq!(text(&out.stdout), mode);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = &self.log;
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `[sso]` section for `idp`; `ssh` is the `[[sso.ssh]]` part.
pub fn sso_section(
    api_port: u16,
    idp_port: u16,
    secret_file: &Path,
    extra: &str,
    provider_extra: &str,
) -> String {
    format!(
        r#"
[sso]
public_url = "https://127.0.0.1:{api_port}"
{extra}
[[sso.provider]]
name = "corp"
issuer = "http://127.0.0.1:{idp_port}"
client_id = "portcullis"
client_secret_file = "{secret}"
groups = {{ "eng" = "ops", "sec" = "auditors" }}
{provider_extra}
"#,
        secret = secret_file.display()
    )
}

/// A bastion (not started) with its API on its own port, SSO to `idp`
/// and `ssh_rules` appended; returns it and the API port.
pub fn bastion_for(api_port: u16, idp: &Idp, extra: &str, tail: &str) -> Bastion {
    bastion_with(api_port, idp, extra, "", tail)
}

/// [`bastion_for`] with `provider_extra` in the provider's table.
pub fn bastion_with(
    api_port: u16,
    idp: &Idp,
    extra: &str,
    provider_extra: &str,
    tail: &str,
) -> Bastion {
    let dir = tempfile::tempdir().unwrap().keep();
    let secret = dir.join("oidc-secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    let cfg = format!(
        "{}{}{tail}",
        api_section(api_port, ""),
        sso_section(api_port, idp.port, &secret, extra, provider_extra)
    );
    Bastion::with_config(&cfg)
}

pub struct Page {
    pub status: u16,
    pub url: String,
    pub body: String,
    pub location: Option<String>,
}

/// A person's browser: one cookie jar per host (as browsers do, ports
/// share cookies), redirects followed one at a time.
pub struct Browser {
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
    jar: HashMap<String, String>,
}

impl Browser {
    pub fn new(b: &Bastion) -> Browser {
        let pem = std::fs::read(b.data_dir().join("api-cert.pem")).unwrap();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(client_tls(&pem, None))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Browser {
            client,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            jar: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// One request, no redirect followed.
    pub fn request(&mut self, method: &str, url: &str, form: Option<&[(&str, &str)]>) -> Page {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(m, url);
        if !self.jar.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        if let Some(f) = form {
            let body: String = f
                .iter()
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect::<Vec<_>>()
                .join("&");
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let (status, location, cookies, body) = self.rt.block_on(async {
            let r = req.send().await.unwrap_or_else(|e| panic!("{url}: {e:?}"));
            let status = r.status().as_u16();
            let location = r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let cookies: Vec<String> = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect();
            (
                status,
                location,
                cookies,
                r.text().await.unwrap_or_default(),
            )
        });
        for c in cookies {
            let kv = c.split(';').next().unwrap_or("");
            if let Some((k, v)) = kv.split_once('=') {
                let expired = c.to_ascii_lowercase().contains("max-age=0") || v.is_empty();
                if expired {
                    self.jar.remove(k.trim());
                } else {
                    self.jar.insert(k.trim().to_string(), v.to_string());
                }
            }
        }
        let location = location.map(|l| absolute(url, &l));
        Page {
            status,
            url: url.to_string(),
            body,
            location,
        }
    }

    /// GETs `url` and follows redirects; at the IdP's sign-in form, signs
    /// in as `login` with `password`. Returns the last page.
    pub fn follow(&mut self, url: &str, login: &str, password: &str) -> Page {
        let mut page = self.request("GET", url, None);
        for _ in 0..20 {
            if let Some(next) = page.location.clone() {
                page = self.request("GET", &next, None);
                continue;
            }
            if page.status == 200
                && page.url.contains("/interaction/")
                && !page.url.ends_with("/login")
            {
                let post = format!("{}/login", page.url);
                page = self.request(
                    "POST",
                    &post,
                    Some(&[("login", login), ("password", password)]),
                );
                continue;
            }
            return page;
        }
        panic!("too many redirects from {url}");
    }
}

fn absolute(base: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return loc.to_string();
    }
    let scheme_end = base.find("://").unwrap() + 3;
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    format!("{}{loc}", &base[..host_end])
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An SSH_ASKPASS that writes each prompt to a file and answers Enter at
/// once (the bastion then waits for the browser), or exits 1 for anything
/// but the SSO prompt.
pub struct SsoAskpass {
    pub script: PathBuf,
    pub prompts: PathBuf,
    _dir: tempfile::TempDir,
}

impl SsoAskpass {
    pub fn new() -> SsoAskpass {
        let dir = tempfile::tempdir().unwrap();
        let prompts = dir.path().join("prompts");
        let script = dir.path().join("askpass.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$1\" >> {p}\ncase \"$1\" in\n  */sso/ssh/*) echo ;;\n  *) exit 1 ;;\nesac\n",
                p = prompts.display()
            ),
        )
        .unwrap();
        run_ok(Command::new("chmod").arg("+x").arg(&script));
        SsoAskpass {
            script,
            prompts,
            _dir: dir,
        }
    }

    pub fn prompts(&self) -> String {
        std::fs::read_to_string(&self.prompts).unwrap_or_default()
    }

    /// The `n`th link shown (0-based) and its code, once it is there.
    pub fn link(&self, n: usize) -> (String, String) {
        wait_for("the SSO link in the prompt", 30, || {
            let p = self.prompts();
            let line = p.lines().filter(|l| l.contains("/sso/ssh/")).nth(n)?;
            let url = line.split_whitespace().find(|w| w.contains("/sso/ssh/"))?;
            let code = line.split("(code ").nth(1)?.split(')').next()?;
            Some((url.to_string(), code.to_string()))
        })
    }
}

/// `ssh` as a person whose second factor is SSO: key, then the link.
pub fn ssh_sso(b: &Bastion, user: &str, key: &Path, ap: &SsoAskpass) -> Command {
    ssh_with(b, user, Some(key), "publickey,keyboard-interactive", ap, 1)
}

/// [`ssh_sso`] answering up to `tries` SSO prompts (a failed link is
/// followed by a fresh one, whose prompt says why the last one failed).
pub fn ssh_sso_tries(b: &Bastion, user: &str, key: &Path, ap: &SsoAskpass, tries: u32) -> Command {
    ssh_with(
        b,
        user,
        Some(key),
        "publickey,keyboard-interactive",
        ap,
        tries,
    )
}

/// `ssh` with keyboard-interactive alone (SSO as the only factor).
pub fn ssh_kbd(b: &Bastion, user: &str, ap: &SsoAskpass) -> Command {
    ssh_with(b, user, None, "keyboard-interactive", ap, 1)
}

fn ssh_with(
    b: &Bastion,
    user: &str,
    key: Option<&Path>,
    methods: &str,
    ap: &SsoAskpass,
    tries: u32,
) -> Command {
    let mut c = Command::new("ssh");
    c.args(client_opts(&b.known_hosts())).args([
        "-o",
        &format!("PreferredAuthentications={methods}"),
        "-o",
        &format!("NumberOfPasswordPrompts={tries}"),
        "-p",
        &b.port.to_string(),
    ]);
    if let Some(k) = key {
        c.arg("-i").arg(k);
    }
    c.arg(format!("{user}@127.0.0.1"))
        .env("SSH_ASKPASS", &ap.script)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}
