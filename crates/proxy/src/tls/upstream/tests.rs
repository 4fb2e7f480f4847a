use super::*;

#[test]
fn a_wildcard_on_either_side_matches_exactly_one_label() {
    assert!(dns_matches("a.example", "a.example"));
    assert!(dns_matches("A.Example", "a.example."));
    assert!(dns_matches("a.example", "*.example"));
    assert!(dns_matches("*.example", "a.example"));
    assert!(!dns_matches("a.b.example", "*.example"));
    assert!(!dns_matches("example", "*.example"));
    assert!(!dns_matches("a.example", "b.example"));
}

#[test]
fn subject_alt_names_match_dns_names_and_exact_uris() {
    let mut params =
        rcgen::CertificateParams::new(vec!["backend.internal".to_string()]).expect("params");
    params.subject_alt_names.push(rcgen::SanType::URI(
        rcgen::string::Ia5String::try_from("spiffe://cluster.local/ns/a/sa/b").expect("uri"),
    ));
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    let der = cert.der().as_ref();
    let host = |h: &str| vec![SubjectAltName::Hostname(h.into())];
    let uri = |u: &str| vec![SubjectAltName::Uri(u.into())];
    assert!(san_matches(der, &host("backend.internal")));
    assert!(san_matches(der, &host("*.internal")));
    assert!(!san_matches(der, &host("other.internal")));
    assert!(san_matches(der, &uri("spiffe://cluster.local/ns/a/sa/b")));
    assert!(!san_matches(der, &uri("spiffe://cluster.local/ns/a/sa/c")));
    assert!(!san_matches(
        b"not a certificate",
        &host("backend.internal")
    ));
}
