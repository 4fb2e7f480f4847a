//! Prometheus metrics of the data plane, in a registry the daemon owns.
//!
//! Names follow Prometheus conventions (base units, `_total` counters, prefix
//! `gatehouse_`). Labels come only from configured names (gateway, listener, route,
//! backend, Secret) or small fixed sets (method, code, protocol, result); never from request
//! data. After a reload, series of routes, backends and listeners that no longer exist are
//! removed ([`Metrics::retain`]).
//!
//! On the request path, series are looked up once per serving thread and generation and then
//! kept in a thread-local cache keyed by ids (listener index, rule, backendRef index, method,
//! status): a request increments atomics and formats no label string.

use gatehouse_model::http::HttpRule;
use gatehouse_model::listener::Listener;
use prometheus::core::Collector;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// OpenTelemetry's advised HTTP duration buckets, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// A method label: the method if it is a standard one, else `_OTHER`.
pub fn method_label(method: &str) -> &str {
    METHODS
        .get(method_index(method))
        .copied()
        .unwrap_or("_OTHER")
}

/// The position of a standard method in [`METHODS`], else `METHODS.len()`.
fn method_index(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len())
}

/// `2xx`, `4xx`, ...
pub fn code_class(code: u16) -> &'static str {
    match code / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    }
}

/// The data plane's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub http_requests: IntCounterVec,
    pub http_request_duration: HistogramVec,
    pub http_requests_in_flight: IntGaugeVec,
    pub upstream_request_duration: HistogramVec,
    pub upstream_connections: IntCounterVec,
    pub upstream_connect_errors: IntCounterVec,
    /// BackendTLSPolicy handshakes that failed, by policy and reason (`tls::upstream`).
    pub backend_tls_errors: IntCounterVec,
    pub downstream_connections: IntCounterVec,
    pub downstream_connections_active: IntGaugeVec,
    pub tls_handshakes: IntCounterVec,
    pub tls_certificate_expiry: GaugeVec,
    pub passthrough_connections: IntCounterVec,
    pub passthrough_bytes: IntCounterVec,
    pub sni_unmatched: IntCounterVec,
    pub tls_terminate_connections: IntCounterVec,
    pub tls_terminate_bytes: IntCounterVec,
    pub tcp_connections: IntCounterVec,
    pub tcp_bytes: IntCounterVec,
    pub tcp_duration: HistogramVec,
    pub tcp_unrouted: IntCounterVec,
    pub rejected_requests: IntCounterVec,
    pub rejected_connections: IntCounterVec,
    pub mirrors_dropped: IntCounter,
    accepted: [IntCounter; 2],
    active: [IntGauge; 7],
    rejected: [IntCounter; 11],
    max_connections_reached: IntCounter,
    /// `[proxyProtocol]` refusals: untrusted peer, malformed header, no header in time.
    proxy_header_rejected: [IntCounter; 3],
    /// UDP listeners (UDPRoute).
    pub udp: crate::udp::UdpMetrics,
}

/// The kinds of client connection counted as active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    H2c,
    HttpsHttp1,
    HttpsH2,
    TlsPassthrough,
    TlsTerminate,
    Tcp,
}

impl Protocol {
    const ALL: [Protocol; 7] = [
        Protocol::Http1,
        Protocol::H2c,
        Protocol::HttpsHttp1,
        Protocol::HttpsH2,
        Protocol::TlsPassthrough,
        Protocol::TlsTerminate,
        Protocol::Tcp,
    ];

    fn label(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::H2c => "h2c",
            Protocol::HttpsHttp1 => "https_http1",
            Protocol::HttpsH2 => "https_h2",
            Protocol::TlsPassthrough => "tls_passthrough",
            Protocol::TlsTerminate => "tls_terminate",
            Protocol::Tcp => "tcp",
        }
    }
}

/// Why a request was refused before routing: the `reason` label of
/// `gatehouse_http_rejected_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    PathNotOriginForm,
    PathAboveRoot,
    PathBadEscape,
    PathEscapedSlash,
    HeaderTooLarge,
    TooManyHeaders,
    HeaderTimeout,
    ClosedMidHeader,
    BodyTooLarge,
    H2MalformedStream,
    Malformed,
}

impl Reject {
    const ALL: [Reject; 11] = [
        Reject::PathNotOriginForm,
        Reject::PathAboveRoot,
        Reject::PathBadEscape,
        Reject::PathEscapedSlash,
        Reject::HeaderTooLarge,
        Reject::TooManyHeaders,
        Reject::HeaderTimeout,
        Reject::ClosedMidHeader,
        Reject::BodyTooLarge,
        Reject::H2MalformedStream,
        Reject::Malformed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reject::PathNotOriginForm => "path_not_origin_form",
            Reject::PathAboveRoot => "path_above_root",
            Reject::PathBadEscape => "path_bad_escape",
            Reject::PathEscapedSlash => "path_escaped_slash",
            Reject::HeaderTooLarge => "header_too_large",
            Reject::TooManyHeaders => "too_many_headers",
            Reject::HeaderTimeout => "header_timeout",
            Reject::ClosedMidHeader => "closed_mid_header",
            Reject::BodyTooLarge => "body_too_large",
            Reject::H2MalformedStream => "h2_malformed_stream",
            Reject::Malformed => "malformed",
        }
    }

    /// The reason a path normalization error stands for.
    pub fn of_path(e: gatehouse_model::path::PathError) -> Reject {
        use gatehouse_model::path::PathError;
        match e {
            PathError::NotOriginForm => Reject::PathNotOriginForm,
            PathError::AboveRoot => Reject::PathAboveRoot,
            PathError::BadEscape => Reject::PathBadEscape,
            PathError::EscapedSlash => Reject::PathEscapedSlash,
        }
    }
}

/// Keeps an active-connections gauge raised while it lives.
#[derive(Debug)]
pub struct Active(IntGauge);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The gateway and listener labels of a listener.
#[derive(Clone, Debug)]
pub struct ListenerLabels {
    pub gateway: String,
    pub listener: String,
}

impl ListenerLabels {
    pub fn of(l: &Listener) -> ListenerLabels {
        ListenerLabels {
            gateway: l.gateway.namespaced_name(),
            listener: l.name.clone(),
        }
    }
}

/// Lets a warning through at most once per interval.
#[derive(Debug, Default)]
pub struct LogLimiter {
    last: AtomicU64,
}

impl LogLimiter {
    const INTERVAL: Duration = Duration::from_secs(10);

    /// Whether to log now.
    pub fn allow(&self) -> bool {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let now = START.get_or_init(Instant::now).elapsed().as_secs() + 1;
        let last = self.last.load(Ordering::Relaxed);
        (last == 0 || now >= last + Self::INTERVAL.as_secs())
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    // Registering can only fail on a duplicate name, which the fixed set above never has.
    if let Err(e) = registry.register(Box::new(c.clone())) {
        tracing::error!("metric not registered: {e}");
    }
    c
}

pub(crate) fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec());
    register(
        registry,
        HistogramVec::new(opts, labels).expect("valid metric definition"),
    )
}

/// Buckets for the life of a spliced connection: from a probe to a long-lived session.
const CONNECTION_BUCKETS: &[f64] = &[0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0];

pub(crate) fn connection_histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(CONNECTION_BUCKETS.to_vec());
    register(
        registry,
        HistogramVec::new(opts, labels).expect("valid metric definition"),
    )
}

pub(crate) fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

impl Metrics {
    pub fn new(registry: &Registry) -> Metrics {
        let downstream_connections = counter(
            registry,
            "gatehouse_downstream_connections_total",
            "Client connections accepted, by protocol.",
            &["protocol"],
        );
        let downstream_connections_active = gauge(
            registry,
            "gatehouse_downstream_connections_active",
            "Client connections open, by protocol.",
            &["protocol"],
        );
        let rejected_requests = counter(
            registry,
            "gatehouse_http_rejected_requests_total",
            "Requests refused before routing (a limit or path normalization), by reason.",
            &["reason"],
        );
        let rejected_connections = counter(
            registry,
            "gatehouse_downstream_connections_rejected_total",
            "Client connections closed at accept, by reason.",
            &["reason"],
        );
        Metrics {
            // Series of fixed label sets exist from the start, at 0, so alerts need no
            // absent() guard.
            rejected: Reject::ALL.map(|r| rejected_requests.with_label_values(&[r.label()])),
            max_connections_reached: rejected_connections.with_label_values(&["max_connections"]),
            proxy_header_rejected: [
                "proxy_protocol_untrusted",
                "proxy_protocol_malformed",
                "proxy_protocol_timeout",
            ]
            .map(|r| rejected_connections.with_label_values(&[r])),
            udp: crate::udp::UdpMetrics::new(registry),
            rejected_requests,
            rejected_connections,
            accepted: ["tcp", "tls"].map(|k| downstream_connections.with_label_values(&[k])),
            active: Protocol::ALL
                .map(|p| downstream_connections_active.with_label_values(&[p.label()])),
            downstream_connections,
            downstream_connections_active,
            http_requests: counter(
                registry,
                "gatehouse_http_requests_total",
                "HTTP requests answered, by gateway, listener, route, backend, method and status code.",
                &["gateway", "listener", "route", "backend", "method", "code"],
            ),
            http_request_duration: histogram(
                registry,
                "gatehouse_http_request_duration_seconds",
                "Time from a request's headers to the end of its response.",
                &["gateway", "listener", "route", "code_class"],
            ),
            http_requests_in_flight: gauge(
                registry,
                "gatehouse_http_requests_in_flight",
                "HTTP requests being served.",
                &["gateway", "listener"],
            ),
            upstream_request_duration: histogram(
                registry,
                "gatehouse_upstream_request_duration_seconds",
                "Time from choosing a backend endpoint to its response headers.",
                &["route", "backend"],
            ),
            upstream_connections: counter(
                registry,
                "gatehouse_upstream_connections_total",
                "Connections to backends used for a request, by whether they were reused from the pool.",
                &["backend", "reused"],
            ),
            backend_tls_errors: counter(
                registry,
                "gatehouse_backend_tls_errors_total",
                "TLS handshakes with backends that failed, by BackendTLSPolicy and reason.",
                &["policy", "reason"],
            ),
            upstream_connect_errors: counter(
                registry,
                "gatehouse_upstream_connect_errors_total",
                "Failed connection attempts to backend endpoints.",
                &["backend"],
            ),
            tls_handshakes: counter(
                registry,
                "gatehouse_tls_handshakes_total",
                "TLS handshakes of terminating listeners, by result and TLS version.",
                &["gateway", "listener", "result", "tls_version"],
            ),
            tls_certificate_expiry: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "gatehouse_tls_certificate_expiry_timestamp_seconds",
                        "When the leaf certificate of a Secret in use expires (Unix time).",
                    ),
                    &["secret"],
                )
                .expect("valid metric definition"),
            ),
            passthrough_connections: counter(
                registry,
                "gatehouse_tls_passthrough_connections_total",
                "TLS connections passed through to a backend.",
                &["gateway", "listener", "route"],
            ),
            passthrough_bytes: counter(
                registry,
                "gatehouse_tls_passthrough_bytes_total",
                "Bytes passed through, by direction (in: client to backend).",
                &["gateway", "listener", "route", "direction"],
            ),
            sni_unmatched: counter(
                registry,
                "gatehouse_sni_unmatched_total",
                "TLS connections closed because no listener, route or backend took their SNI.",
                &["port", "reason"],
            ),
            tls_terminate_connections: counter(
                registry,
                "gatehouse_tls_terminate_connections_total",
                "TLS connections terminated and spliced to a TCP backend (TLSRoute, mode Terminate).",
                &["gateway", "listener", "route"],
            ),
            tls_terminate_bytes: counter(
                registry,
                "gatehouse_tls_terminate_bytes_total",
                "Plaintext bytes spliced after TLS termination, by direction (in: client to backend).",
                &["gateway", "listener", "route", "direction"],
            ),
            tcp_connections: counter(
                registry,
                "gatehouse_tcp_connections_total",
                "TCP connections spliced to a backend (TCPRoute).",
                &["gateway", "listener", "route"],
            ),
            tcp_bytes: counter(
                registry,
                "gatehouse_tcp_bytes_total",
                "Bytes spliced on TCP listeners, by direction (in: client to backend).",
                &["gateway", "listener", "route", "direction"],
            ),
            tcp_duration: connection_histogram(
                registry,
                "gatehouse_tcp_connection_duration_seconds",
                "Life of a TCP connection spliced to a backend, from accept to close.",
                &["gateway", "listener", "route"],
            ),
            tcp_unrouted: counter(
                registry,
                "gatehouse_tcp_unrouted_total",
                "Connections to TCP listeners closed without reaching a backend, by reason.",
                &["port", "reason"],
            ),
            mirrors_dropped: register(
                registry,
                IntCounter::new(
                    "gatehouse_http_mirrors_dropped_total",
                    "RequestMirror copies not sent because maxMirrorsInFlight were in flight.",
                )
                .expect("valid metric definition"),
            ),
        }
    }

    /// A client connection was accepted.
    pub fn accepted(&self, tls: bool) {
        self.accepted[usize::from(tls)].inc();
    }

    /// Counts an open connection of `p` until the returned guard is dropped.
    pub fn active(&self, p: Protocol) -> Active {
        let g = self.active[p as usize].clone();
        g.inc();
        Active(g)
    }

    /// A connection was closed at accept: `maxConnections` were open.
    pub fn connection_rejected(&self, limiter: &LogLimiter) {
        self.max_connections_reached.inc();
        if limiter.allow() {
            tracing::warn!("[limits] maxConnections reached: new connections are closed at once");
        }
    }

    /// A connection to a `[proxyProtocol]` port was closed for `reason` (see
    /// [`crate::proxy_protocol::ProxyHeaderError::reason`]).
    pub fn proxy_header_rejected(&self, reason: &str) {
        let i = match reason {
            "proxy_protocol_untrusted" => 0,
            "proxy_protocol_malformed" => 1,
            _ => 2,
        };
        self.proxy_header_rejected[i].inc();
    }

    /// A request was refused before routing.
    pub fn rejected(&self, reason: Reject) {
        self.rejected[reason as usize].inc();
    }

    pub fn sni_unmatched(&self, port: u16, reason: &str) {
        self.sni_unmatched
            .with_label_values(&[&port.to_string(), reason])
            .inc();
    }

    pub fn tls_handshake(&self, l: &ListenerLabels, result: &str, version: &str) {
        self.tls_handshakes
            .with_label_values(&[&l.gateway, &l.listener, result, version])
            .inc();
    }

    /// A passthrough connection finished.
    pub fn passthrough_done(&self, l: &Listener, done: &crate::l4::Spliced) {
        l4_done(
            &self.passthrough_connections,
            &self.passthrough_bytes,
            l,
            done,
        );
    }

    /// A TLS-terminated connection spliced to a TCP backend finished.
    pub fn tls_terminate_done(&self, l: &Listener, done: &crate::l4::Spliced) {
        l4_done(
            &self.tls_terminate_connections,
            &self.tls_terminate_bytes,
            l,
            done,
        );
    }

    /// A TCP connection finished.
    pub fn tcp_done(&self, l: &Listener, done: &crate::l4::Spliced) {
        let gw = l.gateway.namespaced_name();
        self.tcp_duration
            .with_label_values(&[gw.as_str(), l.name.as_str(), done.route.as_str()])
            .observe(done.duration.as_secs_f64());
        l4_done(&self.tcp_connections, &self.tcp_bytes, l, done);
    }

    /// A connection to a TCP listener was closed without reaching a backend.
    pub fn tcp_unrouted(&self, port: u16, reason: &str) {
        self.tcp_unrouted
            .with_label_values(&[&port.to_string(), reason])
            .inc();
    }

    /// Removes the series of gateways, listeners, routes, backends and Secrets that are not
    /// in the configuration now served.
    pub fn retain(&self, live: &LiveNames) {
        fn prune<C: Collector>(
            c: &C,
            keep: impl Fn(&HashMap<&str, &str>) -> bool,
            remove: impl Fn(&HashMap<&str, &str>),
        ) {
            for family in c.collect() {
                for m in family.get_metric() {
                    let labels: HashMap<&str, &str> = m
                        .get_label()
                        .iter()
                        .map(|l| (l.name(), l.value()))
                        .collect();
                    if !keep(&labels) {
                        remove(&labels);
                    }
                }
            }
        }
        let ok = |labels: &HashMap<&str, &str>| live.admits(labels);
        macro_rules! prune_vec {
            ($($v:expr),*) => {$(
                prune(&$v, ok, |l| { let _ = $v.remove(l); });
            )*};
        }
        prune_vec!(
            self.http_requests,
            self.http_request_duration,
            self.http_requests_in_flight,
            self.upstream_request_duration,
            self.upstream_connections,
            self.upstream_connect_errors,
            self.tls_handshakes,
            self.tls_certificate_expiry,
            self.passthrough_connections,
            self.passthrough_bytes,
            self.tls_terminate_connections,
            self.tls_terminate_bytes,
            self.tcp_connections,
            self.tcp_bytes,
            self.tcp_duration,
            self.udp.flows,
            self.udp.flows_active,
            self.udp.flow_duration,
            self.udp.datagrams,
            self.udp.bytes
        );
    }
}

/// Counts a finished spliced connection and its bytes in both directions.
fn l4_done(
    connections: &IntCounterVec,
    bytes: &IntCounterVec,
    l: &Listener,
    done: &crate::l4::Spliced,
) {
    let gw = l.gateway.namespaced_name();
    let labels = [gw.as_str(), l.name.as_str(), done.route.as_str()];
    connections.with_label_values(&labels).inc();
    for (dir, n) in [("in", done.bytes_in), ("out", done.bytes_out)] {
        bytes
            .with_label_values(&[labels[0], labels[1], labels[2], dir])
            .inc_by(n);
    }
}

/// What a request matched, as the ids its series are cached under.
#[derive(Clone, Copy, Debug)]
pub struct Matched<'a> {
    /// The generation the ids belong to.
    pub generation: u64,
    pub listener: Option<(usize, &'a Listener)>,
    pub rule: Option<&'a Arc<HttpRule>>,
    /// The index of the backendRef in the rule.
    pub backend: Option<usize>,
}

impl Matched<'_> {
    fn ids(&self) -> (usize, usize, usize) {
        (
            self.listener.map_or(usize::MAX, |(i, _)| i),
            // A rule is shared by every listener and hostname it serves; its address is a
            // stable identity within the generation that holds it.
            self.rule.map_or(0, |r| Arc::as_ptr(r) as usize),
            self.backend.unwrap_or(usize::MAX),
        )
    }

    fn gateway(&self) -> String {
        self.listener
            .map(|(_, l)| l.gateway.namespaced_name())
            .unwrap_or_default()
    }

    fn listener_name(&self) -> &str {
        self.listener.map_or("", |(_, l)| l.name.as_str())
    }

    fn route(&self) -> String {
        self.rule
            .map(|r| r.rule.route.namespaced_name())
            .unwrap_or_default()
    }

    fn backend_name(&self) -> &str {
        match (self.rule, self.backend) {
            (Some(r), Some(b)) => r.backends.entries().get(b).map_or("", |b| b.name.as_str()),
            _ => "",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    InFlight(usize),
    Requests(usize, usize, usize, usize, u16),
    Duration(usize, usize, u8),
    UpstreamConnections(usize, usize, bool),
    ConnectErrors(usize, usize),
    UpstreamDuration(usize, usize),
}

#[derive(Clone, Debug)]
enum Series {
    Counter(IntCounter),
    Gauge(IntGauge),
    Histogram(Histogram),
}

#[derive(Default)]
struct Cache {
    generation: u64,
    series: HashMap<Key, Series, rustc_hash::FxBuildHasher>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The series under `key` for `generation`, made by `make` the first time on this thread.
fn series(generation: u64, key: Key, make: impl FnOnce() -> Series) -> Series {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if generation > c.generation {
            c.generation = generation;
            c.series.clear();
        } else if generation < c.generation {
            // A request of a generation already replaced: not worth caching.
            return make();
        }
        c.series.entry(key).or_insert_with(make).clone()
    })
}

impl Metrics {
    /// Raises the in-flight gauge of a request's listener; lower it with `dec`.
    pub fn in_flight(&self, m: &Matched<'_>) -> IntGauge {
        let (l, _, _) = m.ids();
        match series(m.generation, Key::InFlight(l), || {
            Series::Gauge(
                self.http_requests_in_flight
                    .with_label_values(&[&m.gateway(), m.listener_name()]),
            )
        }) {
            Series::Gauge(g) => g,
            _ => unreachable!("in-flight keys hold gauges"),
        }
    }

    /// Counts a finished request and its duration.
    pub fn request_done(&self, m: &Matched<'_>, method: &str, status: u16, took: Duration) {
        let (l, r, b) = m.ids();
        let mi = method_index(method);
        if let Series::Counter(c) = series(m.generation, Key::Requests(l, r, b, mi, status), || {
            Series::Counter(self.http_requests.with_label_values(&[
                &m.gateway(),
                m.listener_name(),
                &m.route(),
                m.backend_name(),
                method_label(method),
                &status.to_string(),
            ]))
        }) {
            c.inc();
        }
        let class = (status / 100).min(6) as u8;
        if let Series::Histogram(h) = series(m.generation, Key::Duration(l, r, class), || {
            Series::Histogram(self.http_request_duration.with_label_values(&[
                &m.gateway(),
                m.listener_name(),
                &m.route(),
                code_class(status),
            ]))
        }) {
            h.observe(took.as_secs_f64());
        }
    }

    /// Counts a backend connection used for a request.
    pub fn upstream_connection(&self, m: &Matched<'_>, reused: bool) {
        let (_, r, b) = m.ids();
        if let Series::Counter(c) =
            series(m.generation, Key::UpstreamConnections(r, b, reused), || {
                Series::Counter(
                    self.upstream_connections.with_label_values(&[
                        m.backend_name(),
                        if reused { "true" } else { "false" },
                    ]),
                )
            })
        {
            c.inc();
        }
    }

    /// Counts a failed connection attempt to a backend endpoint.
    pub fn connect_error(&self, m: &Matched<'_>) {
        let (_, r, b) = m.ids();
        if let Series::Counter(c) = series(m.generation, Key::ConnectErrors(r, b), || {
            Series::Counter(
                self.upstream_connect_errors
                    .with_label_values(&[m.backend_name()]),
            )
        }) {
            c.inc();
        }
    }

    /// Records the time from choosing an endpoint to its response head.
    pub fn upstream_duration(&self, m: &Matched<'_>, took: Duration) {
        let (_, r, b) = m.ids();
        if let Series::Histogram(h) = series(m.generation, Key::UpstreamDuration(r, b), || {
            Series::Histogram(
                self.upstream_request_duration
                    .with_label_values(&[&m.route(), m.backend_name()]),
            )
        }) {
            h.observe(took.as_secs_f64());
        }
    }
}

/// The configured names a generation has, for pruning series.
#[derive(Debug, Default)]
pub struct LiveNames {
    pub gateways: HashSet<String>,
    /// (gateway, listener)
    pub listeners: HashSet<(String, String)>,
    pub routes: HashSet<String>,
    pub backends: HashSet<String>,
    pub secrets: HashSet<String>,
}

impl LiveNames {
    pub fn of(snapshot: &gatehouse_model::Snapshot) -> LiveNames {
        let mut live = LiveNames::default();
        for l in &snapshot.listeners {
            let gw = l.gateway.namespaced_name();
            live.gateways.insert(gw.clone());
            live.listeners.insert((gw, l.name.clone()));
            let mut add_rule =
                |route: &gatehouse_model::ResourceKey,
                 backends: &gatehouse_model::backend::Backends| {
                    live.routes.insert(route.namespaced_name());
                    for b in backends.entries() {
                        live.backends.insert(b.name.clone());
                        for m in &b.filters.mirrors {
                            live.backends.insert(m.name.clone());
                        }
                    }
                };
            match &l.kind {
                gatehouse_model::listener::ListenerKind::Http { routes }
                | gatehouse_model::listener::ListenerKind::Https { routes, .. } => {
                    for rule in routes.rules() {
                        add_rule(&rule.rule.route, &rule.backends);
                    }
                    for rule in routes.rules() {
                        for m in &rule.filters.mirrors {
                            live.backends.insert(m.name.clone());
                        }
                    }
                }
                gatehouse_model::listener::ListenerKind::TlsPassthrough { routes }
                | gatehouse_model::listener::ListenerKind::TlsTerminate { routes, .. } => {
                    for rule in routes.rules() {
                        add_rule(&rule.rule.route, &rule.backends);
                    }
                }
                gatehouse_model::listener::ListenerKind::Tcp { rule }
                | gatehouse_model::listener::ListenerKind::Udp { rule, .. } => {
                    if let Some(rule) = rule {
                        add_rule(&rule.rule.route, &rule.backends);
                    }
                }
            }
            if let gatehouse_model::listener::ListenerKind::Https { certificates, .. }
            | gatehouse_model::listener::ListenerKind::TlsTerminate { certificates, .. } =
                &l.kind
            {
                for c in certificates {
                    live.secrets.insert(c.secret.namespaced_name());
                }
            }
        }
        live
    }

    /// Whether a series' labels all name things that still exist ("" always does: it is
    /// what a request that matched nothing is counted under).
    fn admits(&self, labels: &HashMap<&str, &str>) -> bool {
        let has = |set: &HashSet<String>, key: &str| {
            labels
                .get(key)
                .is_none_or(|v| v.is_empty() || set.contains(*v))
        };
        let listener_ok = match (labels.get("gateway"), labels.get("listener")) {
            (Some(g), Some(l)) if !l.is_empty() => {
                self.listeners.contains(&(g.to_string(), l.to_string()))
            }
            _ => true,
        };
        has(&self.gateways, "gateway")
            && listener_ok
            && has(&self.routes, "route")
            && has(&self.backends, "backend")
            && has(&self.secrets, "secret")
    }
}

/// The build's version as a constant-1 gauge.
pub fn register_build_info(registry: &Registry) {
    let g = Gauge::with_opts(
        Opts::new(
            "gatehouse_build_info",
            "Always 1; the labels say which build runs.",
        )
        .const_label("version", env!("CARGO_PKG_VERSION")),
    )
    .expect("valid metric definition");
    g.set(1.0);
    register(registry, g);
}

/// The expiry of a DER certificate, as Unix seconds.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "_OTHER");
    }

    #[test]
    fn series_of_removed_routes_are_pruned() {
        let registry = Registry::new();
        let m = Metrics::new(&registry);
        m.http_requests
            .with_label_values(&[
                "default/gw",
                "web",
                "default/kept",
                "default/a:80",
                "GET",
                "200",
            ])
            .inc();
        m.http_requests
            .with_label_values(&[
                "default/gw",
                "web",
                "default/gone",
                "default/b:80",
                "GET",
                "200",
            ])
            .inc();
        m.http_requests
            .with_label_values(&["default/gw", "web", "", "", "GET", "404"])
            .inc();
        let live = LiveNames {
            gateways: ["default/gw".to_string()].into(),
            listeners: [("default/gw".to_string(), "web".to_string())].into(),
            routes: ["default/kept".to_string()].into(),
            backends: ["default/a:80".to_string()].into(),
            secrets: HashSet::new(),
        };
        m.retain(&live);
        let routes: Vec<String> = m.http_requests.collect()[0]
            .get_metric()
            .iter()
            .map(|s| {
                s.get_label()
                    .iter()
                    .find(|l| l.name() == "route")
                    .unwrap()
                    .value()
                    .to_string()
            })
            .collect();
        assert_eq!(routes.len(), 2);
        assert!(routes.contains(&"default/kept".to_string()));
        assert!(routes.contains(&String::new()));
    }
}
