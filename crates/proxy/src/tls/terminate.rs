//! TLS termination: one rustls `ServerConfig` per terminating listener of a generation (HTTPS,
//! and TLS with mode Terminate), choosing among the listener's certificates by SNI, and what
//! a finished handshake negotiated (on HTTPS, ALPN decides HTTP/2 or HTTP/1.1; a TLS
//! listener offers no ALPN, since what it carries is opaque to it).
//!
//! Resumption: session tickets and a session cache per listener, kept across reloads for as
//! long as the listener's certificates stay the same.

use gatehouse_model::Snapshot;
use gatehouse_model::listener::ListenerKind;
use gatehouse_model::tls::Certificate;
use rustls::ServerConfig;
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// Sessions remembered for resumption by session ID, per listener.
const SESSION_CACHE: usize = 4096;

/// The crypto provider: ring only.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A listener's certificates, ready to sign.
#[derive(Debug)]
struct ListenerCerts {
    keys: Vec<(Arc<CertifiedKey>, CertificateDerOwned)>,
}

#[derive(Debug)]
struct CertificateDerOwned(rustls::pki_types::CertificateDer<'static>);

impl ResolvesServerCert for ListenerCerts {
    /// The first certificate valid for the SNI, else the first one: the listener was already
    /// chosen by SNI, so its certificates are the ones the operator meant for this name.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if self.keys.len() > 1
            && let Some(name) = hello
                .server_name()
                .and_then(|s| ServerName::try_from(s.to_string()).ok())
        {
            for (key, der) in &self.keys {
                let valid = webpki::EndEntityCert::try_from(&der.0)
                    .is_ok_and(|c| c.verify_is_valid_for_subject_name(&name).is_ok());
                if valid {
                    return Some(key.clone());
                }
            }
        }
        self.keys.first().map(|(k, _)| k.clone())
    }
}

fn certified_key(
    c: &Certificate,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, rustls::Error> {
    let key = provider.key_provider.load_private_key(c.key.clone_key())?;
    Ok(CertifiedKey::new(c.chain.clone(), key))
}

/// The TLS server configuration of one HTTPS listener, with what it was built from.
#[derive(Debug)]
struct ListenerConfig {
    /// `gateway/listener`.
    label: String,
    /// Whether ALPN offers h2 and http/1.1 (HTTPS), or nothing (TLS, mode Terminate).
    http: bool,
    certificates: Vec<Arc<Certificate>>,
    config: Arc<ServerConfig>,
}

impl ListenerConfig {
    /// Whether this configuration serves exactly `certificates` for `label`.
    fn serves(&self, label: &str, http: bool, certificates: &[Arc<Certificate>]) -> bool {
        self.label == label
            && self.http == http
            && self.certificates.len() == certificates.len()
            && self
                .certificates
                .iter()
                .zip(certificates)
                .all(|(a, b)| a.chain == b.chain && a.key.secret_der() == b.key.secret_der())
    }
}

/// The TLS server configurations of one generation, by listener index.
#[derive(Debug, Default)]
pub struct TlsConfigs {
    by_listener: HashMap<usize, ListenerConfig>,
}

impl TlsConfigs {
    /// Builds a configuration for every terminating listener; a certificate rustls cannot load
    /// leaves its listener out (its connections are closed) and is logged. A listener whose
    /// certificates did not change keeps its configuration from `previous`, and with it its
    /// session cache and ticket keys: clients resume across the reload. A listener whose
    /// certificates changed starts afresh, so every client sees the new certificate.
    pub fn build(
        snapshot: &Snapshot,
        metrics: &crate::metrics::Metrics,
        previous: &TlsConfigs,
    ) -> TlsConfigs {
        let provider = provider();
        let mut by_listener = HashMap::new();
        for (i, l) in snapshot.listeners.iter().enumerate() {
            let (certificates, http) = match &l.kind {
                ListenerKind::Https { certificates, .. } => (certificates, true),
                ListenerKind::TlsTerminate { certificates, .. } => (certificates, false),
                _ => continue,
            };
            let label = l.label();
            for c in certificates {
                if let Some(t) = crate::metrics::not_after(&c.chain[0]) {
                    metrics
                        .tls_certificate_expiry
                        .with_label_values(&[&c.secret.namespaced_name()])
                        .set(t as f64);
                }
            }
            let kept = previous
                .by_listener
                .values()
                .find(|p| p.serves(&label, http, certificates));
            let config = match kept {
                Some(p) => p.config.clone(),
                None => match new_config(&label, http, certificates, &provider) {
                    Some(c) => c,
                    None => continue,
                },
            };
            by_listener.insert(
                i,
                ListenerConfig {
                    label,
                    http,
                    certificates: certificates.clone(),
                    config,
                },
            );
        }
        TlsConfigs { by_listener }
    }

    pub fn get(&self, listener: usize) -> Option<&Arc<ServerConfig>> {
        self.by_listener.get(&listener).map(|l| &l.config)
    }
}

/// A rustls configuration for one listener's certificates, with a session cache and ticket
/// keys of its own.
fn new_config(
    label: &str,
    http: bool,
    certificates: &[Arc<Certificate>],
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Option<Arc<ServerConfig>> {
    let mut keys = Vec::new();
    for c in certificates {
        match certified_key(c, provider) {
            Ok(k) => keys.push((Arc::new(k), CertificateDerOwned(c.chain[0].clone()))),
            Err(e) => {
                tracing::error!(listener = %label, secret = %c.secret, "certificate not usable: {e}")
            }
        }
    }
    if keys.is_empty() {
        return None;
    }
    let config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map(|b| {
            b.with_no_client_auth()
                .with_cert_resolver(Arc::new(ListenerCerts { keys }))
        });
    let mut config = match config {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(listener = %label, "TLS configuration failed: {e}");
            return None;
        }
    };
    if http {
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    match rustls::crypto::ring::Ticketer::new() {
        Ok(t) => config.ticketer = t,
        Err(e) => tracing::warn!(listener = %label, "TLS session tickets off: {e}"),
    }
    Some(Arc::new(config))
}

/// What a TLS handshake negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub version: &'static str,
    pub cipher: &'static str,
    /// Whether ALPN chose HTTP/2.
    pub h2: bool,
}

/// The version, cipher suite and protocol of a finished handshake.
pub fn negotiated(conn: &rustls::ServerConnection) -> Negotiated {
    Negotiated {
        version: match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        },
        cipher: conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown"),
        h2: conn.alpn_protocol() == Some(b"h2"),
    }
}
