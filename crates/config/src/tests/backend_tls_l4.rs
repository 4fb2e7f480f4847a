//! BackendTLSPolicy on layer-4 routes: TCPRoutes and TLSRoutes on a terminating listener
//! get the policy of the Service port they name, their Gateways are the policy's ancestors,
//! and TLS passthrough is left alone.

use super::backend_tls::{CA_FILE, GOOD, ca_pem, policy, with_policies};
use super::*;
use gatehouse_model::backend::{BackendTarget, Unresolved};
use gatehouse_model::status::{condition as c, reason as r};

/// A Gateway `l4` with a TCP listener (TCPRoute `tcp` to `secure:443`), a TLS Terminate
/// listener (TLSRoute `term`) and a Passthrough one (TLSRoute `pass`), both to `secure:443`.
fn with_l4_routes(policies: &str) -> Loaded {
    let toml = format!(
        r#"{}
[[Secret]]
name = "c"
certFile = "cert.pem"
keyFile = "key.pem"
[[Gateway]]
name = "l4"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "tcp"
protocol = "TCP"
port = 9000
[[Gateway.listeners]]
name = "term"
protocol = "TLS"
port = 8443
tls = {{ mode = "Terminate", certificateRefs = [{{ name = "c" }}] }}
[[TCPRoute]]
name = "tcp"
parentRefs = [{{ name = "l4", sectionName = "tcp" }}]
[[TCPRoute.rules]]
backendRefs = [{{ name = "secure", port = 443 }}]
[[TLSRoute]]
name = "term"
parentRefs = [{{ name = "l4", sectionName = "term" }}]
hostnames = ["a.example"]
[[TLSRoute.rules]]
backendRefs = [{{ name = "secure", port = 443 }}]
[[Gateway]]
name = "pt"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "tls"
protocol = "TLS"
port = 8444
tls = {{ mode = "Passthrough" }}
[[TLSRoute]]
name = "pass"
parentRefs = [{{ name = "pt" }}]
hostnames = ["a.example"]
[[TLSRoute.rules]]
backendRefs = [{{ name = "secure", port = 443 }}]
"#,
        with_policies(policies)
    );
    load_with(
        &toml,
        &[
            (CA_FILE, ca_pem()),
            ("/etc/gatehouse/cert.pem", cert_pem()),
            ("/etc/gatehouse/key.pem", key_pem()),
        ],
    )
}

/// The target of the first backendRef of the rule serving listener port `port`.
fn l4_target(l: &Loaded, port: u16) -> BackendTarget {
    use gatehouse_model::listener::ListenerKind;
    let listener = l
        .snapshot
        .listeners
        .iter()
        .find(|x| x.port == port)
        .expect("listener");
    let rule = match &listener.kind {
        ListenerKind::Tcp { rule } => rule.clone().expect("TCPRoute rule"),
        ListenerKind::TlsTerminate { routes, .. } | ListenerKind::TlsPassthrough { routes } => {
            routes.lookup("a.example").expect("TLSRoute rule").clone()
        }
        other => panic!("{other:?}"),
    };
    rule.backends.entries()[0].target.clone()
}

#[test]
fn tcp_and_tls_terminate_routes_to_a_claimed_port_get_its_tls() {
    let l = with_l4_routes(GOOD);
    for port in [9000, 8443] {
        assert!(
            matches!(
                l4_target(&l, port),
                BackendTarget::Service { tls: Some(0), .. }
            ),
            "listener port {port}"
        );
    }
    // Passthrough carries the client's own TLS: no second layer.
    assert!(matches!(
        l4_target(&l, 8444),
        BackendTarget::Service { tls: None, .. }
    ));
}

#[test]
fn gateways_of_tcp_and_tls_terminate_routes_are_ancestors_but_passthrough_ones_are_not() {
    let l = with_l4_routes(GOOD);
    let p = policy(&l, "secure-tls");
    let names: Vec<&str> = p
        .ancestors
        .iter()
        .map(|a| a.ancestor_ref.name.as_str())
        .collect();
    assert_eq!(names, ["gw", "l4"]);
    for a in &p.ancestors {
        assert_cond(&a.conditions, c::ACCEPTED, true, r::ACCEPTED);
        assert_cond(&a.conditions, c::RESOLVED_REFS, true, r::RESOLVED_REFS);
    }
}

#[test]
fn a_policy_without_a_valid_ca_fails_l4_connections_but_not_passthrough() {
    let l = with_l4_routes(
        r#"
[[BackendTLSPolicy]]
name = "broken"
targetRefs = [{ group = "", kind = "Service", name = "secure" }]
validation = { caCertificateRefs = [{ group = "", kind = "ConfigMap", name = "missing" }], hostname = "secure.example" }
"#,
    );
    for port in [9000, 8443] {
        assert_eq!(
            l4_target(&l, port),
            BackendTarget::Unresolved(Unresolved::InvalidBackendTls),
            "listener port {port}"
        );
    }
    assert!(matches!(
        l4_target(&l, 8444),
        BackendTarget::Service { tls: None, .. }
    ));
    // The routes' own references are fine.
    let tcp = l
        .status
        .route(&ResourceKey::new(Kind::TCPRoute, "default", "tcp"))
        .expect("TCPRoute status");
    assert_cond(
        &tcp.parents[0].conditions,
        c::RESOLVED_REFS,
        true,
        r::RESOLVED_REFS,
    );
}
