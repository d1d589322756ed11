//! A read-ahead for russh's transports. russh reads each packet as a 16-byte
//! header and then its body: two syscalls per packet on a bulk transfer, and
//! on loopback each read also sends the peer a window update. One larger
//! read serves several packets. The buffer is let go whenever the stream has
//! nothing more, so an idle connection holds none. Writes pass through.

use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read at a time when the caller asks for less.
const READ_AHEAD: usize = 64 * 1024;

pub struct ReadAhead<S> {
    inner: S,
    /// Read from the stream, not yet handed to the caller.
    ahead: BytesMut,
}

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> ReadAhead<S> {
        ReadAhead {
            inner,
            ahead: BytesMut::new(),
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.ahead.is_empty() {
            if buf.remaining() >= READ_AHEAD {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            this.ahead.reserve(READ_AHEAD);
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.ahead) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    this.ahead = BytesMut::new();
                    return Poll::Pending;
                }
            }
        }
        // Empty here only at EOF, which an empty read reports.
        let n = this.ahead.len().min(buf.remaining());
        buf.put_slice(&this.ahead[..n]);
        this.ahead.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_and_large_reads_see_every_byte_in_order() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(7_777) {
                b.write_all(chunk).await.unwrap();
            }
        });
        let mut s = ReadAhead::new(a);
        let mut got = Vec::new();
        let mut header = [0u8; 16];
        while got.len() < data.len() {
            // Like russh: a short header read, then a long body read.
            let n = s.read(&mut header).await.unwrap();
            got.extend_from_slice(&header[..n]);
            let mut body = vec![0u8; 100_000.min(data.len() - got.len())];
            s.read_exact(&mut body).await.unwrap();
            got.extend_from_slice(&body);
        }
        writer.await.unwrap();
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn an_idle_stream_holds_no_buffer() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut s = ReadAhead::new(a);
        b.write_all(b"abc").await.unwrap();
        let mut one = [0u8; 3];
        s.read_exact(&mut one).await.unwrap();
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), s.read(&mut one));
        assert!(pending.await.is_err(), "nothing more to read");
        assert_eq!(s.ahead.capacity(), 0);
    }
}
