//! Listeners as the data plane serves them, and how a connection finds its listener.
//!
//! Listeners of every Gateway are grouped by port (UDP listeners apart from the others: a
//! UDP port is not the TCP port of the same number). A connection arriving on a local address
//! considers the listeners on that port whose Gateway is bound there (a Gateway without
//! addresses is bound everywhere), then picks one by Host or SNI with
//! [`crate::hostname::select_by_host`].

use crate::ResourceKey;
use crate::hostname::Hostname;
use crate::http::HttpRouteTable;
use crate::tls::{Certificate, SniTable, TlsRule};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// The listener protocols gatehouse serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    HTTP,
    HTTPS,
    TLS,
    TCP,
    UDP,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "HTTP" => Some(Protocol::HTTP),
            "HTTPS" => Some(Protocol::HTTPS),
            "TLS" => Some(Protocol::TLS),
            "TCP" => Some(Protocol::TCP),
            "UDP" => Some(Protocol::UDP),
            _ => None,
        }
    }

    /// Whether connections on this listener start with a TLS ClientHello (TCP listeners'
    /// connections are spliced as they come, HTTP ones are read as HTTP).
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::HTTPS | Protocol::TLS)
    }

    /// Whether the listener takes UDP datagrams rather than TCP connections: its port is a
    /// UDP port, separate from the TCP port of the same number.
    pub fn is_udp(self) -> bool {
        self == Protocol::UDP
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a listener does with a connection.
#[derive(Clone, Debug)]
pub enum ListenerKind {
    /// Plain HTTP/1.1 and h2c.
    Http { routes: HttpRouteTable },
    /// TLS terminated with one of `certificates` (chosen by SNI), then HTTP.
    Https {
        routes: HttpRouteTable,
        certificates: Vec<Arc<Certificate>>,
    },
    /// TLS passed through to a backend chosen by SNI.
    TlsPassthrough { routes: SniTable },
    /// TLS terminated with one of `certificates` (chosen by SNI), then the plaintext stream
    /// spliced to a TCP backend of the TLSRoute the SNI selects.
    TlsTerminate {
        routes: SniTable,
        certificates: Vec<Arc<Certificate>>,
    },
    /// Every connection spliced to a backend of the one TCPRoute rule the listener serves
    /// (`None`: no route attached, connections are closed).
    Tcp { rule: Option<Arc<TlsRule>> },
    /// Every client flow (source address and port) relayed to a backend of the one UDPRoute
    /// rule the listener serves (`None`: no route attached, datagrams are dropped); a flow
    /// silent for `idle_timeout` ends.
    Udp {
        rule: Option<Arc<TlsRule>>,
        idle_timeout: std::time::Duration,
    },
}

/// A programmed listener.
#[derive(Clone, Debug)]
pub struct Listener {
    pub gateway: ResourceKey,
    pub name: String,
    pub hostname: Option<Hostname>,
    pub port: u16,
    pub protocol: Protocol,
    /// The Gateway's addresses; empty means every address of the host.
    pub addresses: Vec<IpAddr>,
    pub kind: ListenerKind,
}

impl Listener {
    /// `gateway/listener`, for logs and metrics.
    pub fn label(&self) -> String {
        format!("{}/{}", self.gateway.namespaced_name(), self.name)
    }

    pub fn http_routes(&self) -> Option<&HttpRouteTable> {
        match &self.kind {
            ListenerKind::Http { routes } | ListenerKind::Https { routes, .. } => Some(routes),
            ListenerKind::TlsPassthrough { .. }
            | ListenerKind::TlsTerminate { .. }
            | ListenerKind::Tcp { .. }
            | ListenerKind::Udp { .. } => None,
        }
    }
}
