//! TLS listeners in Passthrough mode against the real binary: connections routed by SNI to
//! TLSRoute backends without being decrypted (the backend completes the handshake with its own
//! certificate and sees the client's ClientHello), sharing a port with HTTPS listeners, and
//! closed without a TLS alert when no listener, route or backend takes the SNI. Covers the seed
//! lab of CONFIG.md (basic-https + the nginx passthrough on one port, with a real
//! `openssl s_server`) and the TLSRoute cases of gateway-api-semantics.md §1.6.

use gatehouse_tests::conformance::{INFRA, echo, gateway, service};
use gatehouse_tests::tls::*;
use gatehouse_tests::{ConfigDir, Echo, Gateway, require_openssl, unique_ip};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Connects through the gateway to a [`TlsBackend`] and checks everything a passthrough
/// connection must show: the backend's certificate, the backend's name, the SNI and ALPN the
/// backend saw, and that the backend received exactly the bytes the client sent. Returns a
/// description of each problem.
async fn check_passthrough(
    tls: &Tls,
    addr: SocketAddr,
    sni: &str,
    backend: &TlsBackend,
    one_byte_writes: bool,
) -> Vec<String> {
    let what = format!("SNI {sni} via {addr}");
    let report = match passthrough_report(tls, addr, sni, one_byte_writes).await {
        Ok(r) => r,
        Err(e) => return vec![format!("{what}: want backend {}, got {e}", backend.name)],
    };
    let mut problems = Vec::new();
    if report.leaf != backend.leaf.der {
        problems.push(format!(
            "{what}: the client did not get the backend's certificate"
        ));
    }
    if report.json["name"] != backend.name.as_str() {
        problems.push(format!(
            "{what}: want backend {}, got {}",
            backend.name, report.json["name"]
        ));
        return problems;
    }
    if report.json["sni"] != sni {
        problems.push(format!(
            "{what}: the backend saw SNI {}",
            report.json["sni"]
        ));
    }
    if report.json["alpn"] != serde_json::json!(["h2", "http/1.1"]) {
        problems.push(format!(
            "{what}: the backend saw ALPN offer {}",
            report.json["alpn"]
        ));
    }
    if let Err(seen) = backend.wait_for_bytes(&report.written).await {
        problems.push(format!(
            "{what}: no connection to {} received exactly the {} bytes the client sent (it saw {} connection(s) of {:?} bytes)",
            backend.name,
            report.written.len(),
            seen.len(),
            seen.iter().map(|s| s.received.len()).collect::<Vec<_>>()
        ));
    }
    problems
}

/// Expects `sni` (None: no SNI) to be rejected without alert, both by the rustls client and on
/// a raw socket.
async fn check_rejected(tls: &Tls, addr: SocketAddr, sni: Option<&str>) -> Vec<String> {
    let (tls, name) = match sni {
        Some(s) => (tls.clone(), s),
        None => (tls.clone().no_sni(), "abc.example.com"),
    };
    let what = format!("SNI {sni:?} via {addr}");
    let mut problems = Vec::new();
    if let Err(e) = expect_rejected(&tls, addr, name).await {
        problems.push(format!(
            "{what}: want the connection closed without alert: {e}"
        ));
    }
    if let Err(e) = expect_closed_silently(&tls, addr, name).await {
        problems.push(format!(
            "{what} (raw ClientHello): want the connection closed without a byte: {e}"
        ));
    }
    problems
}

fn finish(problems: Vec<String>, gw: &Gateway) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n--- gateway log ---\n{}",
        problems.len(),
        problems.join("\n  "),
        gw.log()
    );
}

// ---------------------------------------------------------------------------------------------
// The seed lab: basic-https and the nginx passthrough on one port

#[allow(clippy::too_many_arguments)]
fn seed_lab_toml(
    dir: &ConfigDir,
    ip: std::net::Ipv4Addr,
    wildcard: &Leaf,
    details: &Echo,
    hipstershop: &Echo,
    nginx: SocketAddr,
) -> String {
    format!(
        r#"{secret}
[[Gateway]]
name = "tls-gateway"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]

[[Gateway.listeners]]
name = "https-1"
protocol = "HTTPS"
port = 443
hostname = "bookinfo.cilium.rocks"
tls = {{ mode = "Terminate", certificateRefs = [{{ kind = "Secret", name = "demo-cert" }}] }}

[[Gateway.listeners]]
name = "https-2"
protocol = "HTTPS"
port = 443
hostname = "hipstershop.cilium.rocks"
tls = {{ certificateRefs = [{{ name = "demo-cert" }}] }}

[[HTTPRoute]]
name = "https-app-route-1"
parentRefs = [{{ name = "tls-gateway" }}]
hostnames = ["bookinfo.cilium.rocks"]
[[HTTPRoute.rules]]
matches = [{{ path = {{ type = "PathPrefix", value = "/details" }} }}]
backendRefs = [{{ name = "details", port = 9080 }}]

[[HTTPRoute]]
name = "https-app-route-2"
parentRefs = [{{ name = "tls-gateway" }}]
hostnames = ["hipstershop.cilium.rocks"]
[[HTTPRoute.rules]]
matches = [{{ path = {{ type = "PathPrefix", value = "/" }} }}]
backendRefs = [{{ name = "hipstershop", port = 8080 }}]

[[Service]]
name = "details"
ports = [{{ port = 9080 }}]
endpoints = ["{details}"]

[[Service]]
name = "hipstershop"
ports = [{{ port = 8080, targetPort = 3000 }}]
endpoints = ["{hipstershop}"]

[[Gateway]]
name = "cilium-tls-gateway"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]

[[Gateway.listeners]]
name = "https"
protocol = "TLS"
port = 443
hostname = "nginx.cilium.rocks"
tls = {{ mode = "Passthrough" }}
allowedRoutes = {{ namespaces = {{ from = "Same" }} }}

[[TLSRoute]]
name = "nginx"
parentRefs = [{{ name = "cilium-tls-gateway" }}]
hostnames = ["nginx.cilium.rocks"]
[[TLSRoute.rules]]
backendRefs = [{{ name = "my-nginx", port = 443 }}]

[[Service]]
name = "my-nginx"
ports = [{{ port = 443, targetPort = {nginx_port} }}]
endpoints = ["{nginx_ip}"]
"#,
        secret = wildcard.secret(dir, "demo-cert", "default"),
        details = details.addr,
        hipstershop = hipstershop.addr.ip(),
        nginx_port = nginx.port(),
        nginx_ip = nginx.ip(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_lab_basic_https_and_tls_passthrough() {
    require_openssl!();
    let lab_ca = Ca::new("cilium demo CA");
    let wildcard = lab_ca.leaf(&["*.cilium.rocks"], KeyKind::EcdsaP256Pkcs8);
    let nginx_ca = Ca::new("nginx CA");
    let nginx_leaf = nginx_ca.leaf(&["nginx.cilium.rocks"], KeyKind::EcdsaP256Pkcs8);
    let nginx = OpensslServer::start(SocketAddr::from((unique_ip(), 9443)), &nginx_leaf);
    let details = Echo::start("details");
    let hipstershop = Echo::start("hipstershop");
    let ip = unique_ip();
    let dir = ConfigDir::new();
    let toml = seed_lab_toml(&dir, ip, &wildcard, &details, &hipstershop, nginx.addr);
    let gw = start(dir, &toml, ip, &[443]);
    let addr = SocketAddr::from((ip, 443));
    let mut problems = Vec::new();

    // basic-https: both hostnames on the one wildcard certificate, over h2 and http/1.1.
    for alpn in ["h2", "http/1.1"] {
        let mut c = HttpsChecker::new(&Tls::new(&lab_ca), addr, alpn);
        c.check(
            "bookinfo.cilium.rocks",
            "bookinfo.cilium.rocks",
            "/details/1",
            "200 details",
        )
        .await;
        c.check("bookinfo.cilium.rocks", "bookinfo.cilium.rocks", "/", "404")
            .await;
        c.check(
            "hipstershop.cilium.rocks",
            "hipstershop.cilium.rocks",
            "/cart",
            "200 hipstershop",
        )
        .await;
        c.finish(&gw);
    }
    for sni in ["bookinfo.cilium.rocks", "hipstershop.cilium.rocks"] {
        match Tls::new(&lab_ca).connect(addr, sni).await {
            Ok(s) if peer_leaf(&s) == wildcard.der => {}
            Ok(_) => problems.push(format!("{sni}: not the *.cilium.rocks certificate")),
            Err(e) => problems.push(format!("{sni}: {e}")),
        }
    }

    // The nginx passthrough: the client sees the backend's certificate (another CA) and
    // talks to openssl s_server through the gateway.
    match Tls::new(&nginx_ca)
        .alpn(&["http/1.1"])
        .connect(addr, "nginx.cilium.rocks")
        .await
    {
        Ok(mut s) => {
            if peer_leaf(&s) != nginx_leaf.der {
                problems.push("nginx.cilium.rocks: not the backend's certificate".into());
            }
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n").await;
            let mut got = Vec::new();
            // s_server -www may close without close_notify: keep what arrived.
            let mut buf = [0u8; 4096];
            while let Ok(Ok(n)) =
                tokio::time::timeout(gatehouse_tests::process::DEADLINE, s.read(&mut buf)).await
            {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&got);
            if !text.to_ascii_lowercase().starts_with("http/1.0 200 ok") {
                problems.push(format!(
                    "nginx.cilium.rocks: want s_server's 200 page, got {:?}",
                    text.chars().take(200).collect::<String>()
                ));
            }
        }
        Err(e) => problems.push(format!("nginx.cilium.rocks: handshake: {e}")),
    }

    // Nothing on the port takes another name.
    problems.extend(check_rejected(&Tls::new(&lab_ca), addr, Some("shop.cilium.rocks")).await);
    finish(problems, &gw);
}

// ---------------------------------------------------------------------------------------------
// §1.6 TLSRoute

/// The backends' own CA and certificate (`tls-checks-certificate`).
fn backend_pki() -> (Ca, Leaf) {
    let ca = Ca::new("tls-checks-ca");
    let leaf = ca.leaf(
        &["abc.example.com", "other.example.com"],
        KeyKind::EcdsaP256Pkcs8,
    );
    (ca, leaf)
}

/// One Passthrough listener (`hostname`) on :443 with a route for `abc.example.com` to
/// `tcp-backend`.
async fn simple_passthrough(hostname: Option<&str>) -> (Ca, TlsBackend, Gateway, SocketAddr) {
    let (ca, leaf) = backend_pki();
    let backend = TlsBackend::start("tcp-backend", leaf).await;
    let ip = unique_ip();
    let toml = format!(
        "{}{}{}",
        gateway("gateway-tlsroute", ip, &tls_listener("tls", 443, hostname)),
        tls_route(
            "gateway-conformance-infra-test",
            INFRA,
            "gateway-tlsroute",
            None,
            &["abc.example.com"],
            "tcp-backend"
        ),
        tls_service("tcp-backend", INFRA, backend.addr),
    );
    let gw = start(ConfigDir::new(), &toml, ip, &[443]);
    (ca, backend, gw, SocketAddr::from((ip, 443)))
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_route_simple_same_namespace() {
    let (ca, backend, gw, addr) = simple_passthrough(Some("*.example.com")).await;
    let tls = Tls::new(&ca).alpn(&["h2", "http/1.1"]);
    let mut problems = check_passthrough(&tls, addr, "abc.example.com", &backend, false).await;
    // TLS 1.2 passes through as well.
    problems.extend(
        check_passthrough(
            &tls.clone().only(&TLS12),
            addr,
            "abc.example.com",
            &backend,
            false,
        )
        .await,
    );
    finish(problems, &gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_route_hostname_intersection() {
    let (ca, leaf) = backend_pki();
    let b1 = TlsBackend::start("tls-backend", leaf.clone()).await;
    let b2 = TlsBackend::start("tls-backend-2", leaf).await;
    let ips = [unique_ip(), unique_ip(), unique_ip(), unique_ip()];
    let gws = [
        "gw-tlsroute-exact-hostname-x-1",
        "gw-tlsroute-more-specific-wc-hostname-x-2",
        "gw-tlsroute-less-specific-wc-hostname-x-3",
        "gw-tlsroute-empty-hostname-x-4",
    ];
    let listener_hosts = [
        Some("abc.example.com"),
        Some("*.example.com"),
        Some("*.com"),
        None,
    ];
    let mut toml = format!(
        "{}{}",
        tls_service("tls-backend", INFRA, b1.addr),
        tls_service("tls-backend-2", INFRA, b2.addr)
    );
    for i in 0..4 {
        toml += &gateway(gws[i], ips[i], &tls_listener("tls", 443, listener_hosts[i]));
    }
    // (gateway, route, hostnames, backend)
    let routes: [(usize, &str, &str, &str); 7] = [
        (
            0,
            "tlsroute-more-specific-wc-hostname-x-1",
            "*.example.com",
            "tls-backend",
        ),
        (
            1,
            "tlsroute-exact-hostname-x-2",
            "abc.example.com",
            "tls-backend",
        ),
        (
            1,
            "tlsroute-less-specific-wc-hostname-x-2",
            "*.com",
            "tls-backend-2",
        ),
        (
            2,
            "tlsroute-exact-hostname-x-3",
            "abc.example.com",
            "tls-backend",
        ),
        (
            2,
            "tlsroute-more-specific-wc-hostname-x-3",
            "*.example.com",
            "tls-backend-2",
        ),
        (
            3,
            "tlsroute-exact-hostname-x-4",
            "abc.example.com",
            "tls-backend",
        ),
        (
            3,
            "tlsroute-less-specific-wc-hostname-x-4",
            "*.com",
            "tls-backend-2",
        ),
    ];
    for (g, name, host, backend) in routes {
        toml += &tls_route(name, INFRA, gws[g], None, &[host], backend);
    }
    let dir = ConfigDir::new();
    dir.write("gatehouse.toml", &toml);
    let addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::from((*ip, 443))).collect();
    let gw = Gateway::start(dir, &addrs);
    let tls = Tls::new(&ca).alpn(&["h2", "http/1.1"]);
    let at = |i: usize| SocketAddr::from((ips[i], 443));
    let mut problems = Vec::new();

    // (1) listener abc.example.com, route *.example.com.
    problems.extend(check_passthrough(&tls, at(0), "abc.example.com", &b1, false).await);
    problems.extend(check_rejected(&tls, at(0), Some("other.example.com")).await);
    problems.extend(check_rejected(&tls, at(0), Some("non.matching.com")).await);
    // (2)-(4): abc.example.com → tls-backend, other.example.com → tls-backend-2.
    for i in 1..4 {
        problems.extend(check_passthrough(&tls, at(i), "abc.example.com", &b1, false).await);
        problems.extend(check_passthrough(&tls, at(i), "other.example.com", &b2, false).await);
    }
    problems.extend(check_rejected(&tls, at(1), Some("non.matching.com")).await);
    problems.extend(check_rejected(&tls, at(2), Some("non.matching.com")).await);
    problems.extend(check_rejected(&tls, at(3), Some("non.matching.org")).await);
    finish(problems, &gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_route_invalid_backend_ref_nonexistent() {
    let (ca, leaf) = backend_pki();
    let backend = TlsBackend::start("tcp-backend", leaf).await;
    let ip = unique_ip();
    let toml = format!(
        "{}{}{}{}",
        gateway("gateway-tlsroute", ip, &tls_listener("tls", 443, None)),
        tls_route(
            "invalid-backend-ref-nonexistent",
            INFRA,
            "gateway-tlsroute",
            None,
            &["example.com"],
            "nonexistent"
        ),
        // A working route on the same listener, so a rejection is not a dead gateway.
        tls_route(
            "working",
            INFRA,
            "gateway-tlsroute",
            None,
            &["abc.example.com"],
            "tcp-backend"
        ),
        tls_service("tcp-backend", INFRA, backend.addr),
    );
    let gw = start(ConfigDir::new(), &toml, ip, &[443]);
    let addr = SocketAddr::from((ip, 443));
    let tls = Tls::new(&ca).alpn(&["h2", "http/1.1"]);
    let mut problems = check_rejected(&tls, addr, Some("example.com")).await;
    problems.extend(check_passthrough(&tls, addr, "abc.example.com", &backend, false).await);
    finish(problems, &gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_route_mixed_termination_same_namespace() {
    let gw_ca = Ca::new("gatehouse test CA");
    let gw_leaf = gw_ca.leaf(&["tls.example.com"], KeyKind::EcdsaP256Pkcs8);
    let (backend_ca, backend_leaf) = backend_pki();
    let tls_backend = TlsBackend::start("tcp-backend-tls", backend_leaf).await;
    let plain = echo("tcp-backend", INFRA);
    let ip = unique_ip();
    let dir = ConfigDir::new();
    let listeners = [
        https_listener(
            "tls-terminate",
            8443,
            Some("tls.example.com"),
            "tls-terminate-checks-certificate",
        ),
        tls_listener("tls-passthrough", 8443, Some("abc.example.com")),
    ]
    .join("\n");
    let toml = format!(
        "{}{}{}{}{}{}",
        gw_leaf.secret(&dir, "tls-terminate-checks-certificate", INFRA),
        gateway("gateway-tlsroute-mixed", ip, &listeners),
        http_route(
            "terminate",
            INFRA,
            "gateway-tlsroute-mixed",
            Some("tls-terminate"),
            &["tls.example.com"],
            "/",
            "tcp-backend"
        ),
        tls_route(
            "passthrough",
            INFRA,
            "gateway-tlsroute-mixed",
            Some("tls-passthrough"),
            &["abc.example.com"],
            "tcp-backend-tls"
        ),
        service("tcp-backend", INFRA, &[&plain]),
        tls_service("tcp-backend-tls", INFRA, tls_backend.addr),
    );
    let gw = start(dir, &toml, ip, &[8443]);
    let addr = SocketAddr::from((ip, 8443));
    let mut problems = Vec::new();

    // Terminate: the gateway's certificate; the backend gets plaintext HTTP.
    for alpn in ["h2", "http/1.1"] {
        let mut c = HttpsChecker::new(&Tls::new(&gw_ca), addr, alpn);
        c.check(
            "tls.example.com",
            "tls.example.com",
            "/mixed",
            "200 tcp-backend",
        )
        .await;
        c.finish(&gw);
    }
    match Https::open(&Tls::new(&gw_ca).alpn(&["h2"]), addr, "tls.example.com").await {
        Ok(mut h) => {
            if h.leaf != gw_leaf.der {
                problems.push("tls.example.com: not the gateway's certificate".into());
            }
            match h.get("tls.example.com", "/proto").await {
                Ok(r) if r.echoed_header("x-forwarded-proto").as_deref() == Some("https") => {}
                Ok(r) => problems.push(format!(
                    "tls.example.com: X-Forwarded-Proto at the backend {:?}",
                    r.echoed_header("x-forwarded-proto")
                )),
                Err(e) => problems.push(format!("tls.example.com: {e}")),
            }
        }
        Err(e) => problems.push(format!("tls.example.com: {e}")),
    }

    // Passthrough on the same port: the backend's certificate, the client's SNI.
    let tls = Tls::new(&backend_ca).alpn(&["h2", "http/1.1"]);
    problems.extend(check_passthrough(&tls, addr, "abc.example.com", &tls_backend, false).await);

    // Neither takes another name.
    problems.extend(check_rejected(&tls, addr, Some("other.example.com")).await);
    problems.extend(check_rejected(&tls, addr, None).await);
    finish(problems, &gw);
}

// ---------------------------------------------------------------------------------------------
// More passthrough cases

#[tokio::test(flavor = "multi_thread")]
async fn client_hello_in_one_byte_writes_passthrough() {
    let (ca, backend, gw, addr) = simple_passthrough(Some("*.example.com")).await;
    let tls = Tls::new(&ca).alpn(&["h2", "http/1.1"]);
    let problems = check_passthrough(&tls, addr, "abc.example.com", &backend, true).await;
    finish(problems, &gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn passthrough_no_sni_is_rejected_without_alert() {
    // A listener without hostname takes a client without SNI, but no TLSRoute can match it.
    let (ca, backend, gw, addr) = simple_passthrough(None).await;
    let tls = Tls::new(&ca).alpn(&["h2", "http/1.1"]);
    let mut problems = check_rejected(&tls, addr, None).await;
    problems.extend(check_rejected(&tls, addr, Some("unknown.example.com")).await);
    problems.extend(check_passthrough(&tls, addr, "abc.example.com", &backend, false).await);
    finish(problems, &gw);
}
