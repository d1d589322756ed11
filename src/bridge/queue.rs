//! What a lane's writer takes next from its queue: data gathered into one
//! write, and an exit report put ahead of the EOF it closely follows.

use super::Frame;
use bytes::Bytes;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

/// A queued frame and the budget it holds until it is delivered.
pub(super) type Queued = (Frame, OwnedSemaphorePermit);

/// A lane's queue: unbounded in count (the budget bounds it in bytes), its
/// frames boxed so an idle lane holds a block of pointers (`boxed_queue`).
pub(super) type LaneTx = crate::boxed_queue::UnboundedSender<Queued>;
pub(super) type LaneRx = crate::boxed_queue::UnboundedReceiver<Queued>;

pub(super) fn lane() -> (LaneTx, LaneRx) {
    crate::boxed_queue::unbounded()
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
