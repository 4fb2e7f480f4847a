//! Forwarding headers: what the backend is told about the client (`[forwarded]`).
//!
//! From a peer not in `trustedProxies`, incoming `X-Forwarded-*`, `Forwarded` and `X-Real-IP`
//! are removed (a client cannot feed a backend a fake address or host), and
//! `X-Forwarded-For`, `-Proto`, `-Host` and `-Port` are set from the connection. From a
//! trusted peer (a load balancer in front of gatehouse) they are kept: the peer's address is
//! appended to `X-Forwarded-For`, and `-Proto`, `-Host`, `-Port` are set only when absent.
//! This is Traefik's model; nginx's `real_ip` and HAProxy's `option forwardfor` work alike.

use gatehouse_model::settings::Forwarded;
use pingora_http::RequestHeader;
use std::net::IpAddr;

/// What the connection says about the client.
#[derive(Debug)]
pub struct Client<'a> {
    /// The peer's IP address as text.
    pub peer: &'a str,
    pub scheme: &'a str,
    /// The Host (or `:authority`) the client sent.
    pub host: Option<&'a str>,
    /// The local port as text.
    pub port: &'a str,
}

const FORWARDING: [&str; 2] = ["forwarded", "x-real-ip"];

/// Sets the forwarding headers of the request to the backend.
pub fn apply(req: &mut RequestHeader, client: &Client<'_>, trusted: bool) {
    let peer = client.peer;
    if !trusted {
        let names: Vec<String> = req
            .headers
            .keys()
            .map(|n| n.as_str())
            .filter(|n| n.starts_with("x-forwarded-") || FORWARDING.contains(n))
            .map(str::to_string)
            .collect();
        for n in names {
            req.remove_header(&n);
        }
    }
    let xff = match req
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
    {
        prev if prev.is_empty() => peer.to_string(),
        prev => format!("{}, {peer}", prev.join(", ")),
    };
    let _ = req.insert_header("x-forwarded-for", xff);
    let mut set = |name: &'static str, value: &str| {
        if !req.headers.contains_key(name) {
            let _ = req.insert_header(name, value);
        }
    };
    set("x-forwarded-proto", client.scheme);
    if let Some(h) = client.host {
        set("x-forwarded-host", h);
    }
    set("x-forwarded-port", client.port);
}

/// The client's address as the access log records it: the peer, or, from a trusted peer,
/// the right-most address of `X-Forwarded-For` that is not itself a trusted proxy.
pub fn effective_client(req: &RequestHeader, peer: IpAddr, forwarded: &Forwarded) -> IpAddr {
    if !forwarded.trusts(peer) {
        return peer;
    }
    let chain: Vec<IpAddr> = req
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect();
    chain
        .iter()
        .rev()
        .find(|a| !forwarded.trusts(**a))
        .or(chain.first())
        .copied()
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    fn get<'a>(r: &'a RequestHeader, n: &str) -> Option<&'a str> {
        r.headers.get(n).and_then(|v| v.to_str().ok())
    }

    const CLIENT: Client<'static> = Client {
        peer: "192.0.2.7",
        scheme: "https",
        host: Some("shop.example.com"),
        port: "443",
    };

    fn spoofed() -> RequestHeader {
        req(&[
            ("X-Forwarded-For", "10.9.9.9"),
            ("X-Forwarded-Host", "admin.internal"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Prefix", "/admin"),
            ("Forwarded", "for=10.9.9.9"),
            ("X-Real-IP", "10.9.9.9"),
        ])
    }

    #[test]
    fn an_untrusted_peer_cannot_set_forwarding_headers() {
        let mut r = spoofed();
        apply(&mut r, &CLIENT, false);
        assert_eq!(get(&r, "x-forwarded-for"), Some("192.0.2.7"));
        assert_eq!(get(&r, "x-forwarded-host"), Some("shop.example.com"));
        assert_eq!(get(&r, "x-forwarded-proto"), Some("https"));
        assert_eq!(get(&r, "x-forwarded-port"), Some("443"));
        assert_eq!(get(&r, "x-forwarded-prefix"), None);
        assert_eq!(get(&r, "forwarded"), None);
        assert_eq!(get(&r, "x-real-ip"), None);
    }

    #[test]
    fn a_trusted_peer_keeps_its_headers_and_is_appended() {
        let mut r = spoofed();
        apply(&mut r, &CLIENT, true);
        assert_eq!(get(&r, "x-forwarded-for"), Some("10.9.9.9, 192.0.2.7"));
        assert_eq!(get(&r, "x-forwarded-host"), Some("admin.internal"));
        assert_eq!(get(&r, "x-forwarded-proto"), Some("http"));
        assert_eq!(get(&r, "x-forwarded-port"), Some("443"));
        assert_eq!(get(&r, "forwarded"), Some("for=10.9.9.9"));
    }

    #[test]
    fn the_effective_client_is_the_first_untrusted_address_from_the_right() {
        let f = Forwarded {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        };
        let r = req(&[("X-Forwarded-For", "198.51.100.1, 203.0.113.9, 10.1.1.1")]);
        let lb: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            effective_client(&r, lb, &f),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let outsider: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(effective_client(&r, outsider, &f), outsider);
    }
}
