//! Backend endpoints: where a Service's traffic goes, kept off the request path.
//!
//! Every Service of a snapshot gets a [`Pool`]. A pool holds its endpoints' resolved
//! addresses (IPs as configured; DNS names resolved when the pool is built and again every
//! [`DNS_REFRESH`]), their health (active checks when the Service configures `healthCheck`,
//! in [`crate::health`]; passive ejection after consecutive connect errors when it
//! configures `outlierDetection`), and a round-robin cursor. Pools of an unchanged Service carry over
//! from one snapshot to the next, so resolution, health and the cursor survive reloads.

use gatehouse_model::Snapshot;
use gatehouse_model::backend::{Endpoint, OutlierDetection, Service};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often DNS endpoints are resolved again.
pub const DNS_REFRESH: Duration = Duration::from_secs(30);

/// One resolved endpoint address and its health.
#[derive(Debug)]
pub struct Target {
    /// The endpoint as configured, for logs.
    pub spec: usize,
    pub ip: std::net::IpAddr,
    /// The endpoint's own port, else the Service port's targetPort applies.
    pub port: Option<u16>,
    pub(crate) healthy: AtomicBool,
    consecutive_errors: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
    pub(crate) health_streak: AtomicU32,
}

impl Target {
    fn new(spec: usize, ip: std::net::IpAddr, port: Option<u16>) -> Target {
        Target {
            spec,
            ip,
            port,
            healthy: AtomicBool::new(true),
            consecutive_errors: AtomicU32::new(0),
            ejected_until: Mutex::new(None),
            health_streak: AtomicU32::new(0),
        }
    }

    pub fn addr(&self, target_port: u16) -> SocketAddr {
        SocketAddr::new(self.ip, self.port.unwrap_or(target_port))
    }

    fn usable(&self, now: Instant) -> bool {
        if !self.healthy.load(Ordering::Relaxed) {
            return false;
        }
        let ejected = self.ejected_until.lock().map(|g| *g).unwrap_or(None);
        ejected.is_none_or(|until| now >= until)
    }
}

/// The endpoints of one Service.
#[derive(Debug)]
pub struct Pool {
    service: Service,
    targets: arc_swap::ArcSwap<Vec<Arc<Target>>>,
    cursor: AtomicUsize,
}

/// Why no endpoint could be chosen.
#[derive(Debug, PartialEq, Eq)]
pub enum NoEndpoint {
    /// The Service has no endpoints (or its DNS names resolve to nothing).
    Empty,
    /// Every endpoint is unhealthy, ejected, or already tried by this request.
    NoneHealthy,
}

impl Pool {
    fn new(service: Service) -> Pool {
        let targets = service
            .endpoints
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Endpoint::Ip { addr, port } => Some(Arc::new(Target::new(i, *addr, *port))),
                Endpoint::Dns { .. } => None,
            })
            .collect();
        Pool {
            service,
            targets: arc_swap::ArcSwap::from_pointee(targets),
            cursor: AtomicUsize::new(0),
        }
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The endpoints as last resolved.
    pub(crate) fn targets(&self) -> Arc<Vec<Arc<Target>>> {
        self.targets.load_full()
    }

    fn has_dns(&self) -> bool {
        self.service
            .endpoints
            .iter()
            .any(|e| matches!(e, Endpoint::Dns { .. }))
    }

    /// The next usable endpoint in round-robin order, skipping those in `tried`.
    pub fn pick(
        &self,
        target_port: u16,
        tried: &[SocketAddr],
    ) -> Result<(Arc<Target>, SocketAddr), NoEndpoint> {
        let targets = self.targets.load();
        if targets.is_empty() {
            return Err(NoEndpoint::Empty);
        }
        let now = Instant::now();
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        for i in 0..targets.len() {
            let t = &targets[(start + i) % targets.len()];
            let addr = t.addr(target_port);
            if t.usable(now) && !tried.contains(&addr) {
                return Ok((t.clone(), addr));
            }
        }
        Err(NoEndpoint::NoneHealthy)
    }

    /// Records a failed connection to `target`; ejects it after the configured number of
    /// consecutive errors.
    pub fn connect_failed(&self, target: &Target) {
        let n = target.consecutive_errors.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(OutlierDetection {
            consecutive_errors,
            ejection_time,
        }) = &self.service.outlier_detection
            && n >= *consecutive_errors
        {
            if let Ok(mut g) = target.ejected_until.lock() {
                *g = Some(Instant::now() + *ejection_time);
            }
            target.consecutive_errors.store(0, Ordering::Relaxed);
            tracing::warn!(service = %self.service.key, endpoint = %target.ip, "endpoint ejected after {n} consecutive connect errors");
        }
    }

    /// Every endpoint of `target_port` with whether a request may use it now (healthy and
    /// not ejected).
    pub fn endpoint_states(&self, target_port: u16) -> Vec<(SocketAddr, bool)> {
        let now = Instant::now();
        self.targets
            .load()
            .iter()
            .map(|t| (t.addr(target_port), t.usable(now)))
            .collect()
    }

    pub fn connect_succeeded(&self, target: &Target) {
        target.consecutive_errors.store(0, Ordering::Relaxed);
    }

    /// Resolves the DNS endpoints again and swaps the target list (keeping the state of
    /// targets that did not change).
    async fn resolve(&self) {
        if !self.has_dns() {
            return;
        }
        let old = self.targets.load_full();
        let mut next: Vec<Arc<Target>> = Vec::new();
        for (i, e) in self.service.endpoints.iter().enumerate() {
            let (ips, port): (Vec<std::net::IpAddr>, Option<u16>) = match e {
                Endpoint::Ip { addr, port } => (vec![*addr], *port),
                Endpoint::Dns { name, port } => {
                    let lookup = tokio::time::timeout(
                        Duration::from_secs(5),
                        tokio::net::lookup_host((name.as_str(), 0)),
                    )
                    .await;
                    match lookup {
                        Ok(Ok(addrs)) => (addrs.map(|a| a.ip()).collect(), *port),
                        Ok(Err(err)) => {
                            tracing::warn!(service = %self.service.key, endpoint = %name, "cannot resolve endpoint: {err}");
                            // Keep what it resolved to before.
                            (
                                old.iter().filter(|t| t.spec == i).map(|t| t.ip).collect(),
                                *port,
                            )
                        }
                        Err(_) => {
                            tracing::warn!(service = %self.service.key, endpoint = %name, "resolving endpoint timed out");
                            (
                                old.iter().filter(|t| t.spec == i).map(|t| t.ip).collect(),
                                *port,
                            )
                        }
                    }
                }
            };
            for ip in ips {
                if next.iter().any(|t| t.ip == ip && t.port == port) {
                    continue;
                }
                let kept = old
                    .iter()
                    .find(|t| t.spec == i && t.ip == ip && t.port == port)
                    .cloned();
                next.push(kept.unwrap_or_else(|| Arc::new(Target::new(i, ip, port))));
            }
        }
        self.targets.store(Arc::new(next));
    }
}

/// The pools of one snapshot, indexed like `Snapshot::services`.
#[derive(Debug, Default)]
pub struct Pools {
    pools: Vec<Arc<Pool>>,
}

impl Pools {
    /// Builds pools for `snapshot`, reusing those of `previous` whose Service is unchanged.
    /// New pools with DNS endpoints are resolved (bounded in time) before this returns; new
    /// pools with a `healthCheck` get a checking task that lives as long as the pool.
    pub async fn build(
        snapshot: &Snapshot,
        previous: Option<&Pools>,
        stop: &tokio::sync::watch::Receiver<bool>,
        tls: &crate::health::TlsForChecks,
    ) -> Pools {
        let mut reused: HashMap<&gatehouse_model::ResourceKey, &Arc<Pool>> = HashMap::new();
        if let Some(prev) = previous {
            for p in &prev.pools {
                reused.insert(&p.service.key, p);
            }
        }
        let mut pools = Vec::with_capacity(snapshot.services.len());
        let mut resolving = tokio::task::JoinSet::new();
        for s in &snapshot.services {
            if let Some(p) = reused.get(&s.key).filter(|p| p.service == *s) {
                pools.push(Arc::clone(p));
                continue;
            }
            let p = Arc::new(Pool::new(s.clone()));
            if p.has_dns() {
                let p = p.clone();
                resolving.spawn(async move { p.resolve().await });
            }
            if let Some(hc) = s.health_check.clone() {
                crate::health::spawn(&p, hc, stop.clone(), tls.clone());
            }
            pools.push(p);
        }
        let _ = tokio::time::timeout(Duration::from_secs(6), async {
            while resolving.join_next().await.is_some() {}
        })
        .await;
        Pools { pools }
    }

    pub fn get(&self, id: usize) -> Option<&Arc<Pool>> {
        self.pools.get(id)
    }

    /// Re-resolves the DNS endpoints of these pools every [`DNS_REFRESH`] until `stop` turns
    /// true or the pools are dropped.
    pub fn spawn_dns_refresh(pools: &Arc<Pools>, mut stop: tokio::sync::watch::Receiver<bool>) {
        if !pools.pools.iter().any(|p| p.has_dns()) {
            return;
        }
        let weak = Arc::downgrade(pools);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(DNS_REFRESH) => {}
                    _ = stop.changed() => return,
                }
                let Some(pools) = weak.upgrade() else { return };
                for p in &pools.pools {
                    p.resolve().await;
                }
            }
        });
    }
}
