//! `Gateway.spec.tls.backend.clientCertificateRef`: the Gateway's `ResolvedRefs` condition
//! (the cases of the Gateway API's GatewayInvalidTLSBackendConfiguration conformance test),
//! the certificate the snapshot carries for the data plane, and the last good certificate of
//! a Secret whose files fail to load.

use super::*;
use gatehouse_model::status::{condition as c, reason as r};

const CERT: &str = "/etc/gatehouse/client.pem";
const KEY: &str = "/etc/gatehouse/client-key.pem";

/// A Gateway `gw` in `infra` with `tls.backend = {backend}`, the Secret `client` in `infra`
/// and the Secret `elsewhere` in `apps`, both with [`CERT`] and [`KEY`], then `extra`.
fn gateway_with(backend: &str, extra: &str) -> String {
    format!(
        r#"
[[Gateway]]
name = "gw"
namespace = "infra"
gatewayClassName = "gatehouse"
tls = {{ backend = {backend} }}
[[Gateway.listeners]]
name = "http"
protocol = "HTTP"
port = 80

[[Secret]]
name = "client"
namespace = "infra"
certFile = "client.pem"
keyFile = "client-key.pem"

[[Secret]]
name = "elsewhere"
namespace = "apps"
certFile = "client.pem"
keyFile = "client-key.pem"

[[Secret]]
name = "opaque"
namespace = "infra"
type = "Opaque"
{extra}
"#
    )
}

fn files() -> [(&'static str, &'static str); 2] {
    [(CERT, cert_pem()), (KEY, key_pem())]
}

fn load_backend(backend: &str, extra: &str) -> Loaded {
    load_with(&gateway_with(backend, extra), &files())
}

fn client_certificates(l: &Loaded) -> Vec<String> {
    l.snapshot
        .backend_client_certificates
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c.gateway.namespaced_name(),
                c.certificate.secret.namespaced_name()
            )
        })
        .collect()
}

#[test]
fn a_same_namespace_client_certificate_resolves_and_reaches_the_snapshot() {
    let l = load_backend(r#"{ clientCertificateRef = { name = "client" } }"#, "");
    let g = l.gw("infra", "gw");
    assert_cond(&g.conditions, c::RESOLVED_REFS, true, r::RESOLVED_REFS);
    assert_cond(&g.conditions, c::ACCEPTED, true, r::ACCEPTED);
    assert_eq!(client_certificates(&l), ["infra/gw infra/client"]);
}

#[test]
fn an_unusable_client_certificate_ref_is_invalid_client_certificate_ref_and_the_gateway_stays_accepted()
 {
    for (backend, why) in [
        (
            r#"{ clientCertificateRef = { name = "nonexistent" } }"#,
            "Secret not found",
        ),
        (
            r#"{ clientCertificateRef = { group = "wrong.group.company.io", kind = "Secret", name = "client" } }"#,
            "is not a Secret",
        ),
        (
            r#"{ clientCertificateRef = { group = "", kind = "WrongKind", name = "client" } }"#,
            "is not a Secret",
        ),
        (
            r#"{ clientCertificateRef = { name = "opaque" } }"#,
            "not \"kubernetes.io/tls\"",
        ),
    ] {
        let l = load_backend(backend, "");
        let g = l.gw("infra", "gw");
        assert_cond(
            &g.conditions,
            c::RESOLVED_REFS,
            false,
            r::INVALID_CLIENT_CERTIFICATE_REF,
        );
        let message = &find(&g.conditions, c::RESOLVED_REFS).unwrap().message;
        assert!(message.contains(why), "{backend}: {message}");
        assert_cond(&g.conditions, c::ACCEPTED, true, r::ACCEPTED);
        assert_cond(&g.conditions, c::PROGRAMMED, true, r::PROGRAMMED);
        assert!(client_certificates(&l).is_empty(), "{backend}");
    }
}

#[test]
fn a_cross_namespace_client_certificate_needs_a_reference_grant() {
    let backend = r#"{ clientCertificateRef = { name = "elsewhere", namespace = "apps" } }"#;
    let l = load_backend(backend, "");
    let g = l.gw("infra", "gw");
    assert_cond(&g.conditions, c::RESOLVED_REFS, false, r::REF_NOT_PERMITTED);
    assert_cond(&g.conditions, c::ACCEPTED, true, r::ACCEPTED);
    assert!(client_certificates(&l).is_empty());

    let grant = r#"
[[ReferenceGrant]]
name = "gateways-may-use-secrets"
namespace = "apps"
from = [{ group = "gateway.networking.k8s.io", kind = "Gateway", namespace = "infra" }]
to = [{ group = "", kind = "Secret" }]
"#;
    let l = load_backend(backend, grant);
    assert_cond(
        &l.gw("infra", "gw").conditions,
        c::RESOLVED_REFS,
        true,
        r::RESOLVED_REFS,
    );
    assert_eq!(client_certificates(&l), ["infra/gw apps/elsewhere"]);
}

#[test]
fn a_gateway_without_backend_tls_sums_up_its_listeners_references() {
    let toml = r#"
[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "https"
protocol = "HTTPS"
port = 443
tls = { certificateRefs = [{ name = "missing" }] }
"#;
    let l = load_ok(toml);
    assert_cond(
        &l.gw("default", "gw").conditions,
        c::RESOLVED_REFS,
        false,
        r::LISTENERS_NOT_RESOLVED,
    );
    let fine = load_ok(
        "[[Gateway]]\nname = \"gw\"\ngatewayClassName = \"gatehouse\"\nlisteners = [{ name = \"http\", protocol = \"HTTP\", port = 80 }]\n",
    );
    assert_cond(
        &fine.gw("default", "gw").conditions,
        c::RESOLVED_REFS,
        true,
        r::RESOLVED_REFS,
    );
}

#[test]
fn a_client_certificate_whose_files_fail_keeps_the_last_good_one_and_says_so() {
    let toml = gateway_with(r#"{ clientCertificateRef = { name = "client" } }"#, "");
    let before = load_with(&toml, &files());
    let after = load_after(&toml, &[(CERT, cert_pem())], &before.previous());
    let g = after.gw("infra", "gw");
    assert_cond(
        &g.conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_CLIENT_CERTIFICATE_REF,
    );
    let message = &find(&g.conditions, c::RESOLVED_REFS).unwrap().message;
    assert!(
        message.contains("the previous certificate is still presented"),
        "{message}"
    );
    assert_eq!(client_certificates(&after), ["infra/gw infra/client"]);
    assert_eq!(after.stale_certificates.len(), 1);
}

#[test]
fn gateway_tls_takes_only_backend_client_certificate_ref() {
    let toml = gateway_with(
        r#"{ clientCertificateRef = { name = "client" }, other = 1 }"#,
        "",
    );
    let src = SourceFile::new("gatehouse.toml", "/etc/gatehouse/gatehouse.toml", &toml);
    let e = match crate::parse(&[src]) {
        Ok(_) => panic!("expected errors"),
        Err(d) => d.to_string(),
    };
    assert!(e.contains("tls.backend.other"), "{e}");
}
