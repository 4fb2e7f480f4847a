//! BackendTLSPolicy, compiled: how gatehouse speaks TLS to a Service port.
//!
//! `gatehouse-config` resolves each `[[BackendTLSPolicy]]` (CA bundles read and parsed, target
//! Service ports found, conflicts settled) into one [`BackendTls`] per policy that applies, in
//! `Snapshot::backend_tls`. A backendRef to a targeted Service port carries the policy's
//! [`BackendTlsId`] in its `BackendTarget`, so the data plane never looks a policy up per
//! request. The data plane builds one TLS client configuration per entry when it applies the
//! snapshot. Nothing here is HTTP-specific: an L4 splice can use the same entry. A Gateway
//! with a client certificate ([`BackendClientCertificate`]) gets its own configurations, so
//! the data plane keys them by (policy, Gateway).

use crate::ResourceKey;
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use std::hash::{Hash, Hasher};

/// Index of a [`BackendTls`] in `Snapshot::backend_tls`.
pub type BackendTlsId = usize;

/// A name the backend's certificate must carry (`validation.subjectAltNames`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum SubjectAltName {
    /// A DNS name, lowercase; may be a wildcard (`*.example.com`).
    Hostname(String),
    /// A URI such as a SPIFFE id, compared exactly.
    Uri(String),
}

/// What the backend's certificate chain must lead to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TrustAnchors {
    /// The CA certificates of `caCertificateRefs` (every valid one, in order).
    Bundle(#[serde(skip)] Vec<CertificateDer<'static>>),
    /// `wellKnownCACertificates = "System"`: the operating system's trust store.
    System,
}

/// The TLS a Service port is spoken to with.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct BackendTls {
    pub policy: ResourceKey,
    /// `validation.hostname`: the SNI sent, and the name verified when
    /// `subject_alt_names` is empty.
    pub hostname: String,
    /// When not empty, the certificate must carry one of these (and `hostname` is only the
    /// SNI).
    pub subject_alt_names: Vec<SubjectAltName>,
    pub trust: TrustAnchors,
}

/// The certificate a Gateway presents when a BackendTLSPolicy makes it speak TLS to a
/// backend (`Gateway.spec.tls.backend.clientCertificateRef`). Every connection a listener of
/// that Gateway makes under any policy presents it.
#[derive(Clone, Debug)]
pub struct BackendClientCertificate {
    pub gateway: ResourceKey,
    pub certificate: std::sync::Arc<crate::tls::Certificate>,
}

impl BackendTls {
    /// A stable digest of everything that decides whether a connection may be reused: equal
    /// for an unchanged policy across reloads, different when anything in it changes.
    pub fn digest(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        // Never 0: a peer without TLS has group key 0.
        h.finish().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    fn tls(hostname: &str) -> BackendTls {
        BackendTls {
            policy: ResourceKey::new(Kind::BackendTLSPolicy, "default", "p"),
            hostname: hostname.into(),
            subject_alt_names: vec![],
            trust: TrustAnchors::System,
        }
    }

    #[test]
    fn digest_is_stable_and_follows_every_field() {
        assert_eq!(tls("a.example").digest(), tls("a.example").digest());
        assert_ne!(tls("a.example").digest(), tls("b.example").digest());
        let mut with_san = tls("a.example");
        with_san
            .subject_alt_names
            .push(SubjectAltName::Uri("spiffe://x/y".into()));
        assert_ne!(with_san.digest(), tls("a.example").digest());
        assert_ne!(tls("a.example").digest(), 0);
    }
}
