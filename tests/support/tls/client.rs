//! The TLS client of the tests: rustls (ring) trusting the test CA only, with a chosen ALPN
//! offer, versions and SNI, over a TCP stream that can record what passes and write one byte
//! at a time; and what a finished handshake shows (leaf, ALPN, version).

use super::certs::Ca;
use super::provider;
use crate::process::DEADLINE;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// A TCP stream wrapper: records what passes, optionally writes one byte at a time

/// Wraps a stream, recording every byte read and written; with `one_byte_writes`, each write
/// takes at most one byte (with TCP_NODELAY each becomes its own segment).
#[derive(Debug)]
pub struct Tap<S> {
    inner: S,
    pub read: Arc<Mutex<Vec<u8>>>,
    pub written: Arc<Mutex<Vec<u8>>>,
    one_byte_writes: bool,
}

impl<S> Tap<S> {
    pub fn new(inner: S, one_byte_writes: bool) -> Tap<S> {
        Tap {
            inner,
            read: Arc::default(),
            written: Arc::default(),
            one_byte_writes,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let new = buf.filled()[before..].to_vec();
            self.read.lock().unwrap().extend_from_slice(&new);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let buf = if self.one_byte_writes && !buf.is_empty() {
            &buf[..1]
        } else {
            buf
        };
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Connects to `addr` with TCP_NODELAY, within the deadline.
pub async fn tcp(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    s.set_nodelay(true)?;
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// The TLS client

pub type ClientTls<S> = tokio_rustls::client::TlsStream<S>;

/// How the client connects: trusted roots, ALPN offer, versions, and whether to send SNI.
#[derive(Debug, Clone)]
pub struct Tls {
    roots: Vec<CertificateDer<'static>>,
    alpn: Vec<Vec<u8>>,
    versions: Vec<&'static SupportedProtocolVersion>,
    sni: bool,
}

impl Tls {
    /// Trusts `ca` only; TLS 1.2 and 1.3; no ALPN; sends SNI.
    pub fn new(ca: &Ca) -> Tls {
        Tls {
            roots: vec![ca.der.clone()],
            alpn: Vec::new(),
            versions: vec![&TLS13, &TLS12],
            sni: true,
        }
    }

    pub fn alpn(mut self, protocols: &[&str]) -> Tls {
        self.alpn = protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
        self
    }

    pub fn only(mut self, version: &'static SupportedProtocolVersion) -> Tls {
        self.versions = vec![version];
        self
    }

    /// Sends no server_name extension (the name is still used to verify the certificate).
    pub fn no_sni(mut self) -> Tls {
        self.sni = false;
        self
    }

    pub fn config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for r in &self.roots {
            roots.add(r.clone()).expect("CA certificate");
        }
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&self.versions)
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = self.alpn.clone();
        config.enable_sni = self.sni;
        Arc::new(config)
    }

    /// A TLS handshake over `stream` for `name` (the SNI unless [`Tls::no_sni`]), bounded by the
    /// deadline.
    pub async fn handshake<S>(&self, stream: S, name: &str) -> std::io::Result<ClientTls<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let server_name = ServerName::try_from(name.to_string()).expect("a DNS name");
        let connector = tokio_rustls::TlsConnector::from(self.config());
        tokio::time::timeout(DEADLINE, connector.connect(server_name, stream))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })?
    }

    /// Connects to `addr` and handshakes for `name`.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        name: &str,
    ) -> std::io::Result<ClientTls<TcpStream>> {
        self.handshake(tcp(addr).await?, name).await
    }
}

/// The leaf certificate the server presented.
pub fn peer_leaf<S>(s: &ClientTls<S>) -> CertificateDer<'static> {
    s.get_ref().1.peer_certificates().expect("certificates")[0].clone()
}

/// The ALPN protocol negotiated, as text.
pub fn alpn_of<S>(s: &ClientTls<S>) -> Option<String> {
    s.get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

/// The TLS version negotiated.
pub fn version_of<S>(s: &ClientTls<S>) -> Option<rustls::ProtocolVersion> {
    s.get_ref().1.protocol_version()
}
