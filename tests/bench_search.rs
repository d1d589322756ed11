//! Search benchmark, run on demand (not by CI):
//!
//!   cargo test --release --test bench_search -- --ignored --nocapture
//!
//! Writes 10,000 (`BENCH_N`) synthetic signed recordings (with their sessions rows and
//! search index) into a data directory, then times `portcullis sessions
//! search` for a rare phrase, a common word, and a word-less pattern.

mod common;
use common::*;
use std::time::Instant;

#[test]
#[ignore = "benchmark: run on demand with --ignored --nocapture"]
fn search_10k_sessions() {
    let b = Bastion::new();
    let n: u32 = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let took = common::synth::recordings(&b, n);
    println!("\nwrote {n} recordings in {took:?}");
    for pattern in [common::synth::RARE, "app.log", "$ "] {
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
