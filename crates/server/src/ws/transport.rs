//! The byte stream under a WebSocket: a plain TCP socket (the common case, and the one that
//! matters for memory), or any other upgraded stream (TLS served by the binary itself).
//!
//! On TCP nothing is buffered between reads: the gateway waits for readiness, then reads
//! what is there into a buffer on its stack. Writes go out with `writev`: each frame's few
//! header bytes next to its shared payload, many frames per system call, no copy.
//!
//! Other streams (TLS) have no readiness without reading, so they keep a read-ahead buffer;
//! a TLS session costs tens of kilobytes of its own anyway.

use std::io::{self, IoSlice};
use std::pin::Pin;

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::codec;

/// A stream that is not a plain TCP socket.
type Boxed = Pin<Box<dyn AsyncReadWrite + Send>>;

trait AsyncReadWrite: AsyncRead + AsyncWrite {}
impl<T: AsyncRead + AsyncWrite> AsyncReadWrite for T {}

pub enum Transport {
    Tcp(TcpStream),
    Other(Box<Buffered>),
}

pub struct Buffered {
    io: Boxed,
    /// Bytes read ahead while waiting for input.
    ahead: Vec<u8>,
}

/// One frame to write: an opcode and its payload.
pub struct Frame<'a> {
    pub opcode: u8,
    pub payload: &'a [u8],
}

/// How far a batch of frames has been written: whole frames, then bytes into the next.
#[derive(Default, Clone, Copy)]
struct Progress {
    frame: usize,
    offset: usize,
}

/// Frames per `writev` (the iovec array lives on the stack while writing only).
const MAX_BATCH: usize = 64;

impl Transport {
    /// The stream hyper handed over after the upgrade, and what it had read past the request.
    pub fn from_upgraded(upgraded: hyper::upgrade::Upgraded) -> (Transport, Bytes) {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => (Transport::Tcp(parts.io.into_inner()), parts.read_buf),
            Err(other) => (
                Transport::Other(Box::new(Buffered {
                    io: Box::pin(TokioIo::new(other)),
                    ahead: Vec::new(),
                })),
                Bytes::new(),
            ),
        }
    }

    /// Ready when input may be there (it may still turn out to be nothing). Polled directly
    /// by the connection's idle wait, so that wait needs no future of its own. On TCP the
    /// waker is kept by the socket's registration (one waiting task per socket, which is
    /// how the gateway uses it).
    pub fn poll_readable(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self {
            Transport::Tcp(s) => s.poll_read_ready(cx),
            Transport::Other(b) => {
                if !b.ahead.is_empty() {
                    return std::task::Poll::Ready(Ok(()));
                }
                let mut chunk = [0u8; 4096];
                let mut rb = ReadBuf::new(&mut chunk);
                match b.io.as_mut().poll_read(cx, &mut rb) {
                    std::task::Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                        std::task::Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
                    }
                    std::task::Poll::Ready(Ok(())) => {
                        b.ahead = rb.filled().to_vec();
                        std::task::Poll::Ready(Ok(()))
                    }
                    std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
                    std::task::Poll::Pending => std::task::Poll::Pending,
                }
            }
        }
    }

    /// Waits until input may be there (it may still turn out to be nothing).
    pub async fn readable(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.readable().await,
            Transport::Other(b) => {
                if !b.ahead.is_empty() {
                    return Ok(());
                }
                let mut chunk = vec![0u8; 4096];
                let n = {
                    let mut rb = ReadBuf::new(&mut chunk);
                    std::future::poll_fn(|cx| b.io.as_mut().poll_read(cx, &mut rb)).await?;
                    rb.filled().len()
                };
                if n == 0 {
                    // End of stream: make the next `try_read` say so.
                    b.ahead = Vec::new();
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                chunk.truncate(n);
                b.ahead = chunk;
                Ok(())
            }
        }
    }

    /// Reads what is there without waiting: `Ok(0)` at the end of the stream, `WouldBlock`
    /// when nothing is.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.try_read(buf),
            Transport::Other(b) => {
                if b.ahead.is_empty() {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                let n = buf.len().min(b.ahead.len());
                buf[..n].copy_from_slice(&b.ahead[..n]);
                b.ahead.drain(..n);
                if b.ahead.is_empty() {
                    b.ahead = Vec::new();
                }
                Ok(n)
            }
        }
    }

    /// Writes whole frames, in order.
    pub async fn write_frames(&mut self, frames: &[Frame<'_>]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => {
                let mut at = Progress::default();
                while at.frame < frames.len() {
                    match write_some(s, frames, &mut at) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.writable().await?,
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Transport::Other(b) => {
                for f in frames {
                    let (h, n) = codec::frame_header(f.opcode, f.payload.len());
                    b.io.write_all(&h[..n]).await?;
                    b.io.write_all(f.payload).await?;
                }
                b.io.flush().await
            }
        }
    }

    /// Writes raw bytes (a close frame).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all(bytes).await,
            Transport::Other(b) => {
                b.io.write_all(bytes).await?;
                b.io.flush().await
            }
        }
    }

    /// No more writes (after the close frame).
    pub async fn shutdown(&mut self) {
        let _ = match self {
            Transport::Tcp(s) => s.shutdown().await,
            Transport::Other(b) => b.io.shutdown().await,
        };
    }
}

/// One `writev` of as many frames as fit, from `at` on; advances `at`. `WouldBlock` when the
/// socket takes nothing.
fn write_some(s: &TcpStream, frames: &[Frame<'_>], at: &mut Progress) -> io::Result<()> {
    let mut headers = [[0u8; 10]; MAX_BATCH];
    let mut lens = [0usize; MAX_BATCH];
    let end = (at.frame + MAX_BATCH).min(frames.len());
    for (i, f) in frames[at.frame..end].iter().enumerate() {
        let (h, n) = codec::frame_header(f.opcode, f.payload.len());
        headers[i] = h;
        lens[i] = n;
    }
    let mut slices: [IoSlice<'_>; MAX_BATCH * 2] = [IoSlice::new(&[]); MAX_BATCH * 2];
    let mut k = 0;
    for (i, f) in frames[at.frame..end].iter().enumerate() {
        let header = &headers[i][..lens[i]];
        let skip = if i == 0 { at.offset } else { 0 };
        if skip < header.len() {
            slices[k] = IoSlice::new(&header[skip..]);
            k += 1;
            slices[k] = IoSlice::new(f.payload);
            k += 1;
        } else {
            slices[k] = IoSlice::new(&f.payload[skip - header.len()..]);
            k += 1;
        }
    }
    let mut written = s.try_write_vectored(&slices[..k])?;
    if written == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    // Advance over what went out.
    while written > 0 && at.frame < frames.len() {
        let f = &frames[at.frame];
        let frame_len = codec::frame_header(f.opcode, f.payload.len()).1 + f.payload.len();
        let left = frame_len - at.offset;
        if written >= left {
            written -= left;
            at.frame += 1;
            at.offset = 0;
        } else {
            at.offset += written;
            written = 0;
        }
    }
    Ok(())
}
