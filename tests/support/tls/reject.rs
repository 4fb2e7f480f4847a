//! Rejection without a TLS alert, as the conformance harness accepts it: a handshake that ends
//! in EOF or a reset, never an alert; and a ClientHello sent on a raw socket that the gateway
//! must close without answering a single byte.

use super::client::{Tls, alpn_of, tcp};
use crate::process::DEADLINE;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Checks that a handshake error is what the conformance harness accepts as a rejection:
/// EOF or reset, and in no case a TLS alert from the server.
pub fn rejection(e: &std::io::Error) -> Result<(), String> {
    if let Some(rustls::Error::AlertReceived(alert)) =
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
    {
        return Err(format!("the server sent a TLS alert ({alert:?})"));
    }
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe => Ok(()),
        kind => Err(format!("not EOF or reset but {kind:?}: {e}")),
    }
}

/// Handshakes for `name` (SNI unless `tls` has none) and expects the rejection of the
/// conformance harness; `Err` says what happened instead.
pub async fn expect_rejected(tls: &Tls, addr: SocketAddr, name: &str) -> Result<(), String> {
    match tls.connect(addr, name).await {
        Ok(s) => Err(format!(
            "the handshake succeeded (ALPN {:?}, a certificate was presented)",
            alpn_of(&s)
        )),
        Err(e) => rejection(&e),
    }
}

/// How a raw connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Eof,
    Reset,
    Error(String),
    /// Still open at the deadline.
    Open,
}

/// Writes `bytes` (write errors are ignored: the peer may already have closed) and reads until
/// the connection ends or the deadline passes. Returns what came back and how it ended.
pub async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, End) {
    let mut s = tcp(addr).await.expect("connect");
    let _ = s.write_all(bytes).await;
    let mut got = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (got, End::Open),
            Ok(Ok(0)) => return (got, End::Eof),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (got, End::Reset);
            }
            Ok(Err(e)) => return (got, End::Error(e.to_string())),
        }
    }
}

/// The bytes of a ClientHello for `name` as `tls` would send it.
pub fn client_hello(tls: &Tls, name: &str) -> Vec<u8> {
    let server_name = ServerName::try_from(name.to_string()).expect("a DNS name");
    let mut conn = rustls::ClientConnection::new(tls.config(), server_name).expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write_tls");
    }
    out
}

/// Sends a ClientHello on a raw socket and expects the gateway to close (FIN or RST) without
/// sending a single byte (no alert, no ServerHello).
pub async fn expect_closed_silently(tls: &Tls, addr: SocketAddr, name: &str) -> Result<(), String> {
    let (got, end) = send_raw(addr, &client_hello(tls, name)).await;
    match end {
        End::Eof | End::Reset if got.is_empty() => Ok(()),
        End::Eof | End::Reset => Err(format!(
            "closed ({end:?}) after sending {} bytes, starting {:02x?}{}",
            got.len(),
            &got[..got.len().min(8)],
            if got.first() == Some(&0x15) {
                " (a TLS alert record)"
            } else {
                ""
            }
        )),
        other => Err(format!(
            "{other:?} after {} bytes {:02x?}",
            got.len(),
            &got[..got.len().min(8)]
        )),
    }
}
