//! The client-to-destination direction of a TCP forward, written by the SSH
//! connection's own task.
//!
//! russh hands every received packet to a channel queue that another task
//! reads. On a bulk upload through `-L` that hop (a wake-up per 32 KiB
//! packet, often on the other core) cost about a quarter of the bastion's
//! CPU and put the upload under OpenSSH's speed. Here the connection's task
//! writes each packet to the destination socket as soon as it is decrypted
//! (`Handler::data`); only what the socket does not take at once is queued,
//! bounded by the channel budget, and drained by the forward's own task. A
//! destination that takes nothing for the stall time while the budget is full
//! ends the forward, as the bridge does for every other channel.
//!
//! Order is kept by one rule: bytes go straight to the socket only while
//! nothing is queued, and the queue's front leaves it only once written.

use crate::bridge::{Counters, Frame, FrameSource};
use crate::sync::MutexExt;
use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// Buffers handed to one `writev` (well under any IOV_MAX).
const GATHER: usize = 64;

pub struct Upload {
    wr: OwnedWriteHalf,
    queue: Mutex<Queue>,
    /// Bytes the queue may still take; a packet waits for its share.
    room: Semaphore,
    budget: usize,
    /// Wakes the drainer: bytes queued, or EOF/close to pass on.
    wake: Notify,
    counters: Arc<Counters>,
    /// The forward's token: a kill, a deadline or the connection's end.
    cancel: CancellationToken,
    /// Cancelled once the client closed and everything before it was written.
    finished: CancellationToken,
    stall: Duration,
    stalled: AtomicBool,
}

#[derive(Default)]
struct Queue {
    /// Unwritten bytes, each with the budget it holds.
    bufs: VecDeque<(Bytes, u32)>,
    /// The client sent EOF (or closed): shut the socket's write side once drained.
    eof: bool,
    close: bool,
    shut: bool,
    /// The destination refused a write: drop what follows.
    broken: bool,
}

impl Upload {
    pub fn new(
        wr: OwnedWriteHalf,
        budget: usize,
        stall: Duration,
        counters: Arc<Counters>,
        cancel: CancellationToken,
    ) -> Arc<Upload> {
        let budget = budget.clamp(64 * 1024, u32::MAX as usize);
        Arc::new(Upload {
            wr,
            queue: Mutex::new(Queue::default()),
            room: Semaphore::new(budget),
            budget,
            wake: Notify::new(),
            counters,
            cancel,
            finished: CancellationToken::new(),
            stall,
            stalled: AtomicBool::new(false),
        })
    }

    /// Whether the forward ended because the destination stopped taking bytes.
    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock_or_recover()
    }

    /// One packet of the client's data, in order. Returns once it is written
    /// or queued; waits (at most the stall time) only when the queue is full.
    pub async fn push(&self, data: &[u8]) {
        if data.is_empty() || self.cancel.is_cancelled() {
            return;
        }
        let rest = {
            let mut q = self.lock();
            // Data after EOF breaks the protocol; after a failed write it has nowhere to go.
            if q.broken || q.eof {
                return;
            }
            if !q.bufs.is_empty() {
                data
            } else {
                match self.wr.try_write(data) {
                    Ok(n) => {
                        self.count(n);
                        data.get(n..).unwrap_or_default()
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => data,
                    Err(_) => {
                        self.refused(&mut q);
                        return;
                    }
                }
            }
        };
        if rest.is_empty() {
            return;
        }
        // Each queued packet costs its header and slot too (see bridge::FRAME_OVERHEAD).
        let cost = rest.len() + crate::bridge::FRAME_OVERHEAD;
        let share = u32::try_from(cost.min(self.budget)).unwrap_or(u32::MAX);
        let acquire = tokio::time::timeout(self.stall, self.room.acquire_many(share));
        let permit = tokio::select! {
            p = acquire => p,
            _ = self.cancel.cancelled() => return,
        };
        match permit {
            Ok(Ok(p)) => p.forget(),
            Ok(Err(_)) => return,
            Err(_) => return self.stall(),
        }
        let mut q = self.lock();
        if q.broken {
            self.room.add_permits(share as usize);
            return;
        }
        q.bufs.push_back((Bytes::copy_from_slice(rest), share));
        drop(q);
        self.wake.notify_one();
    }

    /// Bytes that reached the destination's socket: what the audit reports.
    fn count(&self, n: usize) {
        self.counters.up.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The destination's full budget took nothing for the stall time.
    fn stall(&self) {
        self.stalled.store(true, Ordering::Relaxed);
        self.cancel.cancel();
    }

    /// The destination refused a write (reset, gone): this direction is
    /// over. Like a closed sink in the bridge, it ends the forward as
    /// "closed", and the other direction still delivers what it holds.
    fn refused(&self, q: &mut Queue) {
        self.give_up(q);
        self.finished.cancel();
    }

    /// The relay ended (the destination closed, a kill): nothing more is
    /// taken, and a `push` waiting for room returns at once.
    pub fn stop(&self) {
        self.give_up(&mut self.lock());
    }

    fn give_up(&self, q: &mut Queue) {
        q.broken = true;
        q.bufs.clear();
        self.room.close();
    }

    /// The client's EOF: the destination sees it once every byte before it is written.
    pub fn eof(&self) {
        self.end(false);
    }

    /// The client closed the channel: EOF for the destination, then the
    /// forward ends (see [`Upload::frames`]).
    pub fn close(&self) {
        self.end(true);
    }

    fn end(&self, close: bool) {
        let mut q = self.lock();
        q.eof = true;
        q.close |= close;
        if q.bufs.is_empty() {
            self.finish(&mut q);
        } else {
            drop(q);
            self.wake.notify_one();
        }
    }

    /// With the queue empty: shut the write side after EOF, and report the close.
    fn finish(&self, q: &mut Queue) {
        if q.eof && !q.shut {
            q.shut = true;
            let _ = socket2::SockRef::from(self.wr.as_ref()).shutdown(std::net::Shutdown::Write);
        }
        if q.close {
            self.finished.cancel();
        }
    }

    /// Writes what the socket would not take at once, until the forward ends.
    /// Runs on the forward's task.
    pub async fn drain(&self) {
        loop {
            match self.write_queued() {
                Written::Empty => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = self.cancel.cancelled() => return,
                        _ = self.finished.cancelled() => return,
                    }
                }
                Written::Blocked => {
                    // A destination may pause reading while nobody waits on
                    // it; once the budget is full or the client has closed,
                    // a pause of the stall time ends the forward.
                    let limit = self.waited_on().then_some(self.stall);
                    let writable = async {
                        match limit {
                            Some(d) => tokio::time::timeout(d, self.wr.writable()).await.is_ok(),
                            None => {
                                let _ = self.wr.writable().await;
                                true
                            }
                        }
                    };
                    tokio::select! {
                        moved = writable => if !moved {
                            return self.stall();
                        },
                        _ = self.cancel.cancelled() => return,
                    }
                }
                Written::Broken => return,
            }
        }
    }

    fn waited_on(&self) -> bool {
        self.room.available_permits() == 0 || self.lock().close
    }

    /// Writes the queue until it is empty or the socket is full.
    fn write_queued(&self) -> Written {
        let mut q = self.lock();
        loop {
            if q.broken {
                return Written::Broken;
            }
            if q.bufs.is_empty() {
                self.finish(&mut q);
                return Written::Empty;
            }
            let slices: Vec<IoSlice<'_>> = q
                .bufs
                .iter()
                .take(GATHER)
                .map(|(b, _)| IoSlice::new(b))
                .collect();
            let n = match self.wr.try_write_vectored(&slices) {
                Ok(n) if n > 0 => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Written::Blocked,
                _ => {
                    self.refused(&mut q);
                    return Written::Broken;
                }
            };
            self.count(n);
            self.advance(&mut q, n);
        }
    }

    fn advance(&self, q: &mut Queue, mut n: usize) {
        while n > 0 {
            let Some((b, share)) = q.bufs.front_mut() else {
                return;
            };
            if n < b.len() {
                b.advance(n);
                return;
            }
            n -= b.len();
            let share = *share as usize;
            q.bufs.pop_front();
            self.room.add_permits(share);
        }
    }

    /// The bridge's view of this direction: nothing but the client's close,
    /// once everything before it reached the destination.
    pub fn frames(self: &Arc<Self>) -> Frames {
        Frames {
            up: self.clone(),
            done: false,
        }
    }
}

enum Written {
    Empty,
    Blocked,
    Broken,
}

pub struct Frames {
    up: Arc<Upload>,
    done: bool,
}

impl FrameSource for Frames {
    async fn recv(&mut self) -> Option<Frame> {
        if self.done {
            return None;
        }
        self.up.finished.cancelled().await;
        self.done = true;
        Some(Frame::Close)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (OwnedWriteHalf, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        let (_rd, wr) = c.unwrap().into_split();
        (wr, s.unwrap().0)
    }

    fn upload(wr: OwnedWriteHalf, budget: usize, stall: Duration) -> Arc<Upload> {
        Upload::new(
            wr,
            budget,
            stall,
            Arc::new(Counters::default()),
            CancellationToken::new(),
        )
    }

    #[tokio::test]
    async fn bytes_arrive_in_order_past_a_full_socket_then_eof_then_close() {
        let (wr, mut dest) = pair().await;
        let up = upload(wr, 1 << 20, Duration::from_secs(10));
        let drainer = tokio::spawn({
            let up = up.clone();
            async move { up.drain().await }
        });
        let data: Vec<u8> = (0..6_000_000u32).map(|i| (i % 251) as u8).collect();
        let reader = tokio::spawn(async move {
            // Read slowly at first so the socket fills and the queue is used.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut got = Vec::new();
            dest.read_to_end(&mut got).await.unwrap();
            got
        });
        for chunk in data.chunks(32 * 1024 - 7) {
            up.push(chunk).await;
        }
        up.close();
        let mut frames = up.frames();
        assert_eq!(frames.recv().await, Some(Frame::Close));
        assert_eq!(frames.recv().await, None);
        assert_eq!(reader.await.unwrap(), data);
        assert_eq!(up.counters.up.load(Ordering::Relaxed), data.len() as u64);
        drainer.await.unwrap();
        assert!(!up.stalled());
    }

    /// Pushes until something had to be queued (the socket is full).
    async fn fill(up: &Upload) {
        let chunk = vec![1u8; 64 * 1024];
        for _ in 0..10_000 {
            up.push(&chunk).await;
            if !up.lock().bufs.is_empty() {
                return;
            }
        }
        panic!("the socket never filled");
    }

    #[tokio::test]
    async fn a_closed_client_and_a_destination_that_stopped_reading_end_by_stall() {
        let (wr, _dest) = pair().await;
        let up = upload(wr, 64 << 20, Duration::from_millis(300));
        fill(&up).await;
        up.close();
        let start = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), up.drain())
            .await
            .expect("drain never gave up");
        assert!(up.stalled());
        assert!(start.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn stop_releases_a_push_waiting_for_room() {
        let (wr, _dest) = pair().await;
        let up = upload(wr, 64 * 1024, Duration::from_secs(30));
        fill(&up).await;
        let waiting = tokio::spawn({
            let up = up.clone();
            async move { up.push(&vec![2u8; 64 * 1024]).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "the push did not wait for room");
        up.stop();
        tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("stop did not release the push")
            .unwrap();
        assert!(!up.stalled());
    }

    #[tokio::test]
    async fn a_reset_destination_ends_this_direction_as_closed() {
        let (wr, dest) = pair().await;
        let up = upload(wr, 1 << 20, Duration::from_secs(30));
        // A zero linger makes the close a reset.
        socket2::SockRef::from(&dest)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(dest);
        let mut frames = up.frames();
        let chunk = vec![3u8; 1024];
        for _ in 0..100 {
            up.push(&chunk).await;
            if up.finished.is_cancelled() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(frames.recv().await, Some(Frame::Close));
        assert!(!up.cancel.is_cancelled(), "a reset is not a kill");
        assert!(up.counters.up.load(Ordering::Relaxed) < 100 * 1024);
    }

    #[tokio::test]
    async fn a_destination_that_takes_nothing_stalls_the_forward() {
        let (wr, _dest) = pair().await;
        let up = upload(wr, 64 * 1024, Duration::from_millis(300));
        let chunk = vec![7u8; 32 * 1024];
        let start = std::time::Instant::now();
        // Socket buffers first, then the 64 KiB budget, then the stall.
        while !up.cancel.is_cancelled() {
            up.push(&chunk).await;
            assert!(start.elapsed() < Duration::from_secs(20), "never stalled");
        }
        assert!(up.stalled());
    }
}
