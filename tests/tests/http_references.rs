//! The data-plane side of the invalid-reference and ReferenceGrant conformance cases
//! (`gateway-api-semantics.md` §1.4), and the gateway's answers when a rule cannot reach a
//! backend (all weights zero, no endpoints, an endpoint that refuses connections), against the
//! real binary. Each Gateway has an address of its own; the backends are `gatehouse echo`.

use gatehouse_tests::conformance::{
    APP, Checker, INFRA, Infra, SERVER_ERROR, UNAVAILABLE, WEB, Want, describe, echo, namespaces,
    reload, same_namespace, service, start,
};
use gatehouse_tests::{Echo, Gateway, unique_ip};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

/// A route in infra on `same-namespace` whose one rule (all paths) has `backend_refs`.
fn route(name: &str, backend_refs: &str) -> String {
    format!(
        r#"
[[HTTPRoute]]
name = "{name}"
namespace = "{INFRA}"
parentRefs = [{{ name = "same-namespace" }}]
rules = [{{ backendRefs = [{backend_refs}] }}]
"#
    )
}

/// The infra backends and `same-namespace` on a fresh address serving `extra`.
fn infra_lab(extra: &str) -> (Infra, Ipv4Addr, Gateway, Checker) {
    let infra = Infra::start();
    let ip = unique_ip();
    let toml = format!("{}{}{extra}", infra.toml(), same_namespace(ip));
    let gw = start(&toml, ip, &[80]);
    (infra, ip, gw, Checker::new(SocketAddr::from((ip, 80))))
}

/// `web-backend` in the web-backend namespace, and the fixture (namespaces, Services,
/// `same-namespace`) on `ip` with `extra`.
fn web_toml(web: &Echo, ip: Ipv4Addr, extra: &str) -> String {
    format!(
        "{}{}{}{extra}",
        namespaces(),
        service("web-backend", WEB, &[web]),
        same_namespace(ip)
    )
}

const WEB_BACKEND_REF: &str =
    r#"{ name = "web-backend", namespace = "gateway-conformance-web-backend", port = 8080 }"#;

/// A ReferenceGrant `name` in `namespace` from (group, kind, namespace) to (group, kind, name).
fn grant(name: &str, namespace: &str, from: (&str, &str, &str), to: (&str, &str, &str)) -> String {
    format!(
        r#"
[[ReferenceGrant]]
name = "{name}"
namespace = "{namespace}"
from = [{{ group = "{}", kind = "{}", namespace = "{}" }}]
to = [{{ group = "{}", kind = "{}", name = "{}" }}]
"#,
        from.0, from.1, from.2, to.0, to.1, to.2
    )
}

const ROUTE_GROUP: &str = "gateway.networking.k8s.io";

/// The grant that permits routes in infra to use Service web-backend.
fn web_grant() -> String {
    grant(
        "reference-grant",
        WEB,
        (ROUTE_GROUP, "HTTPRoute", INFRA),
        ("", "Service", "web-backend"),
    )
}

/// The seven grants of HTTPRouteInvalidReferenceGrant, each wrong in exactly one field.
fn wrong_grants() -> Vec<(&'static str, String)> {
    let from = (ROUTE_GROUP, "HTTPRoute", INFRA);
    let to = ("", "Service", "web-backend");
    vec![
        (
            "grant's namespace",
            grant("reference-grant-wrong-namespace", INFRA, from, to),
        ),
        (
            "from group",
            grant(
                "reference-grant-wrong-from-group",
                WEB,
                ("not-the-group.example.com", from.1, from.2),
                to,
            ),
        ),
        (
            "from kind",
            grant(
                "reference-grant-wrong-from-kind",
                WEB,
                (from.0, "Gateway", from.2),
                to,
            ),
        ),
        (
            "from namespace",
            grant(
                "reference-grant-wrong-from-namespace",
                WEB,
                (from.0, from.1, APP),
                to,
            ),
        ),
        (
            "to group",
            grant(
                "reference-grant-wrong-to-group",
                WEB,
                from,
                ("not-the-group.example.com", to.1, to.2),
            ),
        ),
        (
            "to kind",
            grant(
                "reference-grant-wrong-to-kind",
                WEB,
                from,
                (to.0, "Secret", to.2),
            ),
        ),
        (
            "to name",
            grant(
                "reference-grant-wrong-to-name",
                WEB,
                from,
                (to.0, to.1, "not-web-backend"),
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_invalid_non_existent_backend_ref() {
    let (_b, ip, gw, mut c) = infra_lab(&route(
        "invalid-nonexistent-backend-ref",
        r#"{ name = "nonexistent", port = 8080 }"#,
    ));
    c.get(&ip.to_string(), "/", SERVER_ERROR).await;
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_invalid_backend_ref_unknown_kind() {
    let (_b, ip, gw, mut c) = infra_lab(&route(
        "invalid-backend-ref-unknown-kind",
        r#"{ group = "unknownkind.example.com", kind = "NonExistent", name = "infra-backend-v1", port = 8080 }"#,
    ));
    c.get(&ip.to_string(), "/v2", SERVER_ERROR).await;
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_invalid_cross_namespace_backend_ref() {
    let web = echo("web-backend", WEB);
    let ip = unique_ip();
    let gw = start(
        &web_toml(
            &web,
            ip,
            &route("invalid-cross-namespace-backend-ref", WEB_BACKEND_REF),
        ),
        ip,
        &[80],
    );
    let mut c = Checker::new(SocketAddr::from((ip, 80)));
    c.get(&ip.to_string(), "/", SERVER_ERROR).await;
    if web.requests_seen("/") > 0 {
        c.fail("web-backend was reached without a ReferenceGrant".into());
    }
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_reference_grant() {
    let web = echo("web-backend", WEB);
    let ip = unique_ip();
    let host = ip.to_string();
    let route = route("reference-grant", WEB_BACKEND_REF);
    let gw = start(
        &web_toml(&web, ip, &format!("{}{route}", web_grant())),
        ip,
        &[80],
    );
    let mut c = Checker::new(SocketAddr::from((ip, 80)));
    c.get(&host, "/", Want::Backend("web-backend")).await;
    // The grant is deleted.
    reload(&gw, &web_toml(&web, ip, &route), 1);
    c.get(&host, "/", SERVER_ERROR).await;
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_invalid_reference_grant() {
    let web = echo("web-backend", WEB);
    let ip = unique_ip();
    let host = ip.to_string();
    let route = route("invalid-reference-grant", WEB_BACKEND_REF);
    let wrong = wrong_grants();
    // As in the conformance manifest: all seven at once.
    let all: String = wrong.iter().map(|(_, g)| g.as_str()).collect();
    let gw = start(&web_toml(&web, ip, &format!("{all}{route}")), ip, &[80]);
    let mut c = Checker::new(SocketAddr::from((ip, 80)));
    c.get(&host, "/", SERVER_ERROR).await;
    // Then each alone.
    let mut reloads = 0;
    for (field, g) in &wrong {
        reloads += 1;
        reload(&gw, &web_toml(&web, ip, &format!("{g}{route}")), reloads);
        let r = c
            .send(SocketAddr::from((ip, 80)), "GET", &host, "/", &[])
            .await;
        if r.status != 500 {
            c.fail(format!(
                "GET / Host: {host} with only the grant with the wrong {field}: want 500, got {}",
                describe(&r)
            ));
        }
    }
    // Control: the correct grant lets the same route through.
    reloads += 1;
    reload(
        &gw,
        &web_toml(&web, ip, &format!("{}{route}", web_grant())),
        reloads,
    );
    c.get(&host, "/", Want::Backend("web-backend")).await;
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_partially_invalid_via_invalid_reference_grant() {
    let (app1, app2) = (echo("app-backend-v1", APP), echo("app-backend-v2", APP));
    let ip = unique_ip();
    let toml = format!(
        r#"{}{}{}{}{}
[[HTTPRoute]]
name = "invalid-reference-grant"
namespace = "{INFRA}"
parentRefs = [{{ name = "same-namespace" }}]
[[HTTPRoute.rules]]
matches = [{{ path = {{ type = "PathPrefix", value = "/v2" }} }}]
backendRefs = [{{ name = "app-backend-v2", namespace = "{APP}", port = 8080 }}]
[[HTTPRoute.rules]]
backendRefs = [{{ name = "app-backend-v1", namespace = "{APP}", port = 8080 }}]
"#,
        namespaces(),
        service("app-backend-v1", APP, &[&app1]),
        service("app-backend-v2", APP, &[&app2]),
        same_namespace(ip),
        grant(
            "reference-grant",
            APP,
            (ROUTE_GROUP, "HTTPRoute", INFRA),
            ("", "Service", "app-backend-v1")
        ),
    );
    let gw = start(&toml, ip, &[80]);
    let mut c = Checker::new(SocketAddr::from((ip, 80)));
    let host = ip.to_string();
    c.get(&host, "/v2", SERVER_ERROR).await;
    c.get(&host, "/", Want::Backend("app-backend-v1")).await;
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_invalid_backend_ref_answers_500_for_its_share() {
    const REQUESTS: usize = 200;
    let (_b, ip, gw, mut c) = infra_lab(&route(
        "one-of-two-invalid",
        r#"{ name = "infra-backend-v1", port = 8080 }, { name = "nonexistent", port = 8080 }"#,
    ));
    let host = ip.to_string();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..REQUESTS {
        let r = c
            .send(SocketAddr::from((ip, 80)), "GET", &host, "/", &[])
            .await;
        let key = match (r.status.as_u16(), r.backend()) {
            (200, Some(b)) => format!("200 {b}"),
            (500, _) => "500".to_string(),
            _ => describe(&r),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    let ok = outcomes.get("200 infra-backend-v1").copied().unwrap_or(0);
    let errors = outcomes.get("500").copied().unwrap_or(0);
    if ok == 0 || errors == 0 || ok + errors != REQUESTS {
        c.fail(format!(
            "{REQUESTS} × GET / Host: {host}: want both 200 from infra-backend-v1 and 500, nothing else; got {outcomes:?}"
        ));
    }
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_all_backends_weight_zero() {
    let (_b, ip, gw, mut c) = infra_lab(&route(
        "all-backends-weight-zero",
        r#"{ name = "infra-backend-v1", port = 8080, weight = 0 }, { name = "infra-backend-v2", port = 8080, weight = 0 }, { name = "infra-backend-v3", port = 8080, weight = 0 }"#,
    ));
    c.get(&ip.to_string(), "/", UNAVAILABLE).await;
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_backend_service_without_endpoints() {
    let (_b, ip, gw, mut c) = infra_lab(&format!(
        r#"
[[Service]]
name = "no-endpoints"
namespace = "{INFRA}"
ports = [{{ port = 8080, targetPort = 3000 }}]
endpoints = []
{}"#,
        route(
            "service-without-endpoints",
            r#"{ name = "no-endpoints", port = 8080 }"#
        )
    ));
    c.get(&ip.to_string(), "/", UNAVAILABLE).await;
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_backend_endpoint_refusing_connections() {
    // Nothing listens on this address.
    let nobody = unique_ip();
    let (_b, ip, gw, mut c) = infra_lab(&format!(
        r#"
[[Service]]
name = "refusing"
namespace = "{INFRA}"
ports = [{{ port = 8080, targetPort = 3000 }}]
endpoints = ["{nobody}"]
{}"#,
        route("refusing-endpoint", r#"{ name = "refusing", port = 8080 }"#)
    ));
    let host = ip.to_string();
    let r = c
        .send(SocketAddr::from((ip, 80)), "GET", &host, "/", &[])
        .await;
    // 503 or 502; the catalog leaves the choice, so only a backend answer or 404 is wrong.
    if matches!(r.status.as_u16(), 200 | 404) {
        c.fail(format!(
            "GET / Host: {host} (only endpoint {nobody}:3000 refuses): want 503 or 502, got {}",
            describe(&r)
        ));
    }
    c.finish(&gw);
}
