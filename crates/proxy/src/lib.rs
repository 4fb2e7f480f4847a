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
pub mod metrics;
pub mod tls;

use arc_swap::ArcSwap;
use backends::Pools;
use gatehouse_model::Snapshot;
use http::GatewayProxy;
use pingora_core::apps::{HttpServerOptions, ServerApp};
use pingora_core::protocols::GetSocketDigest;
use pingora_core::protocols::SocketDigest;
use pingora_core::server::configuration::ServerConf;
use pingora_proxy::HttpProxy;
use std::collections::HashMap;
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
    /// rustls server configurations of the HTTPS listeners.
    pub tls: tls::terminate::TlsConfigs,
}

/// State shared by the proxy and the connection tasks.
pub(crate) struct Shared {
    generation: ArcSwap<Generation>,
    pub(crate) mirror_connector: pingora_core::connectors::http::Connector,
    connections: AtomicUsize,
    drained: Notify,
    /// The SNI of each terminated TLS connection, by (client, local) address: a request on it
    /// is checked against the listener its SNI chose (421 when its Host belongs to another).
    tls_sni: Mutex<HashMap<(SocketAddr, SocketAddr), Option<String>>>,
    pub(crate) metrics: metrics::Metrics,
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

    /// The SNI a terminated TLS connection sent; `None` for plaintext connections.
    pub(crate) fn tls_sni(&self, client: SocketAddr, local: SocketAddr) -> Option<Option<String>> {
        self.tls_sni
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(client, local))
            .cloned()
    }
}

/// Keeps a TLS connection's SNI registered while the connection lives.
struct SniGuard {
    shared: Arc<Shared>,
    key: (SocketAddr, SocketAddr),
}

impl Drop for SniGuard {
    fn drop(&mut self) {
        self.shared
            .tls_sni
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
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
    listeners: tokio::sync::Mutex<listeners::Listeners>,
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
    pub fn new(registry: &prometheus::Registry) -> DataPlane {
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            generation: ArcSwap::from_pointee(Generation {
                snapshot: Arc::new(Snapshot::default()),
                pools: Arc::new(Pools::default()),
                tls: tls::terminate::TlsConfigs::default(),
            }),
            mirror_connector: pingora_core::connectors::http::Connector::new(None),
            connections: AtomicUsize::new(0),
            drained: Notify::new(),
            tls_sni: Mutex::new(HashMap::new()),
            metrics: metrics::Metrics::new(registry),
        });
        let conf = Arc::new(ServerConf::default());
        let proxies = Arc::new(Proxies {
            h1: new_proxy(&conf, &shared, false),
            h2c: new_proxy(&conf, &shared, true),
        });
        DataPlane {
            shared,
            proxies,
            listeners: tokio::sync::Mutex::new(listeners::Listeners::default()),
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
        let tls = tls::terminate::TlsConfigs::build(&snapshot, &self.shared.metrics);
        self.shared
            .metrics
            .retain(&metrics::LiveNames::of(&snapshot));
        self.shared.generation.store(Arc::new(Generation {
            snapshot,
            pools,
            tls,
        }));
        let shared = self.shared.clone();
        let proxies = self.proxies.clone();
        let shutdown = self.shutdown.subscribe();
        let on_accept = move |stream: TcpStream, peer: SocketAddr| {
            let guard = ConnectionGuard::new(&shared);
            let proxies = proxies.clone();
            let shutdown = shutdown.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                serve_connection(stream, peer, &shared, &proxies, &shutdown).await;
                drop(guard);
            });
        };
        let mut listeners = self.listeners.lock().await;
        listeners.reconcile(&wanted, on_accept).await
    }

    /// The local addresses of the sockets that are accepting.
    pub async fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.lock().await.local_addrs()
    }

    /// The number of client connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Stops accepting, asks keep-alive connections to close after their current request,
    /// and waits until every connection has finished or `grace` has passed. Returns the
    /// number of connections still open.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.listeners.lock().await.stop_all().await;
        let _ = self.shutdown.send(true);
        // Keep-alive connections waiting for their next request close now; those with a
        // request in flight close after it (HTTP/2 clients get a GOAWAY).
        self.proxies.h1.cleanup().await;
        self.proxies.h2c.cleanup().await;
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

/// One accepted connection: TLS or plaintext, as the current generation says its port is.
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    proxies: &Proxies,
    shutdown: &watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let Ok(local) = tcp.local_addr() else { return };
    let local = SocketAddr::new(local.ip().to_canonical(), local.port());
    let generation = shared.current();
    let is_tls = generation
        .snapshot
        .ports
        .iter()
        .any(|p| p.port == local.port() && p.tls);
    let kind = if is_tls { "tls" } else { "tcp" };
    shared
        .metrics
        .downstream_connections
        .with_label_values(&[kind])
        .inc();
    if is_tls {
        serve_tls(tcp, peer, local, generation, shared, proxies, shutdown).await;
    } else {
        drop(generation);
        serve_plaintext(tcp, peer, &shared.metrics, proxies, shutdown).await;
    }
}

fn l4_stream(tcp: TcpStream) -> pingora_core::protocols::l4::stream::Stream {
    let fd = tcp.as_raw_fd();
    let mut stream = pingora_core::protocols::l4::stream::Stream::from(tcp);
    stream.set_socket_digest(SocketDigest::from_raw_fd(fd));
    stream
}

/// Counts an open client connection of a protocol in the metrics while it lives.
struct ActiveConnection(prometheus::IntGauge);

impl ActiveConnection {
    fn new(metrics: &metrics::Metrics, protocol: &str) -> ActiveConnection {
        let g = metrics
            .downstream_connections_active
            .with_label_values(&[protocol]);
        g.inc();
        ActiveConnection(g)
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A connection to a TLS port: read the ClientHello (bounded in bytes and time), choose the
/// listener by SNI, then pass the connection through or terminate it. Anything that goes
/// wrong closes the connection without a TLS alert.
async fn serve_tls(
    mut tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    generation: Arc<Generation>,
    shared: &Arc<Shared>,
    proxies: &Proxies,
    shutdown: &watch::Receiver<bool>,
) {
    let metrics = &shared.metrics;
    let port = local.port().to_string();
    let mut kept = Vec::new();
    let read = tls::hello::read_client_hello(&mut tcp, &mut kept);
    let hello = match tokio::time::timeout(FIRST_BYTES_TIMEOUT, read).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            tracing::debug!(client = %peer, "closed: {e}");
            metrics
                .sni_unmatched
                .with_label_values(&[&port, "no_client_hello"])
                .inc();
            return;
        }
        Err(_) => {
            tracing::debug!(client = %peer, "closed: no ClientHello within {FIRST_BYTES_TIMEOUT:?}");
            metrics
                .sni_unmatched
                .with_label_values(&[&port, "no_client_hello"])
                .inc();
            return;
        }
    };
    let sni = hello.sni.as_deref();
    let snapshot = &generation.snapshot;
    let Some(listener) = snapshot.select_listener(local, sni) else {
        tracing::debug!(client = %peer, sni = sni.unwrap_or(""), "closed: no listener for this SNI");
        metrics
            .sni_unmatched
            .with_label_values(&[&port, "no_listener"])
            .inc();
        return;
    };
    let gw_label = listener.gateway.namespaced_name();
    let listener_label = listener.name.clone();
    match &listener.kind {
        gatehouse_model::listener::ListenerKind::TlsPassthrough { routes } => {
            let _active = ActiveConnection::new(metrics, "tls_passthrough");
            let label = listener.label();
            match tls::passthrough::splice(&generation, routes, sni, tcp, &kept, peer, &label).await
            {
                Ok(done) => {
                    let labels = [
                        gw_label.as_str(),
                        listener_label.as_str(),
                        done.route.as_str(),
                    ];
                    metrics
                        .passthrough_connections
                        .with_label_values(&labels)
                        .inc();
                    let bytes = &metrics.passthrough_bytes;
                    bytes
                        .with_label_values(&[labels[0], labels[1], labels[2], "in"])
                        .inc_by(done.bytes_in);
                    bytes
                        .with_label_values(&[labels[0], labels[1], labels[2], "out"])
                        .inc_by(done.bytes_out);
                }
                Err(e) => {
                    tracing::debug!(client = %peer, sni = sni.unwrap_or(""), "passthrough closed: {e}");
                    metrics
                        .sni_unmatched
                        .with_label_values(&[&port, e.reason()])
                        .inc();
                }
            }
        }
        gatehouse_model::listener::ListenerKind::Https { .. } => {
            let index = snapshot
                .listeners
                .iter()
                .position(|l| std::ptr::eq(l, listener));
            let Some(config) = index.and_then(|i| generation.tls.get(i)).cloned() else {
                return;
            };
            let sni = hello.sni.clone();
            drop(generation);
            let id = tcp.as_raw_fd();
            let mut stream = l4_stream(tcp);
            stream.rewind(&kept);
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let handshake = tokio::time::timeout(FIRST_BYTES_TIMEOUT, acceptor.accept(stream));
            let conn = match handshake.await {
                Ok(Ok(c)) => tls::terminate::TlsConn::new(c, id),
                Ok(Err(e)) => {
                    tracing::debug!(client = %peer, "TLS handshake failed: {e}");
                    metrics
                        .tls_handshakes
                        .with_label_values(&[&gw_label, &listener_label, "failed", ""])
                        .inc();
                    return;
                }
                Err(_) => {
                    tracing::debug!(client = %peer, "TLS handshake timed out");
                    metrics
                        .tls_handshakes
                        .with_label_values(&[&gw_label, &listener_label, "timeout", ""])
                        .inc();
                    return;
                }
            };
            metrics
                .tls_handshakes
                .with_label_values(&[&gw_label, &listener_label, "ok", conn.version()])
                .inc();
            let _active = ActiveConnection::new(
                metrics,
                if conn.is_h2() {
                    "https_h2"
                } else {
                    "https_http1"
                },
            );
            let key = (
                SocketAddr::new(peer.ip().to_canonical(), peer.port()),
                local,
            );
            shared
                .tls_sni
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, sni);
            let _sni = SniGuard {
                shared: shared.clone(),
                key,
            };
            proxies.h1.process_new(Box::new(conn), shutdown).await;
        }
        gatehouse_model::listener::ListenerKind::Http { .. } => {}
    }
}

/// A plaintext connection: read the first bytes (bounded in time) to tell h2c from
/// HTTP/1, put them back, and hand the stream to the matching proxy.
async fn serve_plaintext(
    tcp: TcpStream,
    peer: SocketAddr,
    metrics: &metrics::Metrics,
    proxies: &Proxies,
    shutdown: &watch::Receiver<bool>,
) {
    let mut stream = l4_stream(tcp);
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
    let _active = ActiveConnection::new(metrics, if h2c { "h2c" } else { "http1" });
    let proxy = if h2c { &proxies.h2c } else { &proxies.h1 };
    proxy.process_new(Box::new(stream), shutdown).await;
}
