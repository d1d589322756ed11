//! What terminating `ssh -J` must cost at the least, run on demand (not by CI):
//!
//!   cargo test --release --test bench_floor -- --ignored --nocapture
//!
//! OpenSSH's `ssh -J` relay moves the inner connection's ciphertext: one
//! AES-GCM pass (its own outer channel). Terminating the inner connection, as
//! issue 7 asks, adds work no implementation can skip: opening the target's
//! packets, sealing them again for the inner connection (the outer pass both
//! share), the transfer checksum the recording keeps, and writing each
//! payload into two more packets. This measures those parts on one core, in
//! CPU seconds per GiB, so `benches/throughput.sh`'s figures can be read
//! against a floor instead of against zero.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use portcullis::castfile::checksum::Checksum;
use std::hint::black_box;
use std::time::Instant;

/// The payload of one packet as the bastion sees it on this path.
const RECORD: usize = 32 * 1024 - 256;
const TOTAL: usize = 1 << 30;

/// Best of three runs of `f` over 1 GiB in RECORD-sized pieces, in s/GiB.
/// One buffer, so it stays in cache: the lower bound, which is what a
/// floor needs (on the real path copies meet colder data and cost more).
fn per_gib(mut f: impl FnMut(&mut [u8])) -> f64 {
    let mut buf = vec![7u8; RECORD];
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..TOTAL / RECORD {
            f(&mut buf);
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    best * (1u64 << 30) as f64 / ((TOTAL / RECORD) * RECORD) as f64
}

fn key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[9u8; 32]).unwrap())
}

/// Every packet under one nonce: fine for timing, never for the wire.
fn nonce() -> Nonce {
    Nonce::assume_unique_for_key([1; 12])
}

fn seal(key: &LessSafeKey, buf: &mut [u8]) -> aws_lc_rs::aead::Tag {
    key.seal_in_place_separate_tag(nonce(), Aad::empty(), buf)
        .unwrap()
}

#[test]
#[ignore = "benchmark: run on demand with --ignored --nocapture"]
fn what_terminating_ssh_j_adds() {
    let sealer = key();
    let seal_cost = per_gib(|b| {
        let _ = black_box(seal(&sealer, b));
    });
    // Open what a real peer sealed: the tag must verify, as on the wire.
    let opener = key();
    let mut sealed = vec![7u8; RECORD];
    let tag = seal(&sealer, &mut sealed);
    sealed.extend_from_slice(tag.as_ref());
    let mut work = sealed.clone();
    let open = per_gib(|_| {
        work.copy_from_slice(&sealed);
        let plain = opener
            .open_in_place(nonce(), Aad::empty(), &mut work)
            .unwrap();
        let _ = black_box(plain);
    });
    let copy_into = {
        let mut dst = vec![0u8; RECORD];
        per_gib(|b| {
            dst.copy_from_slice(b);
            black_box(&dst);
        })
    };
    // `open` above also paid one copy to restore the ciphertext.
    let open = (open - copy_into).max(0.0);
    let mut sum = Checksum::default();
    let blake3 = per_gib(|b| sum.update(b));
    black_box(sum.finish());

    let floor = open + seal_cost + blake3 + 2.0 * copy_into;
    println!("CPU seconds per GiB on one core (best of 3, {RECORD}-byte payloads):");
    println!("  AES-256-GCM open (aws-lc)   {open:.3}");
    println!("  AES-256-GCM seal (aws-lc)   {seal_cost:.3}");
    println!("  BLAKE3 transfer checksum    {blake3:.3}");
    println!("  copy into a packet (warm)   {copy_into:.3}");
    println!(
        "terminating ssh -J adds at least {floor:.3} s/GiB to what OpenSSH's relay spends \
         (one open, one seal, the checksum, two more packet copies)"
    );
    // The timed open really decrypted: the last plaintext is what was sealed.
    assert!(
        work[..RECORD].iter().all(|&b| b == 7),
        "open did not restore the payload"
    );
}
