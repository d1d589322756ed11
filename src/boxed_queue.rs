//! Queues whose slots hold pointers.
//!
//! tokio allocates a queue's slots 32 at a time as soon as the queue exists
//! and keeps the block for the queue's life, so a queue of `T` costs
//! `32 × size_of::<T>()` even while nothing is ever queued. A bastion holds
//! several queues per idle channel (the bridge's lanes, the recorder's tap,
//! the gate's verdicts), each of messages far larger than a pointer: boxed,
//! a block is 32 pointers and each message costs one small allocation (next
//! to a data packet of up to 32 KiB). Capacity, back pressure and order are
//! tokio's, unchanged. The vendored russh carries the same idea for its own
//! queues (`vendor/russh/src/boxed_queue.rs`); this one is ours.

use tokio::sync::mpsc;

/// The receiving side is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue's receiver is gone")]
pub struct Closed;

/// A queue of at most `capacity` messages; `send` waits for room.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::channel(capacity);
    (Sender(tx), Receiver(rx))
}

/// A queue bounded by the caller (e.g. a byte budget), not by count.
pub fn unbounded<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (UnboundedSender(tx), UnboundedReceiver(rx))
}

#[derive(Debug)]
pub struct Sender<T>(mpsc::Sender<Box<T>>);

// Derived `Clone` would require `T: Clone`; the handle is cloneable whatever it carries.
impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Sender<T> {
    /// Waits for room; `Closed` once the receiver is gone.
    pub async fn send(&self, value: T) -> Result<(), Closed> {
        self.0.send(Box::new(value)).await.map_err(|_| Closed)
    }
}

#[derive(Debug)]
pub struct Receiver<T>(mpsc::Receiver<Box<T>>);

impl<T> Receiver<T> {
    /// `None` once every sender is gone and the queue is empty. Cancel
    /// safe, as tokio's.
    pub async fn recv(&mut self) -> Option<T> {
        self.0.recv().await.map(|b| *b)
    }
}

#[derive(Debug)]
pub struct UnboundedSender<T>(mpsc::UnboundedSender<Box<T>>);

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> UnboundedSender<T> {
    /// `Closed` once the receiver is gone.
    pub fn send(&self, value: T) -> Result<(), Closed> {
        self.0.send(Box::new(value)).map_err(|_| Closed)
    }
}

#[derive(Debug)]
pub struct UnboundedReceiver<T>(mpsc::UnboundedReceiver<Box<T>>);

impl<T> UnboundedReceiver<T> {
    /// Cancel safe, as tokio's.
    pub async fn recv(&mut self) -> Option<T> {
        self.0.recv().await.map(|b| *b)
    }

    /// The next message if one is queued now.
    pub fn try_recv(&mut self) -> Option<T> {
        self.0.try_recv().ok().map(|b| *b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn order_capacity_and_closing_are_tokios() {
        let (tx, mut rx) = bounded::<[u8; 512]>(2);
        tx.send([1; 512]).await.unwrap();
        tx.send([2; 512]).await.unwrap();
        // Full: a third send waits until one is taken.
        let third = tx.send([3; 512]);
        tokio::pin!(third);
        assert!(futures::poll!(third.as_mut()).is_pending());
        assert_eq!(rx.recv().await.unwrap()[0], 1);
        third.await.unwrap();
        assert_eq!(rx.recv().await.unwrap()[0], 2);
        assert_eq!(rx.recv().await.unwrap()[0], 3);
        drop(rx);
        assert_eq!(tx.send([4; 512]).await, Err(Closed));

        let (tx, mut rx) = unbounded::<String>();
        assert_eq!(rx.try_recv(), None);
        tx.send("a".into()).unwrap();
        tx.clone().send("b".into()).unwrap();
        assert_eq!(rx.try_recv().as_deref(), Some("a"));
        assert_eq!(rx.recv().await.as_deref(), Some("b"));
        drop(tx);
        assert_eq!(rx.recv().await, None);
    }
}
