//! A tiny Chrome DevTools Protocol client: starts the system `chromium`
//! headless with a throwaway profile in the test's temp dir, connects to
//! its page target over a WebSocket, and sends commands one at a time.
//! Nothing is downloaded.

use serde_json::{Value, json};
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

pub struct Browser {
    child: Child,
    /// The browser target's WebSocket.
    ws: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    pub fn start(dir: &Path) -> Browser {
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile).unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless=new",
                // The tests run as root in CI containers, where the sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // The bastion's self-signed admin certificate.
                "--ignore-certificate-errors",
                "--window-size=1400,900",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            // A viewer away from UTC: the console shows their zone.
            .env("TZ", "Europe/Berlin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let start = Instant::now();
        let mut line = String::new();
        let ws = loop {
            line.clear();
            let n = err.read_line(&mut line).unwrap_or(0);
            assert!(
                n > 0 && start.elapsed() < Duration::from_secs(30),
                "chromium did not start its DevTools endpoint: {line}"
            );
            if let Some(url) = line.trim().strip_prefix("DevTools listening on ") {
                break url.to_string();
            }
        };
        // Keep draining stderr so chromium never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = err.read_to_end(&mut sink);
        });
        Browser { child, ws }
    }

    /// A new page, attached in flat mode: its commands carry its session id.
    pub fn page(&self) -> Page {
        let (socket, _) = tungstenite::connect(self.ws.as_str()).unwrap();
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = socket.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        let mut page = Page {
            socket: RefCell::new(socket),
            next: RefCell::new(0),
            log: RefCell::new(Vec::new()),
            session: None,
        };
        let t = page.call("Target.createTarget", json!({"url": "about:blank"}));
        let a = page.call(
            "Target.attachToTarget",
            json!({"targetId": t["targetId"], "flatten": true}),
        );
        page.session = Some(a["sessionId"].as_str().unwrap().to_string());
        page.call("Page.enable", json!({}));
        page.call("Runtime.enable", json!({}));
        page.call("Log.enable", json!({}));
        page
    }
}

pub struct Page {
    socket: RefCell<WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>>,
    next: RefCell<u64>,
    /// Console messages, log entries and exceptions seen so far.
    log: RefCell<Vec<String>>,
    /// The attached page's session (None: browser-level commands).
    session: Option<String>,
}

impl Page {
    /// Sends one command and waits for its answer, noting events on the way.
    pub fn call(&self, method: &str, params: Value) -> Value {
        let id = {
            let mut n = self.next.borrow_mut();
            *n += 1;
            *n
        };
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let msg = msg.to_string();
        let mut ws = self.socket.borrow_mut();
        ws.send(Message::text(msg)).unwrap();
        loop {
            let m = match ws.read() {
                Ok(m) => m,
                // A read with a timeout is never restarted after a signal
                // (signal(7)); CI saw EINTR here once under load. The frame
                // buffer survives it, so reading again is safe.
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
                    continue;
                }
                Err(e) => panic!("{method}: {e}"),
            };
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
            match v["method"].as_str() {
                Some("Log.entryAdded") => self
                    .log
                    .borrow_mut()
                    .push(v["params"]["entry"]["text"].to_string()),
                Some("Runtime.exceptionThrown") => self
                    .log
                    .borrow_mut()
                    .push(v["params"]["exceptionDetails"].to_string()),
                Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => {
                    self.log.borrow_mut().push(v["params"]["args"].to_string())
                }
                _ => {}
            }
        }
    }

    pub fn navigate(&self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
    }

    /// Evaluates `expr` (promises awaited); the value as a string.
    pub fn eval(&self, expr: &str) -> String {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        match &r["result"]["value"] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }
    }

    /// Polls `expr` until it is true (20 s).
    pub fn wait_for(&self, what: &str, expr: &str) {
        let start = Instant::now();
        loop {
            if self.eval(expr) == "true" {
                return;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let body = self.eval("document.body ? document.body.innerText : ''");
                panic!(
                    "timed out waiting for {what}; page:\n{body}\nlog: {:?}",
                    self.log.borrow()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        // For a reviewer: PORTCULLIS_TEST_SHOTS=DIR keeps a copy, since the
        // test's temp dir goes with the test.
        if let (Some(dir), Some(name)) =
            (std::env::var_os("PORTCULLIS_TEST_SHOTS"), path.file_name())
        {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(Path::new(&dir).join(name), &png);
        }
        std::fs::write(path, png).unwrap();
    }

    pub fn console_errors(&self) -> Vec<String> {
        self.log.borrow().clone()
    }
}
