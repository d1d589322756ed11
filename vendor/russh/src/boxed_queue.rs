// PORTCULLIS PATCH (issue 20: memory per idle session; no behaviour change).
//
// tokio's mpsc queues allocate their slots 32 at a time, so a queue of a
// message type of N bytes costs 32 * N bytes as soon as it exists, whether
// it ever carries a message or not. russh's session messages are large
// (`server::Msg`, `client::Msg` 136 bytes, the client's `Reply` 176), and
// every connection keeps several such queues for its whole life, nearly
// always empty. The queues here carry each message boxed (32 * 8 bytes a
// block) behind the same interface as tokio's unbounded queue: one small
// allocation per message instead of ~4-6 KiB per queue per connection.

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{SendError, TryRecvError, TrySendError};

pub(crate) fn unbounded<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (UnboundedSender(tx), UnboundedReceiver(rx))
}

pub struct UnboundedSender<T>(mpsc::UnboundedSender<Box<T>>);

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> Self {
        UnboundedSender(self.0.clone())
    }
}

impl<T> std::fmt::Debug for UnboundedSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("UnboundedSender").field(&self.0).finish()
    }
}

impl<T> UnboundedSender<T> {
    pub fn send(&self, message: T) -> Result<(), SendError<T>> {
        self.0.send(Box::new(message)).map_err(|e| SendError(*e.0))
    }
}

pub struct UnboundedReceiver<T>(mpsc::UnboundedReceiver<Box<T>>);

impl<T> std::fmt::Debug for UnboundedReceiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("UnboundedReceiver").field(&self.0).finish()
    }
}

impl<T> UnboundedReceiver<T> {
    /// Cancel safe, as tokio's: a message is only taken when this is ready.
    pub async fn recv(&mut self) -> Option<T> {
        self.0.recv().await.map(|m| *m)
    }

    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.0.try_recv().map(|m| *m)
    }

    pub fn close(&mut self) {
        self.0.close()
    }
}

// The bounded queues, boxed the same way (issue 20, third pass): the
// `Handle`'s queue to its session loop (`server::Msg`, `client::Msg`, 136
// bytes), the client's inbound-channel queue, and every channel's queue of
// `ChannelMsg` to its `Channel`. Capacity, back pressure and cancel safety
// are tokio's: only the slot holds a pointer instead of the message.

pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::channel(capacity);
    (Sender(tx), Receiver(rx))
}

pub struct Sender<T>(mpsc::Sender<Box<T>>);

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender(self.0.clone())
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Sender").field(&self.0).finish()
    }
}

impl<T> Sender<T> {
    /// Cancel safe, as tokio's: a message dropped while waiting is not sent.
    pub async fn send(&self, message: T) -> Result<(), SendError<T>> {
        self.0.send(Box::new(message)).await.map_err(|e| SendError(*e.0))
    }

    pub fn try_send(&self, message: T) -> Result<(), TrySendError<T>> {
        self.0.try_send(Box::new(message)).map_err(|e| match e {
            TrySendError::Full(m) => TrySendError::Full(*m),
            TrySendError::Closed(m) => TrySendError::Closed(*m),
        })
    }

    pub async fn reserve_owned(self) -> Result<OwnedPermit<T>, SendError<()>> {
        self.0.reserve_owned().await.map(OwnedPermit)
    }

    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// A slot reserved in a [`Sender`]'s queue (tokio's `OwnedPermit`).
pub struct OwnedPermit<T>(mpsc::OwnedPermit<Box<T>>);

impl<T> OwnedPermit<T> {
    pub fn send(self, message: T) -> Sender<T> {
        Sender(self.0.send(Box::new(message)))
    }
}

pub struct Receiver<T>(mpsc::Receiver<Box<T>>);

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Receiver").field(&self.0).finish()
    }
}

impl<T> Receiver<T> {
    /// Cancel safe, as tokio's: a message is only taken when this is ready.
    pub async fn recv(&mut self) -> Option<T> {
        self.0.recv().await.map(|m| *m)
    }

    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.0.try_recv().map(|m| *m)
    }

    pub fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx).map(|m| m.map(|m| *m))
    }

    pub fn close(&mut self) {
        self.0.close()
    }
}
