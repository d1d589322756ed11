//! Recorder cost, run on demand (not by CI):
//!
//!   cargo test --release --test bench_recorder -- --ignored --nocapture
//!
//! Feeds 512 MiB of terminal-like text through the recording writer in
//! 32 KiB events (what one SSH packet carries) on one core, and reports
//! MiB/s and the recording size relative to the bytes shown.

use portcullis::castfile::{EventKind, Header, RecordingWriter};
use std::time::Instant;

#[test]
#[ignore = "benchmark: run on demand with --ignored --nocapture"]
fn writer_throughput_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let key = portcullis::castfile::load_or_create(&dir.path().join("k")).unwrap();
    let header = Header {
        width: 80,
        height: 24,
        timestamp: 0,
        env: Default::default(),
        title: None,
        portcullis: None,
    };
    let mut w = RecordingWriter::create(dir.path(), "bench", &header, &key).unwrap();
    // Plain lines, and lines with colour escapes (ls --color, prompts).
    let mut plain = String::new();
    let mut color = String::new();
    for i in 0..1000 {
        plain.push_str(&format!(
            "-rw-r--r-- 1 root root {i:>8} Nov 26 18:00 file-{i}.log\r\n"
        ));
        color.push_str(&format!(
            "\x1b[0m\x1b[01;34mdir-{i}\x1b[0m  \x1b[01;32mrun-{i}.sh\x1b[0m  plain-{i}.txt\r\n"
        ));
    }
    for (name, text) in [("plain", plain), ("colour", color)] {
        let chunk = &text.as_bytes()[..32 * 1024];
        let total = 512usize << 20;
        let before = std::fs::metadata(w.cast_path()).unwrap().len();
        let start = Instant::now();
        let mut t = 0.0;
        let mut sent = 0;
        while sent < total {
            w.event(t, EventKind::Output, chunk).unwrap();
            t += 0.0001;
            sent += chunk.len();
        }
        w.checkpoint(0).unwrap();
        let secs = start.elapsed().as_secs_f64();
        let size = std::fs::metadata(w.cast_path()).unwrap().len() - before;
        println!(
            "{name}: {:.0} MiB/s on one core; recording {:.3}x the bytes shown",
            (sent as f64 / 1048576.0) / secs,
            size as f64 / sent as f64
        );
    }
}
