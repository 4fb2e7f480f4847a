//! The conformance fixtures of `gateway-api-semantics.md` §0 as gatehouse TOML (namespaces,
//! the infra backends as Services in front of `gatehouse echo` processes, Gateways on
//! addresses of their own), and a checker that sends the catalog's requests and collects every
//! mismatch of a case before failing. Used by `http_routing.rs` and `http_references.rs`; the
//! fixtures also by `tls_terminate.rs` and `tls_passthrough.rs`.

use crate::client::build;
use crate::{Client, ConfigDir, Echo, Gateway, Resp, unique_ip};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

pub const INFRA: &str = "gateway-conformance-infra";
pub const WEB: &str = "gateway-conformance-web-backend";
pub const APP: &str = "gateway-conformance-app-backend";

/// How long a reloaded configuration may take to be served.
pub const RELOAD_DEADLINE: Duration = Duration::from_secs(20);

/// An echo backend named `name` reporting namespace `namespace`, on its own address, port 3000.
pub fn echo(name: &str, namespace: &str) -> Echo {
    Echo::start_at(SocketAddr::from((unique_ip(), 3000)), name, namespace)
}

/// The fixture namespaces; web-backend carries `gateway-conformance = "backend"`.
pub fn namespaces() -> String {
    format!(
        r#"
[[Namespace]]
name = "{INFRA}"
[[Namespace]]
name = "{WEB}"
labels = {{ gateway-conformance = "backend" }}
[[Namespace]]
name = "{APP}"
"#
    )
}

/// A Service with port 8080 (targetPort 3000, as in the fixtures) in front of `endpoints`.
pub fn service(name: &str, namespace: &str, endpoints: &[&Echo]) -> String {
    let list = endpoints
        .iter()
        .map(|e| format!("\"{}\"", e.addr.ip()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[[Service]]
name = "{name}"
namespace = "{namespace}"
ports = [{{ port = 8080, targetPort = 3000 }}]
endpoints = [{list}]
"#
    )
}

/// `infra-backend-v1`, `-v2` and `-v3`, each an echo process behind a Service in infra.
#[derive(Debug)]
pub struct Infra {
    pub v1: Echo,
    pub v2: Echo,
    pub v3: Echo,
}

impl Infra {
    pub fn start() -> Infra {
        Infra {
            v1: echo("infra-backend-v1", INFRA),
            v2: echo("infra-backend-v2", INFRA),
            v3: echo("infra-backend-v3", INFRA),
        }
    }

    /// The namespaces and the three Services.
    pub fn toml(&self) -> String {
        format!(
            "{}{}{}{}",
            namespaces(),
            service("infra-backend-v1", INFRA, &[&self.v1]),
            service("infra-backend-v2", INFRA, &[&self.v2]),
            service("infra-backend-v3", INFRA, &[&self.v3]),
        )
    }
}

/// A Gateway in infra bound to `ip` only; `listeners` are inline tables separated by commas.
pub fn gateway(name: &str, ip: Ipv4Addr, listeners: &str) -> String {
    format!(
        r#"
[[Gateway]]
name = "{name}"
namespace = "{INFRA}"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [
{listeners}
]
"#
    )
}

/// An HTTP listener for [`gateway`]: `hostname` optional, routes allowed from `from`.
pub fn http_listener(name: &str, port: u16, hostname: Option<&str>, from: &str) -> String {
    let host = hostname
        .map(|h| format!(", hostname = \"{h}\""))
        .unwrap_or_default();
    format!(
        "  {{ name = \"{name}\", protocol = \"HTTP\", port = {port}{host}, allowedRoutes = {{ namespaces = {{ from = \"{from}\" }} }} }},"
    )
}

/// The fixture Gateway `same-namespace`: HTTP :80, listener `http`, from Same.
pub fn same_namespace(ip: Ipv4Addr) -> String {
    gateway(
        "same-namespace",
        ip,
        &http_listener("http", 80, None, "Same"),
    )
}

/// Starts `gatehouse run` on `toml` and waits until `ip` accepts on every one of `ports`.
pub fn start(toml: &str, ip: Ipv4Addr, ports: &[u16]) -> Gateway {
    let addrs: Vec<SocketAddr> = ports.iter().map(|p| SocketAddr::from((ip, *p))).collect();
    Gateway::start(ConfigDir::with_main(toml), &addrs)
}

/// Rewrites the gateway's gatehouse.toml, sends SIGHUP and waits (on a deadline) until the
/// daemon logged its `reloads`-th successful reload.
pub fn reload(gw: &Gateway, toml: &str, reloads: usize) {
    gw.dir.write("gatehouse.toml", toml);
    gw.reload();
    let deadline = Instant::now() + RELOAD_DEADLINE;
    loop {
        let log = gw.log();
        assert!(
            !log.contains("configuration rejected"),
            "reload rejected: {log}"
        );
        // Counted by trigger: the write is also seen by the file watcher, whose reloads
        // come and go on their own schedule.
        let applied = log
            .lines()
            .filter(|l| l.contains("configuration applied") && l.contains("SIGHUP"))
            .count();
        if applied >= reloads {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no reload within the deadline: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a request must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// 200 from this echo backend, which saw the request's method and RequestURI.
    Backend(&'static str),
    /// This status, from the gateway.
    Status(u16),
}

pub const V1: Want = Want::Backend("infra-backend-v1");
pub const V2: Want = Want::Backend("infra-backend-v2");
pub const V3: Want = Want::Backend("infra-backend-v3");
pub const NOT_FOUND: Want = Want::Status(404);
pub const SERVER_ERROR: Want = Want::Status(500);
pub const UNAVAILABLE: Want = Want::Status(503);

/// Sends requests over keep-alive connections (one per gateway address) and records every
/// answer that differs from the catalog.
#[derive(Debug)]
pub struct Checker {
    addr: SocketAddr,
    clients: HashMap<SocketAddr, Client>,
    failures: Vec<String>,
}

/// A short description of a response: status, and the echo backend or the body.
pub fn describe(r: &Resp) -> String {
    match r.backend() {
        Some(b) => format!(
            "{} from {b} (path {}, method {})",
            r.status,
            r.json()["path"],
            r.json()["method"]
        ),
        None => {
            let body = String::from_utf8_lossy(&r.body);
            format!(
                "{} {:?}",
                r.status,
                body.chars().take(120).collect::<String>()
            )
        }
    }
}

impl Checker {
    /// A checker whose plain `get`/`req` go to `addr`.
    pub fn new(addr: SocketAddr) -> Checker {
        Checker {
            addr,
            clients: HashMap::new(),
            failures: Vec::new(),
        }
    }

    /// Sends one request to `addr`; a transport error is retried once on a new connection
    /// (the gateway closes connections after some errors), a second one panics.
    pub async fn send(
        &mut self,
        addr: SocketAddr,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let client = self
            .clients
            .entry(addr)
            .or_insert_with(|| Client::http1(addr));
        let mut last = None;
        for _ in 0..2 {
            let req = build(method, host, path, headers, bytes::Bytes::new(), false);
            match client.send(req).await {
                Ok(r) => return r,
                Err(e) => {
                    *client = Client::http1(addr);
                    last = Some(e);
                }
            }
        }
        panic!(
            "{method} http://{host}{path} {headers:?} via {addr}: {}",
            last.expect("an error")
        )
    }

    /// Sends a request and records a failure unless the answer is `want`.
    pub async fn check_at(
        &mut self,
        addr: SocketAddr,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        want: Want,
    ) {
        let r = self.send(addr, method, host, path, headers).await;
        let ok = match want {
            Want::Backend(name) => {
                let j = r.json();
                r.status == 200
                    && r.backend().as_deref() == Some(name)
                    && j["path"] == path
                    && j["method"] == method
            }
            Want::Status(code) => r.status == code,
        };
        if !ok {
            self.failures.push(format!(
                "{method} {path} Host: {host} {headers:?} via {addr}: want {want:?}, got {}",
                describe(&r)
            ));
        }
    }

    /// GET to the default address.
    pub async fn get(&mut self, host: &str, path: &str, want: Want) {
        self.check_at(self.addr, "GET", host, path, &[], want).await;
    }

    /// A request with a method and headers to the default address.
    pub async fn req(
        &mut self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        want: Want,
    ) {
        self.check_at(self.addr, method, host, path, headers, want)
            .await;
    }

    /// Records a failure found by the caller.
    pub fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    /// Panics listing every mismatch, with the end of the gateway's log.
    pub fn finish(self, gw: &Gateway) {
        assert!(
            self.failures.is_empty(),
            "{} mismatch(es):\n  {}\n--- gateway log (end) ---\n{}",
            self.failures.len(),
            self.failures.join("\n  "),
            log_tail(gw, 60)
        );
    }
}

/// The last `n` lines the gateway printed.
pub fn log_tail(gw: &Gateway, n: usize) -> String {
    let log = gw.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
