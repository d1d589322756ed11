//! A TCP stream the bastion can cut at once. russh runs each session on a
//! task of its own; a disconnect request waits in that task's queue (and
//! cannot be sent at all mid key exchange), so the login grace timer and the
//! kill switch cut the transport under it instead: the next read or write
//! fails, wherever the session is.
//!
//! Once a killed session has sent its disconnect and asks to shut its side
//! down, the read side is parked until the cut: nothing more is needed from
//! the client, and a mass kill then does not pay every session's teardown
//! (freeing key buffers, closing channels and upstreams) while other clients
//! still wait for their disconnect. The FIN waits for the cut too (the socket
//! is closed then): the client has its disconnect already, and sending a FIN
//! over loopback costs the sender the receiver's side of it as well — at a
//! mass kill, a third of the bastion's CPU before every client was told.
//!
use crate::registry::KillNote;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

pub struct Killable<S> {
    inner: S,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    note: Arc<KillNote>,
    /// Our side was shut down after a kill: reads wait for the cut.
    parked: bool,
}

impl<S> Killable<S> {
    pub fn new(inner: S, kill: CancellationToken, note: Arc<KillNote>) -> Killable<S> {
        Killable {
            inner,
            killed: Box::pin(kill.cancelled_owned()),
            note,
            parked: false,
        }
    }

    fn cut(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        self.killed.as_mut().poll(cx).is_ready().then(|| {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection cut by portcullis",
            )
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Killable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.cut(cx) {
            return Poll::Ready(Err(e));
        }
        if self.parked {
            // `cut` registered the waker: the cut ends the wait.
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Killable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.cut(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.note.is_killed() {
            // What was written (the disconnect) is on its way; the close at
            // the cut sends the FIN after it.
            self.note.closed();
            self.parked = true;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_cut_hides_what_was_read_ahead() {
        let (a, mut b) = tokio::io::duplex(1024);
        b.write_all(&[1u8; 100]).await.unwrap();
        let kill = CancellationToken::new();
        let a = crate::read_ahead::ReadAhead::new(a);
        let mut s = Killable::new(a, kill.clone(), Arc::default());
        let mut one = [0u8; 1];
        s.read_exact(&mut one).await.unwrap();
        kill.cancel();
        let e = s.read(&mut one).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn cancel_wakes_a_pending_read() {
        let (a, _b) = tokio::io::duplex(64);
        let kill = CancellationToken::new();
        let mut s = Killable::new(a, kill.clone(), Arc::default());
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            s.read(&mut buf).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        kill.cancel();
        let r = tokio::time::timeout(std::time::Duration::from_secs(1), reader)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn after_a_kill_and_shutdown_reads_wait_for_the_cut() {
        use tokio::io::AsyncWriteExt;
        let (a, mut b) = tokio::io::duplex(64);
        let cut = CancellationToken::new();
        let note = Arc::new(KillNote::default());
        let mut s = Killable::new(a, cut.clone(), note.clone());
        note.kill("locked", std::time::Instant::now());
        s.write_all(b"bye").await.unwrap();
        s.shutdown().await.unwrap();
        assert!(
            note.closed_at().is_some(),
            "the close after a kill is noted"
        );
        // Our FIN waits for the cut: the peer reads what was written, then
        // no end until the stream is dropped.
        let mut got = [0u8; 8];
        assert_eq!(b.read(&mut got).await.unwrap(), 3);
        assert_eq!(&got[..3], b"bye");
        let eof = tokio::time::timeout(std::time::Duration::from_millis(50), b.read(&mut got));
        assert!(eof.await.is_err(), "no FIN before the cut");
        // The peer closing would end the read at once; parked, it waits.
        b.shutdown().await.unwrap();
        drop(b);
        let (mut r, _w) = tokio::io::split(s);
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(std::time::Duration::from_millis(50), r.read(&mut buf));
        assert!(read.await.is_err(), "parked until the cut");
        cut.cancel();
        let e = r.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
    }
}
