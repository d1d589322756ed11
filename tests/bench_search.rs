//! Search benchmark, run on demand (not by CI):
//!
//!   cargo test --release --test bench_search -- --ignored --nocapture
//!
//! Writes 10,000 synthetic signed recordings (with their sessions rows and
//! search index) into a data directory, then times `portcullis sessions
//! search` for a rare phrase, a common word, and a word-less pattern.

mod common;
use common::*;
use portcullis::castfile::{
    ChannelKind, EventKind, Header, RecordingWriter, SessionMeta, TrailerInfo,
};
use portcullis::store::{RecordingRow, SessionKind, SessionStart, Store};
use std::time::Instant;

#[test]
#[ignore = "benchmark: run on demand with --ignored --nocapture"]
fn search_10k_sessions() {
    let b = Bastion::new();
    let data = b.data_dir();
    let rec = data.join("recordings");
    std::fs::create_dir_all(&rec).unwrap();
    run_ok(b.cli().args(["user", "list"])); // creates the database and keys
    let key = portcullis::castfile::load_or_create(&data.join("audit_ed25519")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("sqlite://{}?mode=rwc", data.join("portcullis.db").display());
    let store = rt.block_on(Store::connect(&url)).unwrap();
    let n = 10_000;
    let start = Instant::now();
    for i in 0..n {
        let id = format!("s{i:05}");
        let name = format!("{id}-0");
        let header = Header {
            width: 80,
            height: 24,
            timestamp: 0,
            env: Default::default(),
            title: None,
            portcullis: Some(SessionMeta {
                session: id.clone(),
                user: format!("u{}", i % 50),
                target: format!("t{}", i % 20),
                login: "root".into(),
                channel: 0,
                kind: ChannelKind::Shell,
                command: None,
            }),
        };
        let mut w = RecordingWriter::create(&rec, &name, &header, &key).unwrap();
        for j in 0..40 {
            let line = if i == 7777 && j == 20 {
                "$ rm -rf /srv/precious\r\n".to_string()
            } else {
                format!(
                    "$ ls -la /var/log/app{j}\r\ntotal {}\r\n-rw-r--r-- 1 root root {} app.log\r\n",
                    i * j,
                    j * 31
                )
            };
            w.event(f64::from(j), EventKind::Output, line.as_bytes())
                .unwrap();
        }
        w.finish(&TrailerInfo {
            bytes_up: 0,
            bytes_down: 0,
            end_reason: "synthetic".into(),
            ended_at_ms: 0,
        })
        .unwrap();
        let words: Vec<String> =
            portcullis::castfile::words::of_cast(&rec.join(format!("{name}.cast")))
                .unwrap()
                .0
                .into_iter()
                .collect();
        rt.block_on(async {
            store
                .session_started(&SessionStart {
                    id: id.clone(),
                    user: format!("u{}", i % 50),
                    source: "127.0.0.1:1".into(),
                    target: format!("t{}", i % 20),
                    login: "root".into(),
                    started_ms: i64::from(i),
                    kind: SessionKind::Target,
                })
                .await
                .unwrap();
            store
                .recording_started(&RecordingRow {
                    name: name.clone(),
                    session_id: id.clone(),
                    channel: 0,
                    kind: "shell".into(),
                    started_ms: i64::from(i),
                    events: 40,
                    cast_bytes: 0,
                    sha256: String::new(),
                    checkpoint_ms: None,
                    state: "closed".into(),
                })
                .await
                .unwrap();
            store.index_recording(&name, &words, true).await.unwrap();
        });
    }
    println!("\nwrote {n} recordings in {:?}", start.elapsed());
    for pattern in ["rm -rf /srv/precious", "app.log", "$ "] {
        let t = Instant::now();
        let out = run_ok(b.cli().args(["sessions", "search", pattern]));
        let hits = text(&out.stdout).lines().count();
        println!(
            "search {pattern:?}: {hits} hit line(s) in {:?} ({})",
            t.elapsed(),
            text(&out.stderr).trim()
        );
        if pattern.starts_with("rm") {
            assert!(text(&out.stdout).contains("s07777"));
        }
    }
}
