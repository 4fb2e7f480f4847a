//! TLSRoute attachment, references and SNI routing: the conformance cases of §1.6, and
//! Terminate and Passthrough listeners sharing a port (TLSRouteModeMixed).

use super::*;
use gatehouse_model::backend::{BackendTarget, Pick};
use gatehouse_model::listener::ListenerKind;
use gatehouse_model::status::{condition as c, reason as r};

const TLS_BACKENDS: &str = r#"
[[Service]]
name = "tls-backend"
namespace = "infra"
ports = [{ port = 443, targetPort = 8443 }]
endpoints = ["127.0.0.41"]
[[Service]]
name = "tls-backend-2"
namespace = "infra"
ports = [{ port = 443, targetPort = 8443 }]
endpoints = ["127.0.0.42"]
"#;

fn passthrough_gateway(name: &str, port: u16, hostname: Option<&str>) -> String {
    let hostname = hostname
        .map(|h| format!("hostname = \"{h}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[[Gateway]]
name = "{name}"
namespace = "infra"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "tls"
protocol = "TLS"
port = {port}
{hostname}tls = {{ mode = "Passthrough" }}
allowedRoutes = {{ kinds = [{{ kind = "TLSRoute" }}] }}
"#
    )
}

fn tls_route(name: &str, gateway: &str, hostnames: &[&str], backend: &str) -> String {
    let hosts = hostnames
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[[TLSRoute]]
name = "{name}"
namespace = "infra"
parentRefs = [{{ name = "{gateway}" }}]
hostnames = [{hosts}]
rules = [{{ backendRefs = [{{ name = "{backend}", port = 443 }}] }}]
"#
    )
}

/// The Service a TLS connection with `sni` to `port` is passed to (the first draw),
/// "reject" when it is closed there, `None` when no passthrough listener or TLSRoute takes
/// it. `gatehouse explain` must say the same ([`agree::assert_layer4_explain_agrees`]).
#[track_caller]
fn sni(l: &Loaded, port: u16, sni: &str) -> Option<String> {
    let local: SocketAddr = ([127, 0, 0, 1], port).into();
    let lst = l.snapshot.select_listener(local, Some(sni))?;
    let ListenerKind::TlsPassthrough { routes } = &lst.kind else {
        return None;
    };
    let rule = routes.lookup(sni);
    let conn = client_conn(l, local, sni);
    agree::assert_layer4_explain_agrees(&l.snapshot, &conn, lst, rule.map(|r| &**r), 0);
    let rule = rule?;
    match rule.backends.pick(0) {
        Pick::Backend(_, b) => match &b.target {
            BackendTarget::Service { service, .. } => {
                Some(l.snapshot.services[*service].key.name.clone())
            }
            BackendTarget::Unresolved(u) => Some(format!("reject ({u:?})")),
        },
        _ => Some("reject".into()),
    }
}

#[test]
fn tls_route_simple_same_namespace() {
    let l = load_ok(&format!(
        "{TLS_BACKENDS}{}{}",
        passthrough_gateway("gateway-tlsroute", 443, Some("*.example.com")),
        tls_route(
            "gateway-conformance-infra-test",
            "gateway-tlsroute",
            &["abc.example.com"],
            "tls-backend"
        )
    ));
    let p = l.route_conditions(Kind::TLSRoute, "infra", "gateway-conformance-infra-test");
    assert_cond(&p[0], c::ACCEPTED, true, r::ACCEPTED);
    assert_cond(&p[0], c::RESOLVED_REFS, true, r::RESOLVED_REFS);
    assert_eq!(
        sni(&l, 443, "abc.example.com").as_deref(),
        Some("tls-backend")
    );
    assert_eq!(sni(&l, 443, "other.example.com"), None);
}

#[test]
fn tls_route_hostname_intersection() {
    let l = load_ok(&format!(
        "{TLS_BACKENDS}{}{}{}{}{}{}{}{}{}{}{}",
        passthrough_gateway("g1", 1443, Some("abc.example.com")),
        tls_route("r1", "g1", &["*.example.com"], "tls-backend"),
        passthrough_gateway("g2", 2443, Some("*.example.com")),
        tls_route("r2a", "g2", &["abc.example.com"], "tls-backend"),
        tls_route("r2b", "g2", &["*.com"], "tls-backend-2"),
        passthrough_gateway("g3", 3443, Some("*.com")),
        tls_route("r3a", "g3", &["abc.example.com"], "tls-backend"),
        tls_route("r3b", "g3", &["*.example.com"], "tls-backend-2"),
        passthrough_gateway("g4", 4443, None),
        tls_route("r4a", "g4", &["abc.example.com"], "tls-backend"),
        tls_route("r4b", "g4", &["*.com"], "tls-backend-2"),
    ));
    assert_eq!(
        sni(&l, 1443, "abc.example.com").as_deref(),
        Some("tls-backend")
    );
    assert_eq!(sni(&l, 1443, "other.example.com"), None);
    for port in [2443, 3443, 4443] {
        assert_eq!(
            sni(&l, port, "abc.example.com").as_deref(),
            Some("tls-backend"),
            "{port}"
        );
        assert_eq!(
            sni(&l, port, "other.example.com").as_deref(),
            Some("tls-backend-2"),
            "{port}"
        );
        assert_eq!(sni(&l, port, "non.matching.org"), None, "{port}");
    }
    assert_eq!(
        sni(&l, 2443, "non.matching.com"),
        None,
        "the listener *.example.com narrows *.com"
    );
}

#[test]
fn tls_route_invalid_no_matching_listener_hostname() {
    let l = load_ok(&format!(
        "{TLS_BACKENDS}{}{}{}{}",
        passthrough_gateway("g1", 443, Some("www.example.com")),
        tls_route(
            "r1",
            "g1",
            &["www.nomatch.com", "*.nomatch.com"],
            "tls-backend"
        ),
        passthrough_gateway("g2", 8443, Some("*.example.com")),
        tls_route("r2", "g2", &["*.different.com"], "tls-backend"),
    ));
    for (route, gw) in [("r1", "g1"), ("r2", "g2")] {
        assert_cond(
            &l.route_conditions(Kind::TLSRoute, "infra", route)[0],
            c::ACCEPTED,
            false,
            r::NO_MATCHING_LISTENER_HOSTNAME,
        );
        assert_eq!(listener(l.gw("infra", gw), "tls").attached_routes, 0);
    }
}

#[test]
fn tls_route_invalid_no_matching_listener() {
    let l = load_ok(&format!(
        r#"{TLS_BACKENDS}{}
[[Gateway]]
name = "http-only"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{{ name = "http", protocol = "HTTP", port = 80 }}]
[[Gateway]]
name = "https-terminate"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{{ name = "https", protocol = "HTTPS", port = 8443, tls = {{ certificateRefs = [{{ name = "x" }}] }} }}]
{}{}
[[TLSRoute]]
name = "to-missing-section"
namespace = "infra"
parentRefs = [{{ name = "g", sectionName = "nonexistent-listener" }}]
hostnames = ["abc.example.com"]
rules = [{{ backendRefs = [{{ name = "tls-backend", port = 443 }}] }}]
"#,
        passthrough_gateway("g", 443, None),
        tls_route("to-http", "http-only", &["abc.example.com"], "tls-backend"),
        tls_route(
            "to-https",
            "https-terminate",
            &["abc.example.com"],
            "tls-backend"
        ),
    ));
    assert_cond(
        &l.route_conditions(Kind::TLSRoute, "infra", "to-http")[0],
        c::ACCEPTED,
        false,
        r::NOT_ALLOWED_BY_LISTENERS,
    );
    assert_cond(
        &l.route_conditions(Kind::TLSRoute, "infra", "to-https")[0],
        c::ACCEPTED,
        false,
        r::NOT_ALLOWED_BY_LISTENERS,
    );
    assert_cond(
        &l.route_conditions(Kind::TLSRoute, "infra", "to-missing-section")[0],
        c::ACCEPTED,
        false,
        r::NO_MATCHING_PARENT,
    );
}

#[test]
fn tls_route_invalid_backend_refs_reject_connections() {
    let l = load_ok(&format!(
        r#"{TLS_BACKENDS}{}{}
[[TLSRoute]]
name = "unknown-kind"
namespace = "infra"
parentRefs = [{{ name = "g" }}]
hostnames = ["unknown.example.com"]
rules = [{{ backendRefs = [{{ group = "unknownkind.example.com", kind = "NonExistent", name = "x", port = 443 }}] }}]
"#,
        passthrough_gateway("g", 443, None),
        tls_route("nonexistent", "g", &["example.com"], "nonexistent"),
    ));
    assert_cond(
        &l.route_conditions(Kind::TLSRoute, "infra", "nonexistent")[0],
        c::RESOLVED_REFS,
        false,
        r::BACKEND_NOT_FOUND,
    );
    assert_cond(
        &l.route_conditions(Kind::TLSRoute, "infra", "nonexistent")[0],
        c::ACCEPTED,
        true,
        r::ACCEPTED,
    );
    assert_eq!(
        sni(&l, 443, "example.com").as_deref(),
        Some("reject (NotFound)")
    );
    assert_cond(
        &l.route_conditions(Kind::TLSRoute, "infra", "unknown-kind")[0],
        c::RESOLVED_REFS,
        false,
        r::INVALID_KIND,
    );
    assert_eq!(
        sni(&l, 443, "unknown.example.com").as_deref(),
        Some("reject (InvalidKind)")
    );
}

#[test]
fn tls_route_invalid_reference_grant() {
    let l = load_ok(&format!(
        r#"{}
[[Service]]
name = "app-backend-v1"
namespace = "gateway-conformance-app-backend"
ports = [{{ port = 443 }}]
[[ReferenceGrant]]
name = "wrong-kind"
namespace = "gateway-conformance-app-backend"
from = [{{ group = "gateway.networking.k8s.io", kind = "HTTPRoute", namespace = "infra" }}]
to = [{{ group = "", kind = "Service" }}]
[[TLSRoute]]
name = "r"
namespace = "infra"
parentRefs = [{{ name = "g" }}]
hostnames = ["abc.example.com"]
rules = [{{ backendRefs = [{{ name = "app-backend-v1", namespace = "gateway-conformance-app-backend", port = 443 }}] }}]
"#,
        passthrough_gateway("g", 443, None)
    ));
    assert_cond(
        &l.route_conditions(Kind::TLSRoute, "infra", "r")[0],
        c::RESOLVED_REFS,
        false,
        r::REF_NOT_PERMITTED,
    );
}

#[test]
fn tls_route_listener_passthrough_supported_kinds() {
    let l = load_ok(
        r#"
[[Gateway]]
name = "g"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{ name = "tls", protocol = "TLS", port = 443, tls = { mode = "Passthrough" }, allowedRoutes = { kinds = [{ kind = "TCPRoute" }, { kind = "TLSRoute" }] } }]
"#,
    );
    let ls = listener(l.gw("infra", "g"), "tls");
    assert_cond(
        &ls.conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_ROUTE_KINDS,
    );
    assert_eq!(
        ls.supported_kinds
            .iter()
            .map(|k| k.kind.as_str())
            .collect::<Vec<_>>(),
        ["TLSRoute"]
    );
}

#[test]
fn tls_listener_terminate_supports_tls_route_and_routes_by_sni() {
    // TLSRouteListenerTerminateSupportedKinds and TLSRouteTerminateSimpleSameNamespace.
    let l = load_with(
        &format!(
            r#"{TLS_BACKENDS}
[[Secret]]
name = "c"
namespace = "infra"
certFile = "cert.pem"
keyFile = "key.pem"
[[Gateway]]
name = "g"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{{ name = "tls", protocol = "TLS", port = 8443, hostname = "tls.example.com", tls = {{ mode = "Terminate", certificateRefs = [{{ name = "c" }}] }} }}]
{}"#,
            tls_route("t", "g", &["tls.example.com"], "tls-backend")
        ),
        &[
            ("/etc/gatehouse/cert.pem", cert_pem()),
            ("/etc/gatehouse/key.pem", key_pem()),
        ],
    );
    let ls = listener(l.gw("infra", "g"), "tls");
    assert_cond(&ls.conditions, c::ACCEPTED, true, r::ACCEPTED);
    assert_cond(&ls.conditions, c::PROGRAMMED, true, r::PROGRAMMED);
    assert_eq!(ls.attached_routes, 1);
    assert_eq!(
        ls.supported_kinds
            .iter()
            .map(|k| k.kind.as_str())
            .collect::<Vec<_>>(),
        ["TLSRoute"]
    );
    let local: SocketAddr = ([127, 0, 0, 1], 8443).into();
    let lst = l
        .snapshot
        .select_listener(local, Some("tls.example.com"))
        .unwrap();
    let ListenerKind::TlsTerminate {
        routes,
        certificates,
    } = &lst.kind
    else {
        panic!("not a TLS Terminate listener: {:?}", lst.kind);
    };
    assert_eq!(certificates.len(), 1);
    assert!(routes.lookup("tls.example.com").is_some());
    assert!(routes.lookup("other.example.com").is_none());
}

#[test]
fn tls_terminate_listener_without_a_usable_certificate_is_not_programmed() {
    let l = load_ok(&format!(
        r#"{TLS_BACKENDS}
[[Gateway]]
name = "g"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{{ name = "tls", protocol = "TLS", port = 8443, tls = {{ mode = "Terminate", certificateRefs = [{{ name = "missing" }}] }} }}]
{}"#,
        tls_route("t", "g", &["tls.example.com"], "tls-backend")
    ));
    let ls = listener(l.gw("infra", "g"), "tls");
    assert_cond(
        &ls.conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_CERTIFICATE_REF,
    );
    assert_cond(&ls.conditions, c::PROGRAMMED, false, r::INVALID);
    assert!(l.snapshot.listeners.is_empty());
}

#[test]
fn tls_terminate_and_passthrough_listeners_share_a_port() {
    // TLSRouteMixedTerminationSameNamespace: each listener keeps its route.
    let l = load_with(
        &format!(
            r#"{TLS_BACKENDS}
[[Secret]]
name = "c"
namespace = "infra"
certFile = "cert.pem"
keyFile = "key.pem"
[[Gateway]]
name = "g"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [
  {{ name = "terminate", protocol = "TLS", port = 8883, hostname = "tls.example.com", tls = {{ mode = "Terminate", certificateRefs = [{{ name = "c" }}] }} }},
  {{ name = "passthrough", protocol = "TLS", port = 8883, hostname = "abc.example.com", tls = {{ mode = "Passthrough" }} }},
]
{}{}"#,
            tls_route("t", "g", &["tls.example.com"], "tls-backend"),
            tls_route("p", "g", &["abc.example.com"], "tls-backend-2")
        ),
        &[
            ("/etc/gatehouse/cert.pem", cert_pem()),
            ("/etc/gatehouse/key.pem", key_pem()),
        ],
    );
    for ls in ["terminate", "passthrough"] {
        let st = listener(l.gw("infra", "g"), ls);
        assert_cond(&st.conditions, c::ACCEPTED, true, r::ACCEPTED);
        assert_cond(&st.conditions, c::CONFLICTED, false, r::NO_CONFLICTS);
        assert_eq!(st.attached_routes, 1);
    }
    assert_eq!(
        sni(&l, 8883, "abc.example.com").as_deref(),
        Some("tls-backend-2")
    );
    let local: SocketAddr = ([127, 0, 0, 1], 8883).into();
    let lst = l
        .snapshot
        .select_listener(local, Some("tls.example.com"))
        .unwrap();
    assert!(matches!(lst.kind, ListenerKind::TlsTerminate { .. }));
}

#[test]
fn terminate_and_passthrough_share_a_port_told_apart_by_sni() {
    // TLSRouteModeMixed, with HTTPS as the terminating side (the seed lab's 443).
    let l = load_with(
        &format!(
            r#"{TLS_BACKENDS}{BACKENDS}
[[Secret]]
name = "demo-cert"
namespace = "infra"
certFile = "cert.pem"
keyFile = "key.pem"
[[Gateway]]
name = "tls-gateway"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{{ name = "https-1", protocol = "HTTPS", port = 443, hostname = "bookinfo.cilium.rocks", tls = {{ certificateRefs = [{{ name = "demo-cert" }}] }} }}]
[[HTTPRoute]]
name = "https-app-route-1"
namespace = "infra"
parentRefs = [{{ name = "tls-gateway" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
{}{}"#,
            passthrough_gateway("cilium-tls-gateway", 443, Some("nginx.cilium.rocks")),
            tls_route(
                "nginx",
                "cilium-tls-gateway",
                &["nginx.cilium.rocks"],
                "tls-backend"
            )
        ),
        &[
            ("/etc/gatehouse/cert.pem", cert_pem()),
            ("/etc/gatehouse/key.pem", key_pem()),
        ],
    );
    for (gw, ls) in [("tls-gateway", "https-1"), ("cilium-tls-gateway", "tls")] {
        let st = listener(l.gw("infra", gw), ls);
        assert_cond(&st.conditions, c::ACCEPTED, true, r::ACCEPTED);
        assert_cond(&st.conditions, c::PROGRAMMED, true, r::PROGRAMMED);
        assert_cond(&st.conditions, c::CONFLICTED, false, r::NO_CONFLICTS);
        assert_eq!(st.attached_routes, 1);
    }
    assert_eq!(l.snapshot.ports.len(), 1);
    assert!(l.snapshot.ports[0].tls);
    assert_eq!(
        sni(&l, 443, "nginx.cilium.rocks").as_deref(),
        Some("tls-backend")
    );
    let local: SocketAddr = ([127, 0, 0, 1], 443).into();
    let https = l
        .snapshot
        .select_listener(local, Some("bookinfo.cilium.rocks"))
        .unwrap();
    assert_eq!(https.name, "https-1");
    assert_eq!(
        route_with(&l, 443, "bookinfo.cilium.rocks", &Req::get("/details"), 0).as_deref(),
        Some("infra-backend-v1")
    );
}

#[test]
fn terminate_and_passthrough_with_one_hostname_on_one_port_conflict() {
    let l = load_ok(&format!(
        r#"
[[Gateway]]
name = "t"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{{ name = "https", protocol = "HTTPS", port = 443, hostname = "a.example.com", tls = {{ certificateRefs = [{{ name = "c" }}] }} }}]
{}"#,
        passthrough_gateway("p", 443, Some("a.example.com"))
    ));
    assert_cond(
        &listener(l.gw("infra", "t"), "https").conditions,
        c::CONFLICTED,
        true,
        r::HOSTNAME_CONFLICT,
    );
    assert_cond(
        &listener(l.gw("infra", "p"), "tls").conditions,
        c::CONFLICTED,
        true,
        r::HOSTNAME_CONFLICT,
    );
}

#[test]
fn oldest_tls_route_keeps_a_contested_hostname() {
    let l = load_ok(&format!(
        "{TLS_BACKENDS}{}{}{}",
        passthrough_gateway("g", 443, None),
        tls_route("older", "g", &["a.example.com"], "tls-backend"),
        tls_route("newer", "g", &["a.example.com"], "tls-backend-2"),
    ));
    assert_eq!(
        sni(&l, 443, "a.example.com").as_deref(),
        Some("tls-backend")
    );
}

#[test]
fn tls_route_allows_up_to_1024_hostnames() {
    let names: Vec<String> = (0..17).map(|i| format!("h{i}.example.com")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let l = load_ok(&format!(
        "{TLS_BACKENDS}{}{}",
        passthrough_gateway("g", 443, None),
        tls_route("many", "g", &refs, "tls-backend")
    ));
    assert_eq!(
        sni(&l, 443, "h16.example.com").as_deref(),
        Some("tls-backend")
    );
}
