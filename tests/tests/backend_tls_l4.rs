//! BackendTLSPolicy on layer-4 backends against the real binary: a TCPRoute whose Service a
//! policy targets is spliced inside a TLS connection gatehouse makes and verifies.
//! `openssl s_server -rev` (echoes lines reversed) checks bytes both ways and fails closed on
//! an unknown CA; an in-process rustls backend checks what `s_server` cannot show: the PROXY
//! header goes in plaintext before the handshake, and a client's half-close reaches the
//! backend as close_notify while the other direction keeps flowing. Skipped, with the reason
//! printed, when `openssl` is not installed.

use gatehouse_tests::backend_tls::{Ca, TlsBackend, have_openssl, log_has};
use gatehouse_tests::process::DEADLINE;
use gatehouse_tests::raw::metric;
use gatehouse_tests::{ConfigDir, Gateway, text, unique_ip};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const CA_REF: &str =
    r#"caCertificateRefs = [{ group = "", kind = "ConfigMap", name = "test-ca" }]"#;

/// One case: a TCP listener `name` on `port` of Gateway `gw` (the first string), and a
/// TCPRoute `name` to Service `name` (port 443 in front of `backend`, with `service_extra`
/// lines) with a BackendTLSPolicy `name` for hostname `backend.example` (the second).
fn tcp_case(name: &str, port: u16, backend: SocketAddr, service_extra: &str) -> (String, String) {
    let listener = format!(
        r#"
[[Gateway.listeners]]
name = "{name}"
protocol = "TCP"
port = {port}
"#
    );
    let rest = format!(
        r#"
[[Service]]
name = "{name}"
ports = [{{ name = "tls", port = 443, targetPort = {bport} }}]
endpoints = ["{bip}"]
{service_extra}

[[TCPRoute]]
name = "{name}"
parentRefs = [{{ name = "gw", sectionName = "{name}" }}]
rules = [{{ backendRefs = [{{ name = "{name}", port = 443 }}] }}]

[[BackendTLSPolicy]]
name = "{name}"
targetRefs = [{{ group = "", kind = "Service", name = "{name}" }}]
validation = {{ {CA_REF}, hostname = "backend.example" }}
"#,
        bport = backend.port(),
        bip = backend.ip(),
    );
    (listener, rest)
}

/// Writes a Gateway `gw` on `ip` with the listeners of `cases`, the ConfigMap `test-ca`,
/// and the rest of `cases`.
fn config(dir: &ConfigDir, ca: &Ca, ip: Ipv4Addr, cases: &[(String, String)]) {
    dir.write("ca/test-ca.pem", &ca.pem);
    let listeners: String = cases.iter().map(|c| c.0.as_str()).collect();
    let rest: String = cases.iter().map(|c| c.1.as_str()).collect();
    let toml = format!(
        r#"
[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
{listeners}
[[ConfigMap]]
name = "test-ca"
caFile = "ca/test-ca.pem"
{rest}"#
    );
    dir.write("gatehouse.toml", &toml);
    let check = dir.check(&[]);
    assert!(check.status.success(), "{toml}\n{:?}", text(&check));
}

/// The condition `kind` of the first ancestor of BackendTLSPolicy `name` in `/status`:
/// (ancestor name, status, reason).
fn ancestor_condition(gw: &Gateway, name: &str, kind: &str) -> (String, String, String) {
    let (body, _) = gatehouse_tests::raw::exchange(
        gw.admin,
        b"GET /status HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
        DEADLINE,
    );
    let json: serde_json::Value =
        serde_json::from_str(gatehouse_tests::raw::body(&body)).expect("status JSON");
    let policies = json["status"]["backendTlsPolicies"]
        .as_array()
        .or_else(|| json["backendTlsPolicies"].as_array())
        .cloned()
        .unwrap_or_default();
    let p = policies
        .iter()
        .find(|p| p["key"]["name"] == name)
        .unwrap_or_else(|| panic!("no policy {name} in {json}"));
    let a = &p["ancestors"][0];
    let c = a["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} on the first ancestor of {name}: {p}"));
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    (
        s(&a["ancestorRef"]["name"]),
        s(&c["status"]),
        s(&c["reason"]),
    )
}

#[test]
fn a_tcp_route_to_a_policy_service_is_spliced_inside_verified_tls() {
    if !have_openssl() {
        return;
    }
    let ca = Ca::new("gatehouse test CA");
    let stranger = Ca::new("some other CA");
    let dir = ConfigDir::new();
    let good = TlsBackend::start_with(
        &dir,
        "good",
        ca.leaf(&["backend.example"], &[], false),
        &["-rev"],
    );
    let unknown = TlsBackend::start_with(
        &dir,
        "unknown",
        stranger.leaf(&["backend.example"], &[], false),
        &["-rev"],
    );
    let ip = unique_ip();
    config(
        &dir,
        &ca,
        ip,
        &[
            tcp_case("good", 9000, good.addr, ""),
            tcp_case("unknown-ca", 9001, unknown.addr, ""),
        ],
    );
    let gw = Gateway::start(
        dir,
        &[SocketAddr::from((ip, 9000)), SocketAddr::from((ip, 9001))],
    );

    // The good chain: a line goes in, the backend's reversed line comes back, over TLS.
    let s = TcpStream::connect_timeout(&SocketAddr::from((ip, 9000)), DEADLINE).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut reader = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    w.write_all(b"hello over tls\n").expect("write");
    let mut line = String::new();
    reader.read_line(&mut line).expect("read the answer");
    assert_eq!(line.trim_end(), "slt revo olleh", "{}", gw.log());
    assert_eq!(
        ancestor_condition(&gw, "good", "Accepted"),
        ("gw".into(), "True".into(), "Accepted".into())
    );
    drop(w);

    // An unknown CA: the client connection is closed without a byte.
    let mut s =
        TcpStream::connect_timeout(&SocketAddr::from((ip, 9001)), DEADLINE).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let _ = s.write_all(b"hello\n");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty(), "got {:?}", String::from_utf8_lossy(&got));
    assert!(
        log_has(
            &gw,
            "BackendTLSPolicy default/unknown-ca failed (unknown_ca)"
        ),
        "{}",
        gw.log()
    );
    let series =
        "gatehouse_backend_tls_errors_total{policy=\"default/unknown-ca\",reason=\"unknown_ca\"}";
    assert!(metric(gw.admin, series) >= 1.0, "{series} not counted");
}

/// A rustls server for `backend.example` that reads a PROXY v1 line in plaintext first,
/// then, inside TLS, everything up to close_notify, and answers with what it saw.
async fn proxy_then_tls_backend(listener: tokio::net::TcpListener, ca: &Ca) {
    let (cert, key) = ca.leaf(&["backend.example"], &[], false);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .expect("chain");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // The PROXY v1 line, byte by byte so nothing of the handshake is read.
                let mut proxy = Vec::new();
                while !proxy.ends_with(b"\r\n") && proxy.len() < 108 {
                    let Ok(b) = tcp.read_u8().await else { return };
                    proxy.push(b);
                }
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut got = Vec::new();
                // Ends Ok only at close_notify: a bare FIN is an UnexpectedEof error.
                let end = match tls.read_to_end(&mut got).await {
                    Ok(_) => "close_notify".to_string(),
                    Err(e) => format!("error {e}"),
                };
                let answer = format!(
                    "proxy={} got={} end={end}\n",
                    String::from_utf8_lossy(&proxy).trim_end(),
                    String::from_utf8_lossy(&got)
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_header_precedes_tls_and_a_half_close_arrives_as_close_notify() {
    let ca = Ca::new("gatehouse test CA");
    let backend_addr = SocketAddr::from((unique_ip(), 8443));
    let listener = tokio::net::TcpListener::bind(backend_addr)
        .await
        .expect("bind backend");
    proxy_then_tls_backend(listener, &ca).await;
    let dir = ConfigDir::new();
    let ip = unique_ip();
    config(
        &dir,
        &ca,
        ip,
        &[tcp_case(
            "proxied",
            9000,
            backend_addr,
            "proxyProtocol = \"v1\"",
        )],
    );
    let gw = Gateway::start(dir, &[SocketAddr::from((ip, 9000))]);

    let answer = tokio::task::spawn_blocking(move || {
        let mut s =
            TcpStream::connect_timeout(&SocketAddr::from((ip, 9000)), DEADLINE).expect("connect");
        s.set_read_timeout(Some(DEADLINE)).expect("timeout");
        s.write_all(b"request").expect("write");
        // Half-close: the backend must see the end of the request and still answer.
        s.shutdown(Shutdown::Write).expect("shutdown");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    })
    .await
    .expect("client");
    let local = SocketAddr::from((ip, 9000));
    assert!(
        answer.starts_with("proxy=PROXY TCP4 127.") && answer.contains(&format!(" {ip} ")),
        "{answer:?}\n{}",
        gw.log()
    );
    assert!(
        answer.ends_with(&format!(" {} got=request end=close_notify\n", local.port())),
        "{answer:?}\n{}",
        gw.log()
    );
}
