//! HTTPRoute attachment and routing: the conformance cases of §1.1 (references are in
//! `http_references`).

use super::*;
use gatehouse_model::status::{condition as c, reason as r};

fn with_fixture(routes: &str) -> Loaded {
    load_ok(&format!("{SAME_NAMESPACE_GATEWAY}{BACKENDS}{routes}"))
}

#[test]
fn http_route_simple_same_namespace() {
    let l = with_fixture(
        r#"
[[HTTPRoute]]
name = "gateway-conformance-infra-test"
namespace = "infra"
parentRefs = [{ name = "same-namespace" }]
[[HTTPRoute.rules]]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
"#,
    );
    let parents = l.route_conditions(Kind::HTTPRoute, "infra", "gateway-conformance-infra-test");
    assert_cond(&parents[0], c::ACCEPTED, true, r::ACCEPTED);
    assert_cond(&parents[0], c::RESOLVED_REFS, true, r::RESOLVED_REFS);
    assert_eq!(
        listener(l.gw("infra", "same-namespace"), "http").attached_routes,
        1
    );
    assert_eq!(route(&l, "gw", "/").as_deref(), Some("infra-backend-v1"));
}

#[test]
fn http_route_hostname_intersection() {
    let l = load_ok(&format!(
        r#"{BACKENDS}
[[Gateway]]
name = "httproute-hostname-intersection"
namespace = "infra"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "listener-1"
protocol = "HTTP"
port = 80
hostname = "very.specific.com"
[[Gateway.listeners]]
name = "listener-2"
protocol = "HTTP"
port = 80
hostname = "*.wildcard.io"
[[Gateway.listeners]]
name = "listener-3"
protocol = "HTTP"
port = 80
hostname = "*.anotherwildcard.io"

[[HTTPRoute]]
name = "specific-host-matches-listener-specific-host"
namespace = "infra"
parentRefs = [{{ name = "httproute-hostname-intersection" }}]
hostnames = ["non.matching.com", "*.nonmatchingwildcard.io", "very.specific.com"]
[[HTTPRoute.rules]]
matches = [{{ path = {{ value = "/s1" }} }}]
backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}]

[[HTTPRoute]]
name = "specific-host-matches-listener-wildcard-host"
namespace = "infra"
parentRefs = [{{ name = "httproute-hostname-intersection" }}]
hostnames = ["non.matching.com", "wildcard.io", "foo.wildcard.io", "bar.wildcard.io", "foo.bar.wildcard.io"]
[[HTTPRoute.rules]]
matches = [{{ path = {{ value = "/s2" }} }}]
backendRefs = [{{ name = "infra-backend-v2", port = 8080 }}]

[[HTTPRoute]]
name = "wildcard-host-matches-listener-specific-host"
namespace = "infra"
parentRefs = [{{ name = "httproute-hostname-intersection" }}]
hostnames = ["non.matching.com", "*.specific.com"]
[[HTTPRoute.rules]]
matches = [{{ path = {{ value = "/s3" }} }}]
backendRefs = [{{ name = "infra-backend-v3", port = 8080 }}]

[[HTTPRoute]]
name = "wildcard-host-matches-listener-wildcard-host"
namespace = "infra"
parentRefs = [{{ name = "httproute-hostname-intersection" }}]
hostnames = ["*.anotherwildcard.io"]
[[HTTPRoute.rules]]
matches = [{{ path = {{ value = "/s4" }} }}]
backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}]

[[HTTPRoute]]
name = "no-intersecting-hosts"
namespace = "infra"
parentRefs = [{{ name = "httproute-hostname-intersection" }}]
hostnames = ["specific.but.wrong.com", "wildcard.io"]
[[HTTPRoute.rules]]
matches = [{{ path = {{ value = "/s5" }} }}]
backendRefs = [{{ name = "infra-backend-v2", port = 8080 }}]
"#
    ));
    let gw = l.gw("infra", "httproute-hostname-intersection");
    assert_eq!(listener(gw, "listener-1").attached_routes, 2);
    assert_eq!(listener(gw, "listener-2").attached_routes, 1);
    assert_eq!(listener(gw, "listener-3").attached_routes, 1);
    let s5 = l.route_conditions(Kind::HTTPRoute, "infra", "no-intersecting-hosts");
    assert_cond(&s5[0], c::ACCEPTED, false, r::NO_MATCHING_LISTENER_HOSTNAME);
    assert_cond(&s5[0], c::RESOLVED_REFS, true, r::RESOLVED_REFS);

    let v = |host: &str, path: &str| route(&l, host, path);
    assert_eq!(
        v("very.specific.com", "/s1").as_deref(),
        Some("infra-backend-v1")
    );
    assert_eq!(
        v("very.specific.com:1234", "/s1").as_deref(),
        Some("infra-backend-v1")
    );
    for host in [
        "non.matching.com",
        "foo.nonmatchingwildcard.io",
        "foo.wildcard.io",
    ] {
        assert_eq!(v(host, "/s1"), None, "{host}");
    }
    for host in ["foo.wildcard.io", "bar.wildcard.io", "foo.bar.wildcard.io"] {
        assert_eq!(
            v(host, "/s2").as_deref(),
            Some("infra-backend-v2"),
            "{host}"
        );
    }
    for host in ["non.matching.com", "wildcard.io", "very.specific.com"] {
        assert_eq!(v(host, "/s2"), None, "{host}");
    }
    assert_eq!(
        v("very.specific.com", "/s3").as_deref(),
        Some("infra-backend-v3")
    );
    assert_eq!(v("foo.specific.com", "/s3"), None);
    for host in [
        "foo.anotherwildcard.io",
        "bar.anotherwildcard.io",
        "foo.bar.anotherwildcard.io",
    ] {
        assert_eq!(
            v(host, "/s4").as_deref(),
            Some("infra-backend-v1"),
            "{host}"
        );
    }
    assert_eq!(v("anotherwildcard.io", "/s4"), None);
    assert_eq!(v("very.specific.com", "/non-matching-prefix"), None);
    for host in ["specific.but.wrong.com", "wildcard.io"] {
        assert_eq!(v(host, "/s5"), None, "{host}");
    }
}

#[test]
fn http_route_listener_hostname_matching() {
    let l = load_ok(&format!(
        r#"{BACKENDS}
[[Gateway]]
name = "httproute-listener-hostname-matching"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [
  {{ name = "listener-1", protocol = "HTTP", port = 80, hostname = "bar.com" }},
  {{ name = "listener-2", protocol = "HTTP", port = 80, hostname = "foo.bar.com" }},
  {{ name = "listener-3", protocol = "HTTP", port = 80, hostname = "*.bar.com" }},
  {{ name = "listener-4", protocol = "HTTP", port = 80, hostname = "*.foo.com" }},
]
[[HTTPRoute]]
name = "backend-v1"
namespace = "infra"
parentRefs = [{{ name = "httproute-listener-hostname-matching", sectionName = "listener-1" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
[[HTTPRoute]]
name = "backend-v2"
namespace = "infra"
parentRefs = [{{ name = "httproute-listener-hostname-matching", sectionName = "listener-2" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v2", port = 8080 }}] }}]
[[HTTPRoute]]
name = "backend-v3"
namespace = "infra"
parentRefs = [
  {{ name = "httproute-listener-hostname-matching", sectionName = "listener-3" }},
  {{ name = "httproute-listener-hostname-matching", sectionName = "listener-4" }},
]
rules = [{{ backendRefs = [{{ name = "infra-backend-v3", port = 8080 }}] }}]
"#
    ));
    assert_eq!(
        route(&l, "bar.com", "/").as_deref(),
        Some("infra-backend-v1")
    );
    assert_eq!(
        route(&l, "foo.bar.com", "/").as_deref(),
        Some("infra-backend-v2")
    );
    for host in [
        "baz.bar.com",
        "boo.bar.com",
        "multiple.prefixes.bar.com",
        "multiple.prefixes.foo.com",
    ] {
        assert_eq!(
            route(&l, host, "/").as_deref(),
            Some("infra-backend-v3"),
            "{host}"
        );
    }
    assert_eq!(route(&l, "foo.com", "/"), None);
    assert_eq!(route(&l, "no.matching.host", "/"), None);
}

#[test]
fn gateway_http_listener_isolation_selects_one_listener_per_host() {
    let mut toml = format!(
        r#"{BACKENDS}
[[Gateway]]
name = "http-listener-isolation"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [
  {{ name = "empty-hostname", protocol = "HTTP", port = 80 }},
  {{ name = "wildcard-example-com", protocol = "HTTP", port = 80, hostname = "*.example.com" }},
  {{ name = "wildcard-foo-example-com", protocol = "HTTP", port = 80, hostname = "*.foo.example.com" }},
  {{ name = "abc-foo-example-com", protocol = "HTTP", port = 80, hostname = "abc.foo.example.com" }},
]
"#
    );
    let listeners = [
        "empty-hostname",
        "wildcard-example-com",
        "wildcard-foo-example-com",
        "abc-foo-example-com",
    ];
    for name in listeners {
        toml.push_str(&format!(
            r#"
[[HTTPRoute]]
name = "attaches-to-{name}"
namespace = "infra"
parentRefs = [{{ name = "http-listener-isolation", sectionName = "{name}" }}]
hostnames = ["bar.com", "*.example.com", "*.foo.example.com", "abc.foo.example.com"]
rules = [{{ matches = [{{ path = {{ value = "/{name}" }} }}], backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
"#
        ));
    }
    let l = load_ok(&toml);
    let hosts = [
        "bar.com",
        "bar.example.com",
        "bar.foo.example.com",
        "abc.foo.example.com",
    ];
    for (hi, host) in hosts.iter().enumerate() {
        for (li, name) in listeners.iter().enumerate() {
            let got = route(&l, host, &format!("/{name}"));
            let want = (hi == li).then(|| "infra-backend-v1".to_string());
            assert_eq!(got, want, "{host} /{name}");
        }
    }
}

#[test]
fn http_route_weight_compiles_weights_and_never_picks_weight_zero() {
    let l = with_fixture(
        r#"
[[HTTPRoute]]
name = "weighted-backends"
namespace = "infra"
parentRefs = [{ name = "same-namespace" }]
[[HTTPRoute.rules]]
backendRefs = [
  { name = "infra-backend-v1", port = 8080, weight = 70 },
  { name = "infra-backend-v2", port = 8080, weight = 30 },
  { name = "infra-backend-v3", port = 8080, weight = 0 },
]
"#,
    );
    let mut counts: HashMap<String, u32> = HashMap::new();
    for r in 0..1000 {
        let b = route_with(&l, 80, "gw", &Req::get("/"), r).unwrap();
        *counts.entry(b).or_default() += 1;
    }
    assert_eq!(counts.get("infra-backend-v1"), Some(&700));
    assert_eq!(counts.get("infra-backend-v2"), Some(&300));
    assert_eq!(counts.get("infra-backend-v3"), None);
}

#[test]
fn all_weights_zero_answers_503() {
    let l = with_fixture(
        r#"
[[HTTPRoute]]
name = "zero"
namespace = "infra"
parentRefs = [{ name = "same-namespace" }]
rules = [{ backendRefs = [{ name = "infra-backend-v1", port = 8080, weight = 0 }] }]
"#,
    );
    assert_eq!(route(&l, "gw", "/").as_deref(), Some("503"));
}

#[test]
fn http_route_no_backend_refs_answers_500() {
    let l = with_fixture(
        r#"
[[HTTPRoute]]
name = "no-backends"
namespace = "infra"
parentRefs = [{ name = "same-namespace" }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "Exact", value = "/omitted-no-forward" } }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "Exact", value = "/empty-no-forward" } }]
backendRefs = []
[[HTTPRoute.rules]]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
"#,
    );
    assert_eq!(
        route(&l, "gw", "/forward").as_deref(),
        Some("infra-backend-v1")
    );
    assert_eq!(
        route(&l, "gw", "/omitted-no-forward").as_deref(),
        Some("500 (no backends)")
    );
    assert_eq!(
        route(&l, "gw", "/empty-no-forward").as_deref(),
        Some("500 (no backends)")
    );
}

#[test]
fn http_route_matching_across_routes() {
    let l = with_fixture(
        r#"
[[HTTPRoute]]
name = "matching-part1"
namespace = "infra"
parentRefs = [{ name = "same-namespace" }]
hostnames = ["example.com", "example.net"]
[[HTTPRoute.rules]]
matches = [{ path = { value = "/" } }, { headers = [{ name = "version", value = "one" }] }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]

[[HTTPRoute]]
name = "matching-part2"
namespace = "infra"
parentRefs = [{ name = "same-namespace" }]
hostnames = ["example.com"]
[[HTTPRoute.rules]]
matches = [{ path = { value = "/v2" } }, { headers = [{ name = "version", value = "two" }] }]
backendRefs = [{ name = "infra-backend-v2", port = 8080 }]
"#,
    );
    let v = |host: &str, req: Req| route_with(&l, 80, host, &req, 0);
    assert_eq!(
        v("example.com", Req::get("/")).as_deref(),
        Some("infra-backend-v1")
    );
    assert_eq!(
        v("example.net", Req::get("/example")).as_deref(),
        Some("infra-backend-v1")
    );
    assert_eq!(
        v("example.com", Req::get("/example").header("Version", "one")).as_deref(),
        Some("infra-backend-v1")
    );
    assert_eq!(
        v("example.com", Req::get("/v2/example")).as_deref(),
        Some("infra-backend-v2")
    );
    assert_eq!(
        v("example.com", Req::get("/").header("Version", "two")).as_deref(),
        Some("infra-backend-v2")
    );
    assert_eq!(
        v("example.net", Req::get("/v2")).as_deref(),
        Some("infra-backend-v1")
    );
}

#[test]
fn http_route_cross_namespace_attaches_through_a_label_selector() {
    let l = load_ok(
        r#"
[[Namespace]]
name = "gateway-conformance-web-backend"
labels = { gateway-conformance = "backend" }
[[Gateway]]
name = "backend-namespaces"
namespace = "infra"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "http"
protocol = "HTTP"
port = 80
allowedRoutes = { namespaces = { from = "Selector", selector = { matchLabels = { gateway-conformance = "backend" } } } }
[[Service]]
name = "web-backend"
namespace = "gateway-conformance-web-backend"
ports = [{ port = 8080 }]
endpoints = ["127.0.0.21"]
[[HTTPRoute]]
name = "cross-namespace"
namespace = "gateway-conformance-web-backend"
parentRefs = [{ name = "backend-namespaces", namespace = "infra" }]
rules = [{ backendRefs = [{ name = "web-backend", port = 8080 }] }]
[[HTTPRoute]]
name = "not-selected"
namespace = "gateway-conformance-app-backend"
parentRefs = [{ name = "backend-namespaces", namespace = "infra" }]
rules = [{ backendRefs = [{ name = "web-backend", namespace = "gateway-conformance-web-backend", port = 8080 }] }]
"#,
    );
    let ok = l.route_conditions(
        Kind::HTTPRoute,
        "gateway-conformance-web-backend",
        "cross-namespace",
    );
    assert_cond(&ok[0], c::ACCEPTED, true, r::ACCEPTED);
    assert_eq!(route(&l, "gw", "/").as_deref(), Some("web-backend"));
    let no = l.route_conditions(
        Kind::HTTPRoute,
        "gateway-conformance-app-backend",
        "not-selected",
    );
    assert_cond(&no[0], c::ACCEPTED, false, r::NOT_ALLOWED_BY_LISTENERS);
    assert_cond(&no[0], c::RESOLVED_REFS, false, r::REF_NOT_PERMITTED);
}

/// HTTPRouteMultipleGateways' routes: one shared by both Gateways, one dedicated to each.
const MULTIPLE_GATEWAY_ROUTES: &str = r#"
[[HTTPRoute]]
name = "shared"
namespace = "infra"
parentRefs = [{ name = "same-namespace" }, { name = "all-namespaces" }]
rules = [{ matches = [{ path = { value = "/shared" } }], backendRefs = [{ name = "infra-backend-v1", port = 8080 }] }]
[[HTTPRoute]]
name = "only-same"
namespace = "infra"
parentRefs = [{ name = "same-namespace" }]
rules = [{ backendRefs = [{ name = "infra-backend-v2", port = 8080 }] }]
[[HTTPRoute]]
name = "only-all"
namespace = "infra"
parentRefs = [{ name = "all-namespaces" }]
rules = [{ backendRefs = [{ name = "infra-backend-v3", port = 8080 }] }]
"#;

#[test]
fn http_route_multiple_gateways() {
    let l = load_ok(&format!(
        r#"{SAME_NAMESPACE_GATEWAY}{BACKENDS}
[[Gateway]]
name = "all-namespaces"
namespace = "infra"
gatewayClassName = "gatehouse"
addresses = [{{ value = "192.0.2.20" }}]
listeners = [{{ name = "http", protocol = "HTTP", port = 80, allowedRoutes = {{ namespaces = {{ from = "All" }} }} }}]
{MULTIPLE_GATEWAY_ROUTES}"#
    ));
    let at = |ip: [u8; 4], path: &str| {
        route_at(&l, SocketAddr::from((ip, 80)), "gw", &Req::get(path), 0)
    };
    // same-namespace has no addresses: it serves every address but the VIP that
    // all-namespaces names, as a specific `listen` address does in nginx.
    let gw = l.gw("infra", "all-namespaces");
    assert_cond(
        &listener(gw, "http").conditions,
        c::CONFLICTED,
        false,
        r::NO_CONFLICTS,
    );
    assert_eq!(
        at([127, 0, 0, 1], "/shared").as_deref(),
        Some("infra-backend-v1")
    );
    assert_eq!(
        at([192, 0, 2, 20], "/shared").as_deref(),
        Some("infra-backend-v1")
    );
    assert_eq!(at([127, 0, 0, 1], "/").as_deref(), Some("infra-backend-v2"));
    assert_eq!(
        at([192, 0, 2, 20], "/").as_deref(),
        Some("infra-backend-v3")
    );
}

#[test]
fn http_route_multiple_gateways_on_their_own_addresses() {
    let l = load_ok(&format!(
        r#"{BACKENDS}
[[Gateway]]
name = "same-namespace"
namespace = "infra"
gatewayClassName = "gatehouse"
addresses = [{{ value = "192.0.2.10" }}]
listeners = [{{ name = "http", protocol = "HTTP", port = 80 }}]
[[Gateway]]
name = "all-namespaces"
namespace = "infra"
gatewayClassName = "gatehouse"
addresses = [{{ value = "192.0.2.20" }}]
listeners = [{{ name = "http", protocol = "HTTP", port = 80, allowedRoutes = {{ namespaces = {{ from = "All" }} }} }}]
{MULTIPLE_GATEWAY_ROUTES}"#
    ));
    let at = |ip: [u8; 4], path: &str| {
        route_at(&l, SocketAddr::from((ip, 80)), "gw", &Req::get(path), 0)
    };
    assert_eq!(
        at([192, 0, 2, 10], "/shared").as_deref(),
        Some("infra-backend-v1")
    );
    assert_eq!(
        at([192, 0, 2, 20], "/shared").as_deref(),
        Some("infra-backend-v1")
    );
    assert_eq!(
        at([192, 0, 2, 10], "/").as_deref(),
        Some("infra-backend-v2")
    );
    assert_eq!(
        at([192, 0, 2, 20], "/").as_deref(),
        Some("infra-backend-v3")
    );
    assert_eq!(
        at([127, 0, 0, 1], "/"),
        None,
        "neither Gateway is bound to other addresses"
    );
    assert_eq!(l.snapshot.vips.len(), 2);
}

#[test]
fn http_route_listener_port_matching() {
    let l = load_ok(&format!(
        r#"{BACKENDS}
[[Gateway]]
name = "httproute-listener-port-matching"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [
  {{ name = "http-80", protocol = "HTTP", port = 80, hostname = "foo.com" }},
  {{ name = "foo-8080", protocol = "HTTP", port = 8080, hostname = "foo.com" }},
  {{ name = "bar-8080", protocol = "HTTP", port = 8080, hostname = "bar.com" }},
  {{ name = "foo-8090", protocol = "HTTP", port = 8090, hostname = "foo.com" }},
  {{ name = "bar-8090", protocol = "HTTP", port = 8090, hostname = "bar.com" }},
]
[[HTTPRoute]]
name = "v1"
namespace = "infra"
parentRefs = [{{ name = "httproute-listener-port-matching", port = 80 }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
[[HTTPRoute]]
name = "v2"
namespace = "infra"
parentRefs = [{{ name = "httproute-listener-port-matching", port = 8080 }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v2", port = 8080 }}] }}]
[[HTTPRoute]]
name = "v3"
namespace = "infra"
parentRefs = [{{ name = "httproute-listener-port-matching", port = 8090, sectionName = "foo-8090" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v3", port = 8080 }}] }}]
"#
    ));
    let v = |port, host| route_with(&l, port, host, &Req::get("/"), 0);
    assert_eq!(v(80, "foo.com").as_deref(), Some("infra-backend-v1"));
    assert_eq!(v(8080, "foo.com").as_deref(), Some("infra-backend-v2"));
    assert_eq!(v(8080, "bar.com").as_deref(), Some("infra-backend-v2"));
    assert_eq!(v(8090, "foo.com").as_deref(), Some("infra-backend-v3"));
    assert_eq!(v(8090, "bar.com"), None);
}
