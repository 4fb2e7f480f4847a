//! TLS backends for passthrough: an in-process rustls server that reports (in a JSON line to
//! the client, and to the test) the SNI, ALPN and bytes it saw, the client side that reads
//! that report through the gateway, and `openssl s_server -www`.

use super::certs::Leaf;
use super::client::{Tap, Tls, peer_leaf, tcp};
use super::provider;
use crate::ConfigDir;
use crate::process::DEADLINE;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// What an in-process TLS backend saw on one connection.
#[derive(Debug, Clone)]
pub struct Seen {
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    /// Every byte the backend read from the connection (the client's TLS records).
    pub received: Vec<u8>,
}

/// A TLS server in the test process: completes the handshake with its own certificate, then
/// writes one JSON line `{name, sni, alpn, version}`, sends close_notify, reads until the
/// client closes and records what it saw.
#[derive(Debug)]
pub struct TlsBackend {
    pub name: String,
    pub addr: SocketAddr,
    pub leaf: Leaf,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsBackend {
    /// Listens on a fresh loopback address, port 8443, presenting `leaf`.
    pub async fn start(name: &str, leaf: Leaf) -> TlsBackend {
        let listener = TcpListener::bind(SocketAddr::from((crate::unique_ip(), 8443)))
            .await
            .expect("bind TLS backend");
        let addr = listener.local_addr().expect("local addr");
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key");
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der.clone()], key)
            .expect("backend certificate");
        let config = Arc::new(config);
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let task = {
            let (name, seen) = (name.to_string(), seen.clone());
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (name, seen, config) = (name.clone(), seen.clone(), config.clone());
                    tokio::spawn(async move {
                        let tap = Tap::new(tcp, false);
                        let read = tap.read.clone();
                        let acceptor =
                            tokio_rustls::LazyConfigAcceptor::new(Default::default(), tap);
                        let Ok(start) = acceptor.await else { return };
                        let hello = start.client_hello();
                        let sni = hello.server_name().map(str::to_string);
                        let alpn: Vec<String> = hello
                            .alpn()
                            .map(|i| i.map(|p| String::from_utf8_lossy(p).into_owned()).collect())
                            .unwrap_or_default();
                        let Ok(mut tls) = start.into_stream(config).await else {
                            return;
                        };
                        let report = serde_json::json!({
                            "name": name,
                            "sni": sni,
                            "alpn": alpn,
                            "version": format!("{:?}", tls.get_ref().1.protocol_version()),
                        });
                        let _ = tls.write_all(format!("{report}\n").as_bytes()).await;
                        let _ = tls.shutdown().await;
                        let mut rest = Vec::new();
                        let _ = tls.read_to_end(&mut rest).await;
                        let received = read.lock().unwrap().clone();
                        seen.lock().unwrap().push(Seen {
                            sni,
                            alpn,
                            received,
                        });
                    });
                }
            })
        };
        TlsBackend {
            name: name.to_string(),
            addr,
            leaf,
            seen,
            task,
        }
    }

    /// The connections finished so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (until the deadline) for a finished connection whose received bytes are
    /// `bytes`; returns it, or everything seen when none matches.
    pub async fn wait_for_bytes(&self, bytes: &[u8]) -> Result<Seen, Vec<Seen>> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let seen = self.seen();
            if let Some(s) = seen.iter().find(|s| s.received == bytes) {
                return Ok(s.clone());
            }
            if Instant::now() >= deadline {
                return Err(seen);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a client got from a [`TlsBackend`] through the gateway.
#[derive(Debug)]
pub struct Report {
    /// The backend's JSON line.
    pub json: Value,
    /// The leaf certificate the client got.
    pub leaf: CertificateDer<'static>,
    /// Every byte the client wrote (its TLS records, ClientHello first).
    pub written: Vec<u8>,
}

/// Connects to `addr`, handshakes for `sni` (optionally one byte per write), reads the
/// backend's report to its close_notify, then closes.
pub async fn passthrough_report(
    tls: &Tls,
    addr: SocketAddr,
    sni: &str,
    one_byte_writes: bool,
) -> std::io::Result<Report> {
    let tap = Tap::new(tcp(addr).await?, one_byte_writes);
    let written = tap.written.clone();
    let mut s = tls.handshake(tap, sni).await?;
    let leaf = peer_leaf(&s);
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no report"))??;
    let _ = s.shutdown().await;
    drop(s);
    let json = serde_json::from_slice(&out).map_err(|e| {
        std::io::Error::other(format!("report {:?}: {e}", String::from_utf8_lossy(&out)))
    })?;
    let written = written.lock().unwrap().clone();
    Ok(Report {
        json,
        leaf,
        written,
    })
}

/// `openssl s_server -www` presenting a certificate, stopped when dropped.
#[derive(Debug)]
pub struct OpensslServer {
    child: Child,
    pub addr: SocketAddr,
    _files: ConfigDir,
}

impl OpensslServer {
    /// Starts `openssl s_server -accept addr -cert ... -key ... -www` and waits until it
    /// accepts connections.
    pub fn start(addr: SocketAddr, leaf: &Leaf) -> OpensslServer {
        let files = ConfigDir::new();
        files.write("cert.pem", &leaf.cert_pem);
        files.write("key.pem", &leaf.key_pem);
        let mut child = Command::new("openssl")
            .arg("s_server")
            .arg("-accept")
            .arg(addr.to_string())
            .arg("-cert")
            .arg(files.path().join("cert.pem"))
            .arg("-key")
            .arg(files.path().join("key.pem"))
            .arg("-www")
            .arg("-quiet")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn openssl s_server");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("openssl s_server exited with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "openssl s_server never listened on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        OpensslServer {
            child,
            addr,
            _files: files,
        }
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
