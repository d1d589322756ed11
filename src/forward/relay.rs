//! The relay choice for one accepted forward: the bridge both ways with
//! the stall rule (a far side that is a channel of the target's SSH
//! connection stalls too), and for an inline upload the drain of the
//! client's bytes beside it. Transport-free: the gateway hands in frame
//! sources and sinks.

use super::upload::Upload;
use crate::bridge::{self, ChannelEnd, Counters, FrameSink, FrameSource, Tap};
use crate::sync::MutexExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A consumer that takes nothing for this long while its forward's budget
/// is full is stuck; the forward ends so the SSH connection does not.
pub const STALL: Duration = Duration::from_secs(2);

/// Relays one accepted channel to its far side until either closes or the
/// stop ends or halts it; returns why it ended (`why` first: the watcher's or
/// the kill's reason). `far_is_ssh`: the far side is a channel of the
/// target's SSH connection, which a stopped reader would block too (a TCP
/// destination only slows down).
#[allow(clippy::too_many_arguments)]
pub async fn relay<CS: FrameSource, CK: FrameSink, S: FrameSource, K: FrameSink>(
    client: (CS, CK),
    far: (S, K),
    budget: usize,
    far_is_ssh: bool,
    counters: Arc<Counters>,
    stop: bridge::Stop,
    tap: Option<Tap>,
    why: &Mutex<Option<String>>,
) -> String {
    let stall = bridge::Stall {
        up: Some(STALL),
        down: far_is_ssh.then_some(STALL),
    };
    let end = bridge::run_forward(client, far, budget, stall, counters, stop, tap).await;
    let set = why.lock_or_recover().clone();
    match (set, end) {
        (Some(w), _) => w,
        (None, ChannelEnd::Stalled) => stall_reason(),
        (None, ChannelEnd::Cancelled) => "ended by portcullis".into(),
        (None, ChannelEnd::Closed) => "closed".into(),
    }
}

pub fn stall_reason() -> String {
    format!(
        "stalled: nothing consumed for {} s with the buffer full",
        STALL.as_secs()
    )
}

/// Runs the relay and the upload's drainer together until the relay ends:
/// the destination may close first, and then nothing is left to drain.
pub async fn with_drain(relayed: impl Future<Output = String>, up: &Upload) -> String {
    let drain = up.drain();
    tokio::pin!(relayed, drain);
    let mut drained = false;
    let reason = loop {
        tokio::select! {
            reason = &mut relayed => break reason,
            _ = &mut drain, if !drained => drained = true,
        }
    };
    // What the client sent before the end still goes out, as the bridge's
    // queue would have, for at most the stall time.
    if !drained {
        up.close();
        let _ = tokio::time::timeout(STALL, &mut drain).await;
    }
    // A `push` waiting for room must not hold the connection's loop.
    up.stop();
    if up.stalled() { stall_reason() } else { reason }
}
