//! Layer-4 forwarding shared by TLS passthrough, TLS termination to TCP backends (TLSRoute
//! mode Terminate) and TCPRoute: draw a backendRef by weight, connect one of its endpoints,
//! then copy both ways until each side has closed (a half-close is passed on), or until
//! nothing has moved either way for `[limits] passthroughIdleTimeout`.
//!
//! ```text
//! rule ─▶ Backends::pick (weight) ─▶ Service pool ─▶ endpoint (next one on connect failure)
//!      ─▶ TcpStream ─▶ PROXY header (Service proxyProtocol) ─▶ TLS handshake (BackendTLSPolicy)
//!      ─▶ splice(client, backend) ─▶ Spliced (bytes, duration) ─▶ log + metrics
//! ```
//!
//! A Service port a BackendTLSPolicy targets is spoken to over TLS, as HAProxy's
//! `send-proxy ssl` does: the PROXY header goes first, in plaintext, then the handshake
//! (the policy's verification, no ALPN), then the plaintext is spliced inside the TLS
//! stream. A failed handshake is counted in `gatehouse_backend_tls_errors_total`, logged,
//! and the next endpoint is tried; when none is left the client connection is closed.
//! Shutting down the backend side sends close_notify and then the TCP FIN; a backend that
//! closes its TCP side without close_notify ends its direction like a plain EOF would (the
//! client side is plaintext TCP and could not tell the two apart).
//!
//! The connection keeps the generation it started on (its pools and rules) until it ends, so
//! a reload never cuts it.

use crate::Generation;
use crate::backends::{NoEndpoint, Pool};
use gatehouse_model::backend::{Backend, BackendTarget, Backends, Pick, Unresolved};
use gatehouse_model::conn::ConnInfo;
use gatehouse_model::decide::ListenerId;
use gatehouse_model::listener::Listener;
use gatehouse_model::settings::Limits;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How long connecting to one backend endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Copy buffer per direction.
const BUFFER: usize = 16 * 1024;

/// Why a connection was closed without reaching a backend.
#[derive(Debug, thiserror::Error)]
pub enum L4Error {
    #[error("no route for this connection")]
    NoRoute,
    #[error("the backendRef drawn is not resolved")]
    Unresolved,
    #[error("the route has no backend with weight")]
    NoBackend,
    #[error("no endpoint of the backend could be reached")]
    NoEndpoint,
    #[error("no TLS connection to the backend as its BackendTLSPolicy requires")]
    BackendTls,
}

impl L4Error {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            L4Error::NoRoute => "no_route",
            L4Error::Unresolved => "unresolved_backend",
            L4Error::NoBackend => "no_backend",
            L4Error::NoEndpoint => "no_endpoint",
            L4Error::BackendTls => "backend_tls",
        }
    }
}

/// A backend connection: plain TCP, or TLS over TCP for a BackendTLSPolicy.
#[derive(Debug)]
pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => match Pin::new(s.as_mut()).poll_read(cx, buf) {
                // TCP closed without close_notify: an EOF to the plaintext client all the
                // same (see the module documentation).
                Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    Poll::Ready(Ok(()))
                }
                other => other,
            },
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    /// For TLS: close_notify, then the TCP FIN.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A backend connection, with the backendRef and endpoint it went to.
#[derive(Debug)]
pub struct Upstream<'a> {
    pub stream: UpstreamStream,
    pub backend: &'a Backend,
    pub endpoint: SocketAddr,
}

/// Draws a backendRef of `backends` by weight and connects one of its endpoints, trying the
/// next endpoint when one fails. A draw that lands on an unresolved backendRef fails the
/// connection: the Gateway API rejects that share of connections.
///
/// A Service with `proxyProtocol` gets the PROXY header for `client` before anything else;
/// a Service port a BackendTLSPolicy targets then gets the TLS handshake, presenting the
/// client certificate of the Gateway of `listener` (the one the client came in on), if any.
pub async fn connect<'a>(
    generation: &Generation,
    backends: &'a Backends,
    limits: &Limits,
    client: &ConnInfo,
    listener: Option<ListenerId>,
) -> Result<Upstream<'a>, L4Error> {
    let Drawn {
        backend,
        service,
        target_port,
        tls,
        pool,
    } = draw(generation, backends)?;
    // Built when the snapshot was applied; a policy whose client configuration could not be
    // built fails closed.
    let tls = match tls {
        Some(id) => Some(
            generation
                .upstream_tls
                .stream(id, listener)
                .ok_or(L4Error::BackendTls)?,
        ),
        None => None,
    };
    let proxy_protocol = generation
        .snapshot
        .services
        .get(service)
        .and_then(|s| s.proxy_protocol);
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut tls_failed = false;
    let (stream, endpoint) = loop {
        let (target, addr) = match pool.pick(target_port, &tried) {
            Ok(t) => t,
            Err(NoEndpoint::Empty | NoEndpoint::NoneHealthy) if tls_failed => {
                return Err(L4Error::BackendTls);
            }
            Err(NoEndpoint::Empty | NoEndpoint::NoneHealthy) => return Err(L4Error::NoEndpoint),
        };
        tried.push(addr);
        let mut stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(endpoint = %addr, "backend connect failed: {e}");
                pool.connect_failed(&target);
                continue;
            }
            Err(_) => {
                tracing::debug!(endpoint = %addr, "backend connect timed out");
                pool.connect_failed(&target);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        set_keepalive(&stream, limits);
        if let Some(version) = proxy_protocol {
            // Before TLS, in plaintext, as HAProxy's `send-proxy` with `ssl` does.
            let header = crate::proxy_protocol::encode(version, client.peer, client.local);
            if let Err(e) = stream.write_all(&header).await {
                tracing::debug!(endpoint = %addr, "sending the PROXY header failed: {e}");
                return Err(L4Error::NoEndpoint);
            }
        }
        let Some(tls) = tls else {
            pool.connect_succeeded(&target);
            break (UpstreamStream::Plain(stream), addr);
        };
        match tls.handshake_within(stream, CONNECT_TIMEOUT).await {
            Ok(s) => {
                pool.connect_succeeded(&target);
                break (UpstreamStream::Tls(Box::new(s)), addr);
            }
            Err((why, message)) => {
                tracing::warn!(
                    endpoint = %addr,
                    policy = tls.policy(),
                    reason = why.label(),
                    "TLS to backend {addr} for BackendTLSPolicy {} failed ({}): {message}",
                    tls.policy(),
                    why.label()
                );
                pool.connect_failed(&target);
                tls_failed = true;
            }
        }
    };
    Ok(Upstream {
        stream,
        backend,
        endpoint,
    })
}

/// A backendRef drawn by weight, with the Service pool and port it leads to.
#[derive(Debug)]
pub struct Drawn<'a> {
    pub backend: &'a Backend,
    /// The Service's index in the snapshot.
    pub service: usize,
    pub target_port: u16,
    /// The BackendTLSPolicy of the Service port, if one targets it.
    pub tls: Option<gatehouse_model::backend_tls::BackendTlsId>,
    pub pool: Arc<Pool>,
}

/// Draws a backendRef of `backends` by weight (a fresh random number per call: per
/// connection for TCP, per flow for UDP). A draw that lands on an unresolved backendRef is
/// an error: the Gateway API rejects that share of traffic.
pub fn draw<'a>(generation: &Generation, backends: &'a Backends) -> Result<Drawn<'a>, L4Error> {
    let backend = match backends.pick(fastrand::u64(..)) {
        Pick::Backend(_, b) => b,
        Pick::AllWeightsZero | Pick::NoBackends => return Err(L4Error::NoBackend),
    };
    let (service, target_port, tls) = match &backend.target {
        BackendTarget::Service {
            service,
            target_port,
            tls,
            ..
        } => (*service, *target_port, *tls),
        BackendTarget::Unresolved(Unresolved::InvalidBackendTls) => {
            return Err(L4Error::BackendTls);
        }
        BackendTarget::Unresolved(_) => return Err(L4Error::Unresolved),
    };
    let pool = generation.pools.get(service).ok_or(L4Error::Unresolved)?;
    Ok(Drawn {
        backend,
        service,
        target_port,
        tls,
        pool: pool.clone(),
    })
}

/// TCP keepalive per `[limits] tcpKeepalive` (off at zero).
pub fn set_keepalive(stream: &TcpStream, limits: &Limits) {
    if limits.tcp_keepalive.is_zero() {
        return;
    }
    let ka = socket2::TcpKeepalive::new()
        .with_time(limits.tcp_keepalive)
        .with_interval(Duration::from_secs(10))
        .with_retries(6);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&ka);
}

/// A finished spliced connection.
#[derive(Debug)]
pub struct Spliced {
    /// `namespace/name` of the route.
    pub route: String,
    /// Bytes from the client to the backend (for passthrough, the ClientHello included).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// From the first byte of routing to the close.
    pub duration: Duration,
}

/// What the access log says of a spliced connection.
#[derive(Debug)]
pub struct AccessLog<'a> {
    /// `passthrough`, `tls_terminate` or `tcp`: the log line's message.
    pub mode: &'static str,
    pub info: &'a ConnInfo,
    pub sni: Option<&'a str>,
    pub listener: &'a Listener,
    pub backend: &'a str,
    pub endpoint: SocketAddr,
}

impl AccessLog<'_> {
    /// Writes the access log line of `done`, when `[log] accessLog` is on.
    pub fn write(&self, generation: &Generation, done: &Spliced) {
        if !generation.snapshot.settings.log.access_log {
            return;
        }
        tracing::info!(
            target: "gatehouse::access",
            client = %self.info.peer,
            sni = self.sni.unwrap_or_default(),
            listener = %self.listener.label(),
            route = %done.route,
            backend = %self.backend,
            endpoint = %self.endpoint,
            bytes_in = done.bytes_in,
            bytes_out = done.bytes_out,
            duration_ms = done.duration.as_secs_f64() * 1000.0,
            "{}",
            self.mode
        );
    }
}

/// Splices `client` and `upstream` and measures the result: `sent_before` bytes already
/// went to the backend (a kept ClientHello), `started` is when the connection was routed.
pub async fn run_splice<A, B>(
    client: &mut A,
    upstream: &mut B,
    limits: &Limits,
    route: String,
    sent_before: u64,
    started: Instant,
) -> Spliced
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let ((to_backend, to_client), idle) =
        splice(client, upstream, limits.passthrough_idle_timeout).await;
    if idle {
        tracing::debug!(route = %route, "idle for passthroughIdleTimeout: closed");
    }
    Spliced {
        route,
        bytes_in: to_backend + sent_before,
        bytes_out: to_client,
        duration: started.elapsed(),
    }
}

/// Copies both ways until both sides have closed or nothing moved for `idle`. When one side
/// ends its sending (EOF), the other side's sending is shut down and the opposite direction
/// keeps going: a half-close is passed on. Returns the bytes copied (client to backend,
/// backend to client) and whether it ended idle.
pub async fn splice<A, B>(client: &mut A, upstream: &mut B, idle: Duration) -> ((u64, u64), bool)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let last = AtomicU64::new(0);
    let epoch = tokio::time::Instant::now();
    let mut a = Activity {
        io: client,
        last: &last,
        epoch,
        count: 0,
    };
    let mut b = Activity {
        io: upstream,
        last: &last,
        epoch,
        count: 0,
    };
    let watchdog = async {
        loop {
            let since = Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = epoch + since + idle;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    let idled = tokio::select! {
        r = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, BUFFER, BUFFER) => {
            let _ = r;
            false
        }
        _ = watchdog => true,
    };
    ((a.count, b.count), idled)
}

/// A stream that notes when bytes last moved through it, for the idle watchdog.
struct Activity<'a, S> {
    io: &'a mut S,
    last: &'a AtomicU64,
    epoch: tokio::time::Instant,
    /// Bytes read from this side.
    count: u64,
}

impl<S> Activity<'_, S> {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut *self.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.count += n as u64;
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut *self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn splice_passes_a_half_close_on_and_keeps_the_other_direction() {
        let (mut client, mut client_end) = tokio::io::duplex(1024);
        let (mut backend, mut backend_end) = tokio::io::duplex(1024);
        let task = tokio::spawn(async move {
            splice(&mut client_end, &mut backend_end, Duration::from_secs(60)).await
        });
        client.write_all(b"request").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        backend.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request");
        backend.write_all(b"answer after EOF").await.unwrap();
        backend.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"answer after EOF");
        let ((up, down), idle) = task.await.unwrap();
        assert_eq!((up, down, idle), (7, 16, false));
    }
}
