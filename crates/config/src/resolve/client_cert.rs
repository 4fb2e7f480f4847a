//! A Gateway's client certificate towards TLS backends (`tls.backend.clientCertificateRef`)
//! and the Gateway's `ResolvedRefs` condition it feeds.
//!
//! ```text
//! Gateway ─▶ ref (Secret, same namespace by default; another one needs a ReferenceGrant
//!   from Gateway to Secret) ─▶ CertificateCache (shared with listener certificates: read
//!   once per Secret, last good certificate kept) ─▶ Snapshot::backend_client_certificates
//! ```
//!
//! A ref that cannot be used is `ResolvedRefs=False` on the Gateway (`RefNotPermitted`, or
//! `InvalidClientCertificateRef` for everything else); the Gateway stays accepted and its
//! backend connections present no certificate. A Secret that loaded before and fails now
//! keeps presenting its previous certificate, with the condition saying so, as a listener
//! certificate does.

use super::Problem;
use super::gateways::{CertificateCache, CertificateLoad};
use super::grants::{self, permitted};
use crate::raw::{Document, Gateway};
use gatehouse_model::resource::{CORE_GROUP, GATEWAY_GROUP};
use gatehouse_model::status::{Condition, condition, reason};
use gatehouse_model::tls::Certificate;
use std::sync::Arc;

/// What a Gateway's clientCertificateRef resolved to.
#[derive(Debug, Default)]
pub(crate) struct ClientCertificate {
    /// The certificate to present (also while stale).
    pub certificate: Option<Arc<Certificate>>,
    /// Why the ref is not (entirely) fine.
    pub problem: Option<Problem>,
}

/// Resolves the clientCertificateRef of `gw`, if it has one.
pub(crate) fn resolve(
    doc: &Document,
    gw: &Gateway,
    certs: &mut CertificateCache<'_>,
) -> ClientCertificate {
    let Some(r) = &gw.backend_client_certificate_ref else {
        return ClientCertificate::default();
    };
    let ns = r.namespace.as_deref().unwrap_or(&gw.meta.namespace);
    let display = format!("tls.backend.clientCertificateRef {ns}/{}", r.name);
    let invalid = |why: String| ClientCertificate {
        certificate: None,
        problem: Some(Problem::new(
            reason::INVALID_CLIENT_CERTIFICATE_REF,
            format!("{display}: {why}"),
        )),
    };
    if r.group != CORE_GROUP || r.kind != "Secret" {
        return invalid(format!(
            "group \"{}\" kind \"{}\" is not a Secret",
            r.group, r.kind
        ));
    }
    let from = grants::From {
        group: GATEWAY_GROUP,
        kind: "Gateway",
        namespace: &gw.meta.namespace,
    };
    let to = grants::To {
        group: CORE_GROUP,
        kind: "Secret",
        namespace: ns,
        name: &r.name,
    };
    if !permitted(&doc.reference_grants, from, to) {
        return ClientCertificate {
            certificate: None,
            problem: Some(Problem::new(
                reason::REF_NOT_PERMITTED,
                format!(
                    "{display}: no ReferenceGrant in namespace \"{ns}\" allows this Gateway to use it"
                ),
            )),
        };
    }
    let Some(secret) = doc
        .secrets
        .iter()
        .find(|s| s.meta.namespace == ns && s.meta.name == r.name)
    else {
        return invalid("Secret not found".into());
    };
    match certs.load(secret) {
        CertificateLoad::Fresh(c) => ClientCertificate {
            certificate: Some(c),
            problem: None,
        },
        CertificateLoad::Stale(c, why) => ClientCertificate {
            certificate: Some(c),
            problem: Some(Problem::new(
                reason::INVALID_CLIENT_CERTIFICATE_REF,
                format!("{display}: {why}; the previous certificate is still presented"),
            )),
        },
        CertificateLoad::Failed(why) => invalid(why),
    }
}

/// The Gateway's `ResolvedRefs`: its own refs first, then a summary of its listeners'.
pub(crate) fn resolved_refs(client: &ClientCertificate, listeners_resolved: bool) -> Condition {
    match &client.problem {
        Some(p) => Condition::new(condition::RESOLVED_REFS, false, p.reason, p.message.clone()),
        None if !listeners_resolved => Condition::new(
            condition::RESOLVED_REFS,
            false,
            reason::LISTENERS_NOT_RESOLVED,
            "a listener's references are not resolved",
        ),
        None => Condition::new(condition::RESOLVED_REFS, true, reason::RESOLVED_REFS, ""),
    }
}
