//! `gatehouse explain` in-process ([`gatehouse_model::explain::explain`]): the rule it calls
//! selected is the one `decide` routes to, later matches are marked as lost on precedence,
//! the others name the condition they fail, each backendRef says what a draw there gets, and
//! answers without a backend (redirects, refused paths) carry their status. The overall
//! outcome is "drawn by weight" exactly when draws to different backendRefs are answered
//! differently. Every other routing test checks explain as well ([`super::agree`]).

use super::*;
use gatehouse_model::explain::{EndpointState, Explanation, Request, Verdict, explain};

const GATEWAY: &str = r#"
[[Gateway]]
name = "gw"
namespace = "infra"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "http"
protocol = "HTTP"
port = 80
hostname = "*.example.com"
"#;

fn with_routes(routes: &str) -> Loaded {
    load_ok(&format!("{GATEWAY}{BACKENDS}{routes}"))
}

fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut all = vec![("host".to_string(), "www.example.com".to_string())];
    all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    Request {
        method: method.into(),
        path,
        query,
        headers: all,
    }
}

fn explained(l: &Loaded, req: &Request) -> Explanation {
    let conn = plaintext(SocketAddr::from(([127, 0, 0, 1], 80)));
    explain(&l.snapshot, &conn, req, &|_, _| Vec::<EndpointState>::new())
}

const TWO_ROUTES: &str = r#"
[[HTTPRoute]]
name = "general"
namespace = "infra"
parentRefs = [{ name = "gw" }]
rules = [
  { backendRefs = [{ name = "infra-backend-v1", port = 8080 }] },
  { matches = [{ path = { type = "PathPrefix", value = "/api" }, method = "POST", headers = [{ name = "x-team", value = "blue" }] }], backendRefs = [{ name = "infra-backend-v2", port = 8080 }] },
]
[[HTTPRoute]]
name = "exact"
namespace = "infra"
parentRefs = [{ name = "gw" }]
hostnames = ["www.example.com"]
rules = [{ matches = [{ path = { type = "Exact", value = "/api/health" } }], backendRefs = [{ name = "infra-backend-v3", port = 8080 }] }]
"#;

#[test]
fn the_selected_rule_is_the_one_decide_routes_to_and_later_matches_lost_on_precedence() {
    let l = with_routes(TWO_ROUTES);
    let req = request("POST", "/api/items", &[("x-team", "blue")]);
    let e = explained(&l, &req);
    let conn = plaintext(SocketAddr::from(([127, 0, 0, 1], 80)));
    let d = decide(&l.snapshot, &conn, &req, &mut || 0);
    let routed = d.rule.unwrap();
    let selected: Vec<_> = e
        .rules
        .iter()
        .filter(|r| r.verdict == Verdict::Selected)
        .collect();
    assert_eq!(selected.len(), 1);
    assert_eq!(selected[0].route, routed.rule.route.namespaced_name());
    assert_eq!(selected[0].rule, routed.rule.index);
    assert_eq!(
        (selected[0].route.as_str(), selected[0].rule),
        ("infra/general", 1)
    );
    // The catch-all rule matches too, but PathPrefix /api with a method and a header is
    // more specific.
    let lost: Vec<_> = e
        .rules
        .iter()
        .filter(|r| r.verdict == Verdict::LostOnPrecedence)
        .map(|r| (r.route.as_str(), r.rule))
        .collect();
    assert_eq!(lost, [("infra/general", 0)]);
    assert_eq!(
        e.outcome.forward_to.as_deref(),
        Some("infra/infra-backend-v2:8080")
    );
    assert_eq!(e.listeners.len(), 1);
    assert!(e.listeners[0].chosen);
}

#[test]
fn a_rule_that_does_not_match_names_the_condition_it_fails() {
    let l = with_routes(TWO_ROUTES);
    let why = |req: &Request, route: &str| {
        explained(&l, req)
            .rules
            .into_iter()
            .find(|r| r.route == route && r.verdict == Verdict::NoMatch)
            .map(|r| r.why)
            .unwrap_or_default()
    };
    assert_eq!(
        why(
            &request("GET", "/api/items", &[("x-team", "blue")]),
            "infra/general"
        ),
        "method GET is not POST"
    );
    assert_eq!(
        why(&request("POST", "/api/items", &[]), "infra/general"),
        "header x-team is missing (wants = \"blue\")"
    );
    assert_eq!(
        why(
            &request("POST", "/api/items", &[("x-team", "red")]),
            "infra/general"
        ),
        "header x-team is \"red\", not = \"blue\""
    );
    assert_eq!(
        why(&request("GET", "/api/items", &[]), "infra/exact"),
        "/api/items does not match path Exact /api/health"
    );
    // The exact hostname's group is tried first, so its rule is listed first.
    let e = explained(&l, &request("GET", "/api/health", &[]));
    assert_eq!(e.rules[0].route, "infra/exact");
    assert_eq!(e.rules[0].hostnames, "www.example.com");
    assert_eq!(e.rules[0].verdict, Verdict::Selected);
    assert!(e.rules[1..].iter().any(
        |r| r.verdict == Verdict::LostOnPrecedence && r.why.contains("more specific hostname")
    ));
}

#[test]
fn each_backend_ref_shows_its_share_and_what_a_draw_there_gets() {
    let l = with_routes(
        r#"
[[HTTPRoute]]
name = "split"
namespace = "infra"
parentRefs = [{ name = "gw" }]
rules = [{ backendRefs = [{ name = "infra-backend-v1", port = 8080, weight = 3 }, { name = "missing", port = 8080, weight = 1 }, { name = "infra-backend-v2", port = 8080, weight = 0 }] }]
"#,
    );
    let e = explained(&l, &request("GET", "/", &[]));
    let shares: Vec<(f64, Option<u16>)> = e
        .backends
        .iter()
        .map(|b| (b.share, b.outcome.status))
        .collect();
    assert_eq!(shares, [(75.0, None), (25.0, Some(500)), (0.0, None)]);
    assert_eq!(
        e.backends[0].outcome.forward_to.as_deref(),
        Some("infra/infra-backend-v1:8080")
    );
    assert!(e.backends[1].target.contains("unresolved"));
    assert!(e.backends[2].outcome.why.contains("never drawn"));
    assert!(e.outcome.why.contains("drawn by weight"));
}

#[test]
fn a_redirect_is_its_status_and_location_and_a_refused_path_is_400_before_routing() {
    let l = with_routes(
        r#"
[[HTTPRoute]]
name = "moved"
namespace = "infra"
parentRefs = [{ name = "gw" }]
rules = [{ filters = [{ type = "RequestRedirect", requestRedirect = { scheme = "https", statusCode = 301 } }] }]
"#,
    );
    let e = explained(&l, &request("GET", "/a?b=c", &[]));
    assert_eq!(e.outcome.status, Some(301));
    assert_eq!(
        e.outcome.location.as_deref(),
        Some("https://www.example.com/a?b=c")
    );
    assert_eq!(e.filters, ["RequestRedirect (301)"]);
    let e = explained(&l, &request("GET", "/../etc/passwd", &[]));
    assert_eq!(e.outcome.status, Some(400));
    assert!(e.rules.is_empty());
    // A Host no listener takes: 404, and the listener says why.
    let mut req = request("GET", "/", &[]);
    req.headers[0].1 = "other.org".into();
    let e = explained(&l, &req);
    assert_eq!(e.outcome.status, Some(404));
    assert!(!e.listeners[0].chosen);
    assert!(e.listeners[0].why.contains("does not match Host other.org"));
}

#[test]
fn a_tls_listener_the_sni_selects_takes_the_connection_before_http_routing() {
    let l = load_with(
        (r#"
[[Secret]]
name = "cert"
namespace = "infra"
certFile = "/etc/gatehouse/cert.pem"
keyFile = "/etc/gatehouse/key.pem"
[[Gateway]]
name = "gw"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [
  { name = "web", protocol = "HTTPS", port = 443, hostname = "www.example.com", tls = { certificateRefs = [{ name = "cert" }] } },
  { name = "pass", protocol = "TLS", port = 443, hostname = "db.example.com", tls = { mode = "Passthrough" } },
  { name = "pg", protocol = "TCP", port = 5432 },
]
[[TLSRoute]]
name = "db"
namespace = "infra"
parentRefs = [{ name = "gw", sectionName = "pass" }]
hostnames = ["db.example.com"]
rules = [{ backendRefs = [{ name = "infra-backend-v1", port = 8080 }] }]
[[TCPRoute]]
name = "pg"
namespace = "infra"
parentRefs = [{ name = "gw", sectionName = "pg" }]
rules = [{ backendRefs = [{ name = "infra-backend-v2", port = 8080 }] }]
"#
        .to_string()
            + BACKENDS)
            .as_str(),
        &[
            ("/etc/gatehouse/cert.pem", cert_pem()),
            ("/etc/gatehouse/key.pem", key_pem()),
        ],
    );
    let tls = |sni: &str| {
        let mut c = plaintext(SocketAddr::from(([127, 0, 0, 1], 443)));
        c.tls = Some(gatehouse_model::conn::TlsInfo {
            sni: Some(sni.into()),
            h2: false,
            version: "TLSv1.3",
        });
        c
    };
    let none = |_: usize, _: u16| Vec::<EndpointState>::new();
    let mut req = request("GET", "/", &[]);
    req.headers[0].1 = "db.example.com".into();
    let e = explain(&l.snapshot, &tls("db.example.com"), &req, &none);
    assert_eq!(e.listeners.len(), 1);
    assert_eq!(e.listeners[0].listener, "infra/gw/pass");
    assert!(e.rules.is_empty());
    assert!(
        e.outcome.why.starts_with("passed through"),
        "{:?}",
        e.outcome
    );
    assert_eq!(
        e.backends[0].outcome.forward_to.as_deref(),
        Some("infra/infra-backend-v1:8080")
    );
    // The HTTPS listener's name still goes to HTTP routing (no route there: 404).
    let e = explain(
        &l.snapshot,
        &tls("www.example.com"),
        &request("GET", "/", &[]),
        &none,
    );
    assert_eq!(e.outcome.status, Some(404));
    // A TCP listener's port splices every connection.
    let pg = plaintext(SocketAddr::from(([127, 0, 0, 1], 5432)));
    let e = explain(&l.snapshot, &pg, &request("GET", "/", &[]), &none);
    assert_eq!(e.listeners[0].listener, "infra/gw/pg");
    assert!(e.outcome.why.starts_with("spliced"), "{:?}", e.outcome);
    // Plaintext to the TLS port: closed.
    let plain = plaintext(SocketAddr::from(([127, 0, 0, 1], 443)));
    let e = explain(&l.snapshot, &plain, &request("GET", "/", &[]), &none);
    assert!(e.outcome.why.contains("expects TLS"), "{:?}", e.outcome);
    // A port nothing listens on: refused, not a 404.
    let nothing = plaintext(SocketAddr::from(([127, 0, 0, 1], 8000)));
    let e = explain(&l.snapshot, &nothing, &request("GET", "/", &[]), &none);
    assert_eq!(e.outcome.status, None);
    assert!(e.outcome.why.contains("refused"), "{:?}", e.outcome);
    assert!(e.listeners.is_empty());
}

/// Routes `GET /` for www.example.com with `random` ([`route_with`], which asserts explain
/// agrees), and explains it.
fn decided_and_explained(l: &Loaded, random: u64) -> (Option<String>, Explanation) {
    let got = route_with(l, 80, "www.example.com", &Req::get("/"), random);
    (got, explained(l, &request("GET", "/", &[])))
}

#[test]
fn the_outcome_is_drawn_by_weight_when_the_first_backend_ref_is_unresolved_and_others_forward() {
    let l = with_routes(
        r#"
[[HTTPRoute]]
name = "split"
namespace = "infra"
parentRefs = [{ name = "gw" }]
rules = [{ backendRefs = [{ name = "missing", port = 8080, weight = 1 }, { name = "infra-backend-v1", port = 8080, weight = 3 }] }]
"#,
    );
    // Three draws in four forward: the answer is not the first draw's 500.
    let (got, e) = decided_and_explained(&l, 1);
    assert_eq!(got.as_deref(), Some("infra-backend-v1"));
    assert_eq!(e.outcome.status, None, "{:?}", e.outcome);
    assert!(
        e.outcome.why.contains("some draws are answered here"),
        "{:?}",
        e.outcome
    );
    let (got, _) = decided_and_explained(&l, 0);
    assert_eq!(got.as_deref(), Some("500 (NotFound)"));
}

#[test]
fn a_backend_ref_of_weight_zero_does_not_make_the_outcome_a_draw() {
    let l = with_routes(
        r#"
[[HTTPRoute]]
name = "one-of-two"
namespace = "infra"
parentRefs = [{ name = "gw" }]
rules = [{ backendRefs = [{ name = "infra-backend-v1", port = 8080, weight = 1 }, { name = "infra-backend-v2", port = 8080, weight = 0 }] }]
"#,
    );
    // Every request goes to v1, so that is the outcome, not "drawn by weight".
    let (got, e) = decided_and_explained(&l, 7);
    assert_eq!(got.as_deref(), Some("infra-backend-v1"));
    assert_eq!(
        e.outcome.forward_to.as_deref(),
        Some("infra/infra-backend-v1:8080")
    );
}

/// A TLS passthrough listener on 443 whose TLSRoutes are given by `routes`.
fn passthrough(routes: &str) -> Loaded {
    load_ok(&format!(
        r#"{BACKENDS}
[[Gateway]]
name = "gw"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{{ name = "pass", protocol = "TLS", port = 443, tls = {{ mode = "Passthrough" }} }}]
{routes}"#
    ))
}

fn passthrough_explained(l: &Loaded, sni: &str) -> Explanation {
    let conn = client_conn(l, SocketAddr::from(([127, 0, 0, 1], 443)), sni);
    let mut req = request("GET", "/", &[]);
    req.headers[0].1 = sni.into();
    explain(&l.snapshot, &conn, &req, &|_, _| {
        Vec::<EndpointState>::new()
    })
}

#[test]
fn a_tls_connection_every_draw_of_which_is_unresolved_is_closed_not_passed_through() {
    let l = passthrough(
        r#"
[[TLSRoute]]
name = "db"
namespace = "infra"
parentRefs = [{ name = "gw" }]
hostnames = ["db.example.com"]
rules = [{ backendRefs = [{ name = "missing", port = 8080 }] }]
"#,
    );
    let e = passthrough_explained(&l, "db.example.com");
    assert_eq!(e.backends[0].outcome.forward_to, None);
    assert!(
        e.outcome.why.contains("the connection is closed") && !e.outcome.why.contains("passed"),
        "{:?}",
        e.outcome
    );
}

#[test]
fn a_layer4_backend_ref_of_weight_zero_is_never_drawn_and_all_zero_closes_the_connection() {
    let l = passthrough(
        r#"
[[TLSRoute]]
name = "one"
namespace = "infra"
parentRefs = [{ name = "gw" }]
hostnames = ["one.example.com"]
rules = [{ backendRefs = [{ name = "infra-backend-v1", port = 8080 }, { name = "infra-backend-v2", port = 8080, weight = 0 }] }]
[[TLSRoute]]
name = "none"
namespace = "infra"
parentRefs = [{ name = "gw" }]
hostnames = ["none.example.com"]
rules = [{ backendRefs = [{ name = "infra-backend-v1", port = 8080, weight = 0 }] }]
"#,
    );
    let e = passthrough_explained(&l, "one.example.com");
    assert_eq!(
        e.backends[0].outcome.forward_to.as_deref(),
        Some("infra/infra-backend-v1:8080")
    );
    assert_eq!(e.backends[1].outcome.forward_to, None);
    assert!(e.backends[1].outcome.why.contains("never drawn"));
    assert!(
        e.outcome.why.starts_with("passed through"),
        "{:?}",
        e.outcome
    );
    let e = passthrough_explained(&l, "none.example.com");
    assert!(
        e.outcome.why.contains("the connection is closed"),
        "{:?}",
        e.outcome
    );
}
