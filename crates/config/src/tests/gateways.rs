//! Gateway, listener and GatewayClass status: the conformance cases of §1.5, listener
//! conflicts, and the HTTPS listener tables.

use super::*;
use gatehouse_model::status::{condition as c, reason as r};

const SECRET: &str = r#"
[[Secret]]
name = "tls-validity-checks-certificate"
namespace = "infra"
certFile = "certs/cert.pem"
keyFile = "certs/key.pem"
"#;

fn with_certs(toml: &str) -> Loaded {
    load_with(
        toml,
        &[
            ("/etc/gatehouse/certs/cert.pem", cert_pem()),
            ("/etc/gatehouse/certs/key.pem", key_pem()),
        ],
    )
}

fn https_gateway(name: &str, cert_ref: &str) -> String {
    format!(
        r#"
[[Gateway]]
name = "{name}"
namespace = "infra"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "https"
protocol = "HTTPS"
port = 443
tls = {{ certificateRefs = [{cert_ref}] }}
"#
    )
}

#[test]
fn gateway_with_attached_routes() {
    let l = with_certs(&format!(
        r#"{BACKENDS}
[[Gateway]]
name = "gateway-with-one-attached-route"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{{ name = "http", protocol = "HTTP", port = 80 }}]
[[HTTPRoute]]
name = "http-route-1"
namespace = "infra"
parentRefs = [{{ name = "gateway-with-one-attached-route" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]

[[Gateway]]
name = "gateway-with-two-attached-routes"
namespace = "infra"
gatewayClassName = "gatehouse"
addresses = [{{ value = "192.0.2.2" }}]
listeners = [{{ name = "http", protocol = "HTTP", port = 80, hostname = "foo.example.com" }}]
[[HTTPRoute]]
name = "http-route-2"
namespace = "infra"
parentRefs = [{{ name = "gateway-with-two-attached-routes" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
[[HTTPRoute]]
name = "http-route-3"
namespace = "infra"
parentRefs = [{{ name = "gateway-with-two-attached-routes" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
[[HTTPRoute]]
name = "http-route-4"
namespace = "infra"
parentRefs = [{{ name = "gateway-with-two-attached-routes" }}]
hostnames = ["not-accepted.test.com"]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]

{}
[[HTTPRoute]]
name = "http-route-to-missing-backend"
namespace = "infra"
parentRefs = [{{ name = "unresolved-gateway-with-one-attached-unresolved-route" }}]
rules = [{{ backendRefs = [{{ name = "does-not-exist", port = 8080 }}] }}]
"#,
        https_gateway(
            "unresolved-gateway-with-one-attached-unresolved-route",
            r#"{ name = "does-not-exist" }"#
        )
    ));
    let one = l.gw("infra", "gateway-with-one-attached-route");
    assert_eq!(listener(one, "http").attached_routes, 1);
    assert_cond(
        &listener(one, "http").conditions,
        c::ACCEPTED,
        true,
        r::ACCEPTED,
    );
    assert_cond(
        &listener(one, "http").conditions,
        c::RESOLVED_REFS,
        true,
        r::RESOLVED_REFS,
    );

    let two = l.gw("infra", "gateway-with-two-attached-routes");
    assert_eq!(listener(two, "http").attached_routes, 2);
    let r4 = l.route_conditions(Kind::HTTPRoute, "infra", "http-route-4");
    assert_cond(&r4[0], c::ACCEPTED, false, r::NO_MATCHING_LISTENER_HOSTNAME);

    let unresolved = l.gw(
        "infra",
        "unresolved-gateway-with-one-attached-unresolved-route",
    );
    let https = listener(unresolved, "https");
    assert_cond(&https.conditions, c::PROGRAMMED, false, r::INVALID);
    assert_cond(
        &https.conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_CERTIFICATE_REF,
    );
    assert_eq!(
        https.attached_routes, 1,
        "routes attach even to a listener that is not programmed"
    );
    let missing = l.route_conditions(Kind::HTTPRoute, "infra", "http-route-to-missing-backend");
    assert_cond(&missing[0], c::RESOLVED_REFS, false, r::BACKEND_NOT_FOUND);
}

#[test]
fn gateway_with_attached_routes_with_port_8080() {
    let l = load_ok(&format!(
        r#"{BACKENDS}
[[Gateway]]
name = "gateway-with-two-listeners"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [
  {{ name = "http-8080", protocol = "HTTP", port = 8080 }},
  {{ name = "http", protocol = "HTTP", port = 80 }},
]
[[HTTPRoute]]
name = "to-80"
namespace = "infra"
parentRefs = [{{ name = "gateway-with-two-listeners", sectionName = "http" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
"#
    ));
    let gw = l.gw("infra", "gateway-with-two-listeners");
    assert_eq!(listener(gw, "http-8080").attached_routes, 0);
    assert_eq!(listener(gw, "http").attached_routes, 1);
}

#[test]
fn gateway_modify_listeners_http_next_to_https() {
    let l = with_certs(&format!(
        r#"{SECRET}{BACKENDS}
[[Gateway]]
name = "gateway-add-listener"
namespace = "infra"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "https"
protocol = "HTTPS"
port = 443
hostname = "secure.test.com"
tls = {{ certificateRefs = [{{ name = "tls-validity-checks-certificate" }}] }}
[[Gateway.listeners]]
name = "http"
protocol = "HTTP"
port = 80
hostname = "data.test.com"
[[HTTPRoute]]
name = "route"
namespace = "infra"
parentRefs = [{{ name = "gateway-add-listener" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
"#
    ));
    let gw = l.gw("infra", "gateway-add-listener");
    for name in ["https", "http"] {
        let ls = listener(gw, name);
        assert_cond(&ls.conditions, c::ACCEPTED, true, r::ACCEPTED);
        assert_cond(&ls.conditions, c::RESOLVED_REFS, true, r::RESOLVED_REFS);
        assert_cond(&ls.conditions, c::PROGRAMMED, true, r::PROGRAMMED);
        assert_eq!(ls.attached_routes, 1, "{name}");
    }
    assert_eq!(l.snapshot.listeners.len(), 2);
    assert_eq!(
        l.snapshot
            .ports
            .iter()
            .map(|p| (p.port, p.tls))
            .collect::<Vec<_>>(),
        [(80, false), (443, true)]
    );
}

#[test]
fn gateway_listener_unsupported_protocol() {
    let only = load_ok(
        r#"
[[Gateway]]
name = "gateway-only-unsupported-protocol"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{ name = "unsupported", protocol = "INVALID", port = 1111 }]
"#,
    );
    let gw = only.gw("infra", "gateway-only-unsupported-protocol");
    assert_cond(&gw.conditions, c::ACCEPTED, false, r::LISTENERS_NOT_VALID);
    let ls = listener(gw, "unsupported");
    assert_cond(&ls.conditions, c::ACCEPTED, false, r::UNSUPPORTED_PROTOCOL);
    assert!(ls.supported_kinds.is_empty());

    let mixed = load_ok(
        r#"
[[Gateway]]
name = "gateway-supported-and-unsupported-protocol"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [
  { name = "http", protocol = "HTTP", port = 80 },
  { name = "unsupported", protocol = "INVALID", port = 1111 },
]
"#,
    );
    let gw = mixed.gw("infra", "gateway-supported-and-unsupported-protocol");
    assert_cond(&gw.conditions, c::ACCEPTED, true, r::LISTENERS_NOT_VALID);
    assert_cond(
        &listener(gw, "http").conditions,
        c::ACCEPTED,
        true,
        r::ACCEPTED,
    );
    assert_cond(&gw.conditions, c::PROGRAMMED, true, r::PROGRAMMED);
}

#[test]
fn gateway_invalid_route_kind() {
    let l = load_ok(
        r#"
[[Gateway]]
name = "gateway-only-invalid-route-kind"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{ name = "http", protocol = "HTTP", port = 80, allowedRoutes = { kinds = [{ kind = "InvalidRoute" }] } }]
[[Gateway]]
name = "gateway-supported-and-invalid-route-kind"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [{ name = "http", protocol = "HTTP", port = 8080, allowedRoutes = { kinds = [{ kind = "InvalidRoute" }, { kind = "HTTPRoute" }] } }]
"#,
    );
    let only = listener(l.gw("infra", "gateway-only-invalid-route-kind"), "http");
    assert_cond(
        &only.conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_ROUTE_KINDS,
    );
    assert!(only.supported_kinds.is_empty());
    let both = listener(
        l.gw("infra", "gateway-supported-and-invalid-route-kind"),
        "http",
    );
    assert_cond(
        &both.conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_ROUTE_KINDS,
    );
    assert_eq!(
        both.supported_kinds
            .iter()
            .map(|k| k.kind.as_str())
            .collect::<Vec<_>>(),
        ["HTTPRoute"]
    );
}

#[test]
fn gateway_invalid_tls_configuration() {
    let cases = [
        (
            "nonexistent-secret",
            r#"{ name = "nonexistent-certificate" }"#,
            "",
        ),
        (
            "wrong-group",
            r#"{ group = "wrong.group.company.io", kind = "Secret", name = "tls-validity-checks-certificate" }"#,
            SECRET,
        ),
        (
            "wrong-kind",
            r#"{ kind = "WrongKind", name = "tls-validity-checks-certificate" }"#,
            SECRET,
        ),
        (
            "malformed-secret",
            r#"{ name = "malformed-secret" }"#,
            r#"
[[Secret]]
name = "malformed-secret"
namespace = "infra"
certFile = "certs/hello.txt"
keyFile = "certs/hello.txt"
"#,
        ),
    ];
    for (name, cert_ref, secrets) in cases {
        let l = load_with(
            &format!("{secrets}{}", https_gateway(name, cert_ref)),
            &[
                ("/etc/gatehouse/certs/cert.pem", cert_pem()),
                ("/etc/gatehouse/certs/key.pem", key_pem()),
                ("/etc/gatehouse/certs/hello.txt", "Hello world"),
            ],
        );
        let ls = listener(l.gw("infra", name), "https");
        assert_cond(
            &ls.conditions,
            c::RESOLVED_REFS,
            false,
            r::INVALID_CERTIFICATE_REF,
        );
        assert_cond(&ls.conditions, c::PROGRAMMED, false, r::INVALID);
        assert!(l.snapshot.listeners.is_empty(), "{name}");
    }
}

#[test]
fn unreadable_certificate_names_the_file() {
    let l = load_ok(&format!(
        "{SECRET}{}",
        https_gateway("gw", r#"{ name = "tls-validity-checks-certificate" }"#)
    ));
    let ls = listener(l.gw("infra", "gw"), "https");
    let msg = &find(&ls.conditions, c::RESOLVED_REFS).unwrap().message;
    assert!(
        msg.contains("cannot read /etc/gatehouse/certs/cert.pem"),
        "{msg}"
    );
}

const WEB_SECRET: &str = r#"
[[Secret]]
name = "certificate"
namespace = "gateway-conformance-web-backend"
certFile = "certs/cert.pem"
keyFile = "certs/key.pem"
"#;

fn secret_grant(from: (&str, &str, &str), to: (&str, &str, Option<&str>)) -> String {
    let name =
        to.2.map(|n| format!(", name = \"{n}\""))
            .unwrap_or_default();
    format!(
        r#"
[[ReferenceGrant]]
name = "reference-grant"
namespace = "gateway-conformance-web-backend"
from = [{{ group = "{}", kind = "{}", namespace = "{}" }}]
to = [{{ group = "{}", kind = "{}"{name} }}]
"#,
        from.0, from.1, from.2, to.0, to.1
    )
}

#[test]
fn gateway_secret_reference_grant_specific_and_all_in_namespace() {
    let g = "gateway.networking.k8s.io";
    for grant in [
        secret_grant((g, "Gateway", "infra"), ("", "Secret", Some("certificate"))),
        secret_grant((g, "Gateway", "infra"), ("", "Secret", None)),
    ] {
        let l = with_certs(&format!(
            "{WEB_SECRET}{grant}{}",
            https_gateway(
                "gateway-secret",
                r#"{ name = "certificate", namespace = "gateway-conformance-web-backend" }"#
            )
        ));
        let ls = listener(l.gw("infra", "gateway-secret"), "https");
        assert_cond(&ls.conditions, c::RESOLVED_REFS, true, r::RESOLVED_REFS);
        assert_cond(&ls.conditions, c::PROGRAMMED, true, r::PROGRAMMED);
    }
}

#[test]
fn gateway_secret_missing_or_invalid_reference_grant() {
    let g = "gateway.networking.k8s.io";
    let wrong = [
        String::new(),
        secret_grant(
            ("wrong.group", "Gateway", "infra"),
            ("", "Secret", Some("certificate")),
        ),
        secret_grant(
            (g, "HTTPRoute", "infra"),
            ("", "Secret", Some("certificate")),
        ),
        secret_grant((g, "Gateway", "other"), ("", "Secret", Some("certificate"))),
        secret_grant(
            (g, "Gateway", "infra"),
            ("wrong.group", "Secret", Some("certificate")),
        ),
        secret_grant(
            (g, "Gateway", "infra"),
            ("", "Service", Some("certificate")),
        ),
        secret_grant(
            (g, "Gateway", "infra"),
            ("", "Secret", Some("not-the-certificate")),
        ),
    ];
    for grant in wrong {
        let l = with_certs(&format!(
            "{WEB_SECRET}{grant}{}",
            https_gateway(
                "gateway-secret",
                r#"{ name = "certificate", namespace = "gateway-conformance-web-backend" }"#
            )
        ));
        let ls = listener(l.gw("infra", "gateway-secret"), "https");
        assert_cond(
            &ls.conditions,
            c::RESOLVED_REFS,
            false,
            r::REF_NOT_PERMITTED,
        );
        assert_cond(&ls.conditions, c::PROGRAMMED, false, r::INVALID);
    }
}

#[test]
fn gateway_invalid_parameters_ref() {
    let l = load_ok(
        r#"
[[Gateway]]
name = "gateway-with-invalid-parameters-ref"
namespace = "infra"
gatewayClassName = "gatehouse"
infrastructure = { parametersRef = { group = "example.com", kind = "Params", name = "x" } }
listeners = [{ name = "http", protocol = "HTTP", port = 80 }]
"#,
    );
    let gw = l.gw("infra", "gateway-with-invalid-parameters-ref");
    assert_cond(&gw.conditions, c::ACCEPTED, false, r::INVALID_PARAMETERS);
    assert!(l.snapshot.listeners.is_empty());
}

#[test]
fn gateway_class_of_another_controller_or_missing_is_not_served() {
    let l = load_ok(
        r#"
[[GatewayClass]]
name = "other"
controllerName = "example.com/other"
[[GatewayClass]]
name = "mine-with-params"
controllerName = "gatehouse.dev/gateway-controller"
parametersRef = { group = "example.com", kind = "Params", name = "p" }
[[Gateway]]
name = "a"
gatewayClassName = "other"
listeners = [{ name = "http", protocol = "HTTP", port = 80 }]
[[Gateway]]
name = "b"
gatewayClassName = "missing"
listeners = [{ name = "http", protocol = "HTTP", port = 81 }]
[[Gateway]]
name = "c"
gatewayClassName = "mine-with-params"
listeners = [{ name = "http", protocol = "HTTP", port = 82 }]
"#,
    );
    assert_cond(
        &l.gw("default", "a").conditions,
        c::ACCEPTED,
        false,
        r::NOT_RECONCILED,
    );
    assert_cond(
        &l.gw("default", "b").conditions,
        c::ACCEPTED,
        false,
        r::INVALID,
    );
    assert_cond(
        &l.gw("default", "c").conditions,
        c::ACCEPTED,
        false,
        r::INVALID_PARAMETERS,
    );
    let class = l
        .status
        .gateway_classes
        .iter()
        .find(|g| g.key.name == "mine-with-params")
        .unwrap();
    assert_cond(&class.conditions, c::ACCEPTED, false, r::INVALID_PARAMETERS);
    assert!(
        l.status
            .gateway_classes
            .iter()
            .all(|g| g.key.name != "other"),
        "other controllers' classes get no status from gatehouse"
    );
    assert!(l.snapshot.listeners.is_empty());
}

#[test]
fn builtin_gateway_class_is_accepted() {
    let l = load_ok("");
    let builtin = &l.status.gateway_classes[0];
    assert_eq!(builtin.key.name, "gatehouse");
    assert_cond(&builtin.conditions, c::ACCEPTED, true, r::ACCEPTED);
}

#[test]
fn hostname_address_type_is_unsupported() {
    let l = load_ok(
        r#"
[[Gateway]]
name = "g"
gatewayClassName = "gatehouse"
addresses = [{ type = "Hostname", value = "gw.example.com" }]
listeners = [{ name = "http", protocol = "HTTP", port = 80 }]
"#,
    );
    assert_cond(
        &l.gw("default", "g").conditions,
        c::ACCEPTED,
        false,
        r::UNSUPPORTED_ADDRESS,
    );
}

#[test]
fn plaintext_and_tls_on_one_port_are_a_protocol_conflict() {
    let l = with_certs(&format!(
        r#"{SECRET}
[[Gateway]]
name = "g"
namespace = "infra"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "http"
protocol = "HTTP"
port = 8443
[[Gateway.listeners]]
name = "https"
protocol = "HTTPS"
port = 8443
tls = {{ certificateRefs = [{{ name = "tls-validity-checks-certificate" }}] }}
[[Gateway.listeners]]
name = "other"
protocol = "HTTP"
port = 80
"#
    ));
    let gw = l.gw("infra", "g");
    for name in ["http", "https"] {
        let ls = listener(gw, name);
        assert_cond(&ls.conditions, c::CONFLICTED, true, r::PROTOCOL_CONFLICT);
        assert_cond(&ls.conditions, c::ACCEPTED, false, r::PROTOCOL_CONFLICT);
        assert_cond(&ls.conditions, c::PROGRAMMED, false, r::INVALID);
    }
    assert_cond(
        &listener(gw, "other").conditions,
        c::CONFLICTED,
        false,
        r::NO_CONFLICTS,
    );
    assert_cond(&gw.conditions, c::ACCEPTED, true, r::LISTENERS_NOT_VALID);
    assert_eq!(l.snapshot.listeners.len(), 1, "no winner is picked");
}

#[test]
fn same_hostname_on_one_port_across_gateways_is_a_hostname_conflict() {
    let l = load_ok(
        r#"
[[Gateway]]
name = "a"
gatewayClassName = "gatehouse"
listeners = [{ name = "web", protocol = "HTTP", port = 80, hostname = "x.example.com" }, { name = "any", protocol = "HTTP", port = 80 }]
[[Gateway]]
name = "b"
gatewayClassName = "gatehouse"
listeners = [{ name = "web", protocol = "HTTP", port = 80, hostname = "x.example.com" }, { name = "other", protocol = "HTTP", port = 80, hostname = "y.example.com" }]
"#,
    );
    for g in ["a", "b"] {
        assert_cond(
            &listener(l.gw("default", g), "web").conditions,
            c::CONFLICTED,
            true,
            r::HOSTNAME_CONFLICT,
        );
    }
    assert_cond(
        &listener(l.gw("default", "a"), "any").conditions,
        c::CONFLICTED,
        false,
        r::NO_CONFLICTS,
    );
    assert_cond(
        &listener(l.gw("default", "b"), "other").conditions,
        c::CONFLICTED,
        false,
        r::NO_CONFLICTS,
    );
    let msg = &find(
        &listener(l.gw("default", "a"), "web").conditions,
        c::CONFLICTED,
    )
    .unwrap()
    .message;
    assert!(msg.contains("Gateway \"b\""), "{msg}");
}

#[test]
fn gateways_on_distinct_addresses_do_not_conflict() {
    let l = load_ok(
        r#"
[[Gateway]]
name = "a"
gatewayClassName = "gatehouse"
addresses = [{ value = "192.0.2.10" }]
listeners = [{ name = "web", protocol = "HTTP", port = 80 }]
[[Gateway]]
name = "b"
gatewayClassName = "gatehouse"
addresses = [{ value = "192.0.2.11" }, { value = "2001:db8::11", interface = "eth1" }]
listeners = [{ name = "web", protocol = "HTTPS", port = 80, tls = { certificateRefs = [{ name = "missing" }] } }]
"#,
    );
    assert_cond(
        &listener(l.gw("default", "a"), "web").conditions,
        c::CONFLICTED,
        false,
        r::NO_CONFLICTS,
    );
    assert_cond(
        &listener(l.gw("default", "b"), "web").conditions,
        c::CONFLICTED,
        false,
        r::NO_CONFLICTS,
    );
    let vips: Vec<String> = l
        .snapshot
        .vips
        .iter()
        .map(|v| format!("{} {:?}", v.address, v.interface))
        .collect();
    assert_eq!(
        vips,
        [
            "192.0.2.10 None",
            "192.0.2.11 None",
            "2001:db8::11 Some(\"eth1\")"
        ]
    );
    assert_eq!(l.gw("default", "b").addresses.len(), 2);
}

#[test]
fn overlapping_tls_hostnames_are_flagged_on_both_listeners() {
    let l = with_certs(&format!(
        r#"{SECRET}
[[Gateway]]
name = "same-namespace-with-https-listener"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [
  {{ name = "https-with-wildcard-hostname", protocol = "HTTPS", port = 443, hostname = "*.wildcard.org", tls = {{ certificateRefs = [{{ name = "tls-validity-checks-certificate" }}] }} }},
  {{ name = "https-with-hostname-matching-wildcard", protocol = "HTTPS", port = 443, hostname = "fourth-example.wildcard.org", tls = {{ certificateRefs = [{{ name = "tls-validity-checks-certificate" }}] }} }},
  {{ name = "https-with-hostname", protocol = "HTTPS", port = 8443, hostname = "second-example.org", tls = {{ certificateRefs = [{{ name = "tls-validity-checks-certificate" }}] }} }},
]
"#
    ));
    let gw = l.gw("infra", "same-namespace-with-https-listener");
    for name in [
        "https-with-wildcard-hostname",
        "https-with-hostname-matching-wildcard",
    ] {
        assert_cond(
            &listener(gw, name).conditions,
            c::OVERLAPPING_TLS_CONFIG,
            true,
            r::OVERLAPPING_HOSTNAMES,
        );
        assert_cond(
            &listener(gw, name).conditions,
            c::PROGRAMMED,
            true,
            r::PROGRAMMED,
        );
    }
    assert!(
        find(
            &listener(gw, "https-with-hostname").conditions,
            c::OVERLAPPING_TLS_CONFIG
        )
        .is_none()
    );
}

#[test]
fn https_listener_attaches_routes_by_hostname_and_section() {
    // HTTPRouteHTTPSListener (status and routing side; the TLS handshake is the data plane's).
    let l = with_certs(&format!(
        r#"{SECRET}{BACKENDS}
[[Gateway]]
name = "same-namespace-with-https-listener"
namespace = "infra"
gatewayClassName = "gatehouse"
listeners = [
  {{ name = "https", protocol = "HTTPS", port = 443, tls = {{ certificateRefs = [{{ name = "tls-validity-checks-certificate" }}] }} }},
  {{ name = "https-with-hostname", protocol = "HTTPS", port = 443, hostname = "second-example.org", tls = {{ certificateRefs = [{{ name = "tls-validity-checks-certificate" }}] }} }},
]
[[HTTPRoute]]
name = "https-listener-route-a"
namespace = "infra"
parentRefs = [{{ name = "same-namespace-with-https-listener", sectionName = "https" }}]
hostnames = ["example.org"]
rules = [{{ backendRefs = [{{ name = "infra-backend-v1", port = 8080 }}] }}]
[[HTTPRoute]]
name = "https-listener-route-b"
namespace = "infra"
parentRefs = [{{ name = "same-namespace-with-https-listener", sectionName = "https-with-hostname" }}]
rules = [{{ backendRefs = [{{ name = "infra-backend-v2", port = 8080 }}] }}]
"#
    ));
    let v = |host| route_with(&l, 443, host, &Req::get("/"), 0);
    assert_eq!(v("example.org").as_deref(), Some("infra-backend-v1"));
    assert_eq!(v("unknown-example.org"), None);
    assert_eq!(v("second-example.org").as_deref(), Some("infra-backend-v2"));
    let https = l
        .snapshot
        .listeners
        .iter()
        .find(|x| x.name == "https")
        .unwrap();
    match &https.kind {
        gatehouse_model::listener::ListenerKind::Https { certificates, .. } => {
            assert_eq!(certificates.len(), 1)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_key_that_does_not_belong_to_the_certificate_is_an_invalid_certificate_ref() {
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let l = load_with(
        &format!(
            "{SECRET}{}",
            https_gateway("gw", r#"{ name = "tls-validity-checks-certificate" }"#)
        ),
        &[
            ("/etc/gatehouse/certs/cert.pem", cert_pem()),
            ("/etc/gatehouse/certs/key.pem", &other),
        ],
    );
    let ls = listener(l.gw("infra", "gw"), "https");
    assert_cond(
        &ls.conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_CERTIFICATE_REF,
    );
    let msg = &find(&ls.conditions, c::RESOLVED_REFS).unwrap().message;
    assert!(msg.contains("does not belong to the certificate"), "{msg}");
}
