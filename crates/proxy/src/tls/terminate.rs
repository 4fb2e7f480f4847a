//! TLS termination: one rustls `ServerConfig` per HTTPS listener of a generation, choosing
//! among the listener's certificates by SNI, and [`TlsConn`], the terminated stream in the
//! shape pingora's HTTP server takes (ALPN decides HTTP/2 or HTTP/1.1).

use async_trait::async_trait;
use gatehouse_model::Snapshot;
use gatehouse_model::listener::ListenerKind;
use gatehouse_model::tls::Certificate;
use pingora_core::protocols::tls::{ALPN, SslDigest};
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use rustls::ServerConfig;
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// The TLS server configurations of one generation, by listener index.
#[derive(Debug, Default)]
pub struct TlsConfigs {
    by_listener: HashMap<usize, Arc<ServerConfig>>,
}

impl TlsConfigs {
    /// Builds a configuration for every HTTPS listener; a certificate rustls cannot load
    /// leaves its listener out (its connections are closed) and is logged.
    pub fn build(snapshot: &Snapshot, metrics: &crate::metrics::Metrics) -> TlsConfigs {
        let provider = provider();
        let mut by_listener = HashMap::new();
        for (i, l) in snapshot.listeners.iter().enumerate() {
            let ListenerKind::Https { certificates, .. } = &l.kind else {
                continue;
            };
            let mut keys = Vec::new();
            for c in certificates {
                match certified_key(c, &provider) {
                    Ok(k) => {
                        if let Some(t) = crate::metrics::not_after(&c.chain[0]) {
                            metrics
                                .tls_certificate_expiry
                                .with_label_values(&[&c.secret.namespaced_name()])
                                .set(t as f64);
                        }
                        keys.push((Arc::new(k), CertificateDerOwned(c.chain[0].clone())))
                    }
                    Err(e) => {
                        tracing::error!(listener = %l.label(), secret = %c.secret, "certificate not usable: {e}")
                    }
                }
            }
            if keys.is_empty() {
                continue;
            }
            let config = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map(|b| {
                    b.with_no_client_auth()
                        .with_cert_resolver(Arc::new(ListenerCerts { keys }))
                });
            match config {
                Ok(mut config) => {
                    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                    by_listener.insert(i, Arc::new(config));
                }
                Err(e) => tracing::error!(listener = %l.label(), "TLS configuration failed: {e}"),
            }
        }
        TlsConfigs { by_listener }
    }

    pub fn get(&self, listener: usize) -> Option<&Arc<ServerConfig>> {
        self.by_listener.get(&listener)
    }
}

type Inner = tokio_rustls::server::TlsStream<pingora_core::protocols::l4::stream::Stream>;

/// A terminated TLS connection, as pingora's HTTP server takes it.
pub struct TlsConn {
    inner: Inner,
    digest: Arc<SslDigest>,
    alpn: Option<ALPN>,
    socket: Option<Arc<SocketDigest>>,
    id: UniqueIDType,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn")
            .field("id", &self.id)
            .field("alpn", &self.alpn)
            .finish_non_exhaustive()
    }
}

impl TlsConn {
    pub fn new(inner: Inner, id: UniqueIDType) -> TlsConn {
        let (l4, conn) = inner.get_ref();
        let socket = l4.get_socket_digest();
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown");
        let alpn = match conn.alpn_protocol() {
            Some(b"h2") => Some(ALPN::H2),
            Some(b"http/1.1") => Some(ALPN::H1),
            _ => None,
        };
        let digest = Arc::new(SslDigest::new(cipher, version, None, None, Vec::new()));
        TlsConn {
            inner,
            digest,
            alpn,
            socket,
            id,
        }
    }

    /// The TLS version negotiated, for logs and metrics.
    /// Whether ALPN chose HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.alpn == Some(ALPN::H2)
    }

    pub fn version(&self) -> &str {
        &self.digest.version
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for TlsConn {
    async fn shutdown(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.inner).await;
    }
}

impl UniqueID for TlsConn {
    fn id(&self) -> UniqueIDType {
        self.id
    }
}

impl Ssl for TlsConn {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        Some(self.digest.clone())
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.alpn.clone()
    }
}

impl GetTimingDigest for TlsConn {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        Vec::new()
    }
}

impl GetProxyDigest for TlsConn {
    fn get_proxy_digest(&self) -> Option<Arc<pingora_core::protocols::raw_connect::ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for TlsConn {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.socket.clone()
    }
}

#[async_trait]
impl Peek for TlsConn {}
