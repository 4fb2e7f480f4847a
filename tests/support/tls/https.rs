//! HTTP over the TLS client: one HTTPS connection speaking HTTP/2 when ALPN chose h2 and
//! HTTP/1.1 otherwise, and a checker that sends the GETs of a (SNI, Host) table over one
//! connection per SNI and collects every answer that differs from the table.

use super::client::{ClientTls, Tls, alpn_of, peer_leaf, version_of};
use crate::process::DEADLINE;
use crate::{Gateway, Resp};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One HTTPS connection: HTTP/2 when ALPN chose h2, else HTTP/1.1.
pub struct Https {
    sender: Sender,
    pub h2: bool,
    pub alpn: Option<String>,
    pub version: Option<rustls::ProtocolVersion>,
    pub leaf: CertificateDer<'static>,
}

impl std::fmt::Debug for Https {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Https")
            .field("h2", &self.h2)
            .field("alpn", &self.alpn)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Https {
    /// Starts HTTP on a finished TLS handshake.
    pub async fn over<S>(tls: ClientTls<S>) -> std::io::Result<Https>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let alpn = alpn_of(&tls);
        let version = version_of(&tls);
        let leaf = peer_leaf(&tls);
        let h2 = alpn.as_deref() == Some("h2");
        let io = TokioIo::new(tls);
        let sender = if h2 {
            let (s, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(conn);
            Sender::H2(s)
        } else {
            let (s, conn) = http1::handshake(io).await.map_err(std::io::Error::other)?;
            tokio::spawn(conn);
            Sender::H1(s)
        };
        Ok(Https {
            sender,
            h2,
            alpn,
            version,
            leaf,
        })
    }

    /// Connects to `addr` with SNI `sni` and starts HTTP.
    pub async fn open(tls: &Tls, addr: SocketAddr, sni: &str) -> std::io::Result<Https> {
        Https::over(tls.connect(addr, sni).await?).await
    }

    /// GET `path` with Host (HTTP/2: `:authority`) `host`.
    pub async fn get(&mut self, host: &str, path: &str) -> std::io::Result<Resp> {
        let req = if self.h2 {
            Request::get(format!("https://{host}{path}"))
        } else {
            Request::get(path).header("host", host)
        }
        .body(Full::new(Bytes::new()))
        .expect("request");
        let send = async {
            let resp = match &mut self.sender {
                Sender::H1(s) => {
                    s.ready().await.map_err(std::io::Error::other)?;
                    s.send_request(req).await
                }
                Sender::H2(s) => {
                    s.ready().await.map_err(std::io::Error::other)?;
                    s.send_request(req).await
                }
            }
            .map_err(std::io::Error::other)?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(std::io::Error::other)?
                .to_bytes();
            Ok(Resp {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(DEADLINE, send)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out"))?
    }
}

/// A status and backend, for comparing with what a case wants.
pub fn outcome(r: &Resp) -> String {
    match r.backend() {
        Some(b) if r.status == 200 => format!("200 {b}"),
        _ => r.status.as_u16().to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// A checker for tables of (SNI, Host) → result

/// Sends GETs over one HTTPS connection per SNI (so a Host that differs from the SNI reuses a
/// connection, as a browser coalescing connections would) and records every answer that
/// differs from the table.
#[derive(Debug)]
pub struct HttpsChecker {
    tls: Tls,
    addr: SocketAddr,
    /// The ALPN protocol every connection must negotiate.
    want_alpn: String,
    conns: std::collections::HashMap<String, Https>,
    failures: Vec<String>,
}

impl HttpsChecker {
    /// `tls` offers exactly `alpn` (`h2` or `http/1.1`).
    pub fn new(tls: &Tls, addr: SocketAddr, alpn: &str) -> HttpsChecker {
        HttpsChecker {
            tls: tls.clone().alpn(&[alpn]),
            addr,
            want_alpn: alpn.to_string(),
            conns: Default::default(),
            failures: Vec::new(),
        }
    }

    async fn send(&mut self, sni: &str, host: &str, path: &str) -> Result<Resp, String> {
        let mut last = String::new();
        for _ in 0..2 {
            if !self.conns.contains_key(sni) {
                match Https::open(&self.tls, self.addr, sni).await {
                    Ok(c) => {
                        if c.alpn.as_deref() != Some(self.want_alpn.as_str()) {
                            return Err(format!(
                                "ALPN {:?} negotiated, want {}",
                                c.alpn, self.want_alpn
                            ));
                        }
                        self.conns.insert(sni.to_string(), c);
                    }
                    Err(e) => return Err(format!("TLS connection failed: {e}")),
                }
            }
            let conn = self.conns.get_mut(sni).expect("connected");
            match conn.get(host, path).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    // The gateway may close a connection after some answers: retry once on a
                    // new one.
                    self.conns.remove(sni);
                    last = e.to_string();
                }
            }
        }
        Err(format!("request failed twice: {last}"))
    }

    /// GET `path` with SNI `sni` and Host `host`; `want` is `"200 <backend>"` or a status.
    pub async fn check(&mut self, sni: &str, host: &str, path: &str, want: &str) {
        let what = format!("[{}] SNI {sni}, Host {host}, GET {path}", self.want_alpn);
        match self.send(sni, host, path).await {
            Ok(r) => {
                let got = outcome(&r);
                let path_ok = r.backend().is_none() || r.json()["path"] == path;
                if got != want || !path_ok {
                    self.failures.push(format!(
                        "{what}: want {want}, got {got} (backend saw path {})",
                        r.json()["path"]
                    ));
                }
            }
            Err(e) => self.failures.push(format!("{what}: want {want}, got {e}")),
        }
    }

    /// Records a failure found by the caller.
    pub fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    /// Panics listing every mismatch, with the end of the gateway's log.
    pub fn finish(self, gw: &Gateway) {
        let log = gw.log();
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            self.failures.is_empty(),
            "{} mismatch(es):\n  {}\n--- gateway log (end) ---\n{}",
            self.failures.len(),
            self.failures.join("\n  "),
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }
}
