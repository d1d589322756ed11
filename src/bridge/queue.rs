//! What a lane's writer takes next from its queue: data gathered into one
//! write, and an exit report put ahead of the EOF it closely follows.

use super::Frame;
use bytes::Bytes;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;

/// A queued frame and the budget it holds until it is delivered.
pub(super) type Queued = (Frame, OwnedSemaphorePermit);

/// A lane's queue: unbounded in count (the budget bounds it in bytes), each
/// frame boxed. tokio allocates a queue's slots 32 at a time as soon as the
/// queue exists, so two lanes of unboxed frames cost every channel ~5.6 KiB
/// while idle; boxed, a block is 32 pointers, and each frame costs one small
/// allocation next to its payload (a data packet is up to 32 KiB).
pub(super) fn lane() -> (LaneTx, LaneRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    (LaneTx(tx), LaneRx(rx))
}

pub(super) struct LaneTx(mpsc::UnboundedSender<Box<Queued>>);

impl LaneTx {
    /// False once the receiving side is gone.
    pub(super) fn send(&self, q: Queued) -> bool {
        self.0.send(Box::new(q)).is_ok()
    }
}

pub(super) struct LaneRx(mpsc::UnboundedReceiver<Box<Queued>>);

impl LaneRx {
    /// Cancel safe, as tokio's `recv`.
    pub(super) async fn recv(&mut self) -> Option<Queued> {
        self.0.recv().await.map(|q| *q)
    }

    fn try_recv(&mut self) -> Option<Queued> {
        self.0.try_recv().ok().map(|q| *q)
    }
}

/// At most this much data is handed to a gathering sink at once.
const GATHER_BYTES: usize = 1 << 20;
/// At most this many frames (well under any IOV_MAX).
const GATHER_FRAMES: usize = 64;

/// `first` and the data frames already queued behind it, up to the gather
/// limits; a non-data frame met on the way is returned for the next turn.
pub(super) fn gather(
    rx: &mut LaneRx,
    first: Bytes,
    permit: OwnedSemaphorePermit,
) -> (Vec<Bytes>, Vec<OwnedSemaphorePermit>, Option<Queued>) {
    let mut size = first.len();
    let (mut data, mut permits) = (vec![first], vec![permit]);
    while size < GATHER_BYTES && data.len() < GATHER_FRAMES {
        match rx.try_recv() {
            Some((Frame::Data(b), p)) => {
                size += b.len();
                data.push(b);
                permits.push(p);
            }
            Some(other) => return (data, permits, Some(other)),
            None => break,
        }
    }
    (data, permits, None)
}

/// How long an EOF from the target waits for the exit report behind it.
/// sshd sends EOF and exit-status in either order, microseconds apart.
const EOF_HOLD: Duration = Duration::from_millis(500);

/// `next`, unless it is an EOF closely followed by an exit status or signal:
/// then the exit report, with the EOF left in `held` for the next turn.
///
/// An OpenSSH client whose input is already closed answers EOF with CLOSE
/// at once, and russh's server answers that CLOSE before anything else can
/// be sent, so an exit status that reaches the bastion a moment after the
/// EOF would be lost and the client would exit 255 (seen through a shared
/// ControlMaster, one command in six). Sending the report first is what
/// sshd does when the command's exit is seen first; both orders are valid.
pub(super) async fn exit_before_eof(
    next: Queued,
    rx: &mut LaneRx,
    cancel: &CancellationToken,
    held: &mut Option<Queued>,
) -> Queued {
    if next.0 != Frame::Eof {
        return next;
    }
    let after = tokio::select! {
        q = tokio::time::timeout(EOF_HOLD, rx.recv()) => q.ok().flatten(),
        _ = cancel.cancelled() => None,
    };
    match after {
        Some(q) if matches!(q.0, Frame::ExitStatus(_) | Frame::ExitSignal { .. }) => {
            *held = Some(next);
            q
        }
        other => {
            *held = other;
            next
        }
    }
}
