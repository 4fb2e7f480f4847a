//! BackendTLSPolicy: the schema rules (errors), the status rules (conditions per ancestor
//! Gateway), and what a backendRef to a targeted Service port compiles to.

use super::*;
use gatehouse_model::backend::{BackendTarget, Unresolved};
use gatehouse_model::backend_tls::{SubjectAltName, TrustAnchors};
use gatehouse_model::status::{PolicyStatus, condition as c, reason as r};

pub(super) fn ca_pem() -> &'static str {
    static CA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("self-signed").pem()
    })
}

pub(super) const CA_FILE: &str = "/etc/gatehouse/ca/backend-ca.pem";

/// A Gateway `gw` with an HTTP listener, a route `app` to Service `secure` (port 443, named
/// `https`; port 80, named `http`), and `policies` appended.
pub(super) fn with_policies(policies: &str) -> String {
    format!(
        r#"
[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "http"
protocol = "HTTP"
port = 80

[[Service]]
name = "secure"
ports = [{{ name = "https", port = 443 }}, {{ name = "http", port = 80 }}]
endpoints = ["127.0.0.21"]

[[HTTPRoute]]
name = "app"
parentRefs = [{{ name = "gw" }}]
[[HTTPRoute.rules]]
matches = [{{ path = {{ type = "PathPrefix", value = "/tls" }} }}]
backendRefs = [{{ name = "secure", port = 443 }}]
[[HTTPRoute.rules]]
matches = [{{ path = {{ type = "PathPrefix", value = "/plain" }} }}]
backendRefs = [{{ name = "secure", port = 80 }}]

[[ConfigMap]]
name = "backend-ca"
caFile = "ca/backend-ca.pem"

{policies}
"#
    )
}

pub(super) const GOOD: &str = r#"
[[BackendTLSPolicy]]
name = "secure-tls"
targetRefs = [{ group = "", kind = "Service", name = "secure", sectionName = "https" }]
validation = { caCertificateRefs = [{ group = "", kind = "ConfigMap", name = "backend-ca" }], hostname = "secure.example" }
"#;

fn load_policies(policies: &str) -> Loaded {
    load_with(&with_policies(policies), &[(CA_FILE, ca_pem())])
}

fn errors(toml: &str) -> String {
    let src = SourceFile::new("gatehouse.toml", "/etc/gatehouse/gatehouse.toml", toml);
    match crate::parse(&[src]) {
        Ok(_) => panic!("expected errors"),
        Err(d) => d.to_string(),
    }
}

pub(super) fn policy<'a>(l: &'a Loaded, name: &str) -> &'a PolicyStatus {
    l.status
        .backend_tls_policy(&ResourceKey::new(Kind::BackendTLSPolicy, "default", name))
        .unwrap_or_else(|| panic!("no status for BackendTLSPolicy {name}"))
}

/// What a request to `path` on the HTTP listener is sent to, as [`decide`] says (the Service
/// port is the target port here: no Service in these tests sets `targetPort`).
fn target(l: &Loaded, path: &str) -> BackendTarget {
    let req = Req::get(path);
    let view = WithHost {
        req: &req,
        host: "x",
    };
    let local = SocketAddr::from(([127, 0, 0, 1], 80));
    match decided(l, &plaintext(local), &view, 0).action {
        Action::Forward(f) => BackendTarget::Service {
            service: f.service,
            port: f.target_port,
            target_port: f.target_port,
            protocol: f.protocol,
            tls: f.tls,
        },
        Action::Respond(s) if s == Synthetic::unresolved(&Unresolved::InvalidBackendTls) => {
            BackendTarget::Unresolved(Unresolved::InvalidBackendTls)
        }
        Action::Respond(s) => panic!("answered {}", s.status),
    }
}

#[test]
fn a_valid_policy_gives_its_service_port_tls_and_is_accepted_per_ancestor_gateway() {
    let l = load_policies(GOOD);
    let p = policy(&l, "secure-tls");
    assert_cond(&p.conditions, c::ACCEPTED, true, r::ACCEPTED);
    assert_cond(&p.conditions, c::RESOLVED_REFS, true, r::RESOLVED_REFS);
    assert_eq!(p.ancestors.len(), 1);
    assert_eq!(p.ancestors[0].ancestor_ref.name, "gw");
    assert_eq!(p.ancestors[0].ancestor_ref.kind, "Gateway");
    assert_cond(&p.ancestors[0].conditions, c::ACCEPTED, true, r::ACCEPTED);
    assert_eq!(l.snapshot.backend_tls.len(), 1);
    let tls = &l.snapshot.backend_tls[0];
    assert_eq!(tls.hostname, "secure.example");
    assert!(matches!(&tls.trust, TrustAnchors::Bundle(c) if c.len() == 1));
    match target(&l, "/tls") {
        BackendTarget::Service { tls, port, .. } => {
            assert_eq!((tls, port), (Some(0), 443));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn section_name_limits_the_policy_to_the_named_service_port() {
    let l = load_policies(GOOD);
    match target(&l, "/plain") {
        BackendTarget::Service { tls, port, .. } => assert_eq!((tls, port), (None, 80)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn without_section_name_every_port_of_the_service_gets_tls() {
    let l = load_policies(&GOOD.replace(", sectionName = \"https\"", ""));
    assert!(matches!(
        target(&l, "/plain"),
        BackendTarget::Service { tls: Some(0), .. }
    ));
    assert!(matches!(
        target(&l, "/tls"),
        BackendTarget::Service { tls: Some(0), .. }
    ));
}

#[test]
fn same_namespace_ca_refs_need_no_reference_grant() {
    // The ConfigMap and the policy share the default namespace; no ReferenceGrant exists.
    let l = load_policies(GOOD);
    assert_cond(
        &policy(&l, "secure-tls").conditions,
        c::RESOLVED_REFS,
        true,
        r::RESOLVED_REFS,
    );
}

#[test]
fn ca_refs_are_local_a_configmap_in_another_namespace_is_not_found() {
    let other_ns = r#"
[[ConfigMap]]
name = "elsewhere-ca"
namespace = "other"
caFile = "ca/backend-ca.pem"
[[BackendTLSPolicy]]
name = "secure-tls"
targetRefs = [{ group = "", kind = "Service", name = "secure", sectionName = "https" }]
validation = { caCertificateRefs = [{ group = "", kind = "ConfigMap", name = "elsewhere-ca" }], hostname = "secure.example" }
"#;
    let l = load_policies(other_ns);
    let p = policy(&l, "secure-tls");
    assert_cond(
        &p.conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_CA_CERTIFICATE_REF,
    );
    assert_cond(
        &p.conditions,
        c::ACCEPTED,
        false,
        r::NO_VALID_CA_CERTIFICATE,
    );
}

#[test]
fn a_missing_ca_configmap_is_invalid_ca_certificate_ref_and_its_backend_answers_500() {
    let l = load_policies(&GOOD.replace("name = \"backend-ca\"", "name = \"nope\""));
    let p = policy(&l, "secure-tls");
    assert_cond(
        &p.conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_CA_CERTIFICATE_REF,
    );
    assert_cond(
        &p.conditions,
        c::ACCEPTED,
        false,
        r::NO_VALID_CA_CERTIFICATE,
    );
    assert_cond(
        &p.ancestors[0].conditions,
        c::ACCEPTED,
        false,
        r::NO_VALID_CA_CERTIFICATE,
    );
    assert_eq!(
        target(&l, "/tls"),
        BackendTarget::Unresolved(Unresolved::InvalidBackendTls)
    );
    assert_eq!(route(&l, "x", "/tls").as_deref(), Some("500"));
    // The route itself stays accepted with its references resolved, as conformance expects.
    let conds = l.route_conditions(Kind::HTTPRoute, "default", "app");
    assert_cond(&conds[0], c::ACCEPTED, true, r::ACCEPTED);
    assert_cond(&conds[0], c::RESOLVED_REFS, true, r::RESOLVED_REFS);
}

#[test]
fn a_malformed_ca_bundle_is_invalid_ca_certificate_ref() {
    let l = load_with(
        &with_policies(GOOD),
        &[(
            CA_FILE,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )],
    );
    let p = policy(&l, "secure-tls");
    assert_cond(
        &p.conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_CA_CERTIFICATE_REF,
    );
    assert_cond(
        &p.conditions,
        c::ACCEPTED,
        false,
        r::NO_VALID_CA_CERTIFICATE,
    );
    let l = load_with(&with_policies(GOOD), &[(CA_FILE, "no pem here")]);
    assert_cond(
        &policy(&l, "secure-tls").conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_CA_CERTIFICATE_REF,
    );
}

#[test]
fn a_ca_ref_of_an_unsupported_kind_is_invalid_kind() {
    let l = load_policies(&GOOD.replace("kind = \"ConfigMap\"", "kind = \"Bundle\""));
    let p = policy(&l, "secure-tls");
    assert_cond(&p.conditions, c::RESOLVED_REFS, false, r::INVALID_KIND);
    assert_cond(
        &p.conditions,
        c::ACCEPTED,
        false,
        r::NO_VALID_CA_CERTIFICATE,
    );
}

#[test]
fn one_valid_ca_ref_among_invalid_ones_keeps_the_policy_accepted() {
    let l = load_policies(&GOOD.replace(
        "caCertificateRefs = [{ group = \"\", kind = \"ConfigMap\", name = \"backend-ca\" }]",
        "caCertificateRefs = [{ group = \"\", kind = \"ConfigMap\", name = \"nope\" }, { group = \"\", kind = \"ConfigMap\", name = \"backend-ca\" }]",
    ));
    let p = policy(&l, "secure-tls");
    assert_cond(&p.conditions, c::ACCEPTED, true, r::ACCEPTED);
    assert_cond(
        &p.conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_CA_CERTIFICATE_REF,
    );
    assert!(matches!(
        target(&l, "/tls"),
        BackendTarget::Service { tls: Some(0), .. }
    ));
}

#[test]
fn inline_ca_crt_and_secret_ca_file_are_ca_bundles_too() {
    let inline = format!(
        "[[ConfigMap]]\nname = \"inline-ca\"\ndata = {{ \"ca.crt\" = '''\n{}''' }}\n{}",
        ca_pem(),
        GOOD.replace("name = \"backend-ca\"", "name = \"inline-ca\"")
    );
    let l = load_policies(&inline);
    assert_cond(
        &policy(&l, "secure-tls").conditions,
        c::ACCEPTED,
        true,
        r::ACCEPTED,
    );
    let secret = format!(
        "[[Secret]]\nname = \"ca-secret\"\ntype = \"Opaque\"\ncaFile = \"ca/backend-ca.pem\"\n{}",
        GOOD.replace(
            "kind = \"ConfigMap\", name = \"backend-ca\"",
            "kind = \"Secret\", name = \"ca-secret\""
        )
    );
    let l = load_policies(&secret);
    assert_cond(
        &policy(&l, "secure-tls").conditions,
        c::ACCEPTED,
        true,
        r::ACCEPTED,
    );
    assert!(
        l.secret_files
            .iter()
            .any(|f| f.ends_with("ca/backend-ca.pem"))
    );
}

#[test]
fn well_known_system_cas_are_accepted_without_refs() {
    let l = load_policies(
        r#"
[[BackendTLSPolicy]]
name = "system"
targetRefs = [{ group = "", kind = "Service", name = "secure" }]
validation = { wellKnownCACertificates = "System", hostname = "secure.example" }
"#,
    );
    assert_cond(
        &policy(&l, "system").conditions,
        c::ACCEPTED,
        true,
        r::ACCEPTED,
    );
    assert_eq!(l.snapshot.backend_tls[0].trust, TrustAnchors::System);
}

#[test]
fn a_policy_targeting_no_existing_service_is_target_not_found() {
    let l = load_policies(&GOOD.replace(
        "name = \"secure\", sectionName",
        "name = \"ghost\", sectionName",
    ));
    let p = policy(&l, "secure-tls");
    assert_cond(&p.conditions, c::ACCEPTED, false, r::TARGET_NOT_FOUND);
    assert!(p.ancestors.is_empty());
    let l = load_policies(&GOOD.replace("sectionName = \"https\"", "sectionName = \"grpc\""));
    assert_cond(
        &policy(&l, "secure-tls").conditions,
        c::ACCEPTED,
        false,
        r::TARGET_NOT_FOUND,
    );
}

#[test]
fn the_older_policy_wins_a_contested_port_and_the_newer_is_conflicted() {
    let newer = GOOD
        .replace("secure-tls", "newer")
        .replace("secure.example", "other.example");
    let l = load_policies(&format!("{GOOD}{newer}"));
    assert_cond(
        &policy(&l, "secure-tls").conditions,
        c::ACCEPTED,
        true,
        r::ACCEPTED,
    );
    assert_cond(
        &policy(&l, "newer").conditions,
        c::ACCEPTED,
        false,
        r::CONFLICTED,
    );
    let BackendTarget::Service { tls: Some(id), .. } = target(&l, "/tls") else {
        panic!("no tls");
    };
    assert_eq!(l.snapshot.backend_tls[id].hostname, "secure.example");
}

#[test]
fn subject_alt_names_are_compiled_in_order() {
    let l = load_policies(&GOOD.replace(
        "hostname = \"secure.example\"",
        "hostname = \"secure.example\", subjectAltNames = [{ type = \"Hostname\", hostname = \"*.internal.example\" }, { type = \"URI\", uri = \"spiffe://cluster.local/ns/default/sa/secure\" }]",
    ));
    assert_eq!(
        l.snapshot.backend_tls[0].subject_alt_names,
        vec![
            SubjectAltName::Hostname("*.internal.example".into()),
            SubjectAltName::Uri("spiffe://cluster.local/ns/default/sa/secure".into()),
        ]
    );
}

#[test]
fn cel_ca_refs_and_well_known_cas_are_mutually_exclusive() {
    let both = with_policies(&GOOD.replace(
        "hostname = \"secure.example\"",
        "hostname = \"secure.example\", wellKnownCACertificates = \"System\"",
    ));
    let e = errors(&both);
    assert!(e.contains("BackendTLSPolicy \"secure-tls\".validation: must not contain both CACertificateRefs and WellKnownCACertificates"), "{e}");
    let neither = with_policies(&GOOD.replace(
        "caCertificateRefs = [{ group = \"\", kind = \"ConfigMap\", name = \"backend-ca\" }], ",
        "",
    ));
    let e = errors(&neither);
    assert!(
        e.contains("must specify either CACertificateRefs or WellKnownCACertificates"),
        "{e}"
    );
    let e = errors(&with_policies(&GOOD.replace(
        "caCertificateRefs = [{ group = \"\", kind = \"ConfigMap\", name = \"backend-ca\" }]",
        "wellKnownCACertificates = \"Mozilla\"",
    )));
    assert!(e.contains("\"Mozilla\" is not one of \"System\""), "{e}");
}

#[test]
fn errors_are_located_at_the_offending_key() {
    let toml =
        with_policies(&GOOD.replace("hostname = \"secure.example\"", "hostname = \"*.example\""));
    let e = errors(&toml);
    let line = toml
        .lines()
        .position(|l| l.contains("*.example"))
        .expect("line")
        + 1;
    assert!(
        e.contains(&format!("gatehouse.toml:{line}:"))
            && e.contains("validation.hostname: must be a precise hostname"),
        "{e}"
    );
}

#[test]
fn cel_subject_alt_names_carry_exactly_the_field_their_type_names() {
    let san = |s: &str| {
        errors(&with_policies(&GOOD.replace(
            "hostname = \"secure.example\"",
            &format!("hostname = \"secure.example\", subjectAltNames = [{s}]"),
        )))
    };
    assert!(
        san("{ type = \"Hostname\" }")
            .contains("must contain Hostname, if Type is set to Hostname")
    );
    assert!(san("{ type = \"URI\" }").contains("must contain URI, if Type is set to URI"));
    assert!(
        san("{ type = \"URI\", uri = \"spiffe://a/b\", hostname = \"a.example\" }")
            .contains("must not contain Hostname, if Type is not set to Hostname")
    );
    assert!(
        san("{ type = \"Hostname\", hostname = \"a.example\", uri = \"spiffe://a/b\" }")
            .contains("must not contain URI, if Type is not set to URI")
    );
    assert!(san("{ type = \"URI\", uri = \"not-a-uri\" }").contains("is not an absolute URI"));
    assert!(san("{ type = \"IP\", hostname = \"a.example\" }").contains("\"IP\" is not one of"));
    let six = ["{ type = \"URI\", uri = \"spiffe://a/b\" }"; 6].join(", ");
    assert!(san(&six).contains("must have at most 5 entries"));
}

#[test]
fn cel_target_refs_to_one_service_need_distinct_section_names() {
    let targets = |t: &str| {
        errors(&with_policies(&GOOD.replace(
            "targetRefs = [{ group = \"\", kind = \"Service\", name = \"secure\", sectionName = \"https\" }]",
            t,
        )))
    };
    let e = targets(
        "targetRefs = [{ group = \"\", kind = \"Service\", name = \"secure\", sectionName = \"https\" }, { group = \"\", kind = \"Service\", name = \"secure\" }]",
    );
    assert!(e.contains("sectionName must be specified when targetRefs includes 2 or more references to the same target"), "{e}");
    let e = targets(
        "targetRefs = [{ group = \"\", kind = \"Service\", name = \"secure\", sectionName = \"https\" }, { group = \"\", kind = \"Service\", name = \"secure\", sectionName = \"https\" }]",
    );
    assert!(e.contains("sectionName must be unique when targetRefs includes 2 or more references to the same target"), "{e}");
    let e = targets("targetRefs = []");
    assert!(
        e.contains("targetRefs: must have at least one entry"),
        "{e}"
    );
}

#[test]
fn a_configmap_takes_its_ca_from_one_source_only() {
    let e =
        errors("[[ConfigMap]]\nname = \"ca\"\ncaFile = \"a.pem\"\ndata = { \"ca.crt\" = \"x\" }\n");
    assert!(
        e.contains("`caFile` and `data.\"ca.crt\"` are two sources for one key"),
        "{e}"
    );
}

#[test]
fn passthrough_tls_routes_never_get_backend_tls() {
    // TLS passthrough already carries the client's TLS end to end.
    let toml = format!(
        "{}\n[[Gateway]]\nname = \"pt\"\ngatewayClassName = \"gatehouse\"\n[[Gateway.listeners]]\nname = \"tls\"\nprotocol = \"TLS\"\nport = 8443\ntls = {{ mode = \"Passthrough\" }}\n[[TLSRoute]]\nname = \"pass\"\nparentRefs = [{{ name = \"pt\" }}]\nhostnames = [\"a.example\"]\n[[TLSRoute.rules]]\nbackendRefs = [{{ name = \"secure\", port = 443 }}]\n",
        with_policies(GOOD)
    );
    let l = load_with(&toml, &[(CA_FILE, ca_pem())]);
    let pt = l
        .snapshot
        .listeners
        .iter()
        .find(|x| x.port == 8443)
        .expect("listener");
    let gatehouse_model::listener::ListenerKind::TlsPassthrough { routes } = &pt.kind else {
        panic!("not passthrough");
    };
    let rule = routes.lookup("a.example").expect("rule");
    assert!(matches!(
        rule.backends.entries()[0].target,
        BackendTarget::Service { tls: None, .. }
    ));
}

/// Loads [`with_policies`] of `policies` with the CA file holding `ca` (absent: `None`), as a
/// reload after `before`.
fn reload_policies(policies: &str, ca: Option<&str>, before: &Loaded) -> Loaded {
    let files: Vec<(&str, &str)> = ca.map(|t| (CA_FILE, t)).into_iter().collect();
    load_after(&with_policies(policies), &files, &before.previous())
}

/// The policy keeps trusting the one CA of the first load, and is still TLS.
#[track_caller]
fn still_trusts_the_previous_bundle(l: &Loaded) {
    assert!(matches!(
        &l.snapshot.backend_tls[0].trust,
        TrustAnchors::Bundle(c) if c.len() == 1
    ));
    assert!(matches!(
        target(l, "/tls"),
        BackendTarget::Service { tls: Some(0), .. }
    ));
}

#[test]
fn a_ca_file_that_fails_on_reload_keeps_the_last_good_bundle_and_says_so() {
    let before = load_policies(GOOD);
    let backend_ca = ResourceKey::new(Kind::ConfigMap, "default", "backend-ca");
    // Unreadable for a moment, then half-written: both keep the bundle that loaded.
    for (ca, why) in [
        (None, "cannot read"),
        (Some("-----BEGIN CERT"), "malformed"),
    ] {
        let l = reload_policies(GOOD, ca, &before);
        let p = policy(&l, "secure-tls");
        assert_cond(&p.conditions, c::ACCEPTED, true, r::ACCEPTED);
        assert_cond(
            &p.conditions,
            c::RESOLVED_REFS,
            false,
            r::INVALID_CA_CERTIFICATE_REF,
        );
        let message = &find(&p.conditions, c::RESOLVED_REFS).unwrap().message;
        assert!(
            message.contains("the previous CA certificates are still used")
                && message.contains(why),
            "{message}"
        );
        assert_cond(
            &p.ancestors[0].conditions,
            c::RESOLVED_REFS,
            false,
            r::INVALID_CA_CERTIFICATE_REF,
        );
        still_trusts_the_previous_bundle(&l);
        assert_eq!(
            l.stale_certificates
                .iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>(),
            [&backend_ca]
        );
        // A second failed reload still has it: the fallback is carried on.
        still_trusts_the_previous_bundle(&reload_policies(GOOD, None, &l));
    }
    // The file loads again: fresh, nothing stale.
    let missing = reload_policies(GOOD, None, &before);
    let back = reload_policies(GOOD, Some(ca_pem()), &missing);
    assert_cond(
        &policy(&back, "secure-tls").conditions,
        c::RESOLVED_REFS,
        true,
        r::RESOLVED_REFS,
    );
    assert!(back.stale_certificates.is_empty());
}

#[test]
fn a_secret_ca_file_that_fails_on_reload_keeps_the_last_good_bundle_too() {
    let secret = format!(
        "[[Secret]]\nname = \"ca-secret\"\ntype = \"Opaque\"\ncaFile = \"ca/backend-ca.pem\"\n{}",
        GOOD.replace(
            "kind = \"ConfigMap\", name = \"backend-ca\"",
            "kind = \"Secret\", name = \"ca-secret\""
        )
    );
    let before = load_policies(&secret);
    let l = reload_policies(&secret, None, &before);
    assert_cond(
        &policy(&l, "secure-tls").conditions,
        c::ACCEPTED,
        true,
        r::ACCEPTED,
    );
    still_trusts_the_previous_bundle(&l);
    assert_eq!(
        l.stale_certificates,
        [(
            ResourceKey::new(Kind::Secret, "default", "ca-secret"),
            format!("cannot read {CA_FILE}: No such file or directory")
        )]
    );
}

#[test]
fn a_ca_bundle_that_never_loaded_or_was_changed_in_the_configuration_gets_no_previous_one() {
    // Never loaded since the start: no trust, connections fail.
    let never = reload_policies(GOOD, None, &load_policies(""));
    assert_cond(
        &policy(&never, "secure-tls").conditions,
        c::ACCEPTED,
        false,
        r::NO_VALID_CA_CERTIFICATE,
    );
    assert!(never.stale_certificates.is_empty());
    // The reference now names another ConfigMap: a decision, not a rotation.
    let before = load_policies(GOOD);
    let elsewhere = GOOD.replace("name = \"backend-ca\" }]", "name = \"other-ca\" }]");
    let l = reload_policies(&elsewhere, Some(ca_pem()), &before);
    assert_cond(
        &policy(&l, "secure-tls").conditions,
        c::ACCEPTED,
        false,
        r::NO_VALID_CA_CERTIFICATE,
    );
    assert_eq!(
        target(&l, "/tls"),
        BackendTarget::Unresolved(Unresolved::InvalidBackendTls)
    );
    // An inline bundle is configuration, not a file: a bad one has no fallback either.
    let inline = |pem: &str| {
        format!(
            "[[ConfigMap]]\nname = \"inline-ca\"\ndata = {{ \"ca.crt\" = '''\n{pem}''' }}\n{}",
            GOOD.replace("name = \"backend-ca\"", "name = \"inline-ca\"")
        )
    };
    let before = load_policies(&inline(ca_pem()));
    let l = reload_policies(&inline("-----BEGIN CERT"), Some(ca_pem()), &before);
    assert_cond(
        &policy(&l, "secure-tls").conditions,
        c::ACCEPTED,
        false,
        r::NO_VALID_CA_CERTIFICATE,
    );
}
