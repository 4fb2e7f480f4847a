//! TCPRoute (Gateway API v1alpha2): schema, attachment to TCP listeners, one route per
//! listener, dropped rules, backend references, weights, and TCP listeners' port conflicts.

use super::*;
use gatehouse_model::backend::{BackendTarget, Pick, Unresolved};
use gatehouse_model::listener::ListenerKind;
use gatehouse_model::status::{condition as c, reason as r};

const TCP_BACKENDS: &str = r#"
[[Service]]
name = "tcp-v1"
namespace = "infra"
ports = [{ port = 3000 }]
endpoints = ["127.0.0.21"]
[[Service]]
name = "tcp-v2"
namespace = "infra"
ports = [{ port = 3000 }]
endpoints = ["127.0.0.22"]
[[Service]]
name = "elsewhere"
namespace = "apps"
ports = [{ port = 3000 }]
endpoints = ["127.0.0.23"]
"#;

/// A Gateway `g` in `infra` with TCP listeners `foo` on 8080 and `bar` on 8090.
const TCP_GATEWAY: &str = r#"
[[Gateway]]
name = "g"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [
  { name = "foo", protocol = "TCP", port = 8080 },
  { name = "bar", protocol = "TCP", port = 8090 },
]
"#;

fn tcp_route(name: &str, parent: &str, backends: &str) -> String {
    format!(
        r#"
[[TCPRoute]]
name = "{name}"
namespace = "infra"
parentRefs = [{parent}]
rules = [{{ backendRefs = [{backends}] }}]
"#
    )
}

/// The rule a TCP listener serves.
fn tcp_rule<'a>(l: &'a Loaded, gateway: &str, listener: &str) -> Option<&'a TlsRuleRef> {
    let lst = l
        .snapshot
        .listeners
        .iter()
        .find(|x| x.gateway.name == gateway && x.name == listener)?;
    match &lst.kind {
        ListenerKind::Tcp { rule } => rule.as_deref(),
        _ => None,
    }
}

type TlsRuleRef = gatehouse_model::tls::TlsRule;

#[test]
fn tcp_listener_supports_tcp_route_and_routes_by_section_name() {
    let l = load_ok(&format!(
        "{TCP_BACKENDS}{TCP_GATEWAY}{}{}",
        tcp_route(
            "app-1",
            r#"{ name = "g", sectionName = "foo" }"#,
            r#"{ name = "tcp-v1", port = 3000 }"#
        ),
        tcp_route(
            "app-2",
            r#"{ name = "g", sectionName = "bar" }"#,
            r#"{ name = "tcp-v2", port = 3000 }"#
        ),
    ));
    for (ls, route, backend) in [("foo", "app-1", "tcp-v1"), ("bar", "app-2", "tcp-v2")] {
        let st = listener(l.gw("infra", "g"), ls);
        assert_cond(&st.conditions, c::ACCEPTED, true, r::ACCEPTED);
        assert_cond(&st.conditions, c::PROGRAMMED, true, r::PROGRAMMED);
        assert_eq!(st.attached_routes, 1);
        assert_eq!(
            st.supported_kinds
                .iter()
                .map(|k| k.kind.as_str())
                .collect::<Vec<_>>(),
            ["TCPRoute"]
        );
        let conds = &l.route_conditions(Kind::TCPRoute, "infra", route)[0];
        assert_cond(conds, c::ACCEPTED, true, r::ACCEPTED);
        assert_cond(conds, c::RESOLVED_REFS, true, r::RESOLVED_REFS);
        let rule = tcp_rule(&l, "g", ls).expect("rule");
        assert_eq!(backend_names(rule, &l), [backend]);
    }
    let ports: Vec<(u16, bool, bool)> = l
        .snapshot
        .ports
        .iter()
        .map(|p| (p.port, p.tls, p.tcp))
        .collect();
    assert_eq!(ports, [(8080, false, true), (8090, false, true)]);
}

#[test]
fn tcp_route_weights_split_connections_by_weight() {
    let l = load_ok(&format!(
        "{TCP_BACKENDS}{TCP_GATEWAY}{}",
        tcp_route(
            "weighted",
            r#"{ name = "g", port = 8080 }"#,
            r#"{ name = "tcp-v1", port = 3000, weight = 3 }, { name = "tcp-v2", port = 3000, weight = 1 }"#
        ),
    ));
    let rule = tcp_rule(&l, "g", "foo").expect("rule");
    let mut counts = [0u32; 2];
    for random in 0..400 {
        if let Pick::Backend(i, _) = rule.backends.pick(random) {
            counts[i] += 1;
        }
    }
    assert_eq!(counts, [300, 100]);
    // `port` selected only the 8080 listener.
    assert!(tcp_rule(&l, "g", "bar").is_none());
}

#[test]
fn second_tcp_route_on_a_listener_is_not_allowed_by_listeners() {
    let l = load_ok(&format!(
        "{TCP_BACKENDS}{TCP_GATEWAY}{}{}",
        tcp_route(
            "older",
            r#"{ name = "g", sectionName = "foo" }"#,
            r#"{ name = "tcp-v1", port = 3000 }"#
        ),
        tcp_route(
            "newer",
            r#"{ name = "g", sectionName = "foo" }"#,
            r#"{ name = "tcp-v2", port = 3000 }"#
        ),
    ));
    assert_cond(
        &l.route_conditions(Kind::TCPRoute, "infra", "older")[0],
        c::ACCEPTED,
        true,
        r::ACCEPTED,
    );
    assert_cond(
        &l.route_conditions(Kind::TCPRoute, "infra", "newer")[0],
        c::ACCEPTED,
        false,
        r::NOT_ALLOWED_BY_LISTENERS,
    );
    assert_eq!(listener(l.gw("infra", "g"), "foo").attached_routes, 1);
    assert_eq!(
        backend_names(tcp_rule(&l, "g", "foo").unwrap(), &l),
        ["tcp-v1"]
    );
}

#[test]
fn tcp_route_without_section_name_takes_the_free_listeners() {
    let l = load_ok(&format!(
        "{TCP_BACKENDS}{TCP_GATEWAY}{}{}",
        tcp_route(
            "foo-only",
            r#"{ name = "g", sectionName = "foo" }"#,
            r#"{ name = "tcp-v1", port = 3000 }"#
        ),
        tcp_route(
            "any",
            r#"{ name = "g" }"#,
            r#"{ name = "tcp-v2", port = 3000 }"#
        ),
    ));
    assert_cond(
        &l.route_conditions(Kind::TCPRoute, "infra", "any")[0],
        c::ACCEPTED,
        true,
        r::ACCEPTED,
    );
    assert_eq!(
        backend_names(tcp_rule(&l, "g", "foo").unwrap(), &l),
        ["tcp-v1"]
    );
    assert_eq!(
        backend_names(tcp_rule(&l, "g", "bar").unwrap(), &l),
        ["tcp-v2"]
    );
}

#[test]
fn tcp_route_with_more_rules_serves_the_first_and_is_partially_invalid() {
    let l = load_ok(&format!(
        r#"{TCP_BACKENDS}{TCP_GATEWAY}
[[TCPRoute]]
name = "two-rules"
namespace = "infra"
parentRefs = [{{ name = "g", sectionName = "foo" }}]
rules = [
  {{ name = "first", backendRefs = [{{ name = "tcp-v1", port = 3000 }}] }},
  {{ name = "second", backendRefs = [{{ name = "tcp-v2", port = 3000 }}] }},
]
"#
    ));
    let conds = &l.route_conditions(Kind::TCPRoute, "infra", "two-rules")[0];
    assert_cond(conds, c::ACCEPTED, true, r::ACCEPTED);
    assert_cond(conds, c::PARTIALLY_INVALID, true, r::UNSUPPORTED_VALUE);
    let msg = &find(conds, c::PARTIALLY_INVALID).unwrap().message;
    assert!(msg.starts_with("Dropped Rule"), "{msg}");
    assert_eq!(
        backend_names(tcp_rule(&l, "g", "foo").unwrap(), &l),
        ["tcp-v1"]
    );
}

#[test]
fn tcp_route_backend_reasons_are_backend_not_found_invalid_kind_ref_not_permitted() {
    let cases = [
        (
            r#"{ name = "nonexistent", port = 3000 }"#,
            r::BACKEND_NOT_FOUND,
            Unresolved::NotFound,
        ),
        (
            r#"{ group = "example.com", kind = "Thing", name = "x", port = 3000 }"#,
            r::INVALID_KIND,
            Unresolved::InvalidKind,
        ),
        (
            r#"{ name = "elsewhere", namespace = "apps", port = 3000 }"#,
            r::REF_NOT_PERMITTED,
            Unresolved::NotPermitted,
        ),
    ];
    for (backend, reason, unresolved) in cases {
        let l = load_ok(&format!(
            "{TCP_BACKENDS}{TCP_GATEWAY}{}",
            tcp_route("bad", r#"{ name = "g", sectionName = "foo" }"#, backend),
        ));
        let conds = &l.route_conditions(Kind::TCPRoute, "infra", "bad")[0];
        assert_cond(conds, c::ACCEPTED, true, r::ACCEPTED);
        assert_cond(conds, c::RESOLVED_REFS, false, reason);
        let rule = tcp_rule(&l, "g", "foo").unwrap();
        assert_eq!(
            rule.backends.entries()[0].target,
            BackendTarget::Unresolved(unresolved)
        );
    }
}

#[test]
fn reference_grant_permits_a_cross_namespace_tcp_backend() {
    let l = load_ok(&format!(
        r#"{TCP_BACKENDS}{TCP_GATEWAY}{}
[[ReferenceGrant]]
name = "tcp-to-apps"
namespace = "apps"
from = [{{ group = "gateway.networking.k8s.io", kind = "TCPRoute", namespace = "infra" }}]
to = [{{ group = "", kind = "Service" }}]
"#,
        tcp_route(
            "cross",
            r#"{ name = "g", sectionName = "foo" }"#,
            r#"{ name = "elsewhere", namespace = "apps", port = 3000 }"#
        ),
    ));
    let conds = &l.route_conditions(Kind::TCPRoute, "infra", "cross")[0];
    assert_cond(conds, c::RESOLVED_REFS, true, r::RESOLVED_REFS);
    assert_eq!(
        backend_names(tcp_rule(&l, "g", "foo").unwrap(), &l),
        ["elsewhere"]
    );
}

#[test]
fn tcp_route_attachment_reasons() {
    let l = load_ok(&format!(
        r#"{TCP_BACKENDS}{TCP_GATEWAY}{SAME_NAMESPACE_GATEWAY}{}{}{}
[[TCPRoute]]
name = "other-namespace"
namespace = "apps"
parentRefs = [{{ name = "g", namespace = "infra" }}]
rules = [{{ backendRefs = [{{ name = "elsewhere", port = 3000 }}] }}]
"#,
        tcp_route(
            "to-http",
            r#"{ name = "same-namespace" }"#,
            r#"{ name = "tcp-v1", port = 3000 }"#
        ),
        tcp_route(
            "no-such-listener",
            r#"{ name = "g", sectionName = "nope" }"#,
            r#"{ name = "tcp-v1", port = 3000 }"#
        ),
        tcp_route(
            "no-such-gateway",
            r#"{ name = "missing" }"#,
            r#"{ name = "tcp-v1", port = 3000 }"#
        ),
    ));
    let accepted = |ns: &str, name: &str| {
        let conds = &l.route_conditions(Kind::TCPRoute, ns, name)[0];
        find(conds, c::ACCEPTED).unwrap().reason.clone()
    };
    assert_eq!(accepted("infra", "to-http"), r::NOT_ALLOWED_BY_LISTENERS);
    assert_eq!(accepted("infra", "no-such-listener"), r::NO_MATCHING_PARENT);
    assert_eq!(accepted("infra", "no-such-gateway"), r::NO_MATCHING_PARENT);
    assert_eq!(
        accepted("apps", "other-namespace"),
        r::NOT_ALLOWED_BY_LISTENERS
    );
    // An HTTPRoute may not attach to a TCP listener either.
    let l = load_ok(&format!(
        r#"{TCP_BACKENDS}{TCP_GATEWAY}
[[HTTPRoute]]
name = "web"
namespace = "infra"
parentRefs = [{{ name = "g" }}]
"#
    ));
    assert_cond(
        &l.route_conditions(Kind::HTTPRoute, "infra", "web")[0],
        c::ACCEPTED,
        false,
        r::NOT_ALLOWED_BY_LISTENERS,
    );
}

#[test]
fn tcp_listener_with_other_route_kinds_has_invalid_route_kinds() {
    let l = load_ok(
        r#"
[[Gateway]]
name = "g"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{ name = "tcp", protocol = "TCP", port = 9000, allowedRoutes = { kinds = [{ kind = "TCPRoute" }, { kind = "HTTPRoute" }] } }]
"#,
    );
    let st = listener(l.gw("infra", "g"), "tcp");
    assert_cond(
        &st.conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_ROUTE_KINDS,
    );
    assert_eq!(
        st.supported_kinds
            .iter()
            .map(|k| k.kind.as_str())
            .collect::<Vec<_>>(),
        ["TCPRoute"]
    );
}

#[test]
fn tcp_listener_conflicts_with_http_tls_and_tcp_on_its_port() {
    for other in [
        r#"{ name = "other", protocol = "HTTP", port = 9000, hostname = "a.example.com" }"#,
        r#"{ name = "other", protocol = "TLS", port = 9000, hostname = "a.example.com", tls = { mode = "Passthrough" } }"#,
    ] {
        let l = load_ok(&format!(
            r#"
[[Gateway]]
name = "g"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{{ name = "tcp", protocol = "TCP", port = 9000 }}, {other}]
"#
        ));
        for ls in ["tcp", "other"] {
            let st = listener(l.gw("infra", "g"), ls);
            assert_cond(&st.conditions, c::CONFLICTED, true, r::PROTOCOL_CONFLICT);
            assert_cond(&st.conditions, c::PROGRAMMED, false, r::INVALID);
        }
        assert!(l.snapshot.listeners.is_empty());
    }
    // Two TCP listeners of two Gateways on one port and address.
    let l = load_ok(
        r#"
[[Gateway]]
name = "a"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{ name = "tcp", protocol = "TCP", port = 9000 }]
[[Gateway]]
name = "b"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{ name = "tcp", protocol = "TCP", port = 9000 }]
"#,
    );
    for gw in ["a", "b"] {
        let st = listener(l.gw("infra", gw), "tcp");
        assert_cond(&st.conditions, c::CONFLICTED, true, r::HOSTNAME_CONFLICT);
    }
}

#[test]
fn tcp_route_schema_errors_say_where() {
    let err = parse_error(
        r#"
[[TCPRoute]]
name = "r"
parentRefs = [{ name = "g" }]
rules = []
"#,
    );
    assert!(
        err.contains("gatehouse.toml:5:9") && err.contains("a TCPRoute needs at least one rule"),
        "{err}"
    );
    let err = parse_error(
        r#"
[[TCPRoute]]
name = "r"
parentRefs = [{ name = "g" }]
hostnames = ["a.example.com"]
rules = [{ backendRefs = [{ name = "s", port = 1, weight = 2000000 }] }]
"#,
    );
    assert!(err.contains("unknown key `hostnames`"), "{err}");
    assert!(
        err.contains(r#"TCPRoute "r".rules[0].backendRefs[0].weight"#)
            && err.contains("must be between 0 and 1000000"),
        "{err}"
    );
    let err = parse_error(
        r#"
[[TCPRoute]]
name = "r"
rules = [{ name = "x", backendRefs = [{ name = "s", port = 1 }] }, { name = "x", backendRefs = [{ name = "s", port = 1 }] }, { backendRefs = [] }]
"#,
    );
    assert!(err.contains("rule name \"x\" is used twice"), "{err}");
    assert!(
        err.contains("a TCPRoute rule needs at least one backendRef"),
        "{err}"
    );
    let err = parse_error(
        r#"
[[Gateway]]
name = "g"
gatewayClassName = "gatehouse"
listeners = [{ name = "tcp", protocol = "TCP", port = 9000, hostname = "a.example.com", tls = { mode = "Passthrough" } }]
"#,
    );
    assert!(
        err.contains("`hostname` is not allowed on a TCP listener"),
        "{err}"
    );
    assert!(
        err.contains("`tls` is not allowed on a TCP listener"),
        "{err}"
    );
}
