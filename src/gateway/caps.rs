//! Per-connection caps on what a client can hold open: channels of every
//! kind (sessions, `-L`/`-D`/`-W`, `-J`, the target's `-R` connections) and
//! `-R` listeners. Each open channel holds a permit until the task serving
//! it ends, so a channel that closes from either side frees its place
//! without relying on a close callback russh may skip. Nested (ProxyJump)
//! connections draw from their outer connection's cap: one TCP connection
//! is bounded as a whole.

use russh::ChannelOpenFailure;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct ChannelCap {
    permits: Arc<Semaphore>,
    max: usize,
    /// The first refusal of a connection is logged as a warning; later ones
    /// at debug, so a client hammering the cap cannot flood the log.
    warned: AtomicBool,
}

impl ChannelCap {
    pub fn new(max: u32) -> Arc<ChannelCap> {
        let max = usize::try_from(max).unwrap_or(usize::MAX).max(1);
        Arc::new(ChannelCap {
            permits: Arc::new(Semaphore::new(max)),
            max,
            warned: AtomicBool::new(false),
        })
    }

    /// A place for one more channel, or the refusal to send.
    pub fn take(&self, peer: &str) -> Result<OwnedSemaphorePermit, ChannelOpenFailure> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(source = %peer, max = self.max, "channel refused: too many open on this connection");
            } else {
                tracing::debug!(source = %peer, "channel refused: too many open on this connection");
            }
            ChannelOpenFailure::Other {
                code: 4, // SSH_OPEN_RESOURCE_SHORTAGE
                reason: format!(
                    "portcullis: too many channels open on this connection (at most {}); close some first",
                    self.max
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_come_back_when_their_holders_end() {
        let cap = ChannelCap::new(2);
        let a = cap.take("p").unwrap();
        let _b = cap.take("p").unwrap();
        let Err(ChannelOpenFailure::Other { code, reason }) = cap.take("p") else {
            panic!("a third channel was allowed");
        };
        assert_eq!(code, 4);
        assert!(reason.contains("at most 2"), "{reason}");
        drop(a);
        assert!(cap.take("p").is_ok());
    }
}
