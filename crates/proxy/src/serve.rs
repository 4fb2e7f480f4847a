//! One client connection, from accept to close, on the serving thread that accepted it.
//!
//! ```text
//! accept ─▶ under maxConnections? ─▶ ConnInfo (addresses, once) ─▶ TCP listener? TLS port?
//!   TCP ─▶ splice to a backend of the listener's TCPRoute (crate::tcp)
//!   plaintext ─▶ h2c preface? ─┬─ yes ─▶ HTTP/2 loop ─▶ Pingora, one task per stream
//!                              └─ no ──▶ HTTP/1 loop: read_head (limits) ─▶ Pingora ─▶ again
//!   TLS ─▶ ClientHello (SNI) ─▶ listener ─┬─ Passthrough ─▶ splice to a backend
//!                                         ├─ HTTPS ───────▶ rustls ─▶ ALPN h2 / HTTP/1 loop
//!                                         └─ TLS Terminate ▶ rustls ─▶ splice to a backend
//! ```
//!
//! gatehouse drives HTTP/1 keep-alive and HTTP/2 stream acceptance itself rather than through
//! `ServerApp::process_new`, so that the request-head limits and the idle timeout apply
//! before Pingora sees a request, and so that every request carries its connection's
//! [`ConnInfo`] (HTTP/1: the connection context Pingora passes to each request; HTTP/2: a
//! request extension).

use crate::io::{ClientConn, HeadError, HeadLimits, Replay};
use crate::metrics::{Protocol, Reject};
use crate::proxy_protocol::{self, ProxyHeaderError};
use crate::workers::WorkerState;
use crate::{Generation, Shared, tls};
use gatehouse_model::conn::{ConnInfo, TlsInfo};
use gatehouse_model::listener::ListenerKind;
use gatehouse_model::respond::Synthetic;
use gatehouse_model::settings::Limits;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::http::v2::server::{H2Accept, HttpSession as H2Session};
use pingora_core::protocols::{Digest, IO, Stream};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Requests served on one HTTP/1.1 connection before it is closed (nginx's
/// `keepalive_requests` is 1000; closing now and then frees per-connection memory).
pub const KEEPALIVE_REQUESTS: u32 = 10_000;
/// Malformed HTTP/2 streams one connection may send before it is closed (Pingora's budget).
const MAX_MALFORMED_STREAMS: usize = 32;

/// A client connection as its requests see it.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) info: ConnInfo,
    /// Requests that reached the proxy's hooks: one Pingora refused before that (a malformed
    /// head) is told apart by this count not moving.
    pub(crate) requests: AtomicU64,
}

impl Connection {
    fn new(info: ConnInfo) -> Arc<Connection> {
        Arc::new(Connection {
            info,
            requests: AtomicU64::new(0),
        })
    }
}

/// Counts a live client connection for as long as it exists.
struct ConnectionGuard(Arc<Shared>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.connections.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// What a serving thread does with each accepted connection.
pub(crate) fn on_accept(
    worker: Arc<WorkerState>,
    shutdown: watch::Receiver<bool>,
) -> crate::listeners::OnAccept {
    Arc::new(move |tcp, peer, local| {
        let shared = &worker.shared;
        let max = shared.current().snapshot.settings.limits.max_connections;
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= max {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            shared.metrics.connection_rejected(&shared.log_limiter);
            drop(tcp);
            return;
        }
        let guard = ConnectionGuard(shared.clone());
        let worker = worker.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            serve(tcp, peer, local, &worker, &shutdown).await;
            drop(guard);
        });
    })
}

/// One accepted connection: TLS or plaintext, as the current generation says its port is.
/// On a `[proxyProtocol]` port the PROXY header comes first and names the client.
async fn serve(
    mut tcp: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    worker: &WorkerState,
    shutdown: &watch::Receiver<bool>,
) {
    let local = match local {
        Some(l) => l,
        None => match tcp.local_addr() {
            Ok(l) => l,
            Err(_) => return,
        },
    };
    let generation = worker.shared.current();
    let settings = &generation.snapshot.settings;
    let peer = if settings.proxy_protocol.expects(local.port()) {
        let timeout = settings.limits.request_header_timeout;
        match proxied_peer(&mut tcp, peer, &settings.proxy_protocol, timeout).await {
            Ok(client) => client,
            Err(e) => {
                tracing::debug!(peer = %peer, "closed: {e}");
                worker.shared.metrics.proxy_header_rejected(e.reason());
                return;
            }
        }
    } else {
        peer
    };
    let info = ConnInfo::new(local, peer);
    let (is_tls, has_tcp) = generation
        .snapshot
        .ports
        .iter()
        .find(|p| p.port == info.local.port())
        .map_or((false, false), |p| (p.tls, p.tcp));
    if has_tcp {
        let tcp_listener = generation
            .snapshot
            .listeners_at(info.local)
            .find(|(_, l)| l.protocol == gatehouse_model::listener::Protocol::TCP)
            .map(|(id, _)| id);
        if let Some(id) = tcp_listener {
            let metrics = &worker.shared.metrics;
            metrics.accepted(false);
            let _active = metrics.active(Protocol::Tcp);
            crate::tcp::serve_tcp(tcp, &info, generation, id, metrics).await;
            return;
        }
    }
    worker.shared.metrics.accepted(is_tls);
    if is_tls {
        serve_tls(tcp, info, generation, worker, shutdown).await;
    } else {
        let settings = &generation.snapshot.settings;
        let (limits, h2c) = (settings.limits, settings.http.h2c);
        drop(generation);
        serve_plaintext(tcp, info, &limits, h2c, worker, shutdown).await;
    }
}

/// The client a trusted load balancer names in the PROXY header at the start of `tcp`
/// (`peer` itself for a LOCAL header).
async fn proxied_peer(
    tcp: &mut TcpStream,
    peer: SocketAddr,
    settings: &gatehouse_model::settings::ProxyProtocol,
    timeout: Duration,
) -> Result<SocketAddr, ProxyHeaderError> {
    if !settings.trusts(peer.ip()) {
        return Err(ProxyHeaderError::Untrusted);
    }
    match tokio::time::timeout(timeout, proxy_protocol::read(tcp)).await {
        Ok(Ok(client)) => Ok(client.unwrap_or(peer)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ProxyHeaderError::Timeout),
    }
}

/// A plaintext connection: HTTP/2 with prior knowledge when its first bytes are the h2
/// preface (and `[http] h2c` allows it), else HTTP/1.
async fn serve_plaintext(
    tcp: TcpStream,
    info: ConnInfo,
    limits: &Limits,
    h2c: bool,
    worker: &WorkerState,
    shutdown: &watch::Receiver<bool>,
) {
    let fd = tcp.as_raw_fd();
    let mut conn = ClientConn::new(tcp, fd, info.local, info.peer);
    let info = Connection::new(info);
    if h2c {
        let first = async {
            loop {
                let seen = conn.buffered();
                if seen.len() >= H2_PREFACE.len() || !H2_PREFACE.starts_with(seen) {
                    return seen.starts_with(H2_PREFACE);
                }
                if !matches!(conn.fill().await, Ok(n) if n > 0) {
                    return false;
                }
            }
        };
        match tokio::time::timeout(limits.request_header_timeout, first).await {
            Ok(true) => {
                let _active = worker.shared.metrics.active(Protocol::H2c);
                return serve_h2(Box::new(conn), info, limits, worker, shutdown).await;
            }
            Ok(false) if conn.buffered().is_empty() => return,
            Ok(false) => {}
            Err(_) => {
                worker.shared.metrics.rejected(Reject::HeaderTimeout);
                return;
            }
        }
    }
    let _active = worker.shared.metrics.active(Protocol::Http1);
    serve_h1(conn, info, worker, shutdown).await;
}

/// A connection to a TLS port: read the ClientHello (bounded in bytes and time), choose the
/// listener by SNI, then pass the connection through or terminate it. Anything that goes
/// wrong closes the connection without a TLS alert.
async fn serve_tls(
    mut tcp: TcpStream,
    mut info: ConnInfo,
    generation: Arc<Generation>,
    worker: &WorkerState,
    shutdown: &watch::Receiver<bool>,
) {
    let metrics = &worker.shared.metrics;
    let port = info.local.port();
    let limits = generation.snapshot.settings.limits;
    let mut kept = Vec::new();
    let read = tls::hello::read_client_hello(&mut tcp, &mut kept);
    let hello = match tokio::time::timeout(limits.request_header_timeout, read).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            tracing::debug!(client = %info.peer, "closed: {e}");
            metrics.sni_unmatched(port, "no_client_hello");
            return;
        }
        Err(_) => {
            tracing::debug!(client = %info.peer, "closed: no ClientHello in time");
            metrics.sni_unmatched(port, "no_client_hello");
            return;
        }
    };
    let sni = hello.sni.as_deref();
    let snapshot = &generation.snapshot;
    let Some((id, listener)) = snapshot.select_listener_id(info.local, sni, None) else {
        tracing::debug!(client = %info.peer, sni = sni.unwrap_or(""), "closed: no listener for this SNI");
        metrics.sni_unmatched(port, "no_listener");
        return;
    };
    match &listener.kind {
        ListenerKind::TlsPassthrough { routes } => {
            let _active = metrics.active(Protocol::TlsPassthrough);
            let splice = tls::passthrough::Splice {
                generation: &generation,
                listener,
                routes,
                limits: &limits,
            };
            match splice.run(&info, sni, tcp, &kept).await {
                Ok(done) => metrics.passthrough_done(listener, &done),
                Err(e) => {
                    tracing::debug!(client = %info.peer, sni = sni.unwrap_or(""), "passthrough closed: {e}");
                    metrics.sni_unmatched(port, e.reason());
                }
            }
        }
        ListenerKind::TlsTerminate { routes, .. } => {
            // No route for the SNI: closed before the handshake, so no certificate is shown.
            if sni.and_then(|s| routes.lookup(s)).is_none() {
                tracing::debug!(client = %info.peer, sni = sni.unwrap_or(""), "closed: no TLSRoute for this SNI");
                metrics.sni_unmatched(port, "no_route");
                return;
            }
            let started = std::time::Instant::now();
            let labels = crate::metrics::ListenerLabels::of(listener);
            let Some((stream, _)) = handshake(
                &generation,
                id,
                &labels,
                &limits,
                &kept,
                tcp,
                &info,
                metrics,
            )
            .await
            else {
                return;
            };
            let _active = metrics.active(Protocol::TlsTerminate);
            crate::tcp::serve_terminated(stream, &info, sni, &generation, id, started, metrics)
                .await;
        }
        ListenerKind::Https { .. } => {
            let labels = crate::metrics::ListenerLabels::of(listener);
            let fd = tcp.as_raw_fd();
            let Some((stream, tls)) = handshake(
                &generation,
                id,
                &labels,
                &limits,
                &kept,
                tcp,
                &info,
                metrics,
            )
            .await
            else {
                return;
            };
            drop(generation);
            let mut conn = ClientConn::new(stream, fd, info.local, info.peer);
            conn.set_tls(tls.version, tls.cipher, tls.h2);
            info.tls = Some(TlsInfo {
                sni: hello.sni,
                h2: tls.h2,
                version: tls.version,
            });
            let info = Connection::new(info);
            if tls.h2 {
                let _active = metrics.active(Protocol::HttpsH2);
                serve_h2(Box::new(conn), info, &limits, worker, shutdown).await;
            } else {
                let _active = metrics.active(Protocol::HttpsHttp1);
                serve_h1(conn, info, worker, shutdown).await;
            }
        }
        ListenerKind::Http { .. } | ListenerKind::Tcp { .. } | ListenerKind::Udp { .. } => {}
    }
}

/// The TLS handshake of a terminating listener (bounded by `requestHeaderTimeout`), replaying
/// the ClientHello bytes already read: the stream and what it negotiated, counted by result
/// (a failure closes the connection).
#[allow(clippy::too_many_arguments)]
async fn handshake(
    generation: &Generation,
    id: gatehouse_model::decide::ListenerId,
    labels: &crate::metrics::ListenerLabels,
    limits: &Limits,
    kept: &[u8],
    tcp: TcpStream,
    info: &ConnInfo,
    metrics: &crate::metrics::Metrics,
) -> Option<(
    tokio_rustls::server::TlsStream<Replay<TcpStream>>,
    tls::terminate::Negotiated,
)> {
    let config = generation.tls.get(id).cloned()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let handshake = tokio::time::timeout(
        limits.request_header_timeout,
        acceptor.accept(Replay::new(kept, tcp)),
    );
    match handshake.await {
        Ok(Ok(s)) => {
            let negotiated = tls::terminate::negotiated(s.get_ref().1);
            metrics.tls_handshake(labels, "ok", negotiated.version);
            Some((s, negotiated))
        }
        Ok(Err(e)) => {
            tracing::debug!(client = %info.peer, "TLS handshake failed: {e}");
            metrics.tls_handshake(labels, "failed", "");
            None
        }
        Err(_) => {
            tracing::debug!(client = %info.peer, "TLS handshake timed out");
            metrics.tls_handshake(labels, "timeout", "");
            None
        }
    }
}

/// HTTP/1 keep-alive: wait for a whole request head within the limits, hand the request to
/// Pingora, and start over on the same connection while Pingora says it can be reused.
async fn serve_h1<S>(
    mut conn: ClientConn<S>,
    info: Arc<Connection>,
    worker: &WorkerState,
    shutdown: &watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug + 'static,
    ClientConn<S>: IO,
{
    let shared = &worker.shared;
    let mut first = true;
    let mut persistent: Option<HttpPersistentSettings> = None;
    loop {
        let limits = shared.current().snapshot.settings.limits;
        let head = HeadLimits {
            idle: limits.idle_timeout,
            from_start: first,
            header_timeout: limits.request_header_timeout,
            max_bytes: limits.max_request_header_bytes,
            max_headers: limits.max_request_headers,
        };
        let waited = tokio::select! {
            biased;
            r = conn.read_head(&head) => r,
            // Shutting down: a connection waiting for its next request closes now.
            _ = closing(shutdown), if !first => Err(HeadError::Closed),
        };
        if let Err(e) = waited {
            refuse_head(&mut conn, &e, &info.info, shared).await;
            return;
        }
        let mut session = ServerSession::new_http1(Box::new(conn));
        match persistent.take() {
            Some(p) => p.apply_to_session(&mut session),
            None => session.set_keepalive_reuses_remaining(Some(KEEPALIVE_REQUESTS)),
        }
        let keepalive = !*shutdown.borrow();
        session.set_keepalive(keepalive.then(|| limits.idle_timeout.as_secs().max(1)));
        session.set_connection_user_context(Some(Box::new(info.clone())));
        first = false;
        let seen = info.requests.load(Ordering::Relaxed);
        let Some(reused) = worker.proxy.process_new_http(session, shutdown).await else {
            if info.requests.load(Ordering::Relaxed) == seen {
                // Pingora answered 400 (or 405 to CONNECT) before routing.
                shared.metrics.rejected(Reject::Malformed);
                tracing::debug!(client = %info.info.peer, "malformed request head: 400");
            }
            return;
        };
        let (stream, settings) = reused.consume();
        persistent = settings;
        match stream.into_any().downcast::<ClientConn<S>>() {
            Ok(c) => conn = *c,
            Err(_) => return,
        }
    }
}

/// Resolves when the data plane starts shutting down.
async fn closing(shutdown: &watch::Receiver<bool>) {
    let mut rx = shutdown.clone();
    let _ = rx.wait_for(|s| *s).await;
}

/// A request head that could not be read: counted, answered when it was refused, closed.
async fn refuse_head<S>(conn: &mut ClientConn<S>, e: &HeadError, info: &ConnInfo, shared: &Shared)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(reason) = e.reason() else { return };
    shared.metrics.rejected(reason);
    tracing::debug!(client = %info.peer, reason = reason.label(), "request head refused");
    let answer = match e {
        HeadError::TooLarge | HeadError::TooManyHeaders => Synthetic::headers_too_large(),
        // A connection that sent nothing at all is closed without a word.
        HeadError::Timeout if conn.buffered().is_empty() => return,
        HeadError::Timeout => Synthetic::request_timeout(),
        _ => return,
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write_synthetic(conn, &answer)).await;
}

/// Writes a gateway answer on an HTTP/1 connection outside Pingora, and closes.
async fn write_synthetic<W: AsyncWrite + Unpin>(w: &mut W, s: &Synthetic) -> std::io::Result<()> {
    let reason = http::StatusCode::from_u16(s.status)
        .ok()
        .and_then(|c| c.canonical_reason())
        .unwrap_or("");
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n",
        s.status,
        s.body.len()
    );
    for (n, v) in &s.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(s.body);
    w.write_all(out.as_bytes()).await?;
    w.shutdown().await
}

/// Streams of one HTTP/2 connection in flight; the connection is idle when there are none.
#[derive(Default)]
struct ActiveStreams {
    count: AtomicUsize,
    idle: Notify,
}

struct StreamGuard(Arc<ActiveStreams>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl ActiveStreams {
    fn start(self: &Arc<Self>) -> StreamGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        StreamGuard(self.clone())
    }

    /// Resolves once no stream has been in flight for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {
                        if self.count.load(Ordering::SeqCst) == 0 {
                            return;
                        }
                    }
                    _ = notified => {}
                }
            } else {
                notified.await;
            }
        }
    }
}

/// HTTP/2: accept streams until the client closes, the connection idles past
/// `idleTimeout`, or shutdown (a GOAWAY, then the streams in flight finish). Each stream is
/// one request handed to Pingora in a task of its own.
async fn serve_h2(
    stream: Stream,
    info: Arc<Connection>,
    limits: &Limits,
    worker: &WorkerState,
    shutdown: &watch::Receiver<bool>,
) {
    let digest = Arc::new(Digest {
        ssl_digest: stream.get_ssl_digest(),
        timing_digest: Vec::new(),
        proxy_digest: None,
        socket_digest: stream.get_socket_digest(),
    });
    let mut options = pingora_core::protocols::http::v2::server::default_h2_options();
    options.max_concurrent_streams(limits.h2_max_concurrent_streams);
    options
        .max_header_list_size(u32::try_from(limits.max_request_header_bytes).unwrap_or(u32::MAX));
    let handshake = pingora_core::protocols::http::v2::server::handshake(stream, Some(options));
    let mut h2 = match tokio::time::timeout(limits.request_header_timeout, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(client = %info.info.peer, "HTTP/2 handshake failed: {e}");
            return;
        }
        Err(_) => {
            worker.shared.metrics.rejected(Reject::HeaderTimeout);
            return;
        }
    };
    let active = Arc::new(ActiveStreams::default());
    let mut shutdown_rx = shutdown.clone();
    let mut going_away = *shutdown.borrow();
    if going_away {
        h2.graceful_shutdown();
    }
    let mut malformed = 0;
    loop {
        let next = if going_away {
            H2Session::from_h2_conn(&mut h2, digest.clone()).await
        } else {
            tokio::select! {
                biased;
                _ = shutdown_rx.changed() => {
                    h2.graceful_shutdown();
                    going_away = true;
                    continue;
                }
                s = H2Session::from_h2_conn(&mut h2, digest.clone()) => s,
                _ = active.idle_for(limits.idle_timeout) => {
                    tracing::debug!(client = %info.info.peer, "HTTP/2 connection idle: closed");
                    return;
                }
            }
        };
        match next {
            Err(e) => {
                tracing::debug!(client = %info.info.peer, "HTTP/2 connection ended: {e}");
                return;
            }
            Ok(None) => return,
            Ok(Some(H2Accept::Rejected)) => {
                malformed += 1;
                worker.shared.metrics.rejected(Reject::H2MalformedStream);
                if malformed >= MAX_MALFORMED_STREAMS {
                    tracing::debug!(client = %info.info.peer, "too many malformed HTTP/2 streams: closed");
                    return;
                }
            }
            Ok(Some(H2Accept::Session(s))) => {
                let mut session = ServerSession::new_http2(s);
                session
                    .req_header_mut()
                    .extensions_mut()
                    .insert(info.clone());
                let guard = active.start();
                let proxy = worker.proxy.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    proxy.process_new_http(session, &shutdown).await;
                });
            }
        }
    }
}

/// The connection facts as the proxy receives them.
pub(crate) fn connection_of(ctx: Box<dyn std::any::Any + Send + Sync>) -> Option<Arc<Connection>> {
    ctx.downcast::<Arc<Connection>>().ok().map(|b| *b)
}
