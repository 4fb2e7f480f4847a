//! Facts about one client connection, established once when it is accepted and carried with
//! every request on it (never looked up again per request).

use std::net::SocketAddr;

/// What is known about a client connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The local address the client connected to (IPv4-mapped IPv6 shown as IPv4).
    pub local: SocketAddr,
    /// The client's address, in the same canonical form.
    pub peer: SocketAddr,
    /// Set when the connection is TLS terminated by gatehouse.
    pub tls: Option<TlsInfo>,
    /// The client's IP address as text, for forwarding headers (formatted once).
    pub peer_ip_text: String,
    /// The local port as text, for `X-Forwarded-Port` (formatted once).
    pub local_port_text: String,
}

/// What the TLS handshake of a terminated connection established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// The SNI the client sent, normalized (lowercase, no trailing dot).
    pub sni: Option<String>,
    /// Whether ALPN chose HTTP/2.
    pub h2: bool,
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: &'static str,
}

impl ConnInfo {
    /// Connection facts with both addresses put in canonical form.
    pub fn new(local: SocketAddr, peer: SocketAddr) -> ConnInfo {
        let (local, peer) = (canonical(local), canonical(peer));
        ConnInfo {
            local,
            peer,
            tls: None,
            peer_ip_text: peer.ip().to_string(),
            local_port_text: local.port().to_string(),
        }
    }
}

/// `::ffff:192.0.2.1` as `192.0.2.1`; every other address as it is.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}
