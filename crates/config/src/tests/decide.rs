//! The data plane's routing decision ([`decide`]) in-process: listener selection by Host and
//! by SNI (421), filters that answer without a backend (redirects, CORS), the backend and
//! mirror draws. Every other routing test of this crate goes through `decide` as well
//! ([`super::route_at`]).

use super::*;
use gatehouse_model::conn::TlsInfo;
use gatehouse_model::decide::Forward;
use gatehouse_model::filter::Scheme;

const HTTP: &str = r#"
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

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[track_caller]
fn decide_on<'s>(
    l: &'s Loaded,
    conn: &ConnInfo,
    host: &str,
    req: &Req,
    random: u64,
) -> gatehouse_model::decide::Decision<'s> {
    decided(l, conn, &WithHost { req, host }, random)
}

fn forward<'s>(d: gatehouse_model::decide::Decision<'s>) -> Forward<'s> {
    match d.action {
        Action::Forward(f) => f,
        Action::Respond(s) => panic!("answered {s:?} instead of forwarding"),
    }
}

fn respond(d: gatehouse_model::decide::Decision<'_>) -> Synthetic {
    match d.action {
        Action::Respond(s) => s,
        Action::Forward(f) => panic!("forwarded to backendRef {} instead of answering", f.backend),
    }
}

fn header<'a>(s: &'a Synthetic, name: &str) -> Option<&'a str> {
    s.headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

fn with_route(rules: &str) -> Loaded {
    load_ok(&format!(
        "{HTTP}{BACKENDS}\n[[HTTPRoute]]\nname = \"r\"\nnamespace = \"infra\"\nparentRefs = [{{ name = \"gw\" }}]\n{rules}"
    ))
}

#[test]
fn a_host_no_listener_takes_is_404_without_a_listener() {
    let l = with_route(
        "[[HTTPRoute.rules]]\nbackendRefs = [{ name = \"infra-backend-v1\", port = 8080 }]",
    );
    let d = decide_on(&l, &plaintext(local(80)), "other.org", &Req::get("/"), 0);
    assert_eq!(d.listener, None);
    assert_eq!(respond(d), Synthetic::no_listener());
    let d = decide_on(
        &l,
        &plaintext(local(80)),
        "a.example.com",
        &Req::get("/"),
        0,
    );
    assert_eq!(d.listener, Some(0));
    assert_eq!(forward(d).backend, 0);
}

#[test]
fn a_listener_without_a_matching_rule_is_404_with_the_listener_known() {
    let l = with_route(
        "[[HTTPRoute.rules]]\nmatches = [{ path = { type = \"Exact\", value = \"/only\" } }]\nbackendRefs = [{ name = \"infra-backend-v1\", port = 8080 }]",
    );
    let d = decide_on(
        &l,
        &plaintext(local(80)),
        "a.example.com",
        &Req::get("/other"),
        0,
    );
    assert_eq!(d.listener, Some(0));
    assert!(d.rule.is_none());
    assert_eq!(respond(d), Synthetic::no_match());
}

#[test]
fn the_host_port_and_case_do_not_change_the_listener() {
    let l = with_route(
        "[[HTTPRoute.rules]]\nbackendRefs = [{ name = \"infra-backend-v1\", port = 8080 }]",
    );
    let d = decide_on(
        &l,
        &plaintext(local(80)),
        "A.Example.COM.:80",
        &Req::get("/"),
        0,
    );
    assert_eq!(d.listener, Some(0));
}

const HTTPS: &str = r#"
[[Secret]]
name = "cert"
namespace = "infra"
type = "kubernetes.io/tls"
certFile = "/etc/gatehouse/cert.pem"
keyFile = "/etc/gatehouse/key.pem"
[[Gateway]]
name = "gw"
namespace = "infra"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "one"
protocol = "HTTPS"
port = 443
hostname = "one.example.org"
tls = { certificateRefs = [{ name = "cert" }] }
[[Gateway.listeners]]
name = "two"
protocol = "HTTPS"
port = 443
hostname = "two.example.org"
tls = { certificateRefs = [{ name = "cert" }] }
[[HTTPRoute]]
name = "r"
namespace = "infra"
parentRefs = [{ name = "gw" }]
[[HTTPRoute.rules]]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
"#;

fn tls_conn(sni: Option<&str>) -> ConnInfo {
    let mut c = plaintext(local(443));
    c.tls = Some(TlsInfo {
        sni: sni.map(str::to_string),
        h2: false,
        version: "TLSv1.3",
    });
    c
}

fn https() -> Loaded {
    load_with(
        &format!("{HTTPS}{BACKENDS}"),
        &[
            ("/etc/gatehouse/cert.pem", cert_pem()),
            ("/etc/gatehouse/key.pem", key_pem()),
        ],
    )
}

#[test]
fn on_tls_the_sni_chooses_the_listener_and_the_scheme_is_https() {
    let l = https();
    let d = decide_on(
        &l,
        &tls_conn(Some("two.example.org")),
        "two.example.org",
        &Req::get("/"),
        0,
    );
    assert_eq!(d.listener, Some(1));
    assert_eq!(forward(d).scheme, Scheme::Https);
}

#[test]
fn a_host_of_another_https_listener_than_the_sni_is_misdirected_421() {
    let l = https();
    let d = decide_on(
        &l,
        &tls_conn(Some("one.example.org")),
        "two.example.org",
        &Req::get("/"),
        0,
    );
    assert_eq!(respond(d), Synthetic::misdirected());
}

#[test]
fn a_host_no_https_listener_takes_is_404_not_421() {
    let l = https();
    let d = decide_on(
        &l,
        &tls_conn(Some("one.example.org")),
        "three.example.org",
        &Req::get("/"),
        0,
    );
    assert_eq!(respond(d), Synthetic::no_listener());
}

#[test]
fn a_tls_connection_without_sni_is_misdirected_when_its_host_names_a_listener() {
    // Without SNI no listener was chosen by the handshake, so a Host naming one is 421.
    let l = https();
    let d = decide_on(&l, &tls_conn(None), "one.example.org", &Req::get("/"), 0);
    assert_eq!(respond(d), Synthetic::misdirected());
}

#[test]
fn a_redirect_keeps_the_request_host_and_path_and_answers_the_filter_status() {
    let l = with_route(
        r#"[[HTTPRoute.rules]]
filters = [{ type = "RequestRedirect", requestRedirect = { scheme = "https", statusCode = 301 } }]
"#,
    );
    let s = respond(decide_on(
        &l,
        &plaintext(local(80)),
        "a.example.com:80",
        &Req::get("/x/y?q=1"),
        0,
    ));
    assert_eq!(s.status, 301);
    assert_eq!(
        header(&s, "location"),
        Some("https://a.example.com/x/y?q=1")
    );
    assert!(s.body.is_empty());
}

#[test]
fn a_redirect_with_replace_prefix_match_uses_the_matched_prefix() {
    let l = with_route(
        r#"[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/old" } }]
filters = [{ type = "RequestRedirect", requestRedirect = { path = { type = "ReplacePrefixMatch", replacePrefixMatch = "/new" } } }]
"#,
    );
    let s = respond(decide_on(
        &l,
        &plaintext(local(80)),
        "a.example.com",
        &Req::get("/old/page"),
        0,
    ));
    assert_eq!(s.status, 302);
    assert_eq!(
        header(&s, "location"),
        Some("http://a.example.com/new/page")
    );
}

#[test]
fn a_backend_level_redirect_answers_only_when_its_backend_is_drawn() {
    let l = with_route(
        r#"[[HTTPRoute.rules]]
backendRefs = [
  { name = "infra-backend-v1", port = 8080, weight = 1 },
  { name = "infra-backend-v2", port = 8080, weight = 1, filters = [{ type = "RequestRedirect", requestRedirect = { hostname = "elsewhere.example.com" } }] },
]
"#,
    );
    let conn = plaintext(local(80));
    assert_eq!(
        forward(decide_on(&l, &conn, "a.example.com", &Req::get("/"), 0)).backend,
        0
    );
    let s = respond(decide_on(&l, &conn, "a.example.com", &Req::get("/"), 1));
    assert_eq!(
        header(&s, "location"),
        Some("http://elsewhere.example.com/")
    );
}

const CORS: &str = r#"[[HTTPRoute.rules]]
filters = [{ type = "CORS", cors = { allowOrigins = ["https://www.foo.com"], allowMethods = ["GET"], allowCredentials = true } }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
"#;

fn preflight(origin: &str) -> Req {
    let mut r = Req::get("/")
        .header("origin", origin)
        .header("access-control-request-method", "GET");
    r.method = "OPTIONS";
    r
}

#[test]
fn a_cors_preflight_from_an_allowed_origin_is_answered_204_here() {
    let l = with_route(CORS);
    let s = respond(decide_on(
        &l,
        &plaintext(local(80)),
        "a.example.com",
        &preflight("https://www.foo.com"),
        0,
    ));
    assert_eq!(s.status, 204);
    assert_eq!(
        header(&s, "access-control-allow-origin"),
        Some("https://www.foo.com")
    );
    assert_eq!(header(&s, "access-control-allow-credentials"), Some("true"));
}

#[test]
fn a_cors_preflight_from_another_origin_is_forbidden() {
    let l = with_route(CORS);
    let s = respond(decide_on(
        &l,
        &plaintext(local(80)),
        "a.example.com",
        &preflight("https://evil.org"),
        0,
    ));
    assert_eq!(s, Synthetic::cors_forbidden());
}

#[test]
fn an_actual_request_from_an_allowed_origin_is_forwarded_with_its_origin_remembered() {
    let l = with_route(CORS);
    let conn = plaintext(local(80));
    let req = Req::get("/").header("origin", "https://www.foo.com");
    let f = forward(decide_on(&l, &conn, "a.example.com", &req, 0));
    assert_eq!(f.cors_origin.as_deref(), Some("https://www.foo.com"));
    let req = Req::get("/").header("origin", "https://evil.org");
    assert_eq!(
        forward(decide_on(&l, &conn, "a.example.com", &req, 0)).cors_origin,
        None
    );
}

#[test]
fn mirrors_are_sampled_by_their_fraction() {
    let l = with_route(
        r#"[[HTTPRoute.rules]]
filters = [
  { type = "RequestMirror", requestMirror = { backendRef = { name = "infra-backend-v2", port = 8080 } } },
  { type = "RequestMirror", requestMirror = { backendRef = { name = "infra-backend-v3", port = 8080 }, percent = 50 } },
]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
"#,
    );
    let conn = plaintext(local(80));
    let names = |random| {
        forward(decide_on(
            &l,
            &conn,
            "a.example.com",
            &Req::get("/"),
            random,
        ))
        .mirrors
        .iter()
        .map(|m| m.name.clone())
        .collect::<Vec<_>>()
    };
    assert_eq!(
        names(10),
        ["infra/infra-backend-v2:8080", "infra/infra-backend-v3:8080"]
    );
    assert_eq!(names(60), ["infra/infra-backend-v2:8080"]);
}

#[test]
fn the_forward_names_the_service_port_and_matched_prefix() {
    let l = with_route(
        r#"[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/api/" } }]
backendRefs = [{ name = "infra-backend-v2", port = 8080 }]
"#,
    );
    let f = forward(decide_on(
        &l,
        &plaintext(local(80)),
        "a.example.com",
        &Req::get("/api/x"),
        0,
    ));
    assert_eq!(l.snapshot.services[f.service].key.name, "infra-backend-v2");
    assert_eq!(f.target_port, 8080);
    assert_eq!(f.matched_prefix, Some("/api"));
    assert_eq!(f.scheme, Scheme::Http);
}
