//! [`ClientConn`]: an accepted client connection (plain TCP, or TLS over it) in the shape
//! Pingora's HTTP server takes, buffered the way Pingora buffers the streams it accepts itself.
//!
//! - Writes are buffered up to [`WRITE_BUFFER`] bytes until Pingora flushes (it does at the
//!   end of every response, and after every chunk of a streamed body), so a response head and
//!   a small body leave in one write — one TLS record on HTTPS.
//! - Reads go through a buffer that lets [`ClientConn::read_head`] wait for a whole HTTP/1 request head under the limits before
//!   Pingora parses it, so a slow or oversized head never reaches Pingora.
//! - The socket facts Pingora asks for (addresses, TLS version, ALPN) are filled in at accept
//!   time: no `getpeername` or `getsockname` per request.

use crate::metrics::Reject;
use bytes::{Buf, BytesMut};
use pingora_core::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora_core::protocols::tls::{ALPN, SslDigest};
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Bytes a response may gather before they are written: a head and a small body.
pub const WRITE_BUFFER: usize = 4096;
/// The size of one read from the socket.
const READ_CHUNK: usize = 8192;

/// An accepted client connection over the transport `S`.
pub struct ClientConn<S> {
    io: S,
    /// The idle and header deadline, reset for every request rather than made anew: a new
    /// tokio timer often has to wake the runtime's driver (a syscall), a moved one rarely.
    timer: Pin<Box<tokio::time::Sleep>>,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    socket: Arc<SocketDigest>,
    ssl: Option<Arc<SslDigest>>,
    alpn: Option<ALPN>,
    id: UniqueIDType,
}

impl<S> std::fmt::Debug for ClientConn<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConn")
            .field("id", &self.id)
            .field("buffered_read", &self.rbuf.len())
            .field("buffered_write", &self.wbuf.len())
            .finish_non_exhaustive()
    }
}

/// Why no request head was read.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The client closed the connection (or reset it) before a byte of a new request.
    Closed,
    /// No byte of a new request arrived within the idle time.
    Idle,
    /// The client closed the connection in the middle of a head.
    ClosedMidHead,
    /// The head was not complete within `requestHeaderTimeout`.
    Timeout,
    /// The head grew past `maxRequestHeaderBytes`.
    TooLarge,
    /// The head has more than `maxRequestHeaders` fields.
    TooManyHeaders,
}

impl HeadError {
    /// Why the request was refused, for the errors that refuse one.
    pub fn reason(&self) -> Option<Reject> {
        match self {
            HeadError::Closed | HeadError::Idle => None,
            HeadError::ClosedMidHead => Some(Reject::ClosedMidHeader),
            HeadError::Timeout => Some(Reject::HeaderTimeout),
            HeadError::TooLarge => Some(Reject::HeaderTooLarge),
            HeadError::TooManyHeaders => Some(Reject::TooManyHeaders),
        }
    }
}

/// The limits [`ClientConn::read_head`] enforces.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// How long to wait for the first byte of a request, unless `from_start`.
    pub idle: Duration,
    /// The header deadline runs from now, not from the first byte (a new connection).
    pub from_start: bool,
    /// How long the whole head may take from its first byte.
    pub header_timeout: Duration,
    pub max_bytes: usize,
    pub max_headers: usize,
}

/// Where the head in `buf` ends (the index after its blank line), looking for the blank line
/// from `from` on. Empty lines before a request are skipped (RFC 9112 §2.2) and bare LF line
/// endings are accepted, as HTTP/1 parsers do.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let mut i = from.max(start);
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientConn<S> {
    /// Wraps an accepted transport; `local` and `peer` are the connection's addresses.
    pub fn new(io: S, fd: i32, local: SocketAddr, peer: SocketAddr) -> ClientConn<S> {
        let digest = SocketDigest::from_raw_fd(fd);
        let _ = digest.local_addr.set(Some(PingoraAddr::Inet(local)));
        let _ = digest.peer_addr.set(Some(PingoraAddr::Inet(peer)));
        ClientConn {
            io,
            timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            rbuf: BytesMut::new(),
            wbuf: Vec::new(),
            socket: Arc::new(digest),
            ssl: None,
            alpn: None,
            id: fd,
        }
    }

    /// Marks the connection as TLS-terminated, with what the handshake negotiated.
    pub fn set_tls(&mut self, version: &'static str, cipher: &'static str, h2: bool) {
        self.ssl = Some(Arc::new(SslDigest::new(
            cipher,
            version,
            None,
            None,
            Vec::new(),
        )));
        self.alpn = Some(if h2 { ALPN::H2 } else { ALPN::H1 });
    }

    /// The bytes read but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.rbuf
    }

    /// Reads more from the transport into the read buffer; `Ok(0)` at end of stream.
    pub async fn fill(&mut self) -> io::Result<usize> {
        self.rbuf.reserve(READ_CHUNK);
        self.io.read_buf(&mut self.rbuf).await
    }

    /// Waits until the read buffer holds a whole HTTP/1 request head within `limits`. The
    /// head stays buffered for Pingora to parse.
    pub async fn read_head(&mut self, limits: &HeadLimits) -> Result<(), HeadError> {
        let mut searched: usize = 0;
        let mut deadline = limits
            .from_start
            .then(|| tokio::time::Instant::now() + limits.header_timeout);
        loop {
            if !self.rbuf.is_empty() {
                if deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + limits.header_timeout);
                }
                // A blank line may straddle the previous read: look again from 2 bytes back.
                if let Some(end) = head_end(&self.rbuf, searched.saturating_sub(2)) {
                    if end > limits.max_bytes {
                        return Err(HeadError::TooLarge);
                    }
                    let lines = self.rbuf[..end].iter().filter(|&&b| b == b'\n').count();
                    // The request line and the blank line are not fields.
                    if lines.saturating_sub(2) > limits.max_headers {
                        return Err(HeadError::TooManyHeaders);
                    }
                    return Ok(());
                }
                if self.rbuf.len() > limits.max_bytes {
                    return Err(HeadError::TooLarge);
                }
                searched = self.rbuf.len();
            }
            let wait_until = deadline.unwrap_or_else(|| tokio::time::Instant::now() + limits.idle);
            if self.timer.deadline() != wait_until {
                self.timer.as_mut().reset(wait_until);
            }
            self.rbuf.reserve(READ_CHUNK);
            let read = tokio::select! {
                biased;
                r = self.io.read_buf(&mut self.rbuf) => Ok(r),
                _ = &mut self.timer => Err(()),
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) if self.rbuf.is_empty() => return Err(HeadError::Closed),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadError::ClosedMidHead),
                Ok(Ok(_)) => {}
                Err(_) if deadline.is_none() => return Err(HeadError::Idle),
                Err(_) => return Err(HeadError::Timeout),
            }
        }
    }

    /// Writes out everything buffered.
    fn poll_flush_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut written = 0;
        let result = loop {
            if written == self.wbuf.len() {
                break Ok(());
            }
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf[written..]) {
                Poll::Ready(Ok(0)) => break Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => break Err(e),
                Poll::Pending => {
                    self.wbuf.drain(..written);
                    return Poll::Pending;
                }
            }
        };
        self.wbuf.drain(..written);
        Poll::Ready(result)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ClientConn<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.rbuf.is_empty() {
            let n = self.rbuf.len().min(buf.remaining());
            buf.put_slice(&self.rbuf[..n]);
            self.rbuf.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ClientConn<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.wbuf.len() + buf.len() > WRITE_BUFFER {
            ready!(self.poll_flush_buf(cx))?;
        }
        if buf.len() >= WRITE_BUFFER {
            return Pin::new(&mut self.io).poll_write(cx, buf);
        }
        if self.wbuf.capacity() == 0 {
            self.wbuf.reserve(WRITE_BUFFER);
        }
        self.wbuf.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush_buf(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush_buf(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<S> Drop for ClientConn<S> {
    fn drop(&mut self) {
        // Pingora flushes at the end of every response; whatever is left (a response cut
        // short) is not waited for.
        self.wbuf.clear();
    }
}

#[async_trait::async_trait]
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Shutdown for ClientConn<S> {
    async fn shutdown(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
    }
}

impl<S> UniqueID for ClientConn<S> {
    fn id(&self) -> UniqueIDType {
        self.id
    }
}

impl<S> Ssl for ClientConn<S> {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.ssl.clone()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.alpn.clone()
    }
}

impl<S> GetTimingDigest for ClientConn<S> {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        Vec::new()
    }
}

impl<S> GetProxyDigest for ClientConn<S> {
    fn get_proxy_digest(&self) -> Option<Arc<pingora_core::protocols::raw_connect::ProxyDigest>> {
        None
    }
}

impl<S> GetSocketDigest for ClientConn<S> {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        Some(self.socket.clone())
    }
}

#[async_trait::async_trait]
impl<S: Send> Peek for ClientConn<S> {}

/// A transport with bytes to replay first: the ClientHello read to choose a listener,
/// handed back to the TLS handshake.
#[derive(Debug)]
pub struct Replay<S> {
    prefix: BytesMut,
    io: S,
}

impl<S> Replay<S> {
    pub fn new(prefix: &[u8], io: S) -> Replay<S> {
        Replay {
            prefix: BytesMut::from(prefix),
            io,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_the_first_blank_line_with_crlf_or_bare_lf() {
        assert_eq!(
            head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", 0),
            Some(27)
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\nbody", 0), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
        assert_eq!(head_end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0), Some(22));
        assert_eq!(head_end(b"\r\n", 0), None);
    }
}
