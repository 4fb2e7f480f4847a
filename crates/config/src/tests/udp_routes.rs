//! UDPRoute (Gateway API v1alpha2): schema, attachment to UDP listeners, one route per
//! listener, dropped rules, the idle timeout extension, and UDP ports kept apart from TCP
//! ports of the same number.

use super::*;
use gatehouse_model::backend::BackendTarget;
use gatehouse_model::listener::ListenerKind;
use gatehouse_model::status::{condition as c, reason as r};
use gatehouse_model::tls::TlsRule;
use std::time::Duration;

const DNS_BACKENDS: &str = r#"
[[Service]]
name = "dns-a"
namespace = "infra"
ports = [{ port = 53 }]
endpoints = ["127.0.0.31"]
[[Service]]
name = "dns-b"
namespace = "infra"
ports = [{ port = 53 }]
endpoints = ["127.0.0.32"]
"#;

/// A Gateway `g` in `infra` with a UDP and a TCP listener on port 53 (DNS serves both).
const DNS_GATEWAY: &str = r#"
[[Gateway]]
name = "g"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [
  { name = "dns-udp", protocol = "UDP", port = 53 },
  { name = "dns-tcp", protocol = "TCP", port = 53 },
]
"#;

fn udp_route(name: &str, parent: &str, rule: &str) -> String {
    format!(
        r#"
[[UDPRoute]]
name = "{name}"
namespace = "infra"
parentRefs = [{parent}]
rules = [{rule}]
"#
    )
}

/// The rule and idle timeout a UDP listener serves.
fn udp_rule<'a>(l: &'a Loaded, listener: &str) -> Option<(&'a TlsRule, Duration)> {
    let lst = l.snapshot.listeners.iter().find(|x| x.name == listener)?;
    match &lst.kind {
        ListenerKind::Udp { rule, idle_timeout } => Some((rule.as_deref()?, *idle_timeout)),
        _ => None,
    }
}

#[test]
fn udp_listener_supports_udp_route_on_a_udp_port_apart_from_the_tcp_port() {
    let l = load_ok(&format!(
        "{DNS_BACKENDS}{DNS_GATEWAY}{}",
        udp_route(
            "dns",
            r#"{ name = "g", sectionName = "dns-udp" }"#,
            r#"{ backendRefs = [{ name = "dns-a", port = 53 }] }"#
        ),
    ));
    let st = listener(l.gw("infra", "g"), "dns-udp");
    assert_cond(&st.conditions, c::ACCEPTED, true, r::ACCEPTED);
    assert_cond(&st.conditions, c::PROGRAMMED, true, r::PROGRAMMED);
    assert_eq!(st.attached_routes, 1);
    assert_eq!(
        st.supported_kinds
            .iter()
            .map(|k| k.kind.as_str())
            .collect::<Vec<_>>(),
        ["UDPRoute"]
    );
    // TCP and UDP on one port number do not conflict.
    let tcp = listener(l.gw("infra", "g"), "dns-tcp");
    assert!(
        find(&tcp.conditions, c::CONFLICTED).is_none_or(|c| c.status == ConditionStatus::False)
    );
    let conds = &l.route_conditions(Kind::UDPRoute, "infra", "dns")[0];
    assert_cond(conds, c::ACCEPTED, true, r::ACCEPTED);
    assert_cond(conds, c::RESOLVED_REFS, true, r::RESOLVED_REFS);
    let (rule, idle) = udp_rule(&l, "dns-udp").expect("rule");
    assert_eq!(backend_names(rule, &l), ["dns-a"]);
    assert_eq!(
        idle,
        Duration::from_secs(60),
        "[limits] udpIdleTimeout default"
    );
    let udp_ports: Vec<(u16, Vec<usize>)> = l
        .snapshot
        .udp_ports
        .iter()
        .map(|p| (p.port, p.listeners.clone()))
        .collect();
    let tcp_ports: Vec<u16> = l.snapshot.ports.iter().map(|p| p.port).collect();
    let udp_index = l
        .snapshot
        .listeners
        .iter()
        .position(|x| x.name == "dns-udp")
        .unwrap();
    assert_eq!(udp_ports, [(53, vec![udp_index])]);
    assert_eq!(tcp_ports, [53]);
    assert!(l.snapshot.ports[0].tcp);
}

#[test]
fn udp_route_rule_idle_timeout_overrides_the_limit() {
    let l = load_ok(&format!(
        "{DNS_BACKENDS}{DNS_GATEWAY}[limits]\nudpIdleTimeout = \"30s\"\n{}",
        udp_route(
            "dns",
            r#"{ name = "g" }"#,
            r#"{ backendRefs = [{ name = "dns-a", port = 53 }], timeouts = { idle = "5s" } }"#
        ),
    ));
    assert_eq!(udp_rule(&l, "dns-udp").unwrap().1, Duration::from_secs(5));
    let l = load_ok(&format!(
        "{DNS_BACKENDS}{DNS_GATEWAY}[limits]\nudpIdleTimeout = \"30s\"\nudpMaxFlows = 5\n{}",
        udp_route(
            "dns",
            r#"{ name = "g" }"#,
            r#"{ backendRefs = [{ name = "dns-a", port = 53 }] }"#
        ),
    ));
    assert_eq!(udp_rule(&l, "dns-udp").unwrap().1, Duration::from_secs(30));
    assert_eq!(l.snapshot.settings.limits.udp_max_flows, 5);
}

#[test]
fn second_udp_route_on_a_listener_is_not_allowed_by_listeners() {
    let l = load_ok(&format!(
        "{DNS_BACKENDS}{DNS_GATEWAY}{}{}",
        udp_route(
            "older",
            r#"{ name = "g", sectionName = "dns-udp" }"#,
            r#"{ backendRefs = [{ name = "dns-a", port = 53 }] }"#
        ),
        udp_route(
            "newer",
            r#"{ name = "g", sectionName = "dns-udp" }"#,
            r#"{ backendRefs = [{ name = "dns-b", port = 53 }] }"#
        ),
    ));
    assert_cond(
        &l.route_conditions(Kind::UDPRoute, "infra", "newer")[0],
        c::ACCEPTED,
        false,
        r::NOT_ALLOWED_BY_LISTENERS,
    );
    assert_eq!(
        backend_names(udp_rule(&l, "dns-udp").unwrap().0, &l),
        ["dns-a"]
    );
}

#[test]
fn udp_route_with_more_rules_serves_the_first_and_is_partially_invalid() {
    let l = load_ok(&format!(
        "{DNS_BACKENDS}{DNS_GATEWAY}{}",
        udp_route(
            "two",
            r#"{ name = "g" }"#,
            r#"{ backendRefs = [{ name = "dns-a", port = 53 }] }, { backendRefs = [{ name = "dns-b", port = 53 }] }"#
        ),
    ));
    let conds = &l.route_conditions(Kind::UDPRoute, "infra", "two")[0];
    assert_cond(conds, c::PARTIALLY_INVALID, true, r::UNSUPPORTED_VALUE);
    let msg = &find(conds, c::PARTIALLY_INVALID).unwrap().message;
    assert!(
        msg.contains("UDP listener cannot tell flows apart"),
        "{msg}"
    );
    assert_eq!(
        backend_names(udp_rule(&l, "dns-udp").unwrap().0, &l),
        ["dns-a"]
    );
}

#[test]
fn udp_route_attaches_to_udp_listeners_only_and_unresolved_backends_say_why() {
    let l = load_ok(&format!(
        "{DNS_BACKENDS}{DNS_GATEWAY}{}{}",
        udp_route(
            "to-tcp",
            r#"{ name = "g", sectionName = "dns-tcp" }"#,
            r#"{ backendRefs = [{ name = "dns-a", port = 53 }] }"#
        ),
        udp_route(
            "missing-backend",
            r#"{ name = "g", sectionName = "dns-udp" }"#,
            r#"{ backendRefs = [{ name = "nope", port = 53 }] }"#
        ),
    ));
    assert_cond(
        &l.route_conditions(Kind::UDPRoute, "infra", "to-tcp")[0],
        c::ACCEPTED,
        false,
        r::NOT_ALLOWED_BY_LISTENERS,
    );
    let conds = &l.route_conditions(Kind::UDPRoute, "infra", "missing-backend")[0];
    assert_cond(conds, c::ACCEPTED, true, r::ACCEPTED);
    assert_cond(conds, c::RESOLVED_REFS, false, r::BACKEND_NOT_FOUND);
}

#[test]
fn two_udp_listeners_on_one_port_and_address_conflict() {
    let l = load_ok(
        r#"
[[Gateway]]
name = "a"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{ name = "udp", protocol = "UDP", port = 5353 }]
[[Gateway]]
name = "b"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{ name = "udp", protocol = "UDP", port = 5353 }, { name = "http", protocol = "HTTP", port = 5353 }]
"#,
    );
    for gw in ["a", "b"] {
        let st = listener(l.gw("infra", gw), "udp");
        assert_cond(&st.conditions, c::CONFLICTED, true, r::HOSTNAME_CONFLICT);
    }
    // The HTTP listener on the same number is on another transport.
    let st = listener(l.gw("infra", "b"), "http");
    assert_cond(&st.conditions, c::PROGRAMMED, true, r::PROGRAMMED);
}

#[test]
fn udp_route_schema_errors_say_where() {
    let err = parse_error(
        r#"
[[UDPRoute]]
name = "r"
parentRefs = [{ name = "g" }]
rules = [{ backendRefs = [{ name = "s", port = 1 }], timeouts = { idle = "0s" } }]
"#,
    );
    assert!(
        err.contains("gatehouse.toml:5:") && err.contains("idle must be longer than"),
        "{err}"
    );
    let err = parse_error(
        r#"
[[UDPRoute]]
name = "r"
parentRefs = [{ name = "g" }]
rules = []
"#,
    );
    assert!(err.contains("a UDPRoute needs at least one rule"), "{err}");
    // The idle timeout is a UDPRoute extension: a TCPRoute rule has no `timeouts`.
    let err = parse_error(
        r#"
[[TCPRoute]]
name = "r"
parentRefs = [{ name = "g" }]
rules = [{ backendRefs = [{ name = "s", port = 1 }], timeouts = { idle = "5s" } }]
"#,
    );
    assert!(err.contains("unknown key `timeouts`"), "{err}");
    let err = parse_error("[limits]\nudpMaxFlows = 0\n");
    assert!(err.contains("gatehouse.toml:2:15"), "{err}");
}

#[test]
fn a_udp_route_to_a_port_a_backend_tls_policy_targets_gets_no_tls() {
    let l = load_ok(&format!(
        r#"{DNS_BACKENDS}{DNS_GATEWAY}{}
[[BackendTLSPolicy]]
name = "dns-tls"
namespace = "infra"
targetRefs = [{{ group = "", kind = "Service", name = "dns-a" }}]
validation = {{ wellKnownCACertificates = "System", hostname = "dns.example.com" }}
"#,
        udp_route(
            "dns",
            r#"{ name = "g", sectionName = "dns-udp" }"#,
            r#"{ backendRefs = [{ name = "dns-a", port = 53 }] }"#
        ),
    ));
    let (rule, _) = udp_rule(&l, "dns-udp").unwrap();
    match &rule.backends.entries()[0].target {
        BackendTarget::Service { tls, .. } => assert_eq!(*tls, None),
        other => panic!("{other:?}"),
    }
    // Nothing originates TLS for it, so the policy has no ancestor Gateway.
    let policy = l
        .status
        .backend_tls_policies
        .iter()
        .find(|p| p.key.name == "dns-tls")
        .unwrap();
    assert!(policy.ancestors.is_empty(), "{:?}", policy.ancestors);
}
