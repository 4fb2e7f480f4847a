//! Last good certificate per Secret: a Secret whose files fail to load keeps serving the
//! certificate it last loaded, so a rotation caught half-way (certbot's unlink-then-link, a
//! certificate written before its key, a key unreadable for a moment) never takes a serving
//! listener down. Only a Secret that never loaded leaves its listener unprogrammed.

use super::*;
use gatehouse_model::listener::ListenerKind;
use gatehouse_model::status::{condition as c, reason as r};
use std::sync::Arc;

const HTTPS: &str = r#"
[[Secret]]
name = "site"
namespace = "infra"
certFile = "certs/cert.pem"
keyFile = "certs/key.pem"

[[Gateway]]
name = "gw"
namespace = "infra"
gatewayClassName = "gatehouse"
[[Gateway.listeners]]
name = "https"
protocol = "HTTPS"
port = 443
tls = { certificateRefs = [{ name = "site" }] }
"#;

const CERT: &str = "/etc/gatehouse/certs/cert.pem";
const KEY: &str = "/etc/gatehouse/certs/key.pem";

fn fresh() -> Loaded {
    load_with(HTTPS, &[(CERT, cert_pem()), (KEY, key_pem())])
}

/// The certificates the HTTPS listener serves.
fn served(l: &Loaded) -> Vec<Arc<gatehouse_model::tls::Certificate>> {
    l.snapshot
        .listeners
        .iter()
        .find_map(|x| match &x.kind {
            ListenerKind::Https { certificates, .. } => Some(certificates.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn site() -> ResourceKey {
    ResourceKey::new(Kind::Secret, "infra", "site")
}

#[test]
fn a_loaded_certificate_is_carried_to_the_next_load() {
    let l = fresh();
    assert!(l.certificates.contains_key(&site()));
    assert!(l.stale_certificates.is_empty());
    assert_eq!(served(&l).len(), 1);
}

#[test]
fn a_key_that_no_longer_matches_keeps_the_previous_certificate_served() {
    let before = fresh();
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    // The certificate was rotated, its key not yet: not a pair.
    let after = load_after(
        HTTPS,
        &[(CERT, cert_pem()), (KEY, &other)],
        &before.previous(),
    );
    let ls = listener(after.gw("infra", "gw"), "https");
    assert_cond(
        &ls.conditions,
        c::RESOLVED_REFS,
        false,
        r::INVALID_CERTIFICATE_REF,
    );
    assert_cond(&ls.conditions, c::PROGRAMMED, true, r::PROGRAMMED);
    let msg = &find(&ls.conditions, c::RESOLVED_REFS).unwrap().message;
    assert!(msg.contains("does not belong to the certificate"), "{msg}");
    assert!(
        msg.contains("the previous certificate is still served"),
        "{msg}"
    );
    let served = served(&after);
    assert_eq!(served.len(), 1);
    assert!(Arc::ptr_eq(&served[0], &before.certificates[&site()]));
    assert_eq!(after.stale_certificates.len(), 1);
    assert_eq!(after.stale_certificates[0].0, site());
}

#[test]
fn unreadable_files_keep_the_previous_certificate_until_they_load_again() {
    let before = fresh();
    let missing = load_after(HTTPS, &[(CERT, cert_pem())], &before.previous());
    assert_eq!(served(&missing).len(), 1);
    // The stale certificate is carried on, through any number of failed loads.
    let still = load_after(HTTPS, &[], &missing.previous());
    assert_eq!(served(&still).len(), 1);
    assert!(Arc::ptr_eq(
        &served(&still)[0],
        &before.certificates[&site()]
    ));
    // Once the pair loads, it is the one served and nothing is stale.
    let back = load_after(
        HTTPS,
        &[(CERT, cert_pem()), (KEY, key_pem())],
        &still.previous(),
    );
    assert!(back.stale_certificates.is_empty());
    assert!(!Arc::ptr_eq(
        &served(&back)[0],
        &before.certificates[&site()]
    ));
    let ls = listener(back.gw("infra", "gw"), "https");
    assert_cond(&ls.conditions, c::RESOLVED_REFS, true, r::RESOLVED_REFS);
}

#[test]
fn a_secret_that_never_loaded_leaves_its_listener_unprogrammed() {
    let l = load_with(HTTPS, &[(CERT, cert_pem())]);
    let ls = listener(l.gw("infra", "gw"), "https");
    assert_cond(&ls.conditions, c::PROGRAMMED, false, r::INVALID);
    assert!(served(&l).is_empty());
    assert!(l.certificates.is_empty());
}

#[test]
fn a_secret_changed_to_another_type_gets_no_previous_certificate() {
    // Changing the Secret itself is the operator's decision, not a rotation in flight.
    let before = fresh();
    let opaque = HTTPS.replace(
        "keyFile = \"certs/key.pem\"",
        "keyFile = \"certs/key.pem\"\ntype = \"Opaque\"",
    );
    let after = load_after(
        &opaque,
        &[(CERT, cert_pem()), (KEY, key_pem())],
        &before.previous(),
    );
    let ls = listener(after.gw("infra", "gw"), "https");
    assert_cond(&ls.conditions, c::PROGRAMMED, false, r::INVALID);
    assert!(after.stale_certificates.is_empty());
}

#[test]
fn a_stale_certificate_does_not_cover_another_secret_that_never_loaded() {
    // Two certificates on one listener: one stale, one never loaded. The listener is not
    // programmed (serving only some of its names would present certificates the operator
    // did not intend), and both problems are reported.
    let two = format!(
        "{}\n[[Secret]]\nname = \"other\"\nnamespace = \"infra\"\ncertFile = \"certs/other.pem\"\nkeyFile = \"certs/other.key\"\n",
        HTTPS.replace(
            "certificateRefs = [{ name = \"site\" }]",
            "certificateRefs = [{ name = \"site\" }, { name = \"other\" }]"
        )
    );
    let before = fresh();
    let after = load_after(&two, &[], &before.previous());
    let ls = listener(after.gw("infra", "gw"), "https");
    assert_cond(&ls.conditions, c::PROGRAMMED, false, r::INVALID);
    let msg = &find(&ls.conditions, c::RESOLVED_REFS).unwrap().message;
    assert!(msg.contains("infra/other"), "{msg}");
    assert!(msg.contains("infra/site"), "{msg}");
}
