//! A TCP connection as the bridge's frame source and sink.
//!
//! The client's CHANNEL_CLOSE means it is done with both directions, so the
//! sink's `Close` also ends the source: a destination that never answers
//! cannot keep a forward alive after the client let go of it.

use crate::bridge::{Frame, FrameSink, FrameSource, SinkClosed};
use bytes::{Buf, Bytes, BytesMut};
use std::io::IoSlice;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;

/// Bytes read from the destination at a time.
const READ_CHUNK: usize = 64 * 1024;

pub struct TcpSource {
    rd: OwnedReadHalf,
    buf: BytesMut,
    /// Cancelled when the client closed the channel.
    closed: CancellationToken,
    /// 0: reading, 1: EOF sent (Close next), 2: done.
    state: u8,
}

pub struct TcpSink {
    wr: OwnedWriteHalf,
    closed: CancellationToken,
}

pub fn split(stream: TcpStream) -> (TcpSource, TcpSink) {
    let (rd, wr) = stream.into_split();
    let closed = CancellationToken::new();
    (
        TcpSource {
            rd,
            buf: BytesMut::with_capacity(READ_CHUNK),
            closed: closed.clone(),
            state: 0,
        },
        TcpSink { wr, closed },
    )
}

/// For a forward whose client bytes `forward::upload` writes: the source,
/// the write half it writes to, and the sink that carries only the client's
/// close (which also ends the source, as [`TcpSink`]'s does).
pub fn split_for_upload(stream: TcpStream) -> (TcpSource, OwnedWriteHalf, CloseSink) {
    let (source, sink) = split(stream);
    let TcpSink { wr, closed } = sink;
    (source, wr, CloseSink { closed })
}

pub struct CloseSink {
    closed: CancellationToken,
}

impl FrameSink for CloseSink {
    async fn send(&mut self, frame: Frame) -> Result<(), SinkClosed> {
        if frame == Frame::Close {
            self.closed.cancel();
        }
        Ok(())
    }
}

impl FrameSource for TcpSource {
    async fn recv(&mut self) -> Option<Frame> {
        match self.state {
            0 => {}
            1 => {
                self.state = 2;
                return Some(Frame::Close);
            }
            _ => return None,
        }
        if self.buf.capacity() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        let read = tokio::select! {
            r = self.rd.read_buf(&mut self.buf) => r,
            _ = self.closed.cancelled() => {
                self.state = 2;
                return Some(Frame::Close);
            }
        };
        match read {
            Ok(n) if n > 0 => Some(Frame::Data(self.buf.split().freeze())),
            // EOF or a reset: the destination is done sending.
            _ => {
                self.state = 1;
                Some(Frame::Eof)
            }
        }
    }
}

impl FrameSink for TcpSink {
    async fn send(&mut self, frame: Frame) -> Result<(), SinkClosed> {
        match frame {
            Frame::Data(b) => self.wr.write_all(&b).await.map_err(|_| SinkClosed),
            // Half-close: the destination sees EOF and may still answer.
            Frame::Eof => {
                let _ = self.wr.shutdown().await;
                Ok(())
            }
            Frame::Close => {
                let _ = self.wr.shutdown().await;
                self.closed.cancel();
                Ok(())
            }
            // A direct-tcpip channel carries no requests, stderr or exit reports.
            _ => Ok(()),
        }
    }

    async fn send_data(&mut self, mut data: Vec<Bytes>) -> Result<(), SinkClosed> {
        write_all_vectored(&mut self.wr, &mut data)
            .await
            .map_err(|_| SinkClosed)
    }

    fn gathers(&self) -> bool {
        true
    }
}

/// Writes every buffer, as few syscalls as the socket takes them in.
async fn write_all_vectored(wr: &mut OwnedWriteHalf, data: &mut [Bytes]) -> std::io::Result<()> {
    let mut first = 0;
    loop {
        // Skip empty buffers so a batch of them cannot look like a zero write.
        while data.get(first).is_some_and(|b| b.is_empty()) {
            first += 1;
        }
        if first == data.len() {
            return Ok(());
        }
        let slices: Vec<IoSlice<'_>> = data[first..].iter().map(|b| IoSlice::new(b)).collect();
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let Some(b) = data.get_mut(first) else { break };
            if n >= b.len() {
                n -= b.len();
                first += 1;
            } else {
                b.advance(n);
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn half_close_then_answer_then_close() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(&got).await.unwrap();
        });
        let (mut src, mut sink) = split(TcpStream::connect(addr).await.unwrap());
        sink.send(Frame::Data(Bytes::from_static(b"hello")))
            .await
            .unwrap();
        sink.send(Frame::Eof).await.unwrap();
        let mut echoed = Vec::new();
        loop {
            match src.recv().await {
                Some(Frame::Data(b)) => echoed.extend_from_slice(&b),
                Some(Frame::Eof) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(echoed, b"hello");
        assert_eq!(src.recv().await, Some(Frame::Close));
        assert_eq!(src.recv().await, None);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_socket_buffer_arrives_whole() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let (_src, mut sink) = split(TcpStream::connect(addr).await.unwrap());
        let data: Vec<u8> = (0..8_000_000u32).map(|i| (i % 253) as u8).collect();
        // Uneven pieces, and empty ones, which must not read as a zero write.
        let mut batch = vec![Bytes::new()];
        for chunk in data.chunks(99_999) {
            batch.push(Bytes::copy_from_slice(chunk));
            batch.push(Bytes::new());
        }
        sink.send_data(batch).await.unwrap();
        sink.send(Frame::Eof).await.unwrap();
        assert_eq!(server.await.unwrap(), data);
    }

    #[tokio::test]
    async fn client_close_ends_a_silent_destination() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            drop(s);
        });
        let (mut src, mut sink) = split(TcpStream::connect(addr).await.unwrap());
        sink.send(Frame::Close).await.unwrap();
        let f = tokio::time::timeout(std::time::Duration::from_secs(2), src.recv()).await;
        assert_eq!(f.unwrap(), Some(Frame::Close));
    }
}
