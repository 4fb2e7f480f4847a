//! TLS to backends (BackendTLSPolicy): one client configuration per policy, client
//! certificate (the connecting listener's Gateway's `tls.backend.clientCertificateRef`, or
//! none) and protocol, built when a snapshot is applied, never per request.
//!
//! ```text
//! apply(Snapshot) ─▶ UpstreamTls::build: per Snapshot::backend_tls entry, trust anchors
//!   (CA bundle, or the system store read once per apply) ─▶ verifier ─▶ ClientConfig for
//!   HTTP/1.1 (ALPN http/1.1), for HTTP/2 (ALPN h2) and for a layer-4 stream (no ALPN)
//!   ─▶ Arc<TlsConnect> each
//! upstream_peer: a backendRef with a policy id puts its TlsConnect on the HttpPeer as
//!   Pingora's custom L4 connector ─▶ TCP connect + rustls handshake (SNI = hostname) ─▶
//!   the TLS stream handed to Pingora as a virtual socket, pooled under the policy's digest
//! l4::connect (TCPRoute, TLSRoute Terminate): TCP connect ─▶ PROXY header (plaintext) ─▶
//!   TlsConnect::handshake_within with the stream configuration ─▶ splice over TLS
//! ```
//!
//! A layer-4 stream offers no ALPN: the bytes spliced are whatever the client sends, so
//! gatehouse cannot name their protocol (offering one would be a guess the backend might act
//! on); a backend that needs a protocol picks its own default.
//!
//! Verification fails closed: a chain that does not lead to the policy's CA, an expired
//! certificate, or a name that matches neither `hostname` nor (when given) one of
//! `subjectAltNames` fails the handshake; the request gets 502, the failure is counted in
//! `gatehouse_backend_tls_errors_total{policy,reason}` and logged with the reason. Nothing
//! here depends on HTTP: the layer-4 splice uses [`TlsConnect::handshake_within`].

use async_trait::async_trait;
use gatehouse_model::Snapshot;
use gatehouse_model::backend::AppProtocol;
use gatehouse_model::backend_tls::{BackendTls, BackendTlsId, SubjectAltName, TrustAnchors};
use gatehouse_model::tls::Certificate;
use pingora_core::connectors::L4Connect;
use pingora_core::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora_core::protocols::l4::stream::Stream;
use pingora_core::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use pingora_error::{Error, ErrorType, Result};
use prometheus::{IntCounter, IntCounterVec};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Why a TLS connection to a backend failed, as the metric's `reason` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The chain does not lead to the policy's CA certificates.
    UnknownCa,
    /// The certificate (or one in its chain) is expired or not yet valid.
    Expired,
    /// Neither `hostname` nor a `subjectAltNames` entry matches the certificate.
    NameMismatch,
    /// HTTP/2 was wanted (appProtocol kubernetes.io/h2c) and the backend did not agree to h2.
    Alpn,
    /// Anything else in the handshake (protocol error, reset, timeout).
    Handshake,
}

impl Failure {
    const ALL: [Failure; 5] = [
        Failure::UnknownCa,
        Failure::Expired,
        Failure::NameMismatch,
        Failure::Alpn,
        Failure::Handshake,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Failure::UnknownCa => "unknown_ca",
            Failure::Expired => "expired",
            Failure::NameMismatch => "name_mismatch",
            Failure::Alpn => "alpn",
            Failure::Handshake => "handshake",
        }
    }

    fn of(e: &std::io::Error) -> Failure {
        let Some(rustls::Error::InvalidCertificate(c)) =
            e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        else {
            return Failure::Handshake;
        };
        match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => Failure::UnknownCa,
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => Failure::Expired,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Failure::NameMismatch
            }
            _ => Failure::Handshake,
        }
    }
}

/// The TLS client side of one policy for one protocol: what the custom L4 connector of a
/// Pingora peer runs.
pub struct TlsConnect {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    policy: String,
    want_h2: bool,
    /// Series of `gatehouse_backend_tls_errors_total` for this policy, by [`Failure::ALL`].
    errors: [IntCounter; 5],
}

impl std::fmt::Debug for TlsConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnect")
            .field("policy", &self.policy)
            .field("server_name", &self.server_name)
            .field("want_h2", &self.want_h2)
            .finish_non_exhaustive()
    }
}

impl TlsConnect {
    /// Runs the client handshake on a connected stream, counting a failure by its reason.
    pub async fn handshake<S>(
        &self,
        stream: S,
    ) -> std::result::Result<TlsStream<S>, (Failure, String)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let result = TlsConnector::from(self.config.clone())
            .connect(self.server_name.clone(), stream)
            .await;
        let fail = |why: Failure, message: String| {
            self.count(why);
            Err((why, message))
        };
        match result {
            Ok(tls) => {
                if self.want_h2 && tls.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
                    return fail(
                        Failure::Alpn,
                        "the backend did not negotiate h2 (ALPN)".into(),
                    );
                }
                Ok(tls)
            }
            Err(e) => fail(Failure::of(&e), e.to_string()),
        }
    }

    /// [`TlsConnect::handshake`] bounded by `limit`; running out of time is a failed
    /// handshake, counted like one.
    pub async fn handshake_within<S>(
        &self,
        stream: S,
        limit: std::time::Duration,
    ) -> std::result::Result<TlsStream<S>, (Failure, String)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(limit, self.handshake(stream)).await {
            Ok(r) => r,
            Err(_) => {
                self.count(Failure::Handshake);
                Err((
                    Failure::Handshake,
                    format!("no handshake within {}s", limit.as_secs()),
                ))
            }
        }
    }

    fn count(&self, why: Failure) {
        self.errors[Failure::ALL.iter().position(|f| *f == why).unwrap_or(4)].inc();
    }

    /// `namespace/name` of the policy, for logs.
    pub fn policy(&self) -> &str {
        &self.policy
    }
}

#[async_trait]
impl L4Connect for TlsConnect {
    async fn connect(&self, addr: &PeerAddr) -> Result<Stream> {
        let Some(inet) = addr.as_inet().copied() else {
            return Err(Error::explain(
                ErrorType::ConnectError,
                "backend TLS needs an IP endpoint",
            ));
        };
        let tcp = TcpStream::connect(inet).await.map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
                _ => ErrorType::ConnectError,
            };
            Error::because(kind, format!("connecting to {inet}"), e)
        })?;
        let _ = tcp.set_nodelay(true);
        let tls = self.handshake(tcp).await.map_err(|(why, message)| {
            let mut e = Error::explain(
                ErrorType::TLSHandshakeFailure,
                format!(
                    "TLS to backend {inet} for BackendTLSPolicy {} failed ({}): {message}",
                    self.policy,
                    why.label()
                ),
            );
            e.as_up();
            e
        })?;
        Ok(Stream::from(VirtualSocketStream::new(Box::new(TlsSocket(
            tls,
        )))))
    }
}

/// A TLS client stream over TCP as Pingora's virtual socket.
struct TlsSocket(TlsStream<TcpStream>);

impl std::fmt::Debug for TlsSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSocket")
            .field("peer", &self.0.get_ref().0.peer_addr().ok())
            .finish()
    }
}

impl VirtualSocket for TlsSocket {
    fn set_socket_option(&self, opt: VirtualSockOpt) -> std::io::Result<()> {
        let tcp = self.0.get_ref().0;
        match opt {
            VirtualSockOpt::NoDelay => tcp.set_nodelay(true),
            VirtualSockOpt::KeepAlive(ka) => socket2::SockRef::from(tcp).set_tcp_keepalive(
                &socket2::TcpKeepalive::new()
                    .with_time(ka.idle)
                    .with_interval(ka.interval),
            ),
            _ => Ok(()),
        }
    }
}

impl AsyncRead for TlsSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// What a peer to a policy's Service port needs.
#[derive(Debug, Clone)]
pub struct UpstreamPeerTls {
    pub connect: Arc<TlsConnect>,
    /// Keeps pooled connections of different (or changed) policies apart.
    pub group_key: u64,
    pub sni: String,
}

impl UpstreamPeerTls {
    /// Makes `peer` speak this TLS: the stream is made by our connector and handed to
    /// Pingora as a plain one; the group key keeps its pooled connections apart from
    /// plaintext ones and from those of another (or a changed) policy.
    pub fn apply(&self, peer: &mut pingora_core::upstreams::peer::HttpPeer) {
        peer.options.custom_l4 = Some(self.connect.clone());
        peer.group_key = self.group_key;
        peer.sni.clone_from(&self.sni);
    }
}

#[derive(Debug)]
struct Entry {
    http1: UpstreamPeerTls,
    h2: UpstreamPeerTls,
    /// A layer-4 stream: no ALPN.
    stream: Arc<TlsConnect>,
}

/// The TLS client side of every BackendTLSPolicy of a snapshot, by `BackendTlsId` and by
/// the client certificate the connecting listener's Gateway presents (its *identity*).
#[derive(Debug, Default)]
pub struct UpstreamTls {
    /// `[policy][identity]`: identity 0 presents no certificate, identity `k` the one of
    /// `Snapshot::backend_client_certificates[k - 1]`.
    entries: Vec<Vec<Option<Entry>>>,
    /// The identity of each listener of the snapshot, by listener index.
    identity_of: Vec<usize>,
}

impl UpstreamTls {
    /// Builds one configuration per policy, identity and protocol. A policy whose
    /// configuration cannot be built (no usable trust anchor) gets none, and neither does an
    /// identity whose certificate rustls refuses: their connections fail closed (502).
    pub fn build(snapshot: &Snapshot, errors: &IntCounterVec) -> UpstreamTls {
        let system = snapshot
            .backend_tls
            .iter()
            .any(|t| t.trust == TrustAnchors::System)
            .then(system_roots);
        let identities: Vec<Option<&Certificate>> = std::iter::once(None)
            .chain(
                snapshot
                    .backend_client_certificates
                    .iter()
                    .map(|c| Some(&*c.certificate)),
            )
            .collect();
        let entries = snapshot
            .backend_tls
            .iter()
            .map(|t| {
                let verifier = match verifier(t, system.as_ref()) {
                    Ok(v) => v,
                    Err(why) => {
                        tracing::warn!(policy = %t.policy.namespaced_name(), "backend TLS unusable: {why}");
                        return identities.iter().map(|_| None).collect();
                    }
                };
                identities
                    .iter()
                    .map(|identity| match entry(t, &verifier, *identity, errors) {
                        Ok(e) => Some(e),
                        Err(why) => {
                            tracing::warn!(
                                policy = %t.policy.namespaced_name(),
                                secret = identity.map(|c| c.secret.namespaced_name()).unwrap_or_default(),
                                "backend TLS unusable with this client certificate: {why}"
                            );
                            None
                        }
                    })
                    .collect()
            })
            .collect();
        let identity_of = snapshot
            .listeners
            .iter()
            .map(|l| {
                snapshot
                    .backend_client_certificates
                    .iter()
                    .position(|c| c.gateway == l.gateway)
                    .map_or(0, |i| i + 1)
            })
            .collect();
        UpstreamTls {
            entries,
            identity_of,
        }
    }

    fn entry(&self, id: BackendTlsId, listener: Option<usize>) -> Option<&Entry> {
        let identity = listener
            .and_then(|l| self.identity_of.get(l).copied())
            .unwrap_or(0);
        self.entries.get(id)?.get(identity)?.as_ref()
    }

    /// The TLS of a policy for a Service port speaking `protocol`, for a connection that
    /// came in on `listener` (whose Gateway may present a client certificate).
    pub fn get(
        &self,
        id: BackendTlsId,
        protocol: AppProtocol,
        listener: Option<usize>,
    ) -> Option<&UpstreamPeerTls> {
        let e = self.entry(id, listener)?;
        Some(match protocol {
            AppProtocol::H2c => &e.h2,
            AppProtocol::Http1 | AppProtocol::WebSocket => &e.http1,
        })
    }

    /// The TLS of a policy for a layer-4 stream (TCPRoute, TLSRoute Terminate) that came in
    /// on `listener`.
    pub fn stream(&self, id: BackendTlsId, listener: Option<usize>) -> Option<&Arc<TlsConnect>> {
        Some(&self.entry(id, listener)?.stream)
    }
}

/// The operating system's trust store (rustls-native-certs: `SSL_CERT_FILE`/`SSL_CERT_DIR`,
/// else the distribution's bundle), read once per applied snapshot that needs it.
fn system_roots() -> Arc<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!("reading the system CA certificates: {e}");
    }
    let mut store = RootCertStore::empty();
    let (_, ignored) = store.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::debug!(ignored, "system CA certificates rustls cannot use");
    }
    Arc::new(store)
}

/// The policy's verifier.
fn verifier(
    t: &BackendTls,
    system: Option<&Arc<RootCertStore>>,
) -> std::result::Result<Arc<PolicyVerifier>, String> {
    let roots = match &t.trust {
        TrustAnchors::System => system.cloned().ok_or("no system trust store")?,
        TrustAnchors::Bundle(certs) => {
            let mut store = RootCertStore::empty();
            for c in certs {
                store.add(c.clone()).map_err(|e| e.to_string())?;
            }
            Arc::new(store)
        }
    };
    if roots.is_empty() {
        return Err("no CA certificate to verify the backend with".into());
    }
    let provider = rustls::crypto::ring::default_provider();
    let inner =
        WebPkiServerVerifier::builder_with_provider(roots.clone(), Arc::new(provider.clone()))
            .build()
            .map_err(|e| e.to_string())?;
    Ok(Arc::new(PolicyVerifier {
        inner,
        roots,
        algorithms: provider.signature_verification_algorithms,
        subject_alt_names: t.subject_alt_names.clone(),
    }))
}

/// The configurations of one policy for one identity (`None`: no client certificate).
fn entry(
    t: &BackendTls,
    verifier: &Arc<PolicyVerifier>,
    identity: Option<&Certificate>,
    errors: &IntCounterVec,
) -> std::result::Result<Entry, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_name = ServerName::try_from(t.hostname.clone()).map_err(|e| e.to_string())?;
    let policy = t.policy.namespaced_name();
    // Pooled connections are kept apart per policy content and per client certificate: a
    // connection made presenting one Gateway's certificate never serves another Gateway.
    let group_key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        t.digest().hash(&mut h);
        if let Some(c) = identity {
            c.chain.iter().for_each(|d| d.as_ref().hash(&mut h));
        }
        h.finish()
    };
    let make = |alpn: &[u8], want_h2: bool| -> std::result::Result<UpstreamPeerTls, String> {
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone());
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(c) => builder
                .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
                .map_err(|e| e.to_string())?,
        };
        config.alpn_protocols = if alpn.is_empty() {
            Vec::new()
        } else {
            vec![alpn.to_vec()]
        };
        Ok(UpstreamPeerTls {
            connect: Arc::new(TlsConnect {
                config: Arc::new(config),
                server_name: server_name.clone(),
                policy: policy.clone(),
                want_h2,
                errors: Failure::ALL
                    .map(|f| errors.with_label_values(&[policy.as_str(), f.label()])),
            }),
            // HTTP/1.1 and h2 connections never share a pool entry. Never 0: a peer
            // without TLS has group key 0.
            group_key: group_key.wrapping_add(u64::from(want_h2)).max(1),
            sni: t.hostname.clone(),
        })
    };
    Ok(Entry {
        http1: make(b"http/1.1", false)?,
        h2: make(b"h2", true)?,
        stream: make(b"", false)?.connect,
    })
}

/// The policy's verification: the chain must lead to its trust anchors; the name checked
/// is `hostname` (the SNI), or, when `subjectAltNames` are given, one of those instead.
#[derive(Debug)]
struct PolicyVerifier {
    inner: Arc<WebPkiServerVerifier>,
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
    subject_alt_names: Vec<SubjectAltName>,
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if self.subject_alt_names.is_empty() {
            return self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
        }
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if san_matches(end_entity.as_ref(), &self.subject_alt_names) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether the certificate carries one of `wanted` among its subject alternative names
/// (DNS names with wildcards on either side matching one label; URIs exactly).
pub fn san_matches(der: &[u8], wanted: &[SubjectAltName]) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    san.value.general_names.iter().any(|name| {
        wanted.iter().any(|w| match (w, name) {
            (SubjectAltName::Hostname(h), GeneralName::DNSName(d)) => dns_matches(h, d),
            (SubjectAltName::Uri(u), GeneralName::URI(c)) => u == c,
            _ => false,
        })
    })
}

fn dns_matches(wanted: &str, presented: &str) -> bool {
    let wanted = wanted.to_ascii_lowercase();
    let presented = presented.trim_end_matches('.').to_ascii_lowercase();
    if wanted == presented {
        return true;
    }
    // A wildcard on one side stands for exactly one label of the other.
    let one_label = |wild: &str, name: &str| {
        wild.strip_prefix("*.").is_some_and(|suffix| {
            name.split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && label != "*" && rest == suffix)
        })
    };
    one_label(&presented, &wanted) || one_label(&wanted, &presented)
}

#[cfg(test)]
mod tests;
