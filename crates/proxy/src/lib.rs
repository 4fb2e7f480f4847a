//! The gatehouse data plane.
//!
//! ```text
//! apply(Snapshot) ─▶ Pools (endpoints) ─▶ one ArcSwap<Generation>::store ─▶ Listeners::reconcile
//! accept ─▶ connection task: plaintext? ─▶ first bytes (h2c preface or HTTP/1) ─▶ pingora HttpProxy
//!                                               └─▶ GatewayProxy (ProxyHttp): route, filters, backend
//! ```
//!
//! Pingora's own `Server` fixes its listeners at start-up, so the data plane owns the accept
//! loops ([`listeners`]) and hands each connection to one of two long-lived pingora
//! `HttpProxy` instances (`ServerApp::process_new`): one for HTTP/1.1, one for HTTP/2 with
//! prior knowledge (h2c). Both live as long as the data plane, so their upstream connection
//! pools survive reloads. Everything a reload changes is in one [`Generation`] behind one
//! `ArcSwap`; a request loads it once.

pub mod backends;
mod http;
pub mod listeners;

use arc_swap::ArcSwap;
use backends::Pools;
use gatehouse_model::Snapshot;
use http::GatewayProxy;
use pingora_core::apps::{HttpServerOptions, ServerApp};
use pingora_core::protocols::GetSocketDigest;
use pingora_core::protocols::SocketDigest;
use pingora_core::server::configuration::ServerConf;
use pingora_proxy::HttpProxy;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

pub use listeners::BindError;

/// How long a new connection may take to send the first bytes of a request.
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time after which a keep-alive HTTP/1.1 connection is closed.
pub const KEEPALIVE_TIMEOUT_SECS: u64 = 60;
/// Requests served on one HTTP/1.1 connection before it is closed.
pub const KEEPALIVE_REQUESTS: u32 = 10_000;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Everything one applied configuration needs on the request path.
#[derive(Debug)]
pub struct Generation {
    pub snapshot: Arc<Snapshot>,
    pub pools: Arc<Pools>,
}

/// State shared by the proxy and the connection tasks.
pub(crate) struct Shared {
    generation: ArcSwap<Generation>,
    pub(crate) mirror_connector: pingora_core::connectors::http::Connector,
    connections: AtomicUsize,
    drained: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn current(&self) -> Arc<Generation> {
        self.generation.load_full()
    }
}

/// Counts a live connection for as long as it exists.
struct ConnectionGuard(Arc<Shared>);

impl ConnectionGuard {
    fn new(shared: &Arc<Shared>) -> ConnectionGuard {
        shared.connections.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard(shared.clone())
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.connections.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// The two pingora proxies: HTTP/1.1 and h2c.
struct Proxies {
    h1: Arc<HttpProxy<GatewayProxy>>,
    h2c: Arc<HttpProxy<GatewayProxy>>,
}

/// The data plane: apply snapshots, serve them, shut down.
pub struct DataPlane {
    shared: Arc<Shared>,
    proxies: Arc<Proxies>,
    listeners: Mutex<listeners::Listeners>,
    /// Turns true when shutting down: HTTP/1.1 connections stop keeping alive.
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("generation", &self.shared.current().snapshot.generation)
            .finish_non_exhaustive()
    }
}

fn new_proxy(
    conf: &Arc<ServerConf>,
    shared: &Arc<Shared>,
    h2c: bool,
) -> Arc<HttpProxy<GatewayProxy>> {
    let mut proxy = pingora_proxy::http_proxy(
        conf,
        GatewayProxy {
            shared: shared.clone(),
        },
    );
    let mut options = HttpServerOptions::default();
    options.h2c = h2c;
    options.keepalive_request_limit = Some(KEEPALIVE_REQUESTS);
    proxy.server_options = Some(options);
    Arc::new(proxy)
}

impl DataPlane {
    /// A data plane serving an empty configuration; call [`DataPlane::apply`] next. Must be
    /// called within a tokio runtime.
    pub fn new() -> DataPlane {
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            generation: ArcSwap::from_pointee(Generation {
                snapshot: Arc::new(Snapshot::default()),
                pools: Arc::new(Pools::default()),
            }),
            mirror_connector: pingora_core::connectors::http::Connector::new(None),
            connections: AtomicUsize::new(0),
            drained: Notify::new(),
        });
        let conf = Arc::new(ServerConf::default());
        let proxies = Arc::new(Proxies {
            h1: new_proxy(&conf, &shared, false),
            h2c: new_proxy(&conf, &shared, true),
        });
        DataPlane {
            shared,
            proxies,
            listeners: Mutex::new(listeners::Listeners::default()),
            shutdown,
        }
    }

    /// The generation being served.
    pub fn current(&self) -> Arc<Generation> {
        self.shared.current()
    }

    /// Serves `snapshot`: builds its endpoint pools, swaps it in, then binds the sockets it
    /// needs and stops the ones it no longer needs. Returns the sockets that could not be
    /// bound; everything else serves.
    pub async fn apply(&self, snapshot: Arc<Snapshot>) -> Vec<BindError> {
        let previous = self.shared.current();
        let pools = Arc::new(
            Pools::build(&snapshot, Some(&previous.pools), &self.shutdown.subscribe()).await,
        );
        Pools::spawn_dns_refresh(&pools, self.shutdown.subscribe());
        let wanted = listeners::wanted(&snapshot.ports);
        self.shared
            .generation
            .store(Arc::new(Generation { snapshot, pools }));
        let shared = self.shared.clone();
        let proxies = self.proxies.clone();
        let shutdown = self.shutdown.subscribe();
        let on_accept = move |stream: TcpStream, peer: SocketAddr| {
            let guard = ConnectionGuard::new(&shared);
            let proxies = proxies.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                serve_connection(stream, peer, &proxies, &shutdown).await;
                drop(guard);
            });
        };
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        listeners.reconcile(&wanted, on_accept)
    }

    /// The local addresses of the sockets that are accepting.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .local_addrs()
    }

    /// The number of client connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Stops accepting, asks keep-alive connections to close after their current request,
    /// and waits until every connection has finished or `grace` has passed. Returns the
    /// number of connections still open.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stop_all();
        let _ = self.shutdown.send(true);
        let wait = async {
            loop {
                let notified = self.shared.drained.notified();
                if self.open_connections() == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(grace, wait).await;
        self.open_connections()
    }
}

impl Default for DataPlane {
    fn default() -> Self {
        Self::new()
    }
}

/// One plaintext connection: read the first bytes (bounded in time) to tell h2c from
/// HTTP/1, put them back, and hand the stream to the matching proxy.
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    proxies: &Proxies,
    shutdown: &watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let fd = tcp.as_raw_fd();
    let mut stream = pingora_core::protocols::l4::stream::Stream::from(tcp);
    stream.set_socket_digest(SocketDigest::from_raw_fd(fd));
    let mut buf = [0u8; 24];
    let mut n = 0;
    let first_bytes = async {
        loop {
            match stream.read(&mut buf[n..]).await {
                Ok(0) | Err(_) => return false,
                Ok(k) => n += k,
            }
            if n == buf.len() || buf[..n] != H2_PREFACE[..n] {
                return true;
            }
        }
    };
    match tokio::time::timeout(FIRST_BYTES_TIMEOUT, first_bytes).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(_) => {
            tracing::debug!(client = %peer, "no request within {FIRST_BYTES_TIMEOUT:?}: closed");
            return;
        }
    }
    stream.rewind(&buf[..n]);
    let h2c = n == H2_PREFACE.len() && buf[..] == *H2_PREFACE;
    let proxy = if h2c { &proxies.h2c } else { &proxies.h1 };
    proxy.process_new(Box::new(stream), shutdown).await;
}
