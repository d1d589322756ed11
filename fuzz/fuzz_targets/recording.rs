//! Recordings are files a verifier reads from anywhere (an archive, a
//! colleague's laptop) and recovery reads after a crash: any bytes as the
//! `.cast` and the `.chain` must give a report or an error, never a panic,
//! and recovery must never seal what verification would call edited.
//! The input is split at its first 0xFF byte: cast before, chain after.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::castfile::{SigningKey, TrailerInfo, seal_cut_short, verify};
use std::sync::atomic::{AtomicU64, Ordering};

static RUN: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let (cast, chain) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let dir = std::env::temp_dir().join(format!(
        "pc-fuzz-rec-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (cast_path, chain_path) = (dir.join("f.cast"), dir.join("f.chain"));
    std::fs::write(&cast_path, cast).unwrap();
    std::fs::write(&chain_path, chain).unwrap();
    let key = SigningKey::from_bytes(&[7; 32]);
    let _ = verify(&cast_path, &chain_path, &key.verifying_key());
    let info = TrailerInfo {
        bytes_up: 0,
        bytes_down: 0,
        end_reason: "fuzz".into(),
        ended_at_ms: 1_800_000_000_000,
    };
    if seal_cut_short(&dir, "f", &key, &info).is_ok() {
        // What recovery sealed must verify.
        let report = verify(&cast_path, &chain_path, &key.verifying_key()).unwrap();
        assert!(report.ok, "recovery sealed a recording that fails: {report:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
});
