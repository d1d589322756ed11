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

/// Issue 20: what recording costs per GiB of the stream on one core, for
/// the three paths a download takes through the recorder of an exec:
/// the segmenter alone (what a metadata-only target runs), the segmenter
/// plus the writer (a recorded target), and the post-session search index
/// of the recording written. Streams: `base64 -w 76` lines (BENCH_TEXT=1)
/// and zeros (the binary default), in 32 KiB chunks (one SSH packet).
///
///   cargo test --release --test bench_recorder -- --ignored --nocapture text_paths
#[test]
#[ignore = "benchmark: run on demand with --ignored --nocapture"]
fn text_paths() {
    use portcullis::castfile::binary::{Piece, Segmenter};
    let total: usize = std::env::var("BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512)
        << 20;
    let mut b64 = Vec::new();
    // base64 of zeros is "A" lines; mix it up so the line is not one byte.
    let mut x: u32 = 1;
    while b64.len() < 32 * 1024 {
        for _ in 0..76 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            b64.push(alphabet[(x >> 26) as usize]);
        }
        b64.push(b'\n');
    }
    b64.truncate(32 * 1024);
    let zeros = vec![0u8; 32 * 1024];
    // What a pty gives sshd per read: at most 4095 bytes, lines end "\r\n".
    let mut pty = Vec::new();
    for line in b64.split(|&b| b == b'\n') {
        pty.extend_from_slice(line);
        pty.extend_from_slice(b"\r\n");
    }
    pty.truncate(4095);
    let header = Header {
        width: 80,
        height: 24,
        timestamp: 0,
        env: Default::default(),
        title: None,
        portcullis: None,
    };
    // Chunks 0.1 ms apart (a bulk stream: the writer joins them into one
    // event line), and pty chunks 10 ms apart (one line each, as before
    // the writer joined them).
    for (name, chunk, step) in [
        ("text", &b64, 0.0001),
        ("pty", &pty, 0.0001),
        ("pty-10ms-apart", &pty, 0.01),
        ("zeros", &zeros, 0.0001),
    ] {
        let gib = total as f64 / (1u64 << 30) as f64;
        // Segmenter alone: the metadata-only path.
        let mut seg = Segmenter::new("output");
        let start = Instant::now();
        let mut sent = 0;
        let mut pieces = 0usize;
        let cpu0 = thread_cpu();
        while sent < total {
            seg.push::<()>(chunk, &mut |p| {
                if let Piece::Text(t) = p {
                    pieces += t.len();
                }
                Ok(())
            })
            .unwrap();
            sent += chunk.len();
        }
        seg.finish::<()>(&mut |_| Ok(())).unwrap();
        let seg_s = start.elapsed().as_secs_f64() / gib;
        let seg_c = (thread_cpu() - cpu0) / gib;
        // Segmenter plus writer: the recorded path.
        let dir = tempfile::tempdir().unwrap();
        let key = portcullis::castfile::load_or_create(&dir.path().join("k")).unwrap();
        let mut w = RecordingWriter::create(dir.path(), "bench", &header, &key).unwrap();
        let mut seg = Segmenter::new("output");
        let start = Instant::now();
        let mut sent = 0;
        let mut t = 0.0;
        let cpu0 = thread_cpu();
        while sent < total {
            seg.push(chunk, &mut |p| match p {
                Piece::Text(b) => w.text(t, EventKind::Output, b),
                Piece::Started(m) => w.marker(t, &m),
                Piece::Ended(s) => w.marker(t, &s.line(true)),
            })
            .unwrap();
            t += step;
            sent += chunk.len();
        }
        w.checkpoint(0).unwrap();
        let rec_s = start.elapsed().as_secs_f64() / gib;
        let rec_c = (thread_cpu() - cpu0) / gib;
        let cast = w.cast_path().to_owned();
        let size = std::fs::metadata(&cast).unwrap().len();
        let start = Instant::now();
        let cpu0 = thread_cpu();
        let _ = portcullis::castfile::words::of_cast(&cast).unwrap();
        let index_s = start.elapsed().as_secs_f64() / gib;
        let index_c = (thread_cpu() - cpu0) / gib;
        println!(
            "{name}: s/GiB of stream, CPU (wall): segmenter {seg_c:.3} ({seg_s:.3}), \
             segmenter+writer {rec_c:.3} ({rec_s:.3}), recording costs {:.3} CPU over \
             metadata-only; search index afterwards {index_c:.3} ({index_s:.3}); \
             recording {:.3}x the stream ({pieces} text bytes)",
            rec_c - seg_c,
            size as f64 / total as f64
        );
    }
}

/// CPU seconds (user + system) this thread has used.
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}
