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
use tokio::sync::mpsc::error::{SendError, TryRecvError};

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
