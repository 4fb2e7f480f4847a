//! Helpers for `reload.rs` and `control_plane.rs`: certificates made at test time (one CA, leaves with chosen
//! serials and SANs), a rustls client that reports the certificate it was shown, HTTP/1.1
//! over any stream, file writes as editors make them, and waits on the gateway's log
//! ("configuration applied generation=N", "configuration rejected") and on behaviour.

pub mod soak;

use crate::client::REQUEST_TIMEOUT;
use crate::process::DEADLINE;
use crate::{Client, Gateway, Resp};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::StatusCode;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SerialNumber};
use rustls::pki_types::{CertificateDer, ServerName};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------
// Certificates

/// A test CA.
#[derive(Debug)]
pub struct Pki {
    params: CertificateParams,
    key: KeyPair,
    pub ca: CertificateDer<'static>,
}

/// A leaf certificate and its key, as PEM, with the DER the client should be shown.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    pub serial: u64,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gatehouse reload test CA");
        let ca = params
            .self_signed(&key)
            .expect("CA certificate")
            .der()
            .clone();
        Pki { params, key, ca }
    }

    /// A leaf for `sans`, serial number `serial`, signed by this CA, with a fresh key.
    pub fn issue(&self, sans: &[&str], serial: u64) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        params.serial_number = Some(SerialNumber::from_slice(&serial.to_be_bytes()));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, sans[0]);
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            serial,
        }
    }

    /// A client configuration trusting this CA only, offering HTTP/1.1 by ALPN.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).expect("CA into the root store");
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl Leaf {
    /// Writes the certificate and key to `cert` and `key` as an editor or a renewal tool
    /// would: each to a hidden temporary file in the same folder, then renamed over.
    pub fn install(&self, cert: &Path, key: &Path) {
        rename_over(key, &self.key_pem);
        rename_over(cert, &self.cert_pem);
    }
}

/// Reads one DER element: (tag, content, rest).
fn der_element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&first, mut b) = b.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let len = b[..n]
            .iter()
            .fold(0usize, |acc, x| (acc << 8) | usize::from(*x));
        b = &b[n..];
        len
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

/// The serial number of a DER certificate, as an integer (serials here fit in a u64).
pub fn serial_of(der: &[u8]) -> Option<u64> {
    let (_, cert, _) = der_element(der)?;
    let (_, tbs, _) = der_element(cert)?;
    let (tag, content, rest) = der_element(tbs)?;
    // Skip the explicit [0] version.
    let (tag, serial) = if tag == 0xa0 {
        let (t, s, _) = der_element(rest)?;
        (t, s)
    } else {
        (tag, content)
    };
    (tag == 0x02 && serial.len() <= 9).then(|| {
        serial
            .iter()
            .fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
    })
}

// ---------------------------------------------------------------------------------------
// Clients

/// A TLS connection to `addr` with SNI `sni`; returns the stream and the leaf certificate
/// the server presented.
pub async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    config: &Arc<rustls::ClientConfig>,
) -> io::Result<(TlsStream<TcpStream>, CertificateDer<'static>)> {
    let name = ServerName::try_from(sni.to_string()).map_err(io::Error::other)?;
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        TlsConnector::from(config.clone()).connect(name, tcp).await
    };
    let stream = tokio::time::timeout(REQUEST_TIMEOUT, connect)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .ok_or_else(|| io::Error::other("no server certificate"))?;
    Ok((stream, leaf))
}

/// An HTTP/1.1 connection over any stream, kept alive across requests.
#[derive(Debug)]
pub struct H1 {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl H1 {
    pub async fn handshake<IO>(io: IO) -> io::Result<H1>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(conn);
        Ok(H1 { sender })
    }

    /// A plaintext connection to `addr`.
    pub async fn plain(addr: SocketAddr) -> io::Result<H1> {
        let tcp = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let _ = tcp.set_nodelay(true);
        H1::handshake(tcp).await
    }

    /// Whether the server (or an error) closed the connection.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// GET `path` with Host `host`: the status and the whole body.
    pub async fn get(&mut self, host: &str, path: &str) -> io::Result<(StatusCode, Bytes)> {
        let req = hyper::Request::get(path)
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .expect("valid request");
        let exchange = async {
            self.sender.ready().await.map_err(io::Error::other)?;
            let resp = self
                .sender
                .send_request(req)
                .await
                .map_err(io::Error::other)?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(io::Error::other)?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request timed out"))?
    }
}

/// The echo backend's name in a response body, if the body is the echo's JSON.
pub fn echo_name(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

/// One GET over a new plaintext connection: the status and the echo backend that answered.
pub async fn get_once(addr: SocketAddr, host: &str, path: &str) -> io::Result<Resp> {
    let mut c = Client::http1(addr);
    let req = crate::client::build("GET", host, path, &[], Bytes::new(), false);
    c.send(req).await
}

/// One GET over a new TLS connection: the status, the body and the certificate shown.
pub async fn https_once(
    addr: SocketAddr,
    sni: &str,
    host: &str,
    path: &str,
    config: &Arc<rustls::ClientConfig>,
) -> io::Result<(StatusCode, Bytes, CertificateDer<'static>)> {
    let (tls, leaf) = tls_connect(addr, sni, config).await?;
    let mut h1 = H1::handshake(tls).await?;
    let (status, body) = h1.get(host, path).await?;
    Ok((status, body, leaf))
}

/// A request to `openssl s_server -www` through a TLS connection: the status line and the
/// certificate shown (the backend's own, when the gateway passes the connection through).
pub async fn s_server_once(
    addr: SocketAddr,
    sni: &str,
    config: &Arc<rustls::ClientConfig>,
) -> io::Result<(String, CertificateDer<'static>)> {
    let (mut tls, leaf) = tls_connect(addr, sni, config).await?;
    let exchange = async {
        tls.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
        tls.flush().await?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // s_server may close without close_notify once the answer is out.
                Err(e) if !got.is_empty() && e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            }
            if got.windows(7).any(|w| w == b"</HTML>" || w == b"</html>") {
                break;
            }
        }
        let text = String::from_utf8_lossy(&got);
        Ok(text.lines().next().unwrap_or_default().trim().to_string())
    };
    let line = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "passthrough request timed out"))??;
    Ok((line, leaf))
}

// ---------------------------------------------------------------------------------------
// Files

/// Writes `text` over `path` in place (truncate and write, as `echo > file` does).
pub fn write_in_place(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write in place");
}

/// Writes `text` to `.NAME.tmp` next to `path`, then renames it over `path`: what editors
/// and certificate renewal tools do.
pub fn rename_over(path: &Path, text: &str) {
    let dir = path.parent().expect("parent");
    std::fs::create_dir_all(dir).expect("mkdir");
    let name = path.file_name().expect("file name").to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write temporary");
    std::fs::rename(&tmp, path).expect("rename over");
}

// ---------------------------------------------------------------------------------------
// The log

/// Generations the log says were applied, in order.
pub fn applied_generations(log: &str) -> Vec<u64> {
    const MARK: &str = "configuration applied generation=";
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find(MARK)? + MARK.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// The generation being served according to the log (1 before any reload).
pub fn generation(gw: &Gateway) -> u64 {
    applied_generations(&gw.log())
        .into_iter()
        .max()
        .unwrap_or(1)
}

/// How many reloads the log says were rejected.
pub fn rejections(gw: &Gateway) -> usize {
    gw.log().matches("configuration rejected").count()
}

/// The log line announcing `generation`, if there is one.
pub fn applied_line(gw: &Gateway, generation: u64) -> Option<String> {
    let mark = format!("configuration applied generation={generation} ");
    gw.log()
        .lines()
        .find(|l| l.contains(&mark) || l.ends_with(mark.trim_end()))
        .map(str::to_string)
}

/// The last `n` lines of the gateway's log.
pub fn log_tail(gw: &Gateway, n: usize) -> String {
    let log = gw.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits until the log shows a generation after `after` was applied; returns it. Panics
/// at the deadline, or when a reload is rejected meanwhile.
pub async fn wait_applied_after(gw: &Gateway, after: u64) -> u64 {
    let rejected = rejections(gw);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let g = generation(gw);
        if g > after {
            return g;
        }
        assert!(
            rejections(gw) == rejected,
            "the reload after generation {after} was rejected:\n{}",
            log_tail(gw, 30)
        );
        assert!(
            Instant::now() < deadline,
            "no generation after {after} was applied within {DEADLINE:?}:\n{}",
            log_tail(gw, 30)
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the log shows more than `before` rejected reloads. Panics at the deadline or
/// when a generation after `generation` is applied meanwhile.
pub async fn wait_rejected_after(gw: &Gateway, before: usize, generation_now: u64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if rejections(gw) > before {
            return;
        }
        let g = generation(gw);
        assert!(
            g == generation_now,
            "expected a rejection, but generation {g} was applied:\n{}",
            log_tail(gw, 30)
        );
        assert!(
            Instant::now() < deadline,
            "no rejection logged within {DEADLINE:?}:\n{}",
            log_tail(gw, 30)
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `probe` until it returns `Ok`, or panics at the deadline with its last error and
/// the end of the gateway's log.
pub async fn eventually<F, Fut, T>(gw: &Gateway, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let last = match probe().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: still not so after {DEADLINE:?}; last: {last}\n--- gateway log (end) ---\n{}",
            log_tail(gw, 40)
        );
        tokio::time::sleep(POLL).await;
    }
}

/// What a plaintext GET got, for messages: status and backend or body.
pub fn describe(r: &io::Result<Resp>) -> String {
    match r {
        Ok(r) => match r.backend() {
            Some(b) => format!("{} from {b}", r.status),
            None => format!(
                "{} {:?}",
                r.status,
                String::from_utf8_lossy(&r.body)
                    .chars()
                    .take(100)
                    .collect::<String>()
            ),
        },
        Err(e) => format!("error: {e}"),
    }
}

/// Waits until a GET of `host` on `addr` is answered by the echo backend `backend` (or, when
/// `backend` is None, gets a 404 from the gateway).
pub async fn wait_answer(gw: &Gateway, addr: SocketAddr, host: &str, backend: Option<&str>) {
    let what = match backend {
        Some(b) => format!("GET http://{host}/ via {addr} answered by {b}"),
        None => format!("GET http://{host}/ via {addr} answered 404"),
    };
    eventually(gw, &what, || async {
        let r = get_once(addr, host, "/").await;
        let ok = match (&r, backend) {
            (Ok(resp), Some(b)) => resp.status == 200 && resp.backend().as_deref() == Some(b),
            (Ok(resp), None) => resp.status == 404,
            (Err(_), _) => false,
        };
        if ok { Ok(()) } else { Err(describe(&r)) }
    })
    .await
}
