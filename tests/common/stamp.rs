//! A russh client for the kill benchmarks (`bench_kill`, `bench_scale`): it
//! stamps when its connection ended and with what text, then waits for
//! `release` before freeing its session, so thousands of in-process
//! clients' teardowns are not charged to sessions still being killed.

use russh::client;
use russh::keys::PublicKeyOrCertificate;
use std::time::Instant;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// When the connection ended, and the server's disconnect text, or
/// [`TRANSPORT_ERROR`] and the error when the transport just ended.
pub type Ended = (Instant, Option<String>);

/// How an end by transport error is noted (no disconnect text read).
pub const TRANSPORT_ERROR: &str = "transport error: ";

pub struct Stamping {
    seen: Option<oneshot::Sender<Ended>>,
    release: CancellationToken,
}

impl Stamping {
    /// The handler, and where its end arrives.
    pub fn new(release: CancellationToken) -> (Stamping, oneshot::Receiver<Ended>) {
        let (tx, rx) = oneshot::channel();
        let handler = Stamping {
            seen: Some(tx),
            release,
        };
        (handler, rx)
    }
}

impl client::Handler for Stamping {
    type Error = russh::Error;
    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let at = Instant::now();
        let text = match &reason {
            client::DisconnectReason::ReceivedDisconnect(info) => Some(info.message.clone()),
            client::DisconnectReason::Error(e) => Some(format!("{TRANSPORT_ERROR}{e}")),
        };
        if let Some(tx) = self.seen.take() {
            let _ = tx.send((at, text));
        }
        self.release.cancelled().await;
        match reason {
            client::DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            client::DisconnectReason::Error(e) => Err(e),
        }
    }
}
