//! The routing and matching conformance cases (`gateway-api-semantics.md` §1.1) against the
//! real binary: one test per case, named after it, with the catalog's hosts, paths and
//! expectations. Every Gateway has an address of its own; the backends are `gatehouse echo`.

use gatehouse_tests::conformance::{
    Checker, INFRA, Infra, NOT_FOUND, SERVER_ERROR, V1, V2, V3, WEB, Want, describe, echo, gateway,
    http_listener, namespaces, same_namespace, service, start,
};
use gatehouse_tests::{Client, Gateway, conformance, unique_ip};
use std::collections::HashMap;
use std::net::SocketAddr;

/// Request headers of a case.
type Headers = &'static [(&'static str, &'static str)];

/// The infra backends and `same-namespace` (on a fresh address) serving `routes`; returns the
/// checker for port 80 and the Host the catalog uses by default (the gateway's address).
fn same_namespace_lab(routes: &str) -> (Infra, Gateway, Checker, String) {
    let infra = Infra::start();
    let ip = unique_ip();
    let toml = format!("{}{}{routes}", infra.toml(), same_namespace(ip));
    let gw = start(&toml, ip, &[80]);
    let c = Checker::new(SocketAddr::from((ip, 80)));
    (infra, gw, c, ip.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_simple_same_namespace() {
    let (_b, gw, mut c, host) = same_namespace_lab(
        r#"
[[HTTPRoute]]
name = "gateway-conformance-infra-test"
namespace = "gateway-conformance-infra"
parentRefs = [{ name = "same-namespace" }]
rules = [{ backendRefs = [{ name = "infra-backend-v1", port = 8080 }] }]
"#,
    );
    c.get(&host, "/", V1).await;
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_matching() {
    let (_b, gw, mut c, host) = same_namespace_lab(
        r#"
[[HTTPRoute]]
name = "matching"
namespace = "gateway-conformance-infra"
parentRefs = [{ name = "same-namespace" }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/" } }, { headers = [{ name = "version", value = "one" }] }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/v2" } }, { headers = [{ name = "version", value = "two" }] }]
backendRefs = [{ name = "infra-backend-v2", port = 8080 }]
"#,
    );
    c.get(&host, "/", V1).await;
    c.get(&host, "/example", V1).await;
    c.req("GET", &host, "/", &[("Version", "one")], V1).await;
    c.get(&host, "/v2", V2).await;
    c.get(&host, "/v2/example", V2).await;
    c.get(&host, "/v2/", V2).await;
    c.req("GET", &host, "/", &[("Version", "two")], V2).await;
    c.get(&host, "/v2example", V1).await;
    c.get(&host, "/foo/v2/example", V1).await;
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_matching_across_routes() {
    let (_b, gw, mut c, _) = same_namespace_lab(
        r#"
[[HTTPRoute]]
name = "matching-part1"
namespace = "gateway-conformance-infra"
parentRefs = [{ name = "same-namespace" }]
hostnames = ["example.com", "example.net"]
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/" } }, { headers = [{ name = "version", value = "one" }] }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]

[[HTTPRoute]]
name = "matching-part2"
namespace = "gateway-conformance-infra"
parentRefs = [{ name = "same-namespace" }]
hostnames = ["example.com"]
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/v2" } }, { headers = [{ name = "version", value = "two" }] }]
backendRefs = [{ name = "infra-backend-v2", port = 8080 }]
"#,
    );
    c.get("example.com", "/", V1).await;
    c.get("example.com", "/example", V1).await;
    c.get("example.net", "/example", V1).await;
    c.req("GET", "example.com", "/example", &[("Version", "one")], V1)
        .await;
    c.get("example.com", "/v2", V2).await;
    c.get("example.com", "/v2/example", V2).await;
    c.req("GET", "example.com", "/", &[("Version", "two")], V2)
        .await;
    c.get("example.net", "/v2", V1).await;
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_exact_path_matching() {
    let (_b, gw, mut c, host) = same_namespace_lab(
        r#"
[[HTTPRoute]]
name = "exact-matching"
namespace = "gateway-conformance-infra"
parentRefs = [{ name = "same-namespace" }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "Exact", value = "/one" } }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "Exact", value = "/two" } }]
backendRefs = [{ name = "infra-backend-v2", port = 8080 }]
"#,
    );
    c.get(&host, "/one", V1).await;
    c.get(&host, "/two", V2).await;
    for path in ["/", "/one/example", "/two/", "/Two"] {
        c.get(&host, path, NOT_FOUND).await;
    }
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_path_match_order() {
    let (_b, gw, mut c, host) = same_namespace_lab(
        r#"
[[HTTPRoute]]
name = "path-matching-order"
namespace = "gateway-conformance-infra"
parentRefs = [{ name = "same-namespace" }]
rules = [
  { matches = [{ path = { type = "Exact", value = "/match" } }], backendRefs = [{ name = "infra-backend-v1", port = 8080 }] },
  { matches = [{ path = { type = "Exact", value = "/match/exact" } }], backendRefs = [{ name = "infra-backend-v2", port = 8080 }] },
  { matches = [{ path = { type = "Exact", value = "/match/exact/one" } }], backendRefs = [{ name = "infra-backend-v3", port = 8080 }] },
  { matches = [{ path = { type = "PathPrefix", value = "/match/" } }], backendRefs = [{ name = "infra-backend-v3", port = 8080 }] },
  { matches = [{ path = { type = "PathPrefix", value = "/match/prefix/" } }], backendRefs = [{ name = "infra-backend-v1", port = 8080 }] },
  { matches = [{ path = { type = "PathPrefix", value = "/match/prefix/one" } }], backendRefs = [{ name = "infra-backend-v2", port = 8080 }] },
]
"#,
    );
    c.get(&host, "/match/exact/one", V3).await;
    c.get(&host, "/match/exact", V2).await;
    c.get(&host, "/match", V1).await;
    c.get(&host, "/match/prefix/one/any", V2).await;
    c.get(&host, "/match/prefix/any", V1).await;
    c.get(&host, "/match/any", V3).await;
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_header_matching() {
    let (_b, gw, mut c, host) = same_namespace_lab(
        r#"
[[HTTPRoute]]
name = "header-matching"
namespace = "gateway-conformance-infra"
parentRefs = [{ name = "same-namespace" }]
[[HTTPRoute.rules]]
matches = [{ headers = [{ name = "version", value = "one" }] }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ headers = [{ name = "version", value = "two" }] }]
backendRefs = [{ name = "infra-backend-v2", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ headers = [{ name = "version", value = "two" }, { name = "color", value = "orange" }] }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ headers = [{ name = "color", value = "blue" }] }, { headers = [{ name = "color", value = "green" }] }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ headers = [{ name = "color", value = "red" }] }, { headers = [{ name = "color", value = "yellow" }] }]
backendRefs = [{ name = "infra-backend-v2", port = 8080 }]
"#,
    );
    let cases: &[(Headers, Want)] = &[
        (&[("Version", "one")], V1),
        (&[("Version", "two")], V2),
        (&[("Version", "two"), ("Color", "orange")], V1),
        (&[("Version", "two"), ("Color", "blue")], V2),
        (&[("Color", "blue")], V1),
        (&[("Color", "green")], V1),
        (&[("Color", "red")], V2),
        (&[("Color", "yellow")], V2),
        (&[("Color", "orange")], NOT_FOUND),
        (&[("Some-Other-Header", "one")], NOT_FOUND),
        (&[("Color", "purple")], NOT_FOUND),
    ];
    for (headers, want) in cases {
        c.req("GET", &host, "/", headers, *want).await;
    }
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_query_param_matching() {
    let (_b, gw, mut c, host) = same_namespace_lab(
        r#"
[[HTTPRoute]]
name = "query-param-matching"
namespace = "gateway-conformance-infra"
parentRefs = [{ name = "same-namespace" }]
[[HTTPRoute.rules]]
matches = [{ queryParams = [{ name = "animal", value = "whale" }] }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ queryParams = [{ name = "animal", value = "dolphin" }] }]
backendRefs = [{ name = "infra-backend-v2", port = 8080 }]
[[HTTPRoute.rules]]
matches = [
  { queryParams = [{ name = "animal", value = "dolphin" }, { name = "color", value = "blue" }] },
  { queryParams = [{ name = "ANIMAL", value = "Whale" }] },
]
backendRefs = [{ name = "infra-backend-v3", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/path1" }, queryParams = [{ name = "animal", value = "whale" }] }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ headers = [{ name = "version", value = "one" }], queryParams = [{ name = "animal", value = "whale" }] }]
backendRefs = [{ name = "infra-backend-v2", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/path2" }, headers = [{ name = "version", value = "two" }], queryParams = [{ name = "animal", value = "whale" }] }]
backendRefs = [{ name = "infra-backend-v3", port = 8080 }]
[[HTTPRoute.rules]]
matches = [
  { path = { type = "PathPrefix", value = "/path3" }, queryParams = [{ name = "animal", value = "shark" }] },
  { path = { type = "PathPrefix", value = "/path4" }, headers = [{ name = "version", value = "three" }], queryParams = [{ name = "animal", value = "kraken" }] },
]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/path5" } }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ queryParams = [{ name = "animal", value = "hydra" }] }]
backendRefs = [{ name = "infra-backend-v2", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ headers = [{ name = "version", value = "four" }] }]
backendRefs = [{ name = "infra-backend-v3", port = 8080 }]
"#,
    );
    let cases: &[(&str, Headers, Want)] = &[
        ("/?animal=whale", &[], V1),
        ("/?animal=dolphin", &[], V2),
        ("/?animal=dolphin&color=blue", &[], V3),
        ("/?ANIMAL=Whale", &[], V3),
        ("/?animal=whale&otherparam=irrelevant", &[], V1),
        ("/?animal=dolphin&color=yellow", &[], V2),
        ("/?color=blue", &[], NOT_FOUND),
        ("/?animal=dog", &[], NOT_FOUND),
        ("/?animal=whaledolphin", &[], NOT_FOUND),
        ("/", &[], NOT_FOUND),
        ("/path1?animal=whale", &[], V1),
        ("/?animal=whale", &[("version", "one")], V2),
        ("/path2?animal=whale", &[("version", "two")], V3),
        ("/path3?animal=shark", &[], V1),
        ("/path4?animal=kraken", &[("version", "three")], V1),
        ("/?animal=shark", &[], NOT_FOUND),
        ("/path4?animal=kraken", &[], NOT_FOUND),
        ("/path5?animal=hydra", &[], V1),
        ("/?animal=hydra", &[("version", "four")], V3),
    ];
    for (path, headers, want) in cases {
        c.req("GET", &host, path, headers, *want).await;
    }
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_method_matching() {
    let (_b, gw, mut c, host) = same_namespace_lab(
        r#"
[[HTTPRoute]]
name = "method-matching"
namespace = "gateway-conformance-infra"
parentRefs = [{ name = "same-namespace" }]
[[HTTPRoute.rules]]
matches = [{ method = "POST" }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ method = "GET" }]
backendRefs = [{ name = "infra-backend-v2", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/path1" }, method = "GET" }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ headers = [{ name = "version", value = "one" }], method = "PUT" }]
backendRefs = [{ name = "infra-backend-v2", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/path2" }, headers = [{ name = "version", value = "two" }], method = "POST" }]
backendRefs = [{ name = "infra-backend-v3", port = 8080 }]
[[HTTPRoute.rules]]
matches = [
  { path = { type = "PathPrefix", value = "/path3" }, method = "PATCH" },
  { path = { type = "PathPrefix", value = "/path4" }, headers = [{ name = "version", value = "three" }], method = "DELETE" },
]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/path5" } }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ method = "PATCH" }]
backendRefs = [{ name = "infra-backend-v2", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ headers = [{ name = "version", value = "four" }] }]
backendRefs = [{ name = "infra-backend-v3", port = 8080 }]
"#,
    );
    let cases: &[(&str, &str, Headers, Want)] = &[
        ("POST", "/", &[], V1),
        ("GET", "/", &[], V2),
        ("HEAD", "/", &[], NOT_FOUND),
        ("GET", "/path1", &[], V1),
        ("PUT", "/", &[("version", "one")], V2),
        ("POST", "/path2", &[("version", "two")], V3),
        ("PATCH", "/path3", &[], V1),
        ("DELETE", "/path4", &[("version", "three")], V1),
        ("PUT", "/", &[], NOT_FOUND),
        ("DELETE", "/path4", &[], NOT_FOUND),
        ("PATCH", "/path5", &[], V1),
        ("PATCH", "/", &[("version", "four")], V2),
    ];
    for (method, path, headers, want) in cases {
        c.req(method, &host, path, headers, *want).await;
    }
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_hostname_intersection() {
    let infra = Infra::start();
    let (ip, all_ip) = (unique_ip(), unique_ip());
    let listeners = [
        http_listener("listener-1", 80, Some("very.specific.com"), "Same"),
        http_listener("listener-2", 80, Some("*.wildcard.io"), "Same"),
        http_listener("listener-3", 80, Some("*.anotherwildcard.io"), "Same"),
    ]
    .join("\n");
    let toml = format!(
        r#"{}{}{}
[[HTTPRoute]]
name = "specific-host-matches-listener-specific-host"
namespace = "{INFRA}"
parentRefs = [{{ name = "httproute-hostname-intersection" }}]
hostnames = ["non.matching.com", "*.nonmatchingwildcard.io", "very.specific.com"]
rules = [{{ matches = [{{ path = {{ type = "PathPrefix", value = "/s1" }} }}], backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]

[[HTTPRoute]]
name = "specific-host-matches-listener-wildcard-host"
namespace = "{INFRA}"
parentRefs = [{{ name = "httproute-hostname-intersection" }}]
hostnames = ["non.matching.com", "wildcard.io", "foo.wildcard.io", "bar.wildcard.io", "foo.bar.wildcard.io"]
rules = [{{ matches = [{{ path = {{ type = "PathPrefix", value = "/s2" }} }}], backendRefs = [{{ name = "infra-backend-v2", port = 8080 }}] }}]

[[HTTPRoute]]
name = "wildcard-host-matches-listener-specific-host"
namespace = "{INFRA}"
parentRefs = [{{ name = "httproute-hostname-intersection" }}]
hostnames = ["non.matching.com", "*.specific.com"]
rules = [{{ matches = [{{ path = {{ type = "PathPrefix", value = "/s3" }} }}], backendRefs = [{{ name = "infra-backend-v3", port = 8080 }}] }}]

[[HTTPRoute]]
name = "wildcard-host-matches-listener-wildcard-host"
namespace = "{INFRA}"
parentRefs = [{{ name = "httproute-hostname-intersection" }}]
hostnames = ["*.anotherwildcard.io"]
rules = [{{ matches = [{{ path = {{ type = "PathPrefix", value = "/s4" }} }}], backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]

[[HTTPRoute]]
name = "no-intersecting-hosts"
namespace = "{INFRA}"
parentRefs = [{{ name = "httproute-hostname-intersection" }}]
hostnames = ["specific.but.wrong.com", "wildcard.io"]
rules = [{{ matches = [{{ path = {{ type = "PathPrefix", value = "/s5" }} }}], backendRefs = [{{ name = "infra-backend-v2", port = 8080 }}] }}]

[[HTTPRoute]]
name = "httproute-hostname-intersection-all"
namespace = "{INFRA}"
parentRefs = [{{ name = "httproute-hostname-intersection-all" }}]
hostnames = ["first.com", "sub.first.com", "second.com", "sub.second.com"]
rules = [{{ backendRefs = [{{ name = "infra-backend-v2", port = 8080 }}] }}]
"#,
        infra.toml(),
        gateway("httproute-hostname-intersection", ip, &listeners),
        gateway(
            "httproute-hostname-intersection-all",
            all_ip,
            &http_listener("listener-1", 80, None, "Same")
        ),
    );
    let gw = start(&toml, ip, &[80]);
    let all = SocketAddr::from((all_ip, 80));
    let mut c = Checker::new(SocketAddr::from((ip, 80)));
    let cases: &[(&str, &str, Want)] = &[
        ("very.specific.com", "/s1", V1),
        ("very.specific.com:1234", "/s1", V1),
        ("non.matching.com", "/s1", NOT_FOUND),
        ("foo.nonmatchingwildcard.io", "/s1", NOT_FOUND),
        ("foo.wildcard.io", "/s1", NOT_FOUND),
        ("very.specific.com", "/non-matching-prefix", NOT_FOUND),
        ("foo.wildcard.io", "/s2", V2),
        ("bar.wildcard.io", "/s2", V2),
        ("foo.bar.wildcard.io", "/s2", V2),
        ("non.matching.com", "/s2", NOT_FOUND),
        ("wildcard.io", "/s2", NOT_FOUND),
        ("very.specific.com", "/s2", NOT_FOUND),
        ("foo.wildcard.io", "/non-matching-prefix", NOT_FOUND),
        ("very.specific.com", "/s3", V3),
        ("non.matching.com", "/s3", NOT_FOUND),
        ("foo.specific.com", "/s3", NOT_FOUND),
        ("foo.wildcard.io", "/s3", NOT_FOUND),
        ("foo.anotherwildcard.io", "/s4", V1),
        ("bar.anotherwildcard.io", "/s4", V1),
        ("foo.bar.anotherwildcard.io", "/s4", V1),
        ("anotherwildcard.io", "/s4", NOT_FOUND),
        ("foo.wildcard.io", "/s4", NOT_FOUND),
        ("very.specific.com", "/s4", NOT_FOUND),
        ("foo.anotherwildcard.io", "/non-matching-prefix", NOT_FOUND),
        ("specific.but.wrong.com", "/s5", NOT_FOUND),
        ("wildcard.io", "/s5", NOT_FOUND),
    ];
    for (host, path, want) in cases {
        c.get(host, path, *want).await;
    }
    // The second Gateway: one listener without a hostname.
    for (host, want) in [
        ("first.com", V2),
        ("sub.first.com", V2),
        ("second.com", V2),
        ("sub.second.com", V2),
        ("third.com", NOT_FOUND),
        ("sub.third.com", NOT_FOUND),
    ] {
        c.check_at(all, "GET", host, "/", &[], want).await;
    }
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_listener_hostname_matching() {
    let infra = Infra::start();
    let ip = unique_ip();
    let listeners = [
        http_listener("listener-1", 80, Some("bar.com"), "Same"),
        http_listener("listener-2", 80, Some("foo.bar.com"), "Same"),
        http_listener("listener-3", 80, Some("*.bar.com"), "Same"),
        http_listener("listener-4", 80, Some("*.foo.com"), "Same"),
    ]
    .join("\n");
    let gw_name = "httproute-listener-hostname-matching";
    let toml = format!(
        r#"{}{}
[[HTTPRoute]]
name = "backend-v1"
namespace = "{INFRA}"
parentRefs = [{{ name = "{gw_name}", sectionName = "listener-1" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
[[HTTPRoute]]
name = "backend-v2"
namespace = "{INFRA}"
parentRefs = [{{ name = "{gw_name}", sectionName = "listener-2" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v2", port = 8080 }}] }}]
[[HTTPRoute]]
name = "backend-v3"
namespace = "{INFRA}"
parentRefs = [
  {{ name = "{gw_name}", sectionName = "listener-3" }},
  {{ name = "{gw_name}", sectionName = "listener-4" }},
]
rules = [{{ backendRefs = [{{ name = "infra-backend-v3", port = 8080 }}] }}]
"#,
        infra.toml(),
        gateway(gw_name, ip, &listeners),
    );
    let gw = start(&toml, ip, &[80]);
    let mut c = Checker::new(SocketAddr::from((ip, 80)));
    c.get("bar.com", "/", V1).await;
    c.get("foo.bar.com", "/", V2).await;
    for host in [
        "baz.bar.com",
        "boo.bar.com",
        "multiple.prefixes.bar.com",
        "multiple.prefixes.foo.com",
    ] {
        c.get(host, "/", V3).await;
    }
    c.get("foo.com", "/", NOT_FOUND).await;
    c.get("no.matching.host", "/", NOT_FOUND).await;
    c.finish(&gw);
}

const ISOLATION_LISTENERS: [(&str, Option<&str>); 4] = [
    ("empty-hostname", None),
    ("wildcard-example-com", Some("*.example.com")),
    ("wildcard-foo-example-com", Some("*.foo.example.com")),
    ("abc-foo-example-com", Some("abc.foo.example.com")),
];

/// GatewayHTTPListenerIsolation: one route per listener, path named after the listener;
/// `route_hostnames` is the `hostnames` line of every route (empty for the plain case).
async fn listener_isolation(route_hostnames: &str) {
    let infra = Infra::start();
    let ip = unique_ip();
    let listeners: Vec<String> = ISOLATION_LISTENERS
        .iter()
        .map(|(name, host)| http_listener(name, 80, *host, "All"))
        .collect();
    let mut toml = format!(
        "{}{}",
        infra.toml(),
        gateway("http-listener-isolation", ip, &listeners.join("\n"))
    );
    for (name, _) in ISOLATION_LISTENERS {
        toml.push_str(&format!(
            r#"
[[HTTPRoute]]
name = "attaches-to-{name}"
namespace = "{INFRA}"
parentRefs = [{{ name = "http-listener-isolation", sectionName = "{name}" }}]
{route_hostnames}
rules = [{{ matches = [{{ path = {{ type = "PathPrefix", value = "/{name}" }} }}], backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
"#
        ));
    }
    let gw = start(&toml, ip, &[80]);
    let mut c = Checker::new(SocketAddr::from((ip, 80)));
    let hosts = [
        "bar.com",
        "bar.example.com",
        "bar.foo.example.com",
        "abc.foo.example.com",
    ];
    for (hi, host) in hosts.iter().enumerate() {
        for (li, (name, _)) in ISOLATION_LISTENERS.iter().enumerate() {
            let want = if hi == li { V1 } else { NOT_FOUND };
            c.get(host, &format!("/{name}"), want).await;
        }
    }
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_http_listener_isolation() {
    listener_isolation("").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_http_listener_isolation_with_hostname_intersection() {
    listener_isolation(
        r#"hostnames = ["bar.com", "*.example.com", "*.foo.example.com", "abc.foo.example.com"]"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_weight() {
    const REQUESTS: usize = 10_000;
    const CONNECTIONS: usize = 4;
    let (_b, gw, _, host) = same_namespace_lab(
        r#"
[[HTTPRoute]]
name = "weighted-backends"
namespace = "gateway-conformance-infra"
parentRefs = [{ name = "same-namespace" }]
[[HTTPRoute.rules]]
backendRefs = [
  { name = "infra-backend-v1", port = 8080, weight = 70 },
  { name = "infra-backend-v2", port = 8080, weight = 30 },
  { name = "infra-backend-v3", port = 8080, weight = 0 },
]
"#,
    );
    let addr: SocketAddr = SocketAddr::from((host.parse::<std::net::Ipv4Addr>().unwrap(), 80));
    // A few keep-alive connections in parallel, each sending its share in sequence.
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::http1(addr);
            let mut counts: HashMap<String, usize> = HashMap::new();
            for _ in 0..REQUESTS / CONNECTIONS {
                let r = client.get(&host, "/").await;
                let key = if r.status == 200 {
                    r.backend().unwrap_or_else(|| describe(&r))
                } else {
                    describe(&r)
                };
                *counts.entry(key).or_default() += 1;
            }
            counts
        }));
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        for (k, n) in t.await.expect("request task") {
            *counts.entry(k).or_default() += n;
        }
    }
    let share = |name: &str| counts.get(name).copied().unwrap_or(0) as f64 / REQUESTS as f64;
    let (v1, v2) = (share("infra-backend-v1"), share("infra-backend-v2"));
    assert!(
        (v1 - 0.7).abs() <= 0.02 && (v2 - 0.3).abs() <= 0.02 && share("infra-backend-v3") == 0.0,
        "70/30/0 over {REQUESTS} requests gave {counts:?}\n{}",
        conformance::log_tail(&gw, 20)
    );
    assert_eq!(
        counts.values().sum::<usize>(),
        counts.get("infra-backend-v1").copied().unwrap_or(0)
            + counts.get("infra-backend-v2").copied().unwrap_or(0),
        "every request must be answered by v1 or v2: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_cross_namespace() {
    let web = echo("web-backend", WEB);
    let ip = unique_ip();
    let toml = format!(
        r#"{}{}{}
[[HTTPRoute]]
name = "cross-namespace"
namespace = "{WEB}"
parentRefs = [{{ name = "backend-namespaces", namespace = "{INFRA}" }}]
rules = [{{ backendRefs = [{{ name = "web-backend", port = 8080 }}] }}]
"#,
        namespaces(),
        service("web-backend", WEB, &[&web]),
        gateway(
            "backend-namespaces",
            ip,
            r#"  { name = "http", protocol = "HTTP", port = 80, allowedRoutes = { namespaces = { from = "Selector", selector = { matchLabels = { gateway-conformance = "backend" } } } } },"#
        ),
    );
    let gw = start(&toml, ip, &[80]);
    let addr = SocketAddr::from((ip, 80));
    let mut c = Checker::new(addr);
    let host = ip.to_string();
    let r = c.send(addr, "GET", &host, "/", &[]).await;
    if r.status != 200
        || r.backend().as_deref() != Some("web-backend")
        || r.json()["namespace"] != WEB
    {
        c.fail(format!(
            "GET / Host: {host}: want 200 from web-backend in {WEB}, got {} (namespace {})",
            describe(&r),
            r.json()["namespace"]
        ));
    }
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_multiple_gateways() {
    let infra = Infra::start();
    let (same_ip, all_ip) = (unique_ip(), unique_ip());
    let toml = format!(
        r#"{}{}{}
[[HTTPRoute]]
name = "shared-route"
namespace = "{INFRA}"
parentRefs = [{{ name = "same-namespace" }}, {{ name = "all-namespaces" }}]
rules = [{{ matches = [{{ path = {{ type = "PathPrefix", value = "/shared" }} }}], backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
[[HTTPRoute]]
name = "same-namespace-route"
namespace = "{INFRA}"
parentRefs = [{{ name = "same-namespace" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v2", port = 8080 }}] }}]
[[HTTPRoute]]
name = "all-namespaces-route"
namespace = "{INFRA}"
parentRefs = [{{ name = "all-namespaces" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v3", port = 8080 }}] }}]
"#,
        infra.toml(),
        same_namespace(same_ip),
        gateway(
            "all-namespaces",
            all_ip,
            &http_listener("http", 80, None, "All")
        ),
    );
    let gw = start(&toml, same_ip, &[80]);
    let (same, all) = (
        SocketAddr::from((same_ip, 80)),
        SocketAddr::from((all_ip, 80)),
    );
    let mut c = Checker::new(same);
    let (same_host, all_host) = (same_ip.to_string(), all_ip.to_string());
    c.check_at(same, "GET", &same_host, "/shared", &[], V1)
        .await;
    c.check_at(all, "GET", &all_host, "/shared", &[], V1).await;
    c.check_at(same, "GET", &same_host, "/", &[], V2).await;
    c.check_at(all, "GET", &all_host, "/", &[], V3).await;
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_listener_port_matching() {
    let infra = Infra::start();
    let ip = unique_ip();
    let gw_name = "httproute-listener-port-matching";
    let listeners = [
        http_listener("foo-80", 80, Some("foo.com"), "Same"),
        http_listener("foo-8080", 8080, Some("foo.com"), "Same"),
        http_listener("bar-8080", 8080, Some("bar.com"), "Same"),
        http_listener("foo-8090", 8090, Some("foo.com"), "Same"),
        http_listener("bar-8090", 8090, Some("bar.com"), "Same"),
    ]
    .join("\n");
    let toml = format!(
        r#"{}{}
[[HTTPRoute]]
name = "listener-port-80"
namespace = "{INFRA}"
parentRefs = [{{ name = "{gw_name}", port = 80 }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
[[HTTPRoute]]
name = "listener-port-8080"
namespace = "{INFRA}"
parentRefs = [{{ name = "{gw_name}", port = 8080 }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v2", port = 8080 }}] }}]
[[HTTPRoute]]
name = "listener-port-8090"
namespace = "{INFRA}"
parentRefs = [{{ name = "{gw_name}", port = 8090, sectionName = "foo-8090" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v3", port = 8080 }}] }}]
"#,
        infra.toml(),
        gateway(gw_name, ip, &listeners),
    );
    let gw = start(&toml, ip, &[80, 8080, 8090]);
    let at = |port: u16| SocketAddr::from((ip, port));
    let mut c = Checker::new(at(80));
    let cases: &[(u16, &str, Want)] = &[
        (80, "foo.com", V1),
        (80, "foo.com:80", V1),
        (8080, "foo.com:8080", V2),
        (8080, "bar.com:8080", V2),
        (8090, "foo.com:8090", V3),
        (8090, "bar.com:8090", NOT_FOUND),
    ];
    for (port, host, want) in cases {
        c.check_at(at(*port), "GET", host, "/", &[], *want).await;
    }
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_no_backend_refs() {
    let (_b, gw, mut c, host) = same_namespace_lab(
        r#"
[[HTTPRoute]]
name = "no-backends"
namespace = "gateway-conformance-infra"
parentRefs = [{ name = "same-namespace" }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "Exact", value = "/omitted-no-forward" } }]
[[HTTPRoute.rules]]
matches = [{ path = { type = "Exact", value = "/empty-no-forward" } }]
backendRefs = []
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/" } }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
"#,
    );
    c.get(&host, "/forward", V1).await;
    c.get(&host, "/omitted-no-forward", SERVER_ERROR).await;
    c.get(&host, "/empty-no-forward", SERVER_ERROR).await;
    c.finish(&gw);
}
