//! TLS passthrough: the connection goes, unread past its ClientHello, to a backend chosen by
//! SNI. The kept ClientHello bytes are written first, then both directions are copied until
//! each side has closed (a half-close is passed on), or until nothing has moved either way
//! for `[limits] passthroughIdleTimeout`.

use crate::Generation;
use crate::backends::NoEndpoint;
use gatehouse_model::backend::{BackendTarget, Pick};
use gatehouse_model::conn::ConnInfo;
use gatehouse_model::listener::Listener;
use gatehouse_model::settings::Limits;
use gatehouse_model::tls::SniTable;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// How long connecting to one backend endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a passthrough connection was closed without reaching a backend.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    #[error("no TLSRoute for this SNI")]
    NoRoute,
    #[error("the backendRef drawn is not resolved")]
    Unresolved,
    #[error("the route has no backend with weight")]
    NoBackend,
    #[error("no endpoint of the backend could be reached")]
    NoEndpoint,
}

impl PassthroughError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PassthroughError::NoRoute => "no_route",
            PassthroughError::Unresolved => "unresolved_backend",
            PassthroughError::NoBackend => "no_backend",
            PassthroughError::NoEndpoint => "no_endpoint",
        }
    }
}

/// A finished passthrough connection.
#[derive(Debug)]
pub struct Spliced {
    /// `namespace/name` of the TLSRoute.
    pub route: String,
    /// Bytes from the client to the backend (the ClientHello included).
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// A passthrough connection about to be spliced.
#[derive(Debug)]
pub struct Splice<'a> {
    pub generation: &'a Generation,
    pub listener: &'a Listener,
    pub routes: &'a SniTable,
    pub limits: &'a Limits,
}

impl Splice<'_> {
    /// Connects the client to a backend of the route `sni` selects and splices until both
    /// sides close, or until no byte has moved either way for `passthroughIdleTimeout`.
    pub async fn run(
        &self,
        info: &ConnInfo,
        sni: Option<&str>,
        mut client: TcpStream,
        kept: &[u8],
    ) -> Result<Spliced, PassthroughError> {
        let started = std::time::Instant::now();
        let rule = sni
            .and_then(|s| self.routes.lookup(s))
            .ok_or(PassthroughError::NoRoute)?;
        let backend = match rule.backends.pick(fastrand::u64(..)) {
            Pick::Backend(_, b) => b,
            Pick::AllWeightsZero | Pick::NoBackends => return Err(PassthroughError::NoBackend),
        };
        let BackendTarget::Service {
            service,
            target_port,
            ..
        } = &backend.target
        else {
            return Err(PassthroughError::Unresolved);
        };
        let pool = self
            .generation
            .pools
            .get(*service)
            .ok_or(PassthroughError::Unresolved)?;
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut upstream = loop {
            let (target, addr) = match pool.pick(*target_port, &tried) {
                Ok(t) => t,
                Err(NoEndpoint::Empty | NoEndpoint::NoneHealthy) => {
                    return Err(PassthroughError::NoEndpoint);
                }
            };
            tried.push(addr);
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    pool.connect_succeeded(&target);
                    break s;
                }
                Ok(Err(e)) => {
                    tracing::debug!(endpoint = %addr, "passthrough connect failed: {e}");
                    pool.connect_failed(&target);
                }
                Err(_) => {
                    tracing::debug!(endpoint = %addr, "passthrough connect timed out");
                    pool.connect_failed(&target);
                }
            }
        };
        let _ = upstream.set_nodelay(true);
        if !self.limits.tcp_keepalive.is_zero() {
            let ka = socket2::TcpKeepalive::new()
                .with_time(self.limits.tcp_keepalive)
                .with_interval(Duration::from_secs(10))
                .with_retries(6);
            let _ = socket2::SockRef::from(&upstream).set_tcp_keepalive(&ka);
        }
        if upstream.write_all(kept).await.is_err() {
            return Err(PassthroughError::NoEndpoint);
        }
        let route = rule.rule.route.namespaced_name();
        let (copied, idle) = splice(
            &mut client,
            &mut upstream,
            self.limits.passthrough_idle_timeout,
        )
        .await;
        if idle {
            tracing::debug!(client = %info.peer, route = %route, "passthrough idle: closed");
        }
        let to_backend = copied.0 + kept.len() as u64;
        if self.generation.snapshot.settings.log.access_log {
            tracing::info!(
                target: "gatehouse::access",
                client = %info.peer,
                sni = sni.unwrap_or_default(),
                listener = %self.listener.label(),
                route = %route,
                backend = %backend.name,
                endpoint = %tried.last().map(|a| a.to_string()).unwrap_or_default(),
                bytes_in = to_backend,
                bytes_out = copied.1,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "passthrough"
            );
        }
        Ok(Spliced {
            route,
            bytes_in: to_backend,
            bytes_out: copied.1,
        })
    }
}

/// Copies both ways until both sides have closed or nothing moved for `idle`. Returns the
/// bytes copied (client to backend, backend to client) and whether it ended idle.
async fn splice(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    idle: Duration,
) -> ((u64, u64), bool) {
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
        r = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, 16 * 1024, 16 * 1024) => {
            let _ = r;
            false
        }
        _ = watchdog => true,
    };
    ((a.count, b.count), idled)
}

/// A stream that notes when bytes last moved through it, for the idle watchdog.
struct Activity<'a> {
    io: &'a mut TcpStream,
    last: &'a AtomicU64,
    epoch: tokio::time::Instant,
    /// Bytes read from this side.
    count: u64,
}

impl Activity<'_> {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Activity<'_> {
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

impl AsyncWrite for Activity<'_> {
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
