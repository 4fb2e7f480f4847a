//! Backends: Services with their endpoints, the backendRefs of a rule, and the weighted choice.
//!
//! A rule's backendRefs compile to a [`Backends`] set: each entry is either a resolved Service
//! port or the reason it could not be resolved (its share of requests is answered with 500,
//! as the Gateway API requires). [`Backends::pick`] draws one entry by weight from a random
//! number the caller supplies, so the choice is deterministic under test.

use crate::ResourceKey;
use crate::filter::Filters;
use serde::Serialize;
use std::net::IpAddr;
use std::time::Duration;

/// Index of a [`Service`] in `Snapshot::services`.
pub type ServiceId = usize;

/// One address a Service forwards to, as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Endpoint {
    /// An IP address, optionally with its own port (else the Service port's targetPort).
    Ip { addr: IpAddr, port: Option<u16> },
    /// A DNS name, resolved off the request path and re-resolved periodically.
    Dns { name: String, port: Option<u16> },
}

/// The protocol a Service port speaks, from its `appProtocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum AppProtocol {
    /// HTTP/1.1 (no appProtocol, or `http`).
    Http1,
    /// HTTP/2 over cleartext with prior knowledge (`kubernetes.io/h2c`).
    H2c,
    /// WebSocket over HTTP/1.1 (`kubernetes.io/ws`).
    WebSocket,
}

impl AppProtocol {
    /// Maps a Service port's `appProtocol` to what gatehouse can speak to it; `None` when it
    /// cannot (the backendRef is then `ResolvedRefs=False/UnsupportedProtocol`).
    pub fn from_app_protocol(value: Option<&str>) -> Option<AppProtocol> {
        match value {
            None | Some("http") | Some("HTTP") => Some(AppProtocol::Http1),
            Some("kubernetes.io/h2c") => Some(AppProtocol::H2c),
            Some("kubernetes.io/ws") => Some(AppProtocol::WebSocket),
            Some(_) => None,
        }
    }
}

/// A Service port: the port backendRefs name, and the port endpoints listen on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub target_port: u16,
    pub app_protocol: Option<String>,
}

/// Active health checking of a Service's endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    pub kind: HealthCheckKind,
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum HealthCheckKind {
    Tcp,
    Http,
}

/// Passive health checking: eject an endpoint after consecutive errors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutlierDetection {
    pub consecutive_errors: u32,
    pub ejection_time: Duration,
}

/// A `[[Service]]`: the stand-in for a Kubernetes Service and its EndpointSlices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Service {
    pub key: ResourceKey,
    pub ports: Vec<ServicePort>,
    pub endpoints: Vec<Endpoint>,
    pub health_check: Option<HealthCheck>,
    pub outlier_detection: Option<OutlierDetection>,
    /// A PROXY protocol header sent first on every connection gatehouse forwards at layer 4
    /// (TLS passthrough, TCPRoute, TLSRoute Terminate), so the backend learns the client's
    /// address.
    pub proxy_protocol: Option<ProxyVersion>,
    /// The BackendTLSPolicy claiming the Service's first port, the one `healthCheck` probes:
    /// the checks then speak TLS as that policy says (and fail while it has no usable CA).
    pub health_check_tls: Option<crate::ResourceKey>,
}

/// The PROXY protocol version a Service's endpoints read (HAProxy's `send-proxy` and
/// `send-proxy-v2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ProxyVersion {
    /// The text header: `PROXY TCP4 <client> <local> <client port> <local port>\r\n`.
    V1,
    /// The binary header.
    V2,
}

impl Service {
    pub fn port(&self, port: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.port == port)
    }
}

/// Why a backendRef could not be resolved. Requests that draw it are answered with 500.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Unresolved {
    /// The Service (or its port) does not exist: `BackendNotFound`.
    NotFound,
    /// The reference names a group/kind gatehouse does not know: `InvalidKind`.
    InvalidKind,
    /// Cross-namespace reference without a ReferenceGrant: `RefNotPermitted`.
    NotPermitted,
    /// The Service port's appProtocol is not one gatehouse speaks: `UnsupportedProtocol`.
    UnsupportedProtocol,
    /// A BackendTLSPolicy targets the Service port but has no valid CA certificate: the
    /// connection must fail (the policy's status says why; the route's refs are fine).
    InvalidBackendTls,
}

/// Where a backendRef sends traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum BackendTarget {
    Service {
        service: ServiceId,
        /// The Service port the reference names (for logs and metrics).
        port: u16,
        /// The port endpoints listen on (endpoints may override it).
        target_port: u16,
        protocol: AppProtocol,
        /// The BackendTLSPolicy that makes the connection TLS, if one targets the port.
        tls: Option<crate::backend_tls::BackendTlsId>,
    },
    Unresolved(Unresolved),
}

/// One backendRef of a rule, compiled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Backend {
    /// `namespace/name:port` of the reference, for logs and metrics labels.
    pub name: String,
    pub weight: u32,
    pub target: BackendTarget,
    /// Filters that run only when this backend is chosen.
    pub filters: Filters,
}

/// What a weighted draw among a rule's backends gives.
#[derive(Debug, PartialEq)]
pub enum Pick<'a> {
    /// The backendRef drawn, with its index in the rule.
    Backend(usize, &'a Backend),
    /// Every weight is zero (or there are no backendRefs with weight): 503 when the rule has
    /// backendRefs at all.
    AllWeightsZero,
    /// The rule has no backendRefs: 500.
    NoBackends,
}

/// The backendRefs of one rule with their cumulative weights, ready for a weighted draw.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Backends {
    entries: Vec<Backend>,
    #[serde(skip)]
    cumulative: Vec<u64>,
}

impl Backends {
    pub fn new(entries: Vec<Backend>) -> Backends {
        let mut sum = 0u64;
        let cumulative = entries
            .iter()
            .map(|b| {
                sum += u64::from(b.weight);
                sum
            })
            .collect();
        Backends {
            entries,
            cumulative,
        }
    }

    pub fn entries(&self) -> &[Backend] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sum of all weights.
    pub fn total_weight(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// Draws a backend with probability weight / total weight, from a uniformly distributed
    /// `random`. A backend of weight 0 is never drawn.
    pub fn pick(&self, random: u64) -> Pick<'_> {
        if self.entries.is_empty() {
            return Pick::NoBackends;
        }
        let total = self.total_weight();
        if total == 0 {
            return Pick::AllWeightsZero;
        }
        let r = random % total;
        // First entry whose cumulative weight exceeds r; zero-weight entries share their
        // predecessor's cumulative value and so are never first.
        let i = self.cumulative.partition_point(|&c| c <= r);
        Pick::Backend(i, &self.entries[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(name: &str, weight: u32) -> Backend {
        Backend {
            name: name.into(),
            weight,
            target: BackendTarget::Unresolved(Unresolved::NotFound),
            filters: Filters::default(),
        }
    }

    fn shares(b: &Backends, draws: u64) -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64)> =
            b.entries().iter().map(|e| (e.name.clone(), 0)).collect();
        for r in 0..draws {
            if let Pick::Backend(_, e) = b.pick(r) {
                counts.iter_mut().find(|(n, _)| *n == e.name).unwrap().1 += 1;
            }
        }
        counts
    }

    #[test]
    fn weights_split_traffic_proportionally() {
        let b = Backends::new(vec![backend("v1", 70), backend("v2", 30), backend("v3", 0)]);
        assert_eq!(
            shares(&b, 100),
            vec![("v1".into(), 70), ("v2".into(), 30), ("v3".into(), 0)]
        );
    }

    #[test]
    fn weight_zero_is_never_chosen() {
        let b = Backends::new(vec![
            backend("zero", 0),
            backend("one", 1),
            backend("zero2", 0),
        ]);
        for r in 0..50 {
            assert_eq!(b.pick(r), Pick::Backend(1, &b.entries()[1]));
        }
    }

    #[test]
    fn all_weights_zero_has_no_backend() {
        let b = Backends::new(vec![backend("a", 0), backend("b", 0)]);
        assert_eq!(b.pick(7), Pick::AllWeightsZero);
        assert_eq!(Backends::new(vec![]).pick(7), Pick::NoBackends);
    }

    #[test]
    fn ninety_nine_to_one_canary() {
        let b = Backends::new(vec![backend("stable", 99), backend("canary", 1)]);
        assert_eq!(
            shares(&b, 1000),
            vec![("stable".into(), 990), ("canary".into(), 10)]
        );
    }

    #[test]
    fn app_protocols_gatehouse_speaks() {
        assert_eq!(
            AppProtocol::from_app_protocol(None),
            Some(AppProtocol::Http1)
        );
        assert_eq!(
            AppProtocol::from_app_protocol(Some("kubernetes.io/h2c")),
            Some(AppProtocol::H2c)
        );
        assert_eq!(
            AppProtocol::from_app_protocol(Some("kubernetes.io/ws")),
            Some(AppProtocol::WebSocket)
        );
        assert_eq!(
            AppProtocol::from_app_protocol(Some("kubernetes.io/wss")),
            None
        );
    }
}
