//! Prometheus metrics of the data plane, in a registry the daemon owns.
//!
//! Names follow Prometheus conventions (base units, `_total` counters, prefix
//! `gatehouse_`). Labels come only from configured names (gateway, listener, route,
//! backend, Secret) or small fixed sets (method, code, protocol, result); never from request
//! data. After a reload, series of routes, backends and listeners that no longer exist are
//! removed ([`Metrics::retain`]).

use prometheus::core::Collector;
use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};
use std::collections::{HashMap, HashSet};

/// OpenTelemetry's advised HTTP duration buckets, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// A method label: the method if it is a standard one, else `_OTHER`.
pub fn method_label(method: &str) -> &str {
    if METHODS.contains(&method) {
        method
    } else {
        "_OTHER"
    }
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
    pub downstream_connections: IntCounterVec,
    pub downstream_connections_active: IntGaugeVec,
    pub tls_handshakes: IntCounterVec,
    pub tls_certificate_expiry: GaugeVec,
    pub passthrough_connections: IntCounterVec,
    pub passthrough_bytes: IntCounterVec,
    pub sni_unmatched: IntCounterVec,
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    // Registering can only fail on a duplicate name, which the fixed set above never has.
    if let Err(e) = registry.register(Box::new(c.clone())) {
        tracing::error!("metric not registered: {e}");
    }
    c
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
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

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

impl Metrics {
    pub fn new(registry: &Registry) -> Metrics {
        Metrics {
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
            upstream_connect_errors: counter(
                registry,
                "gatehouse_upstream_connect_errors_total",
                "Failed connection attempts to backend endpoints.",
                &["backend"],
            ),
            downstream_connections: counter(
                registry,
                "gatehouse_downstream_connections_total",
                "Client connections accepted, by protocol.",
                &["protocol"],
            ),
            downstream_connections_active: gauge(
                registry,
                "gatehouse_downstream_connections_active",
                "Client connections open, by protocol.",
                &["protocol"],
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
        }
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
            self.passthrough_bytes
        );
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
                gatehouse_model::listener::ListenerKind::TlsPassthrough { routes } => {
                    for rule in routes.rules() {
                        add_rule(&rule.rule.route, &rule.backends);
                    }
                }
            }
            if let gatehouse_model::listener::ListenerKind::Https { certificates, .. } = &l.kind {
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
