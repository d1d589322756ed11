//! One session's log lines can be found together (issue 16 point 6): with
//! `log_format = "json"`, every line the bastion writes about a session —
//! its login, its start, its channel's end, its recorder's seal, its end —
//! carries the session's id (and user, target, source) in its span fields,
//! including lines written on tasks that are not the connection's own (the
//! russh session loop's callbacks, the bridge, the recorder).

mod common;

use common::*;
use serde_json::Value;

/// The session id the line's spans carry (the innermost span that has one).
fn span_session(line: &Value) -> Option<String> {
    line["spans"]
        .as_array()?
        .iter()
        .rev()
        .find_map(|s| s["session"].as_str().map(str::to_string))
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or("")
}

#[test]
fn a_sessions_log_lines_carry_its_id_in_their_spans() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    b.stop();
    let config = std::fs::read_to_string(&b.config).unwrap();
    std::fs::write(&b.config, format!("log_format = \"json\"\n{config}")).unwrap();
    b.start();

    for word in ["first", "second"] {
        let out = run(b.ssh("alice+web01").arg(format!("echo {word}")));
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), word);
    }
    let rows = b.settled_sessions();
    let ids: Vec<String> = rows
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|id| id.len() >= 16 && id.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 2, "{rows}");

    // The recorder seals after the session's end row: wait for both seals.
    let mut log = String::new();
    let start = std::time::Instant::now();
    while log.matches("recording sealed").count() < 2 {
        assert!(start.elapsed().as_secs() < 10, "no seal logged:\n{log}");
        std::thread::sleep(std::time::Duration::from_millis(100));
        log = b.log();
    }
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.len() > 10, "the log is not JSON:\n{log}");

    for id in &ids {
        for what in [
            "login succeeded",
            "session started",
            "session channel ended",
            "recording sealed",
            "session ended",
        ] {
            let found = lines
                .iter()
                .filter(|l| message(l) == what)
                .any(|l| span_session(l).as_deref() == Some(id.as_str()));
            assert!(
                found,
                "no {what:?} line in the spans of session {id}:\n{log}"
            );
        }
        // The connection's span names who and where too.
        let started = lines
            .iter()
            .find(|l| message(l) == "session started" && span_session(l).as_deref() == Some(id))
            .unwrap();
        let conn = &started["spans"][0];
        assert_eq!(conn["user"], "alice", "{started}");
        assert_eq!(conn["target"], "web01", "{started}");
        assert!(
            conn["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("127.0.0.1:"))
        );
    }
    // No line is filed under another session than the one it names.
    for l in &lines {
        if let (Some(named), Some(in_span)) = (l["fields"]["session"].as_str(), span_session(l)) {
            assert_eq!(named, in_span, "{l}");
        }
    }
}
