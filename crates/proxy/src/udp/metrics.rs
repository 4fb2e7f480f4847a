//! UDP metrics: flows, datagrams and bytes per route, and datagrams dropped by reason. A
//! flow resolves its series once when it starts ([`FlowSeries`]), so a datagram costs an
//! atomic add, not a label lookup.

use crate::metrics::{connection_histogram, counter, gauge};
use gatehouse_model::listener::Listener;
use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};
use std::time::Duration;

/// Why a datagram from a client was not relayed (the `reason` label of
/// `gatehouse_udp_dropped_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// No programmed UDP listener for the address it was sent to.
    NoListener,
    /// The listener has no UDPRoute.
    NoRoute,
    /// The backendRef drawn is unresolved, or every weight is zero.
    NoBackend,
    /// The backend has no (healthy) endpoint.
    NoEndpoint,
    /// `[limits] udpMaxFlows` flows were open.
    FlowTableFull,
    /// The backend socket's send buffer was full, or the send failed.
    BackendSendFailed,
    /// A reply could not be sent to the client (the listening socket's buffer was full).
    ClientSendFailed,
}

impl Drop {
    const ALL: [Drop; 7] = [
        Drop::NoListener,
        Drop::NoRoute,
        Drop::NoBackend,
        Drop::NoEndpoint,
        Drop::FlowTableFull,
        Drop::BackendSendFailed,
        Drop::ClientSendFailed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Drop::NoListener => "no_listener",
            Drop::NoRoute => "no_route",
            Drop::NoBackend => "no_backend",
            Drop::NoEndpoint => "no_endpoint",
            Drop::FlowTableFull => "flow_table_full",
            Drop::BackendSendFailed => "backend_send_failed",
            Drop::ClientSendFailed => "client_send_failed",
        }
    }
}

/// The UDP series.
#[derive(Clone, Debug)]
pub struct UdpMetrics {
    pub flows: IntCounterVec,
    pub flows_active: IntGaugeVec,
    pub flow_duration: HistogramVec,
    pub datagrams: IntCounterVec,
    pub bytes: IntCounterVec,
    pub dropped: IntCounterVec,
}

impl UdpMetrics {
    pub fn new(registry: &Registry) -> UdpMetrics {
        let route = &["gateway", "listener", "route"];
        let directed = &["gateway", "listener", "route", "direction"];
        UdpMetrics {
            flows: counter(
                registry,
                "gatehouse_udp_flows_total",
                "UDP flows (one client address and port) started on a UDPRoute.",
                route,
            ),
            flows_active: gauge(
                registry,
                "gatehouse_udp_flows_active",
                "UDP flows open now.",
                route,
            ),
            flow_duration: connection_histogram(
                registry,
                "gatehouse_udp_flow_duration_seconds",
                "Life of a UDP flow, from its first datagram to its end.",
                route,
            ),
            datagrams: counter(
                registry,
                "gatehouse_udp_datagrams_total",
                "Datagrams relayed, by direction (in: client to backend).",
                directed,
            ),
            bytes: counter(
                registry,
                "gatehouse_udp_bytes_total",
                "Payload bytes relayed, by direction (in: client to backend).",
                directed,
            ),
            dropped: counter(
                registry,
                "gatehouse_udp_dropped_total",
                "Datagrams not relayed, by the port they arrived on and why.",
                &["port", "reason"],
            ),
        }
    }

    pub fn dropped(&self, port: u16, why: Drop) {
        self.dropped
            .with_label_values(&[&port.to_string(), why.label()])
            .inc();
    }

    /// The series of a flow on `listener` served by `route`; counts the flow as started.
    pub fn flow(&self, listener: &Listener, route: &str) -> FlowSeries {
        let gw = listener.gateway.namespaced_name();
        let labels = [gw.as_str(), listener.name.as_str(), route];
        let directed = |v: &IntCounterVec, dir: &str| {
            v.with_label_values(&[labels[0], labels[1], labels[2], dir])
        };
        self.flows.with_label_values(&labels).inc();
        let active = self.flows_active.with_label_values(&labels);
        active.inc();
        FlowSeries {
            datagrams_in: directed(&self.datagrams, "in"),
            datagrams_out: directed(&self.datagrams, "out"),
            bytes_in: directed(&self.bytes, "in"),
            bytes_out: directed(&self.bytes, "out"),
            active,
            duration: self.flow_duration.with_label_values(&labels),
        }
    }

    /// Zero series for every drop reason on `port`, so a dashboard sees them before the first.
    pub fn declare_port(&self, port: u16) {
        for d in Drop::ALL {
            self.dropped
                .with_label_values(&[&port.to_string(), d.label()]);
        }
    }
}

/// One flow's series.
#[derive(Debug)]
pub struct FlowSeries {
    pub datagrams_in: IntCounter,
    pub datagrams_out: IntCounter,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    active: IntGauge,
    duration: prometheus::Histogram,
}

impl FlowSeries {
    /// The flow ended after `lived`.
    pub fn ended(&self, lived: Duration) {
        self.active.dec();
        self.duration.observe(lived.as_secs_f64());
    }
}
