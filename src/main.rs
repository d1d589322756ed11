#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used)] // as in lib.rs: outside tests, no bare unwrap

use clap::Parser;

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cli = portcullis::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("portcullis: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(portcullis::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// russh allocates every received data packet afresh (32 KiB) and the bridge
/// frees it on another thread once written. glibc gives the top of a heap
/// back to the kernel as soon as 128 KiB of it are free, so a queue that
/// drains and refills faults every page in again: a fifth of the bastion's
/// CPU on a forwarded upload. Freeing one mmapped block raises glibc's
/// (dynamic) mmap threshold to its size and the trim threshold to twice
/// that: heaps then keep up to 32 MiB free for reuse. A no-op elsewhere.
fn keep_freed_memory() {
    let block: Vec<u8> = Vec::with_capacity(16 << 20);
    // Keeps the allocation from being optimised away.
    drop(std::hint::black_box(block));
}
