//! Pumps one channel's frames both ways between the client and the upstream.
//!
//! Each direction has a reader and a writer joined by a queue bounded in
//! bytes (a semaphore of `budget` permits; every frame holds at least one).
//! The reader never waits on the writer until that budget is spent, so a
//! slow consumer on one channel does not stop the SSH connection's loop from
//! serving the other channels until it is that far behind. Past the budget
//! the reader stops pulling, which is the explicit, bounded choice: russh
//! grants window on arrival, so the only other option would be to drop data.
//!
//! The bridge knows nothing of SSH libraries: the gateway and upstream modules
//! adapt their channels to [`FrameSource`] and [`FrameSink`].

use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

/// Everything that crosses a channel, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data(Bytes),
    Stderr(Bytes),
    Eof,
    Close,
    Request(Request),
    ExitStatus(u32),
    ExitSignal {
        name: String,
        core_dumped: bool,
        message: String,
    },
    /// The upstream refused a shell, exec or subsystem request.
    RequestFailed,
}

/// What one queued frame costs beyond its payload: the `Frame`, the
/// `Bytes` header, the queue slot and the permit that carry it, plus the
/// allocator's rounding. Counted against the budget so that a peer sending
/// one-byte frames reaches it at about the memory full packets would, not
/// after `budget` frames (about 1.5 GB for 8 MiB of one-byte frames).
pub const FRAME_OVERHEAD: usize = 128;

impl Frame {
    fn weight(&self) -> usize {
        FRAME_OVERHEAD
            + match self {
                Frame::Data(b) | Frame::Stderr(b) => b.len(),
                Frame::Request(Request::Exec(c)) => c.len(),
                Frame::Request(Request::Env { name, value }) => name.len() + value.len(),
                Frame::Request(Request::Subsystem(s) | Request::Signal(s)) => s.len(),
                Frame::Request(Request::Pty { term, modes, .. }) => term.len() + modes.len() * 8,
                _ => 0,
            }
    }
}

/// Session-channel requests forwarded from client to upstream. Only requests
/// the policy gate allowed are ever turned into one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Pty {
        term: String,
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
        modes: Vec<(u8, u32)>,
    },
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
    Env {
        name: String,
        value: String,
    },
    WindowChange {
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
    },
    Signal(String),
    /// `auth-agent-req@openssh.com`, only when the grant allows agent forwarding.
    AgentForward,
}

pub trait FrameSource: Send {
    /// The next frame, or `None` once the channel is gone. Must be cancel-safe.
    fn recv(&mut self) -> impl Future<Output = Option<Frame>> + Send;
}

#[derive(Debug, thiserror::Error)]
#[error("the other side of the channel is gone")]
pub struct SinkClosed;

pub trait FrameSink: Send {
    /// Delivers a frame, waiting for the peer's window when it is spent.
    fn send(&mut self, frame: Frame) -> impl Future<Output = Result<(), SinkClosed>> + Send;

    /// Delivers several data frames in order. A sink that can write them at
    /// once (one syscall for a TCP socket) overrides this.
    fn send_data(
        &mut self,
        data: Vec<Bytes>,
    ) -> impl Future<Output = Result<(), SinkClosed>> + Send {
        async move {
            for b in data {
                self.send(Frame::Data(b)).await?;
            }
            Ok(())
        }
    }

    /// Whether [`FrameSink::send_data`] is worth gathering frames for.
    fn gathers(&self) -> bool {
        false
    }
}

/// Byte counters shared by every channel of a session.
#[derive(Debug, Default)]
pub struct Counters {
    pub up: AtomicU64,
    pub down: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to upstream.
    Up,
    /// Upstream to client.
    Down,
}

/// How a channel's bridge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelEnd {
    Closed,
    Cancelled,
    /// A forward's consumer took nothing for the stall time while its
    /// budget was full (see [`run_forward`]).
    Stalled,
}

/// Per direction of a forward: how long a full budget may wait for its
/// consumer before the forward is ended. `None` waits for ever (the source
/// is not an SSH channel, so waiting blocks nobody else).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stall {
    pub up: Option<std::time::Duration>,
    pub down: Option<std::time::Duration>,
}

/// What ends a bridge from outside.
///
/// `end`: the session is over (its end, a deadline, shutdown, a grant
/// revoked): both sides are sent CLOSE. `halt`: the kill switch — from the
/// kill on, no frame is delivered either way. The halt is only checked, never
/// awaited: a kill of 10,000 sessions wakes no bridge (the DISCONNECT the
/// kill queued ends the connection and then `end` follows), yet a client
/// that keeps typing while its session loop is slow to send that DISCONNECT
/// gets nothing more to the target.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    pub end: CancellationToken,
    pub halt: CancellationToken,
}

impl From<CancellationToken> for Stop {
    /// Ended by `end` only: never halted.
    fn from(end: CancellationToken) -> Stop {
        Stop {
            end,
            halt: CancellationToken::new(),
        }
    }
}

/// Runs both directions of one channel until both ends have closed, or the
/// session is cancelled (kill switch, deadline, shutdown).
///
/// Not an `async fn` (nor [`run_forward`]): one keeps each argument for its
/// whole life, even once moved on, and both sides' halves go straight into
/// the lanes (issue 20: memory per idle session).
pub fn run<CS, CK, US, UK>(
    client: (CS, CK),
    upstream: (US, UK),
    budget: usize,
    counters: Arc<Counters>,
    stop: impl Into<Stop>,
    notices: Option<broadcast::Receiver<Bytes>>,
    tap: Option<Tap>,
) -> impl Future<Output = ChannelEnd>
where
    CS: FrameSource,
    CK: FrameSink,
    US: FrameSource,
    UK: FrameSink,
{
    let lanes = Lanes {
        budget,
        counters,
        stop: stop.into(),
        notices,
        tap,
        stall: Stall::default(),
        exit_first: true,
    };
    run_lanes(client, upstream, lanes)
}

/// [`run`] for a forwarded connection: no notices, and a consumer that
/// takes nothing for `stall` while its direction's budget is full ends the
/// forward ([`ChannelEnd::Stalled`]) instead of holding the SSH
/// connection's loop: russh grants window on arrival, so a reader that
/// stops pulling a russh channel soon blocks every channel of that
/// connection. The wait is bounded by the stall time, once.
pub fn run_forward<CS, CK, US, UK>(
    client: (CS, CK),
    far: (US, UK),
    budget: usize,
    stall: Stall,
    counters: Arc<Counters>,
    stop: impl Into<Stop>,
    tap: Option<Tap>,
) -> impl Future<Output = ChannelEnd>
where
    CS: FrameSource,
    CK: FrameSink,
    US: FrameSource,
    UK: FrameSink,
{
    let lanes = Lanes {
        budget,
        counters,
        stop: stop.into(),
        notices: None,
        tap,
        stall,
        exit_first: false,
    };
    run_lanes(client, far, lanes)
}

struct Lanes {
    budget: usize,
    counters: Arc<Counters>,
    stop: Stop,
    notices: Option<broadcast::Receiver<Bytes>>,
    tap: Option<Tap>,
    stall: Stall,
    exit_first: bool,
}

async fn run_lanes<CS, CK, US, UK>(client: (CS, CK), upstream: (US, UK), l: Lanes) -> ChannelEnd
where
    CS: FrameSource,
    CK: FrameSink,
    US: FrameSource,
    UK: FrameSink,
{
    let (client_src, client_sink) = client;
    let (up_src, up_sink) = upstream;
    // A stall ends both directions; the session's token is left alone.
    let local = l.stop.end.child_token();
    // Once we sent CLOSE to a side, russh ignores that side's CLOSE reply
    // (the channel is no longer established), so its source would never
    // end: the lane reading it stops when the other lane delivered the close.
    let (client_closed, upstream_closed) = (CancellationToken::new(), CancellationToken::new());
    let up = pump(
        client_src,
        up_sink,
        Lane {
            budget: l.budget,
            dir: Direction::Up,
            counters: l.counters.clone(),
            cancel: local.clone(),
            halt: l.stop.halt.clone(),
            notices: None,
            tap: l.tap.clone(),
            stall: l.stall.up,
            source_closed: client_closed.clone(),
            sink_closed: upstream_closed.clone(),
            exit_first: false,
        },
    );
    let down = pump(
        up_src,
        client_sink,
        Lane {
            budget: l.budget,
            dir: Direction::Down,
            counters: l.counters,
            cancel: local.clone(),
            halt: l.stop.halt,
            notices: l.notices,
            tap: l.tap,
            stall: l.stall.down,
            source_closed: upstream_closed,
            sink_closed: client_closed,
            exit_first: l.exit_first,
        },
    );
    let (a, b) = tokio::join!(up, down);
    if a == ChannelEnd::Stalled || b == ChannelEnd::Stalled {
        ChannelEnd::Stalled
    } else if a == ChannelEnd::Cancelled || b == ChannelEnd::Cancelled {
        ChannelEnd::Cancelled
    } else {
        ChannelEnd::Closed
    }
}

/// One direction's settings.
struct Lane {
    budget: usize,
    dir: Direction,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    /// The kill switch: nothing is delivered once it is cancelled.
    halt: CancellationToken,
    /// Bastion notices injected towards the client (down lane only).
    notices: Option<broadcast::Receiver<Bytes>>,
    tap: Option<Tap>,
    /// Longest wait for budget before the consumer counts as stuck.
    stall: Option<std::time::Duration>,
    /// Cancelled once the other lane delivered CLOSE to this lane's source side.
    source_closed: CancellationToken,
    /// Cancelled once this lane delivered CLOSE to (or lost) its sink.
    sink_closed: CancellationToken,
    /// Put an exit report that follows EOF closely ahead of it (session
    /// channels, towards the client): see [`queue::exit_before_eof`].
    exit_first: bool,
}

async fn pump<S: FrameSource, K: FrameSink>(mut src: S, mut sink: K, lane: Lane) -> ChannelEnd {
    let Lane {
        budget,
        dir,
        counters,
        cancel,
        halt,
        mut notices,
        tap,
        stall,
        source_closed,
        sink_closed,
        exit_first,
    } = lane;
    let stalled = std::sync::atomic::AtomicBool::new(false);
    let budget = budget.max(64 * 1024);
    let slots = Arc::new(Semaphore::new(budget));
    // Unbounded in count but bounded in bytes: every queued frame holds permits.
    let (tx, mut rx) = queue::lane();
    let reader = async {
        loop {
            // Biased: a kill first; then what the source already holds (an
            // exit status queued behind the data must still be delivered),
            // and only then the close the other lane delivered.
            let frame = tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                f = src.recv() => f,
                _ = source_closed.cancelled() => Some(Frame::Close),
            };
            let Some(frame) = frame else { return };
            let n = u32::try_from(frame.weight().min(budget)).unwrap_or(u32::MAX);
            let acquire = slots.clone().acquire_many_owned(n);
            let permit = match stall {
                None => acquire.await,
                Some(d) => match tokio::time::timeout(d, acquire).await {
                    Ok(p) => p,
                    Err(_) => {
                        stalled.store(true, Ordering::Relaxed);
                        cancel.cancel();
                        return;
                    }
                },
            };
            let Ok(permit) = permit else {
                return;
            };
            let last = frame == Frame::Close;
            if tx.send((frame, permit)).is_err() || last {
                return;
            }
        }
    };
    let writer = async {
        // A frame taken while gathering data that is not data: next turn's.
        let mut held: Option<queue::Queued> = None;
        // Once the exit report went out, an EOF is never held again.
        let mut reported = false;
        loop {
            let next = match held.take() {
                Some(q) => Some(q),
                None => tokio::select! {
                    f = rx.recv() => f,
                    Some(text) = notice(&mut notices) => {
                        // Bastion notices (deadline warnings) go to the user's terminal.
                        if sink.send(Frame::Stderr(text)).await.is_err() {
                            return ChannelEnd::Closed;
                        }
                        continue;
                    }
                    _ = cancel.cancelled() => {
                        // Bounded: a stuck consumer may never take even this.
                        let close = sink.send(Frame::Close);
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), close).await;
                        return ChannelEnd::Cancelled;
                    }
                },
            };
            let Some(next) = next else {
                // Source vanished without a Close: close our side anyway.
                let _ = sink.send(Frame::Close).await;
                return ChannelEnd::Closed;
            };
            if halt.is_cancelled() {
                return ChannelEnd::Cancelled;
            }
            let (frame, permit) = match exit_first && !reported {
                true => queue::exit_before_eof(next, &mut rx, &cancel, &mut held).await,
                false => next,
            };
            reported |= matches!(frame, Frame::ExitStatus(_) | Frame::ExitSignal { .. });
            if let (Frame::Data(first), true) = (&frame, sink.gathers()) {
                let (data, permits, rest) = queue::gather(&mut rx, first.clone(), permit);
                held = rest;
                for b in &data {
                    let frame = Frame::Data(b.clone());
                    if !note(dir, &counters, tap.as_ref(), &frame, &cancel).await {
                        return fail_closed(&mut sink, &cancel).await;
                    }
                }
                if halt.is_cancelled() {
                    return ChannelEnd::Cancelled;
                }
                let sent = tokio::select! {
                    r = sink.send_data(data) => r,
                    _ = cancel.cancelled() => return ChannelEnd::Cancelled,
                };
                drop(permits);
                if sent.is_err() {
                    sink_closed.cancel();
                    return ChannelEnd::Closed;
                }
                continue;
            }
            let _permit = permit;
            if !note(dir, &counters, tap.as_ref(), &frame, &cancel).await {
                return fail_closed(&mut sink, &cancel).await;
            }
            let last = frame == Frame::Close;
            if halt.is_cancelled() {
                return ChannelEnd::Cancelled;
            }
            // A kill must not wait for a consumer that never takes the frame.
            let sent = tokio::select! {
                r = sink.send(frame) => r,
                _ = cancel.cancelled() => return ChannelEnd::Cancelled,
            };
            if sent.is_err() || last {
                sink_closed.cancel();
                return ChannelEnd::Closed;
            }
        }
    };
    // The writer decides when this direction is over; the reader is dropped then.
    tokio::pin!(reader);
    tokio::pin!(writer);
    let mut reader_done = false;
    let end = loop {
        tokio::select! {
            _ = &mut reader, if !reader_done => reader_done = true,
            end = &mut writer => break end,
        }
    };
    if stalled.load(Ordering::Relaxed) {
        ChannelEnd::Stalled
    } else {
        end
    }
}

/// The recorder is gone or refused: the frame is not delivered, this side
/// is closed, and the other direction ends too (nothing runs unrecorded).
async fn fail_closed<K: FrameSink>(sink: &mut K, cancel: &CancellationToken) -> ChannelEnd {
    cancel.cancel();
    // Bounded: a stuck consumer may never take even this.
    let close = sink.send(Frame::Close);
    let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
    ChannelEnd::Cancelled
}

/// The next notice, or never when there is no notice source (or it is gone).
async fn notice(rx: &mut Option<broadcast::Receiver<Bytes>>) -> Option<Bytes> {
    let Some(r) = rx else {
        return std::future::pending().await;
    };
    loop {
        match r.recv().await {
            Ok(b) => return Some(b),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => {
                *rx = None;
                return std::future::pending().await;
            }
        }
    }
}

mod queue;
mod tap;
use tap::note;
pub use tap::{Ack, Tap, TapRx, TapTx, Tapped, tap_queue};
#[cfg(test)]
mod tests;
