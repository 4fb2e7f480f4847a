//! Every routing check of these tests asks `gatehouse explain` about the same request
//! ([`assert_explain_agrees`], through [`decided`]), and every TLSRoute SNI check asks its
//! accept path ([`assert_layer4_explain_agrees`]): the conformance cases double as explain
//! tests (issue 16), so `gatehouse explain` cannot come to say something the data plane
//! does not do without a conformance case failing.

use super::*;
use gatehouse_model::Snapshot;
use gatehouse_model::backend::{BackendTarget, Pick};
use gatehouse_model::decide::Decision;
use gatehouse_model::explain::{
    BackendChoice, EndpointState, Explanation, Outcome, Request, Verdict, explain,
};
use gatehouse_model::listener::{Listener, Protocol};
use gatehouse_model::tls::TlsRule;
use std::net::{IpAddr, Ipv4Addr};

/// Decides `view` on `conn` as the data plane does, with `random` for every draw, after
/// asserting that `gatehouse explain` says the same of it.
#[track_caller]
pub fn decided<'s>(
    l: &'s Loaded,
    conn: &ConnInfo,
    view: &WithHost<'_>,
    random: u64,
) -> Decision<'s> {
    let d = decide(&l.snapshot, conn, view, &mut || random);
    assert_explain_agrees(&l.snapshot, conn, view, random, &d);
    d
}

/// The request head `gatehouse explain` is given for `view`: header names in lower case (as
/// the data plane's HTTP parser gives them), the Host only when the request has one.
fn explain_request(view: &WithHost<'_>) -> Request {
    let mut headers: Vec<(String, String)> = view
        .req
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    if !view.host.is_empty() {
        headers.insert(0, ("host".into(), view.host.into()));
    }
    Request {
        method: view.req.method.into(),
        path: view.req.path.clone(),
        query: view.req.query.clone(),
        headers,
    }
}

/// The endpoints explain is told a Service port has: one address naming the Service and
/// port, so a listing shows which port it was asked for.
fn marker_endpoints(service: usize, port: u16) -> Vec<EndpointState> {
    let service = u32::try_from(service).expect("a Service index fits an address");
    vec![EndpointState {
        address: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(service)), port),
        healthy: None,
    }]
}

/// What an outcome tells the client: status, Location, backendRef forwarded to.
fn told(o: &Outcome) -> (Option<u16>, Option<&str>, Option<&str>) {
    (o.status, o.location.as_deref(), o.forward_to.as_deref())
}

fn location(s: &Synthetic) -> Option<&str> {
    s.headers
        .iter()
        .find(|(n, _)| *n == "location")
        .map(|(_, v)| v.as_str())
}

/// Asserts that [`explain`] agrees with the decision `d` the data plane made for the same
/// request (`random` for every draw):
///
/// - a connection the daemon's accept path never reads HTTP from ([`reaches_http`]) is not
///   routed or answered as HTTP;
/// - the path it routes (normalized, as the daemon routes it) is the one decided;
/// - the listener it calls chosen is the decision's;
/// - the rule it marks Selected is the decision's rule (route and index), and none is
///   selected when the decision has no rule;
/// - a forward to Service S: the backendRef drawn is listed with a share above 0, a target
///   naming S and the port, S's endpoints, and a forward to it; the overall outcome is that
///   forward, unless draws to other backendRefs get something else ("drawn by weight");
/// - a response gatehouse writes itself (404, 421, 500, 503, a redirect and its Location,
///   ...): the overall outcome has its status and Location, unless it comes from the
///   backendRef drawn and other draws get something else; the backendRef drawn lists it.
#[track_caller]
pub fn assert_explain_agrees(
    snapshot: &Snapshot,
    conn: &ConnInfo,
    view: &WithHost<'_>,
    random: u64,
    d: &Decision<'_>,
) {
    let req = explain_request(view);
    let e = explain(snapshot, conn, &req, &marker_endpoints);
    let wrong = if reaches_http(snapshot, conn) {
        disagreements(snapshot, &req.path, random, d, &e)
    } else {
        never_routed(&e)
    };
    if !wrong.is_empty() {
        panic!(
            "gatehouse explain disagrees with decide:\n  - {}\nrequest: {req:?} on {} (tls: {:?}), random {random}\ndecide: {d:#?}\nexplain: {e:#?}",
            wrong.join("\n  - "),
            conn.local,
            conn.tls,
        );
    }
}

/// Whether the data plane's accept path (`gatehouse-proxy`'s `serve.rs`) hands a connection
/// to HTTP routing at all: something listens on the address, no TCP listener splices the
/// port, the port's transport is the connection's, and on a TLS port the SNI selects an
/// HTTPS listener (not a TLS one, and not none: then the connection is closed).
fn reaches_http(snapshot: &Snapshot, conn: &ConnInfo) -> bool {
    let Some(port) = snapshot.ports.iter().find(|p| p.port == conn.local.port()) else {
        return false;
    };
    let mut at = snapshot.listeners_at(conn.local);
    if at.clone().next().is_none() || (port.tcp && at.any(|(_, l)| l.protocol == Protocol::TCP)) {
        return false;
    }
    match &conn.tls {
        None => !port.tls,
        Some(t) => {
            port.tls
                && snapshot
                    .select_listener_id(conn.local, t.sni.as_deref(), None)
                    .is_some_and(|(_, l)| l.protocol == Protocol::HTTPS)
        }
    }
}

/// A connection the daemon never reads a request from: explain must not route it or
/// answer it as HTTP, whatever `decide` (never called there) would say.
fn never_routed(e: &Explanation) -> Vec<String> {
    let mut wrong = Vec::new();
    if !e.rules.is_empty()
        || e.listeners
            .iter()
            .any(|c| matches!(c.protocol, Protocol::HTTP | Protocol::HTTPS))
    {
        wrong.push("the connection never reaches HTTP routing, explain routes it".to_string());
    }
    if e.outcome.status.is_some() {
        wrong.push(format!(
            "the connection never reaches HTTP, explain answers {:?}",
            e.outcome
        ));
    }
    wrong
}

fn disagreements(
    snapshot: &Snapshot,
    path: &str,
    random: u64,
    d: &Decision<'_>,
    e: &Explanation,
) -> Vec<String> {
    let mut wrong = Vec::new();
    // The daemon decides on the normalized path; a test that decides on another one does
    // not check what the daemon does.
    if e.path != path {
        wrong.push(format!(
            "decide saw path {path:?}, the daemon and explain route {:?}",
            e.path
        ));
    }
    let chosen: Vec<&str> = e
        .listeners
        .iter()
        .filter(|c| c.chosen)
        .map(|c| c.listener.as_str())
        .collect();
    let listener = d.listener.map(|id| snapshot.listeners[id].label());
    if chosen != Vec::from_iter(listener.as_deref()) {
        wrong.push(format!(
            "explain chose listener {chosen:?}, decide {listener:?}"
        ));
    }
    let selected: Vec<(&str, usize)> = e
        .rules
        .iter()
        .filter(|r| r.verdict == Verdict::Selected)
        .map(|r| (r.route.as_str(), r.rule))
        .collect();
    let rule = d
        .rule
        .map(|r| (r.rule.route.namespaced_name(), r.rule.index));
    if selected != Vec::from_iter(rule.as_ref().map(|(n, i)| (n.as_str(), *i))) {
        wrong.push(format!(
            "explain selected rule {selected:?}, decide routed to {rule:?}"
        ));
    }

    // Whether what a request gets depends on the backendRef it is drawn to.
    let mut drawable = e.backends.iter().filter(|b| b.weight > 0);
    let first = drawable.next().map(|b| told(&b.outcome));
    let varies = drawable.any(|b| Some(told(&b.outcome)) != first);
    let drawn = d.rule.and_then(|r| match r.backends.pick(random) {
        Pick::Backend(i, _) => Some(i),
        _ => None,
    });
    let overall = told(&e.outcome);
    let by_weight = (None, None, None);
    match &d.action {
        Action::Forward(f) => {
            let Some(b) = e.backends.get(f.backend) else {
                wrong.push(format!("explain lists no backendRef {}", f.backend));
                return wrong;
            };
            wrong.extend(forward_disagreements(snapshot, b, f.service, f.target_port));
            let forward = (None, None, Some(b.backend.as_str()));
            let want = if varies { by_weight } else { forward };
            if overall != want {
                wrong.push(format!(
                    "the outcome is {overall:?}, want {want:?} (decide forwards to {})",
                    b.backend
                ));
            }
        }
        Action::Respond(s) => {
            let response = (Some(s.status), location(s), None);
            if let Some(b) = drawn.and_then(|i| e.backends.get(i))
                && told(&b.outcome) != response
            {
                wrong.push(format!(
                    "a draw to backendRef {} gets {:?}, decide answers {response:?}",
                    b.backend, b.outcome
                ));
            }
            let want = if varies { by_weight } else { response };
            if overall != want {
                wrong.push(format!(
                    "the outcome is {overall:?}, want {want:?} (decide answers {response:?})"
                ));
            }
        }
    }
    wrong
}

/// What explain gets wrong about `b`, the backendRef a request or connection is drawn to
/// and sent to port `target_port` of Service `service`: it must be drawable, name that
/// Service port, list its endpoints, and say a draw there goes to it.
fn forward_disagreements(
    snapshot: &Snapshot,
    b: &BackendChoice,
    service: usize,
    target_port: u16,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let name = format!(
        "Service {} port {target_port}",
        snapshot.services[service].key.namespaced_name()
    );
    if b.share <= 0.0 {
        wrong.push(format!(
            "backendRef {} drawn, its share {}",
            b.backend, b.share
        ));
    }
    if !b.target.starts_with(&name) {
        wrong.push(format!(
            "backendRef {} is {:?}, not {name}",
            b.backend, b.target
        ));
    }
    let listed: Vec<SocketAddr> = b.endpoints.iter().map(|x| x.address).collect();
    let asked: Vec<SocketAddr> = marker_endpoints(service, target_port)
        .iter()
        .map(|x| x.address)
        .collect();
    if listed != asked {
        wrong.push(format!(
            "backendRef {} lists the endpoints of {listed:?}, not of {name}",
            b.backend
        ));
    }
    if (b.outcome.status, b.outcome.forward_to.as_deref()) != (None, Some(b.backend.as_str())) {
        wrong.push(format!(
            "a draw to backendRef {} gets {:?}, not sent to it",
            b.backend, b.outcome
        ));
    }
    wrong
}

/// Asserts that explain's accept path agrees with what the data plane does with a TLS
/// connection `conn` that the TLS `listener` takes (`serve.rs`, then the TLSRoute `rule` its
/// SNI selects and `l4::draw` with `random`): only that listener, no HTTP routing or
/// response; each backendRef listed, the one drawn spliced to its Service port (or, when
/// unresolved, not); and when no draw can reach a Service, an outcome that says the
/// connection is closed.
#[track_caller]
pub fn assert_layer4_explain_agrees(
    snapshot: &Snapshot,
    conn: &ConnInfo,
    listener: &Listener,
    rule: Option<&TlsRule>,
    random: u64,
) {
    let sni = conn.tls.as_ref().and_then(|t| t.sni.clone());
    let req = Request {
        method: "GET".into(),
        path: "/".into(),
        query: None,
        headers: Vec::from_iter(sni.map(|s| ("host".to_string(), s))),
    };
    let e = explain(snapshot, conn, &req, &marker_endpoints);
    let mut wrong = Vec::new();
    let chosen: Vec<(&str, bool)> = e
        .listeners
        .iter()
        .map(|c| (c.listener.as_str(), c.chosen))
        .collect();
    if chosen != [(listener.label().as_str(), true)] {
        wrong.push(format!(
            "explain lists listeners {chosen:?}, the SNI selects {}",
            listener.label()
        ));
    }
    if !e.rules.is_empty() || e.outcome.status.is_some() {
        wrong.push("the connection is spliced, explain routes or answers it as HTTP".into());
    }
    let entries = rule.map_or(&[][..], |r| r.backends.entries());
    let listed: Vec<&str> = e.backends.iter().map(|b| b.backend.as_str()).collect();
    let configured: Vec<&str> = entries.iter().map(|b| b.name.as_str()).collect();
    if listed != configured {
        wrong.push(format!(
            "explain lists backendRefs {listed:?}, the rule has {configured:?}"
        ));
    }
    if let Some(r) = rule
        && let Pick::Backend(i, b) = r.backends.pick(random)
        && let Some(choice) = e.backends.get(i)
    {
        match &b.target {
            BackendTarget::Service {
                service,
                target_port,
                ..
            } => wrong.extend(forward_disagreements(
                snapshot,
                choice,
                *service,
                *target_port,
            )),
            BackendTarget::Unresolved(u) => {
                if choice.outcome.forward_to.is_some() {
                    wrong.push(format!(
                        "backendRef {} is unresolved ({u:?}), explain splices to it",
                        b.name
                    ));
                }
            }
        }
    }
    let spliced = entries
        .iter()
        .any(|b| b.weight > 0 && matches!(b.target, BackendTarget::Service { .. }));
    if !spliced && !e.outcome.why.contains("closed") {
        wrong.push(format!(
            "no draw reaches a Service, explain's outcome does not say the connection is closed: {:?}",
            e.outcome.why
        ));
    }
    for b in e.backends.iter().filter(|b| b.weight == 0) {
        if b.outcome.forward_to.is_some() {
            wrong.push(format!(
                "backendRef {} has weight 0, explain splices to it",
                b.backend
            ));
        }
    }
    if !wrong.is_empty() {
        panic!(
            "gatehouse explain disagrees with the accept path:\n  - {}\nconnection to {} (tls: {:?}), random {random}\nrule: {rule:#?}\nexplain: {e:#?}",
            wrong.join("\n  - "),
            conn.local,
            conn.tls,
        );
    }
}
