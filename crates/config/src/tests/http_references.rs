//! HTTPRoute references: missing and unknown backends, ReferenceGrants, cross-namespace
//! parents, unsupported protocols and filters, timeouts: the conformance cases of §1.4.

use super::*;
use gatehouse_model::status::{condition as c, reason as r};

fn with_fixture(routes: &str) -> Loaded {
    load_ok(&format!("{SAME_NAMESPACE_GATEWAY}{BACKENDS}{routes}"))
}

// §1.4: invalid references, attachment, ReferenceGrant.

fn single_backend_route(name: &str, backend: &str) -> String {
    format!(
        r#"
[[HTTPRoute]]
name = "{name}"
namespace = "infra"
parentRefs = [{{ name = "same-namespace" }}]
rules = [{{ backendRefs = [{backend}] }}]
"#
    )
}

#[test]
fn http_route_invalid_non_existent_backend_ref() {
    let l = with_fixture(&single_backend_route(
        "r",
        r#"{ name = "nonexistent", port = 8080 }"#,
    ));
    let p = l.route_conditions(Kind::HTTPRoute, "infra", "r");
    assert_cond(&p[0], c::ACCEPTED, true, r::ACCEPTED);
    assert_cond(&p[0], c::RESOLVED_REFS, false, r::BACKEND_NOT_FOUND);
    assert_eq!(route(&l, "gw", "/").as_deref(), Some("500 (NotFound)"));
}

#[test]
fn backend_ref_to_a_port_the_service_lacks_is_not_found() {
    let l = with_fixture(&single_backend_route(
        "r",
        r#"{ name = "infra-backend-v1", port = 9999 }"#,
    ));
    let p = l.route_conditions(Kind::HTTPRoute, "infra", "r");
    assert_cond(&p[0], c::RESOLVED_REFS, false, r::BACKEND_NOT_FOUND);
    assert!(
        p[0][1].message.contains("no port 9999"),
        "{}",
        p[0][1].message
    );
}

#[test]
fn http_route_invalid_backend_ref_unknown_kind() {
    let l = with_fixture(&single_backend_route(
        "r",
        r#"{ group = "unknownkind.example.com", kind = "NonExistent", name = "infra-backend-v1", port = 8080 }"#,
    ));
    let p = l.route_conditions(Kind::HTTPRoute, "infra", "r");
    assert_cond(&p[0], c::RESOLVED_REFS, false, r::INVALID_KIND);
    assert_eq!(route(&l, "gw", "/v2").as_deref(), Some("500 (InvalidKind)"));
}

const WEB_BACKEND: &str = r#"
[[Service]]
name = "web-backend"
namespace = "gateway-conformance-web-backend"
ports = [{ port = 8080 }]
endpoints = ["127.0.0.21"]
"#;

const WEB_BACKEND_REF: &str =
    r#"{ name = "web-backend", namespace = "gateway-conformance-web-backend", port = 8080 }"#;

#[test]
fn http_route_invalid_cross_namespace_backend_ref() {
    let l = with_fixture(&format!(
        "{WEB_BACKEND}{}",
        single_backend_route("r", WEB_BACKEND_REF)
    ));
    let p = l.route_conditions(Kind::HTTPRoute, "infra", "r");
    assert_cond(&p[0], c::RESOLVED_REFS, false, r::REF_NOT_PERMITTED);
    assert_eq!(route(&l, "gw", "/").as_deref(), Some("500 (NotPermitted)"));
}

fn grant(ns: &str, from: (&str, &str, &str), to: (&str, &str, Option<&str>)) -> String {
    let name =
        to.2.map(|n| format!(", name = \"{n}\""))
            .unwrap_or_default();
    format!(
        r#"
[[ReferenceGrant]]
name = "grant"
namespace = "{ns}"
from = [{{ group = "{}", kind = "{}", namespace = "{}" }}]
to = [{{ group = "{}", kind = "{}"{name} }}]
"#,
        from.0, from.1, from.2, to.0, to.1
    )
}

#[test]
fn http_route_reference_grant_permits_and_its_removal_revokes() {
    let g = grant(
        "gateway-conformance-web-backend",
        ("gateway.networking.k8s.io", "HTTPRoute", "infra"),
        ("", "Service", Some("web-backend")),
    );
    let with = with_fixture(&format!(
        "{WEB_BACKEND}{g}{}",
        single_backend_route("r", WEB_BACKEND_REF)
    ));
    assert_cond(
        &with.route_conditions(Kind::HTTPRoute, "infra", "r")[0],
        c::RESOLVED_REFS,
        true,
        r::RESOLVED_REFS,
    );
    assert_eq!(route(&with, "gw", "/").as_deref(), Some("web-backend"));
    let without = with_fixture(&format!(
        "{WEB_BACKEND}{}",
        single_backend_route("r", WEB_BACKEND_REF)
    ));
    assert_eq!(
        route(&without, "gw", "/").as_deref(),
        Some("500 (NotPermitted)")
    );
}

#[test]
fn http_route_invalid_reference_grant_each_single_field_wrong() {
    let g = "gateway.networking.k8s.io";
    let web = "gateway-conformance-web-backend";
    let wrong = [
        grant(
            "infra",
            (g, "HTTPRoute", "infra"),
            ("", "Service", Some("web-backend")),
        ),
        grant(
            web,
            ("wrong.group", "HTTPRoute", "infra"),
            ("", "Service", Some("web-backend")),
        ),
        grant(
            web,
            (g, "Gateway", "infra"),
            ("", "Service", Some("web-backend")),
        ),
        grant(
            web,
            (g, "HTTPRoute", "other"),
            ("", "Service", Some("web-backend")),
        ),
        grant(
            web,
            (g, "HTTPRoute", "infra"),
            ("wrong.group", "Service", Some("web-backend")),
        ),
        grant(
            web,
            (g, "HTTPRoute", "infra"),
            ("", "Secret", Some("web-backend")),
        ),
        grant(
            web,
            (g, "HTTPRoute", "infra"),
            ("", "Service", Some("not-web-backend")),
        ),
    ];
    for bad in wrong {
        let l = with_fixture(&format!(
            "{WEB_BACKEND}{bad}{}",
            single_backend_route("r", WEB_BACKEND_REF)
        ));
        assert_cond(
            &l.route_conditions(Kind::HTTPRoute, "infra", "r")[0],
            c::RESOLVED_REFS,
            false,
            r::REF_NOT_PERMITTED,
        );
        assert_eq!(
            route(&l, "gw", "/").as_deref(),
            Some("500 (NotPermitted)"),
            "{bad}"
        );
    }
}

#[test]
fn http_route_partially_invalid_via_invalid_reference_grant() {
    let l = with_fixture(&format!(
        r#"
[[Service]]
name = "app-backend-v1"
namespace = "gateway-conformance-app-backend"
ports = [{{ port = 8080 }}]
endpoints = ["127.0.0.31"]
[[Service]]
name = "app-backend-v2"
namespace = "gateway-conformance-app-backend"
ports = [{{ port = 8080 }}]
endpoints = ["127.0.0.32"]
{}
[[HTTPRoute]]
name = "invalid-reference-grant"
namespace = "infra"
parentRefs = [{{ name = "same-namespace" }}]
[[HTTPRoute.rules]]
matches = [{{ path = {{ value = "/v2" }} }}]
backendRefs = [{{ name = "app-backend-v2", namespace = "gateway-conformance-app-backend", port = 8080 }}]
[[HTTPRoute.rules]]
backendRefs = [{{ name = "app-backend-v1", namespace = "gateway-conformance-app-backend", port = 8080 }}]
"#,
        grant(
            "gateway-conformance-app-backend",
            ("gateway.networking.k8s.io", "HTTPRoute", "infra"),
            ("", "Service", Some("app-backend-v1"))
        )
    ));
    assert_cond(
        &l.route_conditions(Kind::HTTPRoute, "infra", "invalid-reference-grant")[0],
        c::RESOLVED_REFS,
        false,
        r::REF_NOT_PERMITTED,
    );
    assert_eq!(
        route(&l, "gw", "/v2").as_deref(),
        Some("500 (NotPermitted)")
    );
    assert_eq!(route(&l, "gw", "/").as_deref(), Some("app-backend-v1"));
}

#[test]
fn invalid_backend_gets_500_for_its_share_only() {
    let l = with_fixture(
        r#"
[[HTTPRoute]]
name = "half"
namespace = "infra"
parentRefs = [{ name = "same-namespace" }]
rules = [{ backendRefs = [{ name = "infra-backend-v1", port = 8080 }, { name = "missing", port = 8080 }] }]
"#,
    );
    let outcomes: Vec<String> = (0..4)
        .map(|r| route_with(&l, 80, "gw", &Req::get("/"), r).unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "infra-backend-v1",
            "500 (NotFound)",
            "infra-backend-v1",
            "500 (NotFound)"
        ]
    );
}

#[test]
fn http_route_invalid_cross_namespace_parent_ref() {
    let l = with_fixture(&format!(
        r#"{WEB_BACKEND}
[[HTTPRoute]]
name = "invalid-cross-namespace-parent-ref"
namespace = "gateway-conformance-web-backend"
parentRefs = [{{ name = "same-namespace", namespace = "infra" }}]
rules = [{{ backendRefs = [{{ name = "web-backend", port = 8080 }}] }}]
"#
    ));
    let p = l.route_conditions(
        Kind::HTTPRoute,
        "gateway-conformance-web-backend",
        "invalid-cross-namespace-parent-ref",
    );
    assert_cond(&p[0], c::ACCEPTED, false, r::NOT_ALLOWED_BY_LISTENERS);
    assert_cond(&p[0], c::RESOLVED_REFS, true, r::RESOLVED_REFS);
    assert_eq!(
        listener(l.gw("infra", "same-namespace"), "http").attached_routes,
        0
    );
}

#[test]
fn http_route_disallowed_kind() {
    let l = load_ok(&format!(
        r#"{BACKENDS}
[[Gateway]]
name = "tlsroutes-only"
namespace = "infra"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "tls"
protocol = "TLS"
port = 443
tls = {{ mode = "Passthrough" }}
allowedRoutes = {{ namespaces = {{ from = "Same" }}, kinds = [{{ kind = "TLSRoute" }}] }}
[[HTTPRoute]]
name = "disallowed-kind"
namespace = "infra"
parentRefs = [{{ name = "tlsroutes-only" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
"#
    ));
    assert_cond(
        &l.route_conditions(Kind::HTTPRoute, "infra", "disallowed-kind")[0],
        c::ACCEPTED,
        false,
        r::NOT_ALLOWED_BY_LISTENERS,
    );
    assert_eq!(
        listener(l.gw("infra", "tlsroutes-only"), "tls").attached_routes,
        0
    );
}

#[test]
fn http_route_invalid_parent_ref_not_matching_section_name_or_port() {
    for parent in [
        r#"{ name = "same-namespace", sectionName = "http1" }"#,
        r#"{ name = "same-namespace", port = 81 }"#,
        r#"{ name = "same-namespace", sectionName = "http", port = 81 }"#,
        r#"{ name = "no-such-gateway" }"#,
    ] {
        let l = with_fixture(&format!(
            r#"
[[HTTPRoute]]
name = "r"
namespace = "infra"
parentRefs = [{parent}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
"#
        ));
        assert_cond(
            &l.route_conditions(Kind::HTTPRoute, "infra", "r")[0],
            c::ACCEPTED,
            false,
            r::NO_MATCHING_PARENT,
        );
    }
}

#[test]
fn extension_ref_filter_is_not_skipped_its_rule_answers_500() {
    let l = with_fixture(
        r#"
[[HTTPRoute]]
name = "ext"
namespace = "infra"
parentRefs = [{ name = "same-namespace" }]
[[HTTPRoute.rules]]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
filters = [{ type = "ExtensionRef", extensionRef = { group = "example.com", kind = "Plugin", name = "p" } }]
"#,
    );
    assert_cond(
        &l.route_conditions(Kind::HTTPRoute, "infra", "ext")[0],
        c::RESOLVED_REFS,
        false,
        r::INVALID_KIND,
    );
    assert_eq!(route(&l, "gw", "/").as_deref(), Some("500 (InvalidKind)"));
}

#[test]
fn unresolved_mirror_backend_is_reported_and_left_out() {
    let l = with_fixture(
        r#"
[[HTTPRoute]]
name = "mirror"
namespace = "infra"
parentRefs = [{ name = "same-namespace" }]
[[HTTPRoute.rules]]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules.filters]]
type = "RequestMirror"
requestMirror = { backendRef = { name = "missing", port = 8080 } }
[[HTTPRoute.rules.filters]]
type = "RequestMirror"
requestMirror = { backendRef = { name = "infra-backend-v2", port = 8080 }, percent = 20 }
"#,
    );
    let p = l.route_conditions(Kind::HTTPRoute, "infra", "mirror");
    assert_cond(&p[0], c::RESOLVED_REFS, false, r::BACKEND_NOT_FOUND);
    let lst = l
        .snapshot
        .select_listener(SocketAddr::from(([127, 0, 0, 1], 80)), Some("gw"))
        .unwrap();
    let routed = lst
        .http_routes()
        .unwrap()
        .route(Some("gw"), &Req::get("/"))
        .unwrap();
    let mirrors = &routed.rule.filters.mirrors;
    assert_eq!(mirrors.len(), 1);
    assert_eq!(
        (
            mirrors[0].name.as_str(),
            mirrors[0].numerator,
            mirrors[0].denominator
        ),
        ("infra/infra-backend-v2:8080", 20, 100)
    );
}

#[test]
fn unsupported_app_protocol_is_unsupported_protocol() {
    let l = load_ok(&format!(
        r#"{SAME_NAMESPACE_GATEWAY}
[[Service]]
name = "tls-backend"
namespace = "infra"
ports = [{{ port = 443, appProtocol = "kubernetes.io/wss" }}]
endpoints = ["127.0.0.9"]
{}"#,
        single_backend_route("r", r#"{ name = "tls-backend", port = 443 }"#)
    ));
    assert_cond(
        &l.route_conditions(Kind::HTTPRoute, "infra", "r")[0],
        c::RESOLVED_REFS,
        false,
        r::UNSUPPORTED_PROTOCOL,
    );
}

#[test]
fn route_attached_twice_to_one_listener_counts_once() {
    let l = with_fixture(
        r#"
[[HTTPRoute]]
name = "twice"
namespace = "infra"
parentRefs = [{ name = "same-namespace", sectionName = "http" }, { name = "same-namespace", port = 80 }]
rules = [{ backendRefs = [{ name = "infra-backend-v1", port = 8080 }] }]
"#,
    );
    assert_eq!(
        listener(l.gw("infra", "same-namespace"), "http").attached_routes,
        1
    );
    assert_eq!(
        l.route_conditions(Kind::HTTPRoute, "infra", "twice").len(),
        2
    );
}

#[test]
fn timeouts_zero_disables_and_values_compile() {
    let l = with_fixture(
        r#"
[[HTTPRoute]]
name = "t"
namespace = "infra"
parentRefs = [{ name = "same-namespace" }]
[[HTTPRoute.rules]]
matches = [{ path = { value = "/request-timeout" } }]
timeouts = { request = "500ms", backendRequest = "250ms" }
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
[[HTTPRoute.rules]]
matches = [{ path = { value = "/disable-request-timeout" } }]
timeouts = { request = "0s" }
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
"#,
    );
    let lst = l
        .snapshot
        .select_listener(SocketAddr::from(([127, 0, 0, 1], 80)), None)
        .unwrap();
    let t = |p: &str| {
        lst.http_routes()
            .unwrap()
            .route(None, &Req::get(p))
            .unwrap()
            .rule
            .timeouts
    };
    assert_eq!(
        t("/request-timeout").request,
        Some(std::time::Duration::from_millis(500))
    );
    assert_eq!(
        t("/request-timeout").backend_request,
        Some(std::time::Duration::from_millis(250))
    );
    assert_eq!(t("/disable-request-timeout").request, None);
}

#[test]
fn every_condition_carries_the_observed_generation() {
    let l = with_fixture(&single_backend_route(
        "r",
        r#"{ name = "infra-backend-v1", port = 8080 }"#,
    ));
    assert_eq!(l.status.generation, 7);
    let gw = l.gw("infra", "same-namespace");
    let all = gw
        .conditions
        .iter()
        .chain(gw.listeners.iter().flat_map(|x| x.conditions.iter()))
        .chain(
            l.status
                .routes
                .iter()
                .flat_map(|r| r.parents.iter().flat_map(|p| p.conditions.iter())),
        )
        .chain(
            l.status
                .gateway_classes
                .iter()
                .flat_map(|g| g.conditions.iter()),
        );
    for cnd in all {
        assert_eq!(cnd.observed_generation, 7, "{cnd:?}");
    }
}

#[test]
fn backend_request_timeout_of_zero_is_allowed_under_a_request_timeout() {
    let l = with_fixture(
        r#"
[[HTTPRoute]]
name = "t"
namespace = "infra"
parentRefs = [{ name = "same-namespace" }]
rules = [{ timeouts = { request = "10s", backendRequest = "0s" }, backendRefs = [{ name = "infra-backend-v1", port = 8080 }] }]
"#,
    );
    let lst = l
        .snapshot
        .select_listener(SocketAddr::from(([127, 0, 0, 1], 80)), None)
        .unwrap();
    let t = lst
        .http_routes()
        .unwrap()
        .route(None, &Req::get("/"))
        .unwrap()
        .rule
        .timeouts;
    assert_eq!(t.request, Some(std::time::Duration::from_secs(10)));
    assert_eq!(t.backend_request, None);
}
