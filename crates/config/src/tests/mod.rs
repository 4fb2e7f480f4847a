//! Whole-pipeline tests: TOML in, status and routing out. Each test is named for the Gateway
//! API rule or conformance case it checks.

mod agree;
mod backend_tls;
mod backend_tls_l4;
mod certificates;
mod client_certificate;
mod decide;
mod explain;
mod fuzz;
mod gateways;
mod http_references;
mod http_routes;
mod tcp_routes;
mod tls_routes;
mod udp_routes;

use crate::{Loaded, SourceFile, load};
use agree::decided;
use gatehouse_model::conn::ConnInfo;
use gatehouse_model::decide::{Action, decide};
use gatehouse_model::http::RequestView;
use gatehouse_model::respond::Synthetic;
use gatehouse_model::status::{Condition, ConditionStatus, GatewayStatus, ListenerStatus, find};
use gatehouse_model::{Kind, ResourceKey};
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A self-signed certificate (for the conformance fixture's names) and its key, generated
/// once per test run.
fn cert_and_key() -> &'static (String, String) {
    static PAIR: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    PAIR.get_or_init(|| {
        let names = [
            "*".to_string(),
            "*.org".to_string(),
            "*.wildcard.org".to_string(),
        ];
        let c = rcgen::generate_simple_self_signed(names).expect("rcgen");
        (c.cert.pem(), c.signing_key.serialize_pem())
    })
}

pub fn cert_pem() -> &'static str {
    &cert_and_key().0
}

pub fn key_pem() -> &'static str {
    &cert_and_key().1
}

/// Loads `toml` as gatehouse.toml in /etc/gatehouse, with `files` readable by Secrets.
pub fn load_with(toml: &str, files: &[(&str, &str)]) -> Loaded {
    load_after(toml, files, &crate::Previous::default())
}

/// Like [`load_with`], as a reload after a configuration that left `previous`.
pub fn load_after(toml: &str, files: &[(&str, &str)], previous: &crate::Previous) -> Loaded {
    let files: HashMap<PathBuf, Vec<u8>> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.as_bytes().to_vec()))
        .collect();
    let reader = move |p: &Path| {
        files.get(p).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
        })
    };
    let src = SourceFile::new("gatehouse.toml", "/etc/gatehouse/gatehouse.toml", toml);
    match crate::load_with(&[src], &reader, 7, previous) {
        Ok(l) => l,
        Err(d) => panic!("configuration did not load:\n{d}"),
    }
}

pub fn load_ok(toml: &str) -> Loaded {
    load_with(toml, &[])
}

/// The conformance fixtures' backends, as Services in namespace `infra`.
pub const BACKENDS: &str = r#"
[[Service]]
name = "infra-backend-v1"
namespace = "infra"
ports = [{ port = 8080 }]
endpoints = ["127.0.0.11"]
[[Service]]
name = "infra-backend-v2"
namespace = "infra"
ports = [{ port = 8080 }]
endpoints = ["127.0.0.12"]
[[Service]]
name = "infra-backend-v3"
namespace = "infra"
ports = [{ port = 8080 }]
endpoints = ["127.0.0.13"]
"#;

/// The conformance fixture Gateway `same-namespace`: HTTP :80, listener `http`, from Same.
pub const SAME_NAMESPACE_GATEWAY: &str = r#"
[[Gateway]]
name = "same-namespace"
namespace = "infra"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "http"
protocol = "HTTP"
port = 80
allowedRoutes = { namespaces = { from = "Same" } }
"#;

pub trait StatusExt {
    fn gw(&self, ns: &str, name: &str) -> &GatewayStatus;
    fn route_conditions(&self, kind: Kind, ns: &str, name: &str) -> Vec<Vec<Condition>>;
}

impl StatusExt for Loaded {
    fn gw(&self, ns: &str, name: &str) -> &GatewayStatus {
        self.status
            .gateway(ns, name)
            .unwrap_or_else(|| panic!("no status for Gateway {ns}/{name}"))
    }

    fn route_conditions(&self, kind: Kind, ns: &str, name: &str) -> Vec<Vec<Condition>> {
        let key = ResourceKey::new(kind, ns, name);
        let r = self
            .status
            .route(&key)
            .unwrap_or_else(|| panic!("no status for {key}"));
        r.parents.iter().map(|p| p.conditions.clone()).collect()
    }
}

/// Asserts a condition's status and reason.
#[track_caller]
pub fn assert_cond(conditions: &[Condition], kind: &str, status: bool, reason: &str) {
    let c =
        find(conditions, kind).unwrap_or_else(|| panic!("no {kind} condition in {conditions:#?}"));
    let want = if status {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    assert_eq!(
        (c.status, c.reason.as_str()),
        (want, reason),
        "{kind}: {c:#?}"
    );
}

#[track_caller]
pub fn listener<'a>(g: &'a GatewayStatus, name: &str) -> &'a ListenerStatus {
    g.listener(name)
        .unwrap_or_else(|| panic!("no listener {name} in {g:#?}"))
}

/// A request for routing tests.
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Req {
    pub fn get(uri: &str) -> Req {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (uri.to_string(), None),
        };
        Req {
            method: "GET",
            path,
            query,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl RequestView for Req {
    fn method(&self) -> &str {
        self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        let v: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!v.is_empty()).then(|| Cow::Owned(v.join(",")))
    }
}

/// A request seen with a Host header (as the data plane sees every request).
pub struct WithHost<'a> {
    pub req: &'a Req,
    pub host: &'a str,
}

impl RequestView for WithHost<'_> {
    fn method(&self) -> &str {
        self.req.method()
    }
    fn path(&self) -> &str {
        self.req.path()
    }
    fn query(&self) -> Option<&str> {
        self.req.query()
    }
    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        if name == "host" {
            return (!self.host.is_empty()).then_some(Cow::Borrowed(self.host));
        }
        self.req.header(name)
    }
}

/// The located error a configuration that does not parse gives.
pub fn parse_error(toml: &str) -> String {
    let src = SourceFile::new("gatehouse.toml", "/etc/gatehouse/gatehouse.toml", toml);
    crate::parse(&[src]).expect_err(toml).to_string()
}

/// The Service names a TLSRoute, TCPRoute or UDPRoute rule's backendRefs resolved to (the
/// reason, for an unresolved one).
pub fn backend_names(rule: &gatehouse_model::tls::TlsRule, l: &Loaded) -> Vec<String> {
    use gatehouse_model::backend::BackendTarget;
    rule.backends
        .entries()
        .iter()
        .map(|b| match &b.target {
            BackendTarget::Service { service, .. } => {
                l.snapshot.services[*service].key.name.clone()
            }
            BackendTarget::Unresolved(u) => format!("{u:?}"),
        })
        .collect()
}

/// A plaintext connection from 192.0.2.99 to `local`.
pub fn plaintext(local: SocketAddr) -> ConnInfo {
    ConnInfo::new(local, SocketAddr::from(([192, 0, 2, 99], 40000)))
}

/// The connection a client of `http(s)://host/` makes to `local`: TLS with `host` as its
/// SNI where the port's listeners speak TLS, plaintext elsewhere (as the daemon's accept
/// path tells them apart).
pub fn client_conn(l: &Loaded, local: SocketAddr, host: &str) -> ConnInfo {
    let mut conn = plaintext(local);
    let tls = l
        .snapshot
        .ports
        .iter()
        .any(|p| p.port == local.port() && p.tls);
    if tls {
        let sni = gatehouse_model::hostname::normalize_request_host(host)
            .filter(|h| h.parse::<std::net::IpAddr>().is_err());
        conn.tls = Some(gatehouse_model::conn::TlsInfo {
            sni,
            h2: false,
            version: "TLSv1.3",
        });
    }
    conn
}

/// How a routing test reads a gateway answer: `None` for 404, else the status and, for
/// 500, why.
pub fn describe(s: &Synthetic) -> Option<String> {
    use gatehouse_model::backend::Unresolved::*;
    if s.status == 404 {
        return None;
    }
    for u in [NotFound, InvalidKind, NotPermitted, UnsupportedProtocol] {
        if *s == Synthetic::unresolved(&u) {
            return Some(format!("500 ({u:?})"));
        }
    }
    if *s == Synthetic::no_backends() {
        return Some("500 (no backends)".into());
    }
    Some(s.status.to_string())
}

/// Where a request to `local` with Host `host` goes (over the connection [`client_conn`]
/// makes), as [`decide`] says: the name of the Service chosen with `random`, `None` for 404,
/// else the gateway's own answer. `gatehouse explain` must say the same
/// ([`agree::assert_explain_agrees`]).
#[track_caller]
pub fn route_at(
    l: &Loaded,
    local: SocketAddr,
    host: &str,
    req: &Req,
    random: u64,
) -> Option<String> {
    let view = WithHost { req, host };
    let d = decided(l, &client_conn(l, local, host), &view, random);
    match d.action {
        Action::Forward(f) => Some(l.snapshot.services[f.service].key.name.clone()),
        Action::Respond(s) => describe(&s),
    }
}

/// [`route_at`] on 127.0.0.1:`port`.
#[track_caller]
pub fn route_with(l: &Loaded, port: u16, host: &str, req: &Req, random: u64) -> Option<String> {
    route_at(
        l,
        SocketAddr::from(([127, 0, 0, 1], port)),
        host,
        req,
        random,
    )
}

#[track_caller]
pub fn route(l: &Loaded, host: &str, uri: &str) -> Option<String> {
    route_with(l, 80, host, &Req::get(uri), 0)
}

#[test]
fn no_input_panics_when_examples_are_truncated_or_mangled() {
    let examples = [
        include_str!("../../../../etc/gatehouse/gatehouse.toml"),
        include_str!("../../../../etc/gatehouse/examples/basic-http.toml"),
        include_str!("../../../../etc/gatehouse/examples/basic-https.toml"),
        include_str!("../../../../etc/gatehouse/examples/tls-passthrough.toml"),
        include_str!("../../../../etc/gatehouse/examples/load-balancing.toml"),
        include_str!("../../../../etc/gatehouse/examples/tcp.toml"),
    ];
    let reader = |_: &Path| Ok(b"garbage".to_vec());
    let replacements = [
        "", "\"", "[", "]", "{", "}", "=", "0", "-1", "é", "\n", "*", "[[x]]\n", "true",
    ];
    for text in examples {
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).step_by(3).collect();
        for &cut in &boundaries {
            let truncated = &text[..cut];
            let _ = load(
                &[SourceFile::new(
                    "gatehouse.toml",
                    "/x/gatehouse.toml",
                    truncated,
                )],
                &reader,
                1,
            );
        }
        for (n, &at) in boundaries.iter().enumerate().step_by(5) {
            let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
            let mangled = format!(
                "{}{}{}",
                &text[..at],
                replacements[n % replacements.len()],
                &text[end..]
            );
            let _ = load(
                &[SourceFile::new(
                    "gatehouse.toml",
                    "/x/gatehouse.toml",
                    mangled,
                )],
                &reader,
                1,
            );
        }
    }
}
