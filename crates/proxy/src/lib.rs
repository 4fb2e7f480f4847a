//! The gatehouse data plane.
//!
//! ```text
//! apply(Snapshot) ─▶ Pools (endpoints) + TLS configs (server, backend) ─▶ one ArcSwap<Generation>::store
//!                 ─▶ Listeners::reconcile (one SO_REUSEPORT socket per serving thread)
//! serving thread: accept ─▶ serve (ConnInfo, TLS, HTTP/1 or HTTP/2 loop)
//!                 ─▶ Pingora HttpProxy ─▶ GatewayProxy: normalize, decide, carry out
//! ```
//!
//! Pingora's own `Server` fixes its listeners at start-up, so the data plane owns the accept
//! loops ([`listeners`]) on serving threads of its own ([`workers`]), each a current-thread
//! runtime with its own long-lived Pingora `HttpProxy` (whose upstream connection pool
//! survives reloads). Everything a reload changes is in one [`Generation`] behind one
//! `ArcSwap`; a request loads it once. Control work (reloads, health checks, DNS) runs on the
//! runtime that calls [`DataPlane::apply`].

pub mod backends;
pub mod health;
mod http;
mod io;
pub mod l4;
pub mod listeners;
pub mod metrics;
pub mod proxy_protocol;
mod serve;
mod tcp;
pub mod tls;
pub mod udp;
mod workers;

use arc_swap::ArcSwap;
use backends::Pools;
use gatehouse_model::Snapshot;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

pub use listeners::{BindError, Transport};
pub use serve::KEEPALIVE_REQUESTS;

/// Everything one applied configuration needs on the request path.
#[derive(Debug)]
pub struct Generation {
    pub snapshot: Arc<Snapshot>,
    pub pools: Arc<Pools>,
    /// rustls server configurations of the HTTPS listeners.
    pub tls: tls::terminate::TlsConfigs,
    /// rustls client configurations of the BackendTLSPolicies.
    pub upstream_tls: tls::upstream::UpstreamTls,
}

/// State shared by every serving thread.
pub(crate) struct Shared {
    generation: ArcSwap<Generation>,
    /// Client connections open now, process-wide (`[limits] maxConnections`).
    connections: AtomicUsize,
    drained: Notify,
    /// UDP flows open now, process-wide (`[limits] udpMaxFlows`).
    pub(crate) udp_flows: AtomicUsize,
    /// RequestMirror copies in flight (`[limits] maxMirrorsInFlight`).
    pub(crate) mirrors_in_flight: AtomicUsize,
    /// Keeps warnings about refused connections to a few per minute.
    pub(crate) log_limiter: metrics::LogLimiter,
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
}

/// The data plane: apply snapshots, serve them, shut down.
pub struct DataPlane {
    shared: Arc<Shared>,
    workers: Vec<workers::Worker>,
    listeners: tokio::sync::Mutex<listeners::Listeners>,
    /// Turns true when shutting down: HTTP/1.1 connections stop keeping alive, HTTP/2 ones
    /// get a GOAWAY.
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("generation", &self.shared.current().snapshot.generation)
            .field("serving_threads", &self.workers.len())
            .finish_non_exhaustive()
    }
}

/// The number of serving threads for `[runtime] threads` (0: one per core).
pub fn serving_threads(configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

impl DataPlane {
    /// A data plane serving an empty configuration on `threads` serving threads; call
    /// [`DataPlane::apply`] next. Must be called within a tokio runtime (the control one).
    pub fn new(registry: &prometheus::Registry, threads: usize) -> std::io::Result<DataPlane> {
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            generation: ArcSwap::from_pointee(Generation {
                snapshot: Arc::new(Snapshot::default()),
                pools: Arc::new(Pools::default()),
                tls: tls::terminate::TlsConfigs::default(),
                upstream_tls: tls::upstream::UpstreamTls::default(),
            }),
            connections: AtomicUsize::new(0),
            drained: Notify::new(),
            udp_flows: AtomicUsize::new(0),
            mirrors_in_flight: AtomicUsize::new(0),
            log_limiter: metrics::LogLimiter::default(),
            metrics: metrics::Metrics::new(registry),
        });
        let workers = workers::start(threads, &shared)?;
        Ok(DataPlane {
            shared,
            workers,
            listeners: tokio::sync::Mutex::new(listeners::Listeners::default()),
            shutdown,
        })
    }

    /// The generation being served.
    pub fn current(&self) -> Arc<Generation> {
        self.shared.current()
    }

    /// How a health check finds its Service's BackendTLSPolicy client in the generation
    /// being served: by the policy's name, since ids change from one snapshot to the next.
    fn tls_for_checks(&self) -> health::TlsForChecks {
        let shared = self.shared.clone();
        Arc::new(move |service: &gatehouse_model::backend::Service| {
            use health::CheckTls;
            let g = shared.current();
            let served = g.snapshot.service(&service.key);
            let (Some(policy), Some(served)) = (&service.health_check_tls, served) else {
                return CheckTls::NotYet;
            };
            if served.health_check_tls.as_ref() != Some(policy) {
                return CheckTls::NotYet;
            }
            let id = g
                .snapshot
                .backend_tls
                .iter()
                .position(|t| &t.policy == policy);
            match id.and_then(|id| g.upstream_tls.stream(id, None)) {
                Some(c) => CheckTls::Ready(c.clone()),
                None => CheckTls::Unusable,
            }
        })
    }

    /// A handle that reads the generation being served, for the admin listener.
    pub fn generations(&self) -> impl Fn() -> Arc<Generation> + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.current()
    }

    /// The number of serving threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Serves `snapshot`: builds its endpoint pools, swaps it in, then binds the sockets it
    /// needs and stops the ones it no longer needs. Returns the sockets that could not be
    /// bound; everything else serves.
    pub async fn apply(&self, snapshot: Arc<Snapshot>) -> Vec<BindError> {
        let previous = self.shared.current();
        let pools = Arc::new(
            Pools::build(
                &snapshot,
                Some(&previous.pools),
                &self.shutdown.subscribe(),
                &self.tls_for_checks(),
            )
            .await,
        );
        Pools::spawn_dns_refresh(&pools, self.shutdown.subscribe());
        let wanted = listeners::wanted(&snapshot);
        let tls = tls::terminate::TlsConfigs::build(&snapshot, &self.shared.metrics, &previous.tls);
        let upstream_tls =
            tls::upstream::UpstreamTls::build(&snapshot, &self.shared.metrics.backend_tls_errors);
        let limits = &snapshot.settings.limits;
        let options = listeners::SocketOptions {
            keepalive: (!limits.tcp_keepalive.is_zero()).then_some(limits.tcp_keepalive),
        };
        self.shared
            .metrics
            .retain(&metrics::LiveNames::of(&snapshot));
        self.shared.generation.store(Arc::new(Generation {
            snapshot,
            pools,
            tls,
            upstream_tls,
        }));
        let acceptors: Vec<listeners::Acceptor> = self
            .workers
            .iter()
            .map(|w| listeners::Acceptor {
                runtime: w.runtime.clone(),
                on_accept: serve::on_accept(w.state.clone(), self.shutdown.subscribe()),
                on_udp: udp::on_udp(w.state.shared.clone()),
            })
            .collect();
        let mut listeners = self.listeners.lock().await;
        listeners.reconcile(&wanted, &acceptors, &options).await
    }

    /// The local addresses of the sockets that are accepting (TCP) or reading (UDP).
    pub async fn local_addrs(&self) -> Vec<(listeners::Transport, SocketAddr)> {
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
        // Requests parked in Pingora stop waiting; HTTP/2 clients get a GOAWAY.
        for w in &self.workers {
            pingora_core::apps::HttpServerApp::http_cleanup(&*w.state.proxy).await;
        }
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
