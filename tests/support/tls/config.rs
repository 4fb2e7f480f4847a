//! Configuration snippets for TLS: HTTPS (Terminate) and TLS (Passthrough) listeners as
//! inline tables (for [`crate::conformance::gateway`]), HTTPRoutes and TLSRoutes with their
//! parentRefs, Services in front of TLS backends, and a gateway started on them.

use crate::{ConfigDir, Gateway};
use std::net::{Ipv4Addr, SocketAddr};

/// An HTTPS listener terminating with the Secret `secret` (same namespace as the Gateway).
pub fn https_listener(name: &str, port: u16, hostname: Option<&str>, secret: &str) -> String {
    let host = hostname
        .map(|h| format!(", hostname = \"{h}\""))
        .unwrap_or_default();
    format!(
        "  {{ name = \"{name}\", protocol = \"HTTPS\", port = {port}{host}, tls = {{ mode = \"Terminate\", certificateRefs = [{{ kind = \"Secret\", name = \"{secret}\" }}] }}, allowedRoutes = {{ namespaces = {{ from = \"Same\" }} }} }},"
    )
}

/// A TLS Passthrough listener for TLSRoutes.
pub fn tls_listener(name: &str, port: u16, hostname: Option<&str>) -> String {
    let host = hostname
        .map(|h| format!(", hostname = \"{h}\""))
        .unwrap_or_default();
    format!(
        "  {{ name = \"{name}\", protocol = \"TLS\", port = {port}{host}, tls = {{ mode = \"Passthrough\" }}, allowedRoutes = {{ namespaces = {{ from = \"Same\" }}, kinds = [{{ kind = \"TLSRoute\" }}] }} }},"
    )
}

fn parent(gateway: &str, namespace: &str, section: Option<&str>) -> String {
    let section = section
        .map(|s| format!(", sectionName = \"{s}\""))
        .unwrap_or_default();
    format!("{{ name = \"{gateway}\", namespace = \"{namespace}\"{section} }}")
}

fn quoted(list: &[&str]) -> String {
    list.iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An HTTPRoute in `namespace` with one rule: PathPrefix `prefix` → `backend`:8080; no
/// `hostnames` key when `hostnames` is empty.
pub fn http_route(
    name: &str,
    namespace: &str,
    gateway: &str,
    section: Option<&str>,
    hostnames: &[&str],
    prefix: &str,
    backend: &str,
) -> String {
    format!(
        r#"
[[HTTPRoute]]
name = "{name}"
namespace = "{namespace}"
parentRefs = [{parent}]{hostnames}
[[HTTPRoute.rules]]
matches = [{{ path = {{ type = "PathPrefix", value = "{prefix}" }} }}]
backendRefs = [{{ name = "{backend}", port = 8080 }}]
"#,
        parent = parent(gateway, namespace, section),
        hostnames = if hostnames.is_empty() {
            String::new()
        } else {
            format!("\nhostnames = [{}]", quoted(hostnames))
        },
    )
}

/// A TLSRoute in `namespace` for `hostnames` → `backend`:443.
pub fn tls_route(
    name: &str,
    namespace: &str,
    gateway: &str,
    section: Option<&str>,
    hostnames: &[&str],
    backend: &str,
) -> String {
    format!(
        r#"
[[TLSRoute]]
name = "{name}"
namespace = "{namespace}"
parentRefs = [{parent}]
hostnames = [{hostnames}]
[[TLSRoute.rules]]
backendRefs = [{{ name = "{backend}", port = 443 }}]
"#,
        parent = parent(gateway, namespace, section),
        hostnames = quoted(hostnames),
    )
}

/// A Service with port 443 whose one endpoint is `addr` (a TLS backend).
pub fn tls_service(name: &str, namespace: &str, addr: SocketAddr) -> String {
    format!(
        r#"
[[Service]]
name = "{name}"
namespace = "{namespace}"
ports = [{{ port = 443 }}]
endpoints = ["{addr}"]
"#
    )
}

/// Writes `toml` as `dir`'s gatehouse.toml and starts the gateway, waiting until `ip` accepts
/// on each of `ports`.
pub fn start(dir: ConfigDir, toml: &str, ip: Ipv4Addr, ports: &[u16]) -> Gateway {
    dir.write("gatehouse.toml", toml);
    let addrs: Vec<SocketAddr> = ports.iter().map(|p| SocketAddr::from((ip, *p))).collect();
    Gateway::start(dir, &addrs)
}
