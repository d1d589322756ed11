//! Shared by the console's browser and API tests: a cookie-keeping HTTPS
//! client, console users, live ssh sessions, and sign-in through the page.
#![allow(dead_code)]

use crate::common::api::*;
use crate::common::*;
use serde_json::{Value, json};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A blocking HTTPS client that handles cookies by hand, so the test sees
/// exactly what the server set.
pub struct Web {
    pub base: String,
    pub client: reqwest::Client,
    pub rt: tokio::runtime::Runtime,
    pub cookies: Vec<(String, String)>,
    pub csrf: Option<String>,
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

impl Web {
    pub fn new(b: &Bastion, port: u16) -> Web {
        let pem = std::fs::read(b.data_dir().join("api-cert.pem")).unwrap();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(client_tls(&pem, None))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Web {
            base: format!("https://127.0.0.1:{port}"),
            client,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            cookies: Vec::new(),
            csrf: None,
        }
    }

    /// `csrf`: send the CSRF header (with the session's token) or not.
    pub fn call(&mut self, method: &str, path: &str, body: Option<Value>, csrf: bool) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(m, format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", c.join("; "));
        }
        if csrf && let Some(t) = &self.csrf {
            req = req.header("x-csrf-token", t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = self.rt.block_on(async {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            Resp {
                status,
                headers,
                body: r.text().await.unwrap(),
            }
        });
        for sc in r.set_cookies() {
            let (kv, _) = sc.split_once(';').unwrap_or((&sc, ""));
            let (k, v) = kv.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.is_empty() && !sc.contains("Max-Age=0") {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
        r
    }

    pub fn get(&mut self, path: &str) -> Resp {
        self.call("GET", path, None, false)
    }

    /// Password then code; returns the two replies.
    pub fn sign_in(&mut self, user: &str, password: &str, code: &str) -> (Resp, Resp) {
        let p = self.call(
            "POST",
            "/console/signin",
            Some(json!({"user": user, "password": password})),
            false,
        );
        let c = self.call("POST", "/console/code", Some(json!({"code": code})), false);
        if c.status == 200 {
            self.csrf = c.json()["csrf"].as_str().map(str::to_string);
        }
        (p, c)
    }
}

/// A console user: a bastion human with password, TOTP and the given group.
pub fn console_user(b: &Bastion, user: &str, group: Option<&str>) -> (String, Vec<u8>) {
    let pw = format!("{user}-console-pw-1");
    b.add_human(user, &pw);
    let secret = enroll_totp(b, user);
    if let Some(g) = group {
        let _ = run(b.cli().args(["group", "add", g]));
        b.admin(&["group", "member", "add", g, user]);
    }
    (pw, secret)
}

pub fn audit_of(b: &Bastion, kind: &str) -> Vec<Value> {
    b.audit_export(&[])
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// A live `ssh alice+web01` running a long command; its session id.
pub fn live_ssh(b: &Bastion, api: &Api, token: &str, cmd: &str) -> (Child, String) {
    let before: Vec<String> = live_ids(api, token);
    let child = b
        .ssh("alice+web01")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = wait_for("the ssh session in the live list", 15, || {
        live_ids(api, token)
            .into_iter()
            .find(|i| !before.contains(i))
    });
    (child, id)
}

pub fn live_ids(api: &Api, token: &str) -> Vec<String> {
    let r = api.get("/api/v1/sessions", token);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["live"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] != "connection")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// The client exits within 10 s; its stderr.
pub fn ended(mut c: Child) -> String {
    wait_for("the ssh client to end", 10, || {
        c.try_wait().unwrap().map(|_| ())
    });
    text(&c.wait_with_output().unwrap().stderr)
}

/// Password, then code, through the page's forms.
pub fn sign_in_page(page: &crate::cdp::Page, user: &str, pw: &str, code: &str) {
    page.wait_for("the sign-in form", "!!document.querySelector('#signin')");
    page.eval(&format!(
        "document.querySelector('#username').value = {u}; document.querySelector('#password').value = {p}; \
         document.querySelector('#signin button').click(); true",
        u = json!(user),
        p = json!(pw)
    ));
    page.wait_for("the code form", "!!document.querySelector('#codeform')");
    page.eval(&format!(
        "document.querySelector('#code').value = {c}; document.querySelector('#codeform button').click(); true",
        c = json!(code)
    ));
    let t = Instant::now();
    page.wait_for("signed in", "!!document.querySelector('#role')");
    eprintln!(
        "figure: code submitted to signed-in page: {:?}",
        t.elapsed()
    );
}

/// RFC 4648 base32 without padding, as an authenticator app is shown a
/// TOTP secret: the form a leak would most likely take.
pub fn base32(secret: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut n, mut out) = (0u64, 0u32, String::new());
    for &b in secret {
        bits = (bits << 8) | u64::from(b);
        n += 8;
        while n >= 5 {
            n -= 5;
            out.push(ALPHABET[((bits >> n) & 31) as usize] as char);
        }
    }
    if n > 0 {
        out.push(ALPHABET[((bits << (5 - n)) & 31) as usize] as char);
    }
    out
}

/// A finished `ssh -tt alice+web01` in which `line` was typed key by key,
/// as a person types (the pty echoes each key on its own); its output and
/// its session id.
pub fn typed_session(b: &Bastion, line: &str) -> (String, String) {
    let mut c = b
        .ssh("alice+web01")
        .arg("-tt")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = c.stdin.take().unwrap();
        std::thread::sleep(Duration::from_secs(1));
        // Key by key, as a person types: the pty echoes each on its own.
        for k in line.bytes() {
            stdin.write_all(&[k]).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(Duration::from_millis(15));
        }
        stdin.write_all(b"\n").unwrap();
        std::thread::sleep(Duration::from_millis(500));
        stdin.write_all(b"exit\n").unwrap();
    }
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    (text(&out.stdout), newest_session(b))
}

/// The newest settled session's id.
pub fn newest_session(b: &Bastion) -> String {
    let list = b.settled_sessions();
    list.lines()
        .next()
        .and_then(|l| l.split('\t').next())
        .unwrap_or_else(|| panic!("{list}"))
        .to_string()
}
