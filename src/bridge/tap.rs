//! The bridge's copy to the recorder: what it hands over for each frame,
//! and, for a shell, exec or subsystem request, the wait for the recorder's
//! answer that the recording exists before the request goes on.

use super::{Counters, Direction, Frame, Request};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// A copy of a frame for the recorder, and when it crossed the bastion.
#[derive(Debug)]
pub struct Tapped {
    pub dir: Direction,
    pub frame: Frame,
    pub at: std::time::Instant,
    /// Set on a shell, exec or subsystem request from the client: the
    /// request is forwarded only once the recorder answers through it.
    pub ack: Option<Ack>,
}

/// The recorder's answer to a session request: the recording exists (its
/// header durable, its row stored). Dropping it unanswered refuses the
/// request: it is not forwarded and the channel ends.
#[derive(Debug)]
pub struct Ack(oneshot::Sender<()>);

impl Ack {
    /// Lets the request go; false if the bridge stopped waiting (timeout,
    /// cancel) and the request was never forwarded.
    pub fn recorded(self) -> bool {
        self.0.send(()).is_ok()
    }
}

/// Longest wait for the recorder's answer to a session request. A stuck
/// disk must not hold a connection for ever; past this the request is
/// refused, never forwarded unrecorded.
#[cfg(not(test))]
pub(super) const ACK_TIMEOUT: Duration = Duration::from_secs(10);
#[cfg(test)]
pub(super) const ACK_TIMEOUT: Duration = Duration::from_millis(500);

pub type TapTx = crate::boxed_queue::Sender<Tapped>;
pub type TapRx = crate::boxed_queue::Receiver<Tapped>;

/// The queue from a channel's bridge to its recorder.
pub fn tap_queue(capacity: usize) -> (TapTx, TapRx) {
    crate::boxed_queue::bounded(capacity)
}

/// Where a channel's frames are copied for recording. Bounded: a recorder
/// slower than the network slows the channel, and a recorder that is gone
/// ends it (nothing runs unrecorded).
#[derive(Debug, Clone)]
pub struct Tap {
    /// Boxed copies (`boxed_queue`): unboxed, an idle recorded channel
    /// would hold a block of 32 copies (~3.7 KiB) for its life.
    pub tx: TapTx,
    /// Whether the recorder wants the client's data bytes. A session
    /// channel's recorder always does (stdin is recorded, or counted and
    /// hashed past its cap); the switch stays for recorders that may not.
    pub up_data: Arc<std::sync::atomic::AtomicBool>,
}

impl Tap {
    pub(super) fn wants(&self, dir: Direction, frame: &Frame) -> bool {
        dir == Direction::Down
            || !matches!(frame, Frame::Data(_))
            || self.up_data.load(Ordering::Relaxed)
    }
}

/// Whether a frame starts what runs on the channel: the target must not
/// see it before the recording exists.
fn starts_session(dir: Direction, frame: &Frame) -> bool {
    dir == Direction::Up
        && matches!(
            frame,
            Frame::Request(Request::Shell | Request::Exec(_) | Request::Subsystem(_))
        )
}

/// Counts a frame and copies it to the recorder when it wants it; `false`
/// when the recorder is gone, or, for a session request, did not answer
/// that the recording exists within [`ACK_TIMEOUT`].
pub(super) async fn note(
    dir: Direction,
    counters: &Counters,
    tap: Option<&Tap>,
    frame: &Frame,
    cancel: &CancellationToken,
) -> bool {
    if let Frame::Data(b) | Frame::Stderr(b) = frame {
        let c = match dir {
            Direction::Up => &counters.up,
            Direction::Down => &counters.down,
        };
        c.fetch_add(b.len() as u64, Ordering::Relaxed);
    }
    let Some(tap) = tap.filter(|t| t.wants(dir, frame)) else {
        return true;
    };
    let mut copy = Tapped {
        dir,
        frame: frame.clone(),
        at: std::time::Instant::now(),
        ack: None,
    };
    if !starts_session(dir, frame) {
        return tap.tx.send(copy).await.is_ok();
    }
    let (ack, answer) = oneshot::channel();
    copy.ack = Some(Ack(ack));
    let recorded = async { tap.tx.send(copy).await.is_ok() && answer.await.is_ok() };
    tokio::select! {
        r = tokio::time::timeout(ACK_TIMEOUT, recorded) => match r {
            Ok(true) => true,
            Ok(false) => {
                tracing::error!("the recording could not be created: the request is not forwarded");
                false
            }
            Err(_) => {
                tracing::error!(timeout = ?ACK_TIMEOUT, "the recorder did not confirm the recording in time: the request is not forwarded");
                false
            }
        },
        _ = cancel.cancelled() => false,
    }
}
