//! `gatehouse explain`: why a request would go where it goes, without sending it.
//!
//! ```text
//! path        normalized as the data plane does ([`crate::path::normalize`]); refused: 400
//! listeners   every listener at the local address and port, and which one [`decide`] chose
//! rules       the chosen listener's route table walked in routing order
//!             ([`HttpRouteTable::walk`]): the first match is selected, later matches lost
//!             on precedence, the others say which condition failed
//! backends    each backendRef with its weight and share, and what [`decide`] does when the
//!             weighted draw lands on it (forward, 500 unresolved, a redirect)
//! outcome     [`decide`] itself; "drawn by weight" when draws to different backendRefs
//!             get different answers (not the first draw's answer)
//! ```
//!
//! Before any of that, the accept path's choices: a TCP listener's port splices every
//! connection, and on a TLS port the SNI may select a TLS listener (Passthrough or
//! Terminate) whose TLSRoute takes the connection without HTTP routing.
//!
//! Nothing here decides anything: the listener, the rule and every outcome come from the
//! functions the data plane calls, so the explanation cannot drift from what is served.

use crate::backend::{BackendTarget, ServiceId};
use crate::conn::ConnInfo;
use crate::decide::{Action, decide, request_host};
use crate::hostname::Hostname;
use crate::http::{HostGroup, HttpMatch, Mismatch, PathMatch, RequestView, ValueMatch};
use crate::listener::Protocol;
use crate::respond::Synthetic;
use crate::snapshot::Snapshot;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::net::SocketAddr;

/// A request to explain: what a client would send.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    /// The path as sent, before normalization.
    pub path: String,
    pub query: Option<String>,
    /// Header names in lower case, Host included.
    pub headers: Vec<(String, String)>,
}

impl RequestView for Request {
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        match values.len() {
            0 => None,
            1 => Some(Cow::Borrowed(values[0])),
            _ => Some(Cow::Owned(values.join(","))),
        }
    }
}

/// The state of one endpoint, as the running daemon sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndpointState {
    pub address: SocketAddr,
    /// `None` when not known (explained from files, not by the daemon).
    pub healthy: Option<bool>,
}

/// Everything `gatehouse explain` says about a request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Explanation {
    pub local: SocketAddr,
    pub sni: Option<String>,
    pub host: Option<String>,
    pub method: String,
    /// The path routing sees (normalized).
    pub path: String,
    pub listeners: Vec<ListenerChoice>,
    pub rules: Vec<RuleChoice>,
    /// The selected rule's filters, in the order they run.
    pub filters: Vec<String>,
    pub backends: Vec<BackendChoice>,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListenerChoice {
    /// `namespace/gateway/listener`.
    pub listener: String,
    pub protocol: Protocol,
    pub hostname: Option<String>,
    pub chosen: bool,
    pub why: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Selected,
    LostOnPrecedence,
    NoMatch,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuleChoice {
    /// `namespace/name` of the HTTPRoute.
    pub route: String,
    pub rule: usize,
    pub rule_name: Option<String>,
    /// The index of the match in the rule.
    pub matched: usize,
    /// The hostname group the entry was found in (`a.example.com`, `*.example.com`, `*`).
    pub hostnames: String,
    pub conditions: String,
    pub verdict: Verdict,
    pub why: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackendChoice {
    pub backend: String,
    pub weight: u32,
    /// Percent of requests this backendRef gets.
    pub share: f64,
    pub target: String,
    pub endpoints: Vec<EndpointState>,
    /// What a request drawn to this backendRef gets.
    pub outcome: Outcome,
}

/// What the client would get.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// A response gatehouse writes itself; `None` when forwarded.
    pub status: Option<u16>,
    pub location: Option<String>,
    /// `namespace/name:port` of the backendRef a forwarded request goes to.
    pub forward_to: Option<String>,
    pub why: String,
}

impl Outcome {
    /// Neither a response nor a backend: what happens, in words.
    fn note(why: impl Into<String>) -> Outcome {
        Outcome {
            status: None,
            location: None,
            forward_to: None,
            why: why.into(),
        }
    }

    fn respond(s: &Synthetic) -> Outcome {
        Outcome {
            status: Some(s.status),
            location: s
                .headers
                .iter()
                .find(|(n, _)| *n == "location")
                .map(|(_, v)| v.clone()),
            forward_to: None,
            why: s.body.trim_end().to_string(),
        }
    }
}

/// Explains `req` arriving on `conn`. `endpoints` gives the endpoints of a Service port
/// (the daemon: with their health; from files: as configured).
pub fn explain(
    snapshot: &Snapshot,
    conn: &ConnInfo,
    req: &Request,
    endpoints: &dyn Fn(ServiceId, u16) -> Vec<EndpointState>,
) -> Explanation {
    let host = request_host(req);
    let mut req = req.clone();
    let normalized =
        crate::path::normalize(&req.path, &snapshot.settings.http.path).map(|p| p.into_owned());
    let mut out = Explanation {
        local: conn.local,
        sni: conn.tls.as_ref().and_then(|t| t.sni.clone()),
        host: host.clone(),
        method: req.method.clone(),
        path: req.path.clone(),
        listeners: Vec::new(),
        rules: Vec::new(),
        filters: Vec::new(),
        backends: Vec::new(),
        outcome: Outcome::respond(&Synthetic::bad_request()),
    };
    match normalized {
        Ok(p) => req.path = p,
        Err(e) => {
            out.outcome.why = format!("the path is refused before routing: {e}");
            return out;
        }
    }
    out.path = req.path.clone();
    if layer4(snapshot, conn, endpoints, &mut out) {
        return out;
    }
    let decision = decide(snapshot, conn, &req, &mut || 0);
    out.listeners = listeners(snapshot, conn, host.as_deref(), decision.listener);
    let chosen = decision.listener.and_then(|id| snapshot.listeners.get(id));
    if let Some(routes) = chosen.and_then(|l| l.http_routes()) {
        out.rules = rules(routes, host.as_deref(), &req);
    }
    if let Some(rule) = decision.rule {
        out.filters = filters(&rule.filters);
        out.backends = backend_choices(snapshot, &rule.backends, endpoints, |draw, b| {
            if b.weight == 0 {
                Outcome::note("weight 0: never drawn")
            } else {
                outcome(&decide(snapshot, conn, &req, &mut || draw))
            }
        });
    }
    // The first draw's answer is every draw's unless the backendRefs' answers differ.
    out.outcome = drawn_by_weight(&out.backends).unwrap_or_else(|| outcome(&decision));
    out
}

/// The outcome of a request whose answer depends on the backendRef drawn, or `None` when
/// every draw gets the same answer (a backendRef of weight 0 is never drawn).
fn drawn_by_weight(backends: &[BackendChoice]) -> Option<Outcome> {
    let drawn: Vec<&Outcome> = backends
        .iter()
        .filter(|b| b.weight > 0)
        .map(|b| &b.outcome)
        .collect();
    let answer = |o: &Outcome| (o.status, o.location.clone(), o.forward_to.clone());
    let first = answer(drawn.first()?);
    if drawn.iter().all(|o| answer(o) == first) {
        return None;
    }
    Some(Outcome::note(if drawn.iter().all(|o| o.status.is_none()) {
        "forwarded to a backendRef drawn by weight (see backends)"
    } else {
        "depends on the backendRef drawn by weight: some draws are answered here (see backends)"
    }))
}

/// What happens to a connection before any HTTP is read, as the data plane's accept path
/// decides it: a TCP listener splices it; a TLS port reads the SNI first, and a TLS
/// listener (Passthrough or Terminate) sends the connection to the TLSRoute the SNI selects;
/// a port of the other kind of transport closes it. Fills `out` and returns true when the
/// request never reaches HTTP routing.
fn layer4(
    snapshot: &Snapshot,
    conn: &ConnInfo,
    endpoints: &dyn Fn(ServiceId, u16) -> Vec<EndpointState>,
    out: &mut Explanation,
) -> bool {
    let port = snapshot.ports.iter().find(|p| p.port == conn.local.port());
    let (Some(port), Some(_)) = (port, snapshot.listeners_at(conn.local).next()) else {
        out.outcome = Outcome::note(format!(
            "no listener on {}: the connection is refused",
            conn.local
        ));
        return true;
    };
    let sni = conn.tls.as_ref().and_then(|t| t.sni.as_deref());
    let choice = |l: &crate::listener::Listener, why: String| ListenerChoice {
        listener: l.label(),
        protocol: l.protocol,
        hostname: l.hostname.as_ref().map(Hostname::to_string),
        chosen: true,
        why,
    };
    let tcp = port.tcp.then(|| {
        snapshot
            .listeners_at(conn.local)
            .find(|(_, l)| l.protocol == Protocol::TCP)
    });
    let (listener, rule, mode) = match (tcp.flatten(), conn.tls.is_some(), port.tls) {
        (Some((_, l)), _, _) => match &l.kind {
            crate::listener::ListenerKind::Tcp { rule } => (l, rule.as_ref(), "spliced"),
            _ => return false,
        },
        (None, false, true) => {
            out.outcome = Outcome::note(format!(
                "port {} expects TLS: a plaintext connection is closed without a response",
                port.port
            ));
            return true;
        }
        (None, true, false) => {
            out.outcome = Outcome::note(format!(
                "port {} is plaintext: a TLS ClientHello is not HTTP, and the connection is closed",
                port.port
            ));
            return true;
        }
        (None, true, true) => match snapshot.select_listener_id(conn.local, sni, None) {
            Some((_, l)) => match &l.kind {
                crate::listener::ListenerKind::TlsPassthrough { routes } => (
                    l,
                    sni.and_then(|s| routes.lookup(s)),
                    "passed through (still encrypted)",
                ),
                crate::listener::ListenerKind::TlsTerminate { routes, .. } => (
                    l,
                    sni.and_then(|s| routes.lookup(s)),
                    "decrypted and spliced",
                ),
                _ => return false,
            },
            None => {
                out.outcome = Outcome::note(format!(
                    "no listener takes SNI {}: the connection is closed without a TLS alert",
                    sni.unwrap_or("(none)")
                ));
                return true;
            }
        },
        (None, false, false) => return false,
    };
    let why = match (listener.protocol, &listener.hostname) {
        (Protocol::TCP, _) => "a TCP listener takes every connection to its port".to_string(),
        (_, Some(h)) => format!(
            "its hostname {h} is the most specific match for SNI {}",
            sni.unwrap_or("")
        ),
        (_, None) => {
            "it has no hostname, so it takes every SNI no more specific listener takes".to_string()
        }
    };
    out.listeners = vec![choice(listener, why)];
    let Some(rule) = rule else {
        out.outcome = Outcome::note(format!(
            "no {} takes this connection: it is closed without a byte",
            if listener.protocol == Protocol::TCP {
                "TCPRoute"
            } else {
                "TLSRoute"
            }
        ));
        return true;
    };
    out.backends = backend_choices(snapshot, &rule.backends, endpoints, |_, b| {
        match &b.target {
            _ if b.weight == 0 => Outcome::note("weight 0: never drawn"),
            BackendTarget::Service { .. } => Outcome {
                forward_to: Some(b.name.clone()),
                ..Outcome::note(mode)
            },
            BackendTarget::Unresolved(_) => {
                Outcome::note("the backendRef is unresolved: the connection is closed")
            }
        }
    });
    // As the data plane's draw (`l4::draw`): nothing to draw, or an unresolved backendRef
    // drawn, closes the connection.
    let route = rule.rule.route.namespaced_name();
    let drawn = rule.backends.entries().iter().filter(|b| b.weight > 0);
    let spliced = drawn
        .clone()
        .filter(|b| matches!(b.target, BackendTarget::Service { .. }))
        .count();
    out.outcome = Outcome::note(match (spliced, drawn.count()) {
        (0, 0) => format!(
            "{route} has no backendRef that can be drawn (none, or all of weight 0): the connection is closed"
        ),
        (0, _) => format!(
            "every backendRef of {route} that can be drawn is unresolved: the connection is closed"
        ),
        (s, n) if s == n => format!(
            "{mode} to a backendRef of {route} drawn by weight (see backends); no HTTP routing"
        ),
        _ => format!(
            "{mode} to a backendRef of {route} drawn by weight, or closed when the draw lands on an unresolved one (see backends); no HTTP routing"
        ),
    });
    true
}

/// Each backendRef with its share, its target, its endpoints, and `outcome_of(draw, b)`:
/// what a weighted draw of `draw` (the first number that lands on it) gives.
fn backend_choices(
    snapshot: &Snapshot,
    backends: &crate::backend::Backends,
    endpoints: &dyn Fn(ServiceId, u16) -> Vec<EndpointState>,
    mut outcome_of: impl FnMut(u64, &crate::backend::Backend) -> Outcome,
) -> Vec<BackendChoice> {
    let total: u64 = backends.entries().iter().map(|b| b.weight as u64).sum();
    let mut before = 0u64;
    backends
        .entries()
        .iter()
        .map(|b| {
            let draw = before;
            before += b.weight as u64;
            let (target, eps) = match &b.target {
                BackendTarget::Service {
                    service,
                    target_port,
                    tls,
                    ..
                } => (
                    format!(
                        "Service {} port {target_port}{}",
                        snapshot
                            .services
                            .get(*service)
                            .map_or("?".to_string(), |s| s.key.namespaced_name()),
                        if tls.is_some() {
                            " (TLS: BackendTLSPolicy)"
                        } else {
                            ""
                        }
                    ),
                    endpoints(*service, *target_port),
                ),
                BackendTarget::Unresolved(u) => (format!("unresolved: {u:?}"), Vec::new()),
            };
            BackendChoice {
                backend: b.name.clone(),
                weight: b.weight,
                share: if total == 0 {
                    0.0
                } else {
                    b.weight as f64 * 100.0 / total as f64
                },
                target,
                endpoints: eps,
                outcome: outcome_of(draw, b),
            }
        })
        .collect()
}

/// What [`decide`]'s decision gives the client.
fn outcome(d: &crate::decide::Decision<'_>) -> Outcome {
    match &d.action {
        Action::Respond(s) => Outcome::respond(s),
        Action::Forward(f) => Outcome {
            forward_to: d
                .rule
                .and_then(|r| r.backends.entries().get(f.backend))
                .map(|b| b.name.clone()),
            ..Outcome::note("forwarded")
        },
    }
}

fn listeners(
    snapshot: &Snapshot,
    conn: &ConnInfo,
    host: Option<&str>,
    chosen: Option<usize>,
) -> Vec<ListenerChoice> {
    let sni = conn.tls.as_ref().and_then(|t| t.sni.as_deref());
    snapshot
        .listeners_at(conn.local)
        .map(|(id, l)| {
            let by = if conn.tls.is_some() { sni } else { host };
            let what = if conn.tls.is_some() { "SNI" } else { "Host" };
            let matches = l.hostname.as_ref().is_none_or(|h| by.is_some_and(|b| h.matches(b)));
            let why = if chosen == Some(id) {
                match &l.hostname {
                    Some(h) => format!("its hostname {h} is the most specific match for {what} {}", by.unwrap_or("")),
                    None => format!("it has no hostname, so it takes every {what} no more specific listener takes"),
                }
            } else if conn.tls.is_some() && l.protocol != Protocol::HTTPS {
                format!("protocol {}: this request arrives over TLS terminated by an HTTPS listener", l.protocol)
            } else if conn.tls.is_none() && l.protocol.is_tls() {
                format!("protocol {}: this request is plaintext", l.protocol)
            } else if !matches {
                format!("its hostname does not match {what} {}", by.unwrap_or("(none)"))
            } else {
                "a listener with a more specific hostname takes it".to_string()
            };
            ListenerChoice {
                listener: l.label(),
                protocol: l.protocol,
                hostname: l.hostname.as_ref().map(Hostname::to_string),
                chosen: chosen == Some(id),
                why,
            }
        })
        .collect()
}

fn rules(
    routes: &crate::http::HttpRouteTable,
    host: Option<&str>,
    req: &Request,
) -> Vec<RuleChoice> {
    let mut selected: Option<(HostGroup<'_>, crate::http::MatchPrecedence)> = None;
    routes
        .walk(host, req)
        .map(|w| {
            let e = w.entry;
            let (verdict, why) = match (w.result, &selected) {
                (Ok(()), None) => {
                    selected = Some((w.group, e.precedence));
                    (Verdict::Selected, "the first match in routing order".to_string())
                }
                (Ok(()), Some((group, precedence))) => {
                    let why = if *group != w.group {
                        "it matches too, but the selected rule serves a more specific hostname"
                    } else if *precedence != e.precedence {
                        "it matches too, but the selected match is more specific (path, then method, headers, query parameters)"
                    } else {
                        "it matches too, with the same precedence: the older route (then namespace/name, then rule order) wins"
                    };
                    (Verdict::LostOnPrecedence, why.to_string())
                }
                (Err(m), _) => (Verdict::NoMatch, mismatch(&e.matcher, m, req)),
            };
            RuleChoice {
                route: e.rule.rule.route.namespaced_name(),
                rule: e.rule.rule.index,
                rule_name: e.rule.rule.name.clone(),
                matched: e.order.matched,
                hostnames: match w.group {
                    HostGroup::Exact(h) => h.to_string(),
                    HostGroup::Wildcard(s) => format!("*{s}"),
                    HostGroup::Any => "*".to_string(),
                },
                conditions: conditions(&e.matcher),
                verdict,
                why,
            }
        })
        .collect()
}

fn path_match(p: &PathMatch) -> String {
    match p {
        PathMatch::Exact(v) => format!("path Exact {v}"),
        PathMatch::Prefix(v) if v.is_empty() => "path PathPrefix /".to_string(),
        PathMatch::Prefix(v) => format!("path PathPrefix {v}"),
        PathMatch::RegularExpression(r) => format!("path RegularExpression {}", r.as_str()),
    }
}

fn value_match(v: &ValueMatch) -> String {
    match v {
        ValueMatch::Exact(s) => format!("= {s:?}"),
        ValueMatch::RegularExpression(r) => format!("~ {:?}", r.as_str()),
    }
}

/// The conditions of a match, as one line.
pub fn conditions(m: &HttpMatch) -> String {
    let mut parts = vec![path_match(&m.path)];
    if let Some(method) = &m.method {
        parts.push(format!("method {method}"));
    }
    for (n, v) in &m.headers {
        parts.push(format!("header {n} {}", value_match(v)));
    }
    for (n, v) in &m.query_params {
        parts.push(format!("query {n} {}", value_match(v)));
    }
    parts.join(", ")
}

fn mismatch(m: &HttpMatch, why: Mismatch, req: &Request) -> String {
    match why {
        Mismatch::Path => format!("{} does not match {}", req.path, path_match(&m.path)),
        Mismatch::Method => format!(
            "method {} is not {}",
            req.method,
            m.method.as_deref().unwrap_or("")
        ),
        Mismatch::Header(i) => {
            let (name, want) = &m.headers[i];
            match req.header(name) {
                Some(v) => format!("header {name} is {v:?}, not {}", value_match(want)),
                None => format!("header {name} is missing (wants {})", value_match(want)),
            }
        }
        Mismatch::Query(i) => {
            let (name, want) = &m.query_params[i];
            match req
                .query
                .as_deref()
                .and_then(|q| crate::http::query_param(q, name))
            {
                Some(v) => format!("query {name} is {v:?}, not {}", value_match(want)),
                None => format!("query {name} is missing (wants {})", value_match(want)),
            }
        }
    }
}

fn filters(f: &crate::filter::Filters) -> Vec<String> {
    let mut out = Vec::new();
    if f.cors.is_some() {
        out.push("CORS".to_string());
    }
    if let Some(r) = &f.redirect {
        out.push(format!("RequestRedirect ({})", r.status_code));
    }
    if f.request_headers.is_some() {
        out.push("RequestHeaderModifier".to_string());
    }
    if f.rewrite.is_some() {
        out.push("URLRewrite".to_string());
    }
    for m in &f.mirrors {
        out.push(format!("RequestMirror to {}", m.name));
    }
    if f.response_headers.is_some() {
        out.push("ResponseHeaderModifier".to_string());
    }
    out
}
