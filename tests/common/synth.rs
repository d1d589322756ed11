//! Synthetic signed recordings for the on-demand search benchmarks: `n`
//! sessions of 40 shell lines each (one rare phrase in session 7777), with
//! their sessions and recordings rows and their word index, written straight
//! into a bastion's data directory.

use super::*;
use portcullis::castfile::{
    ChannelKind, EventKind, Header, RecordingWriter, SessionMeta, TrailerInfo,
};
use portcullis::store::{RecordingRow, SessionKind, SessionStart, Store};

/// The rare phrase, found only in session `s07777`.
pub const RARE: &str = "rm -rf /srv/precious";

/// Writes `n` recordings for bastion `b` (not running); returns how long it took.
pub fn recordings(b: &Bastion, n: u32) -> std::time::Duration {
    let data = b.data_dir();
    let rec = data.join("recordings");
    std::fs::create_dir_all(&rec).unwrap();
    // A command that writes sets the data directory up (listings create nothing).
    run_ok(b.cli().args(["group", "add", "bench"]));
    let key = portcullis::castfile::load_or_create(&data.join("audit_ed25519")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("sqlite://{}?mode=rwc", data.join("portcullis.db").display());
    let store = rt.block_on(Store::connect(&url)).unwrap();
    let start = std::time::Instant::now();
    for i in 0..n {
        let id = format!("s{i:05}");
        let name = format!("{id}-0");
        let (user, target) = (format!("u{}", i % 50), format!("t{}", i % 20));
        let header = Header {
            width: 80,
            height: 24,
            timestamp: 0,
            env: Default::default(),
            title: None,
            portcullis: Some(SessionMeta {
                session: id.clone(),
                user: user.clone(),
                target: target.clone(),
                login: "root".into(),
                channel: 0,
                kind: ChannelKind::Shell,
                command: None,
            }),
        };
        let mut w = RecordingWriter::create(&rec, &name, &header, &key).unwrap();
        for j in 0..40 {
            let line = if i == 7777 && j == 20 {
                format!("$ {RARE}\r\n")
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
                    user,
                    source: "127.0.0.1:1".into(),
                    target,
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
    start.elapsed()
}
