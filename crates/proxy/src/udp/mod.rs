//! UDP listeners (UDPRoute): datagrams relayed per client flow, like nginx `stream` with
//! `listen ... udp` or Envoy's UDP proxy.
//!
//! ```text
//! listening socket ─▶ datagram (client, destination from pktinfo)
//!   ─▶ flow table: known (client, destination)? ─▶ that flow's backend socket
//!   ─▶ new: listener at the destination ─▶ its UDPRoute rule ─▶ weighted backendRef
//!        ─▶ endpoint ─▶ a connected socket of its own ─▶ reply task
//! reply task: backend datagram ─▶ sent to the client from the address it wrote to
//!             silent both ways for the idle timeout ─▶ flow ends (log line, metrics)
//! ```
//!
//! A flow is one client address and port talking to one Gateway address: it keeps the
//! backend endpoint drawn for its first datagram until it has been silent for its idle
//! timeout (a UDPRoute rule's `timeouts.idle`, else
//! `[limits] udpIdleTimeout`). A reload therefore changes where new flows go and leaves the
//! open ones alone; a UDP listener that a reload removes ends its flows.
//!
//! The table is bounded: at most `[limits] udpMaxFlows` flows process-wide, each holding one
//! socket and no buffered payload (a datagram is relayed as it arrives or dropped), so the
//! memory a flow costs is fixed. Datagrams that cannot be relayed are dropped and counted in
//! `gatehouse_udp_dropped_total{port,reason}`, never queued.

mod metrics;
pub(crate) mod socket;

pub use metrics::{Drop, UdpMetrics};

use crate::Shared;
use crate::backends::{Pool, Target};
use crate::l4::{self, L4Error};
use gatehouse_model::listener::ListenerKind;
use metrics::FlowSeries;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, watch};

/// The largest UDP payload (65,535 minus the IPv4 and UDP headers, rounded up).
const MAX_DATAGRAM: usize = 64 * 1024;
/// Datagrams read from a listening socket before the task yields to the others.
const BATCH: usize = 64;

/// The listening socket serving function for [`crate::listeners::Acceptor::on_udp`].
pub(crate) fn on_udp(shared: Arc<Shared>) -> crate::listeners::OnUdp {
    Arc::new(move |socket, local, stop| Box::pin(serve_socket(shared.clone(), socket, local, stop)))
}

/// A flow's identity: the client and the address it sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    /// As the socket reports it (so replies go to exactly that address).
    client: SocketAddr,
    to: IpAddr,
}

type FlowTable = Mutex<HashMap<FlowKey, Arc<Flow>>>;

/// Reads one listening socket until `stop` turns true, relaying each datagram to its flow.
async fn serve_socket(
    shared: Arc<Shared>,
    socket: UdpSocket,
    local: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let socket = Arc::new(socket::Listening::new(socket, local));
    let table: Arc<FlowTable> = Arc::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut cmsg = socket::cmsg_buffer();
    shared.metrics.udp.declare_port(local.port());
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            ready = socket.socket.readable() => if let Err(e) = ready {
                tracing::error!(address = %local, "UDP socket failed: {e}");
                break;
            },
        }
        for _ in 0..BATCH {
            match socket.try_recv(&mut buf, &mut cmsg) {
                Ok(got) => {
                    let cx = Relay {
                        shared: &shared,
                        socket: &socket,
                        table: &table,
                        stop: &stop,
                    };
                    cx.client_datagram(got, &buf[..got.len.min(buf.len())]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => tracing::debug!(address = %local, "UDP receive failed: {e}"),
            }
        }
    }
}

/// What relaying a client datagram needs.
struct Relay<'a> {
    shared: &'a Arc<Shared>,
    socket: &'a Arc<socket::Listening>,
    table: &'a Arc<FlowTable>,
    stop: &'a watch::Receiver<bool>,
}

impl Relay<'_> {
    fn client_datagram(&self, got: socket::Received, data: &[u8]) {
        let key = FlowKey {
            client: got.from,
            to: got.to,
        };
        let known = lock(self.table).get(&key).cloned();
        let flow = match known {
            Some(f) => f,
            None => match self.open(key) {
                Ok(f) => f,
                Err(why) => {
                    if why == Drop::FlowTableFull && self.shared.log_limiter.allow() {
                        tracing::warn!(
                            "[limits] udpMaxFlows reached: datagrams that would start a flow are dropped"
                        );
                    }
                    self.shared
                        .metrics
                        .udp
                        .dropped(self.socket.local.port(), why);
                    return;
                }
            },
        };
        flow.to_backend(data, &self.shared.metrics.udp, self.socket.local.port());
    }

    /// Starts a flow for `key`: the listener at its destination, the rule's backend drawn by
    /// weight, an endpoint of it, and a socket connected to that endpoint.
    fn open(&self, key: FlowKey) -> Result<Arc<Flow>, Drop> {
        let generation = self.shared.current();
        let local = SocketAddr::new(key.to.to_canonical(), self.socket.local.port());
        let (_, listener) = generation
            .snapshot
            .udp_listener_at(local)
            .ok_or(Drop::NoListener)?;
        let ListenerKind::Udp { rule, idle_timeout } = &listener.kind else {
            return Err(Drop::NoListener);
        };
        let rule = rule.as_ref().ok_or(Drop::NoRoute)?;
        let slot = FlowSlot::take(
            self.shared,
            generation.snapshot.settings.limits.udp_max_flows,
        )
        .ok_or(Drop::FlowTableFull)?;
        // BackendTLS never reaches here: UDPRoutes resolve without the policies.
        let drawn = l4::draw(&generation, &rule.backends).map_err(|e| match e {
            L4Error::NoEndpoint => Drop::NoEndpoint,
            _ => Drop::NoBackend,
        })?;
        let (target, endpoint) = drawn
            .pool
            .pick(drawn.target_port, &[])
            .map_err(|_| Drop::NoEndpoint)?;
        let upstream = connect(endpoint).map_err(|e| {
            tracing::debug!(endpoint = %endpoint, "UDP backend socket failed: {e}");
            Drop::NoEndpoint
        })?;
        let route = rule.rule.route.namespaced_name();
        let flow = Arc::new(Flow {
            key,
            upstream,
            endpoint,
            backend: drawn.backend.name.clone(),
            listener: listener.label(),
            series: self.shared.metrics.udp.flow(listener, &route),
            route,
            pool: drawn.pool,
            target,
            idle_timeout: *idle_timeout,
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            unreachable: Notify::new(),
            counts: Default::default(),
            _slot: slot,
        });
        lock(self.table).insert(key, flow.clone());
        tokio::spawn(run_flow(
            flow.clone(),
            self.socket.clone(),
            self.table.clone(),
            self.stop.clone(),
            self.shared.clone(),
            generation.snapshot.settings.log.access_log,
        ));
        Ok(flow)
    }
}

fn lock(table: &FlowTable) -> std::sync::MutexGuard<'_, HashMap<FlowKey, Arc<Flow>>> {
    // A panic cannot leave the map half-updated: every critical section is one call.
    table.lock().unwrap_or_else(|e| e.into_inner())
}

/// A socket of its own for a flow, connected to `endpoint` (so only that endpoint's replies
/// reach it, and an ICMP port unreachable is reported on it).
fn connect(endpoint: SocketAddr) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = if endpoint.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any)?;
    s.connect(endpoint)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// One place in the process-wide flow count (`[limits] udpMaxFlows`), given back on drop.
#[derive(Debug)]
struct FlowSlot(Arc<Shared>);

impl FlowSlot {
    fn take(shared: &Arc<Shared>, max: usize) -> Option<FlowSlot> {
        let before = shared.udp_flows.fetch_add(1, Ordering::AcqRel);
        let slot = FlowSlot(shared.clone());
        (before < max).then_some(slot)
    }
}

impl std::ops::Drop for FlowSlot {
    fn drop(&mut self) {
        self.0.udp_flows.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Datagrams and bytes of one flow, for its log line.
#[derive(Debug, Default)]
struct Counts {
    datagrams_in: AtomicU64,
    datagrams_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// An open flow.
#[derive(Debug)]
struct Flow {
    key: FlowKey,
    upstream: UdpSocket,
    endpoint: SocketAddr,
    backend: String,
    /// `gateway/listener`.
    listener: String,
    route: String,
    pool: Arc<Pool>,
    target: Arc<Target>,
    series: FlowSeries,
    idle_timeout: Duration,
    started: Instant,
    /// When a datagram last went either way, in milliseconds after `started`.
    last_ms: AtomicU64,
    /// The backend answered with ICMP port unreachable.
    unreachable: Notify,
    counts: Counts,
    _slot: FlowSlot,
}

/// How a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Idle,
    ListenerClosed,
    BackendUnreachable,
    Failed,
}

impl End {
    fn label(self) -> &'static str {
        match self {
            End::Idle => "idle",
            End::ListenerClosed => "listener_closed",
            End::BackendUnreachable => "backend_unreachable",
            End::Failed => "failed",
        }
    }
}

impl Flow {
    fn touch(&self) {
        self.last_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Sends a client datagram to the backend; a full send buffer drops it. The send goes
    /// straight to the kernel (see [`socket::try_send`]): a flow's first datagram leaves
    /// before tokio has seen its new socket writable.
    fn to_backend(&self, data: &[u8], m: &UdpMetrics, port: u16) {
        match socket2::SockRef::from(&self.upstream).send(data) {
            Ok(_) => {
                self.touch();
                self.counts.datagrams_in.fetch_add(1, Ordering::Relaxed);
                self.counts
                    .bytes_in
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                self.series.datagrams_in.inc();
                self.series.bytes_in.inc_by(data.len() as u64);
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    self.unreachable.notify_one();
                }
                tracing::debug!(endpoint = %self.endpoint, "UDP send to backend failed: {e}");
                m.dropped(port, Drop::BackendSendFailed);
            }
        }
    }

    /// Relays every reply queued on the backend socket to the client, from the address the
    /// client wrote to. `Err` ends the flow.
    fn to_client(&self, socket: &socket::Listening, m: &UdpMetrics) -> Result<(), End> {
        // On the stack, not in the flow: an idle flow holds no buffer.
        let mut buf = [0u8; MAX_DATAGRAM];
        loop {
            let n = match self.upstream.try_recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(End::BackendUnreachable);
                }
                Err(e) => {
                    tracing::debug!(endpoint = %self.endpoint, "UDP receive from backend failed: {e}");
                    return Err(End::Failed);
                }
            };
            self.touch();
            match socket.try_send(&buf[..n], self.key.client, self.key.to) {
                Ok(_) => {
                    if self.counts.datagrams_out.fetch_add(1, Ordering::Relaxed) == 0 {
                        // The endpoint answers: its run of ICMP refusals (outlierDetection)
                        // is over.
                        self.pool.connect_succeeded(&self.target);
                    }
                    self.counts.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    self.series.datagrams_out.inc();
                    self.series.bytes_out.inc_by(n as u64);
                }
                Err(e) => {
                    tracing::debug!(client = %self.key.client, "UDP reply failed: {e}");
                    m.dropped(socket.local.port(), Drop::ClientSendFailed);
                }
            }
        }
    }
}

/// Relays a flow's replies until it has been silent for its idle timeout, its backend
/// refused it, or its listening socket closed; then removes it from the table.
async fn run_flow(
    flow: Arc<Flow>,
    socket: Arc<socket::Listening>,
    table: Arc<FlowTable>,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
    access_log: bool,
) {
    let port = socket.local.port();
    let m = &shared.metrics.udp;
    let end = loop {
        let silent = flow.silent_for();
        if silent >= flow.idle_timeout {
            break End::Idle;
        }
        tokio::select! {
            biased;
            _ = stop.changed() => break End::ListenerClosed,
            _ = flow.unreachable.notified() => break End::BackendUnreachable,
            ready = flow.upstream.readable() => {
                if ready.is_err() {
                    break End::Failed;
                }
                if let Err(end) = flow.to_client(&socket, m) {
                    break end;
                }
            }
            _ = tokio::time::sleep(flow.idle_timeout - silent) => {}
        }
    };
    {
        let mut t = lock(&table);
        if t.get(&flow.key).is_some_and(|f| Arc::ptr_eq(f, &flow)) {
            t.remove(&flow.key);
        }
    }
    if end == End::BackendUnreachable {
        flow.pool.connect_failed(&flow.target);
    }
    let lived = flow.started.elapsed();
    flow.series.ended(lived);
    if access_log {
        let c = &flow.counts;
        tracing::info!(
            target: "gatehouse::access",
            client = %gatehouse_model::conn::canonical(flow.key.client),
            local = %SocketAddr::new(flow.key.to.to_canonical(), port),
            listener = %flow.listener,
            route = %flow.route,
            backend = %flow.backend,
            endpoint = %flow.endpoint,
            datagrams_in = c.datagrams_in.load(Ordering::Relaxed),
            datagrams_out = c.datagrams_out.load(Ordering::Relaxed),
            bytes_in = c.bytes_in.load(Ordering::Relaxed),
            bytes_out = c.bytes_out.load(Ordering::Relaxed),
            duration_ms = lived.as_secs_f64() * 1000.0,
            end = end.label(),
            "udp"
        );
    }
}
