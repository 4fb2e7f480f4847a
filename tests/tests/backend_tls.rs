//! BackendTLSPolicy against the real binary: gatehouse speaks TLS to `openssl s_server -www`
//! backends whose certificates a test CA (rcgen) signed, verifies them as the policy says,
//! and fails closed (502, with the reason in the log and
//! `gatehouse_backend_tls_errors_total`). Skipped, with the reason printed, when `openssl`
//! is not installed.

use gatehouse_tests::backend_tls::{Ca, TlsBackend, have_openssl, log_has};
use gatehouse_tests::{Client, ConfigDir, Gateway, Resp, text, unique_ip};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A Service `name` on `backend` (port 443, named `https`), a route rule `/name` to it, and
/// a BackendTLSPolicy `name` with `validation`.
fn case(name: &str, backend: SocketAddr, validation: &str) -> String {
    format!(
        r#"
[[Service]]
name = "{name}"
ports = [{{ name = "https", port = 443, targetPort = {port} }}]
endpoints = ["{ip}"]

[[HTTPRoute]]
name = "{name}"
parentRefs = [{{ name = "gw" }}]
[[HTTPRoute.rules]]
matches = [{{ path = {{ type = "PathPrefix", value = "/{name}" }} }}]
backendRefs = [{{ name = "{name}", port = 443 }}]

[[BackendTLSPolicy]]
name = "{name}"
targetRefs = [{{ group = "", kind = "Service", name = "{name}", sectionName = "https" }}]
validation = {validation}
"#,
        port = backend.port(),
        ip = backend.ip(),
    )
}

const TRUST_TEST_CA: &str =
    r#"caCertificateRefs = [{ group = "", kind = "ConfigMap", name = "test-ca" }]"#;

struct Lab {
    gw: Gateway,
    addr: SocketAddr,
    _backends: Vec<TlsBackend>,
}

impl Lab {
    async fn get(&self, path: &str) -> Resp {
        Client::http1(self.addr).get("app.example", path).await
    }

    async fn admin(&self, path: &str) -> Resp {
        Client::http1(self.gw.admin).get("127.0.0.1", path).await
    }

    /// The condition `kind` of BackendTLSPolicy `name` in `/status`: (status, reason).
    async fn policy_condition(&self, name: &str, kind: &str) -> (String, String) {
        let status = self.admin("/status").await.json();
        let policies = status["status"]["backendTlsPolicies"]
            .as_array()
            .or_else(|| status["backendTlsPolicies"].as_array())
            .cloned()
            .unwrap_or_else(|| panic!("no backendTlsPolicies in /status: {status}"));
        let p = policies
            .iter()
            .find(|p| p["key"]["name"] == name)
            .unwrap_or_else(|| panic!("no policy {name} in {status}"));
        let c = p["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
            .unwrap_or_else(|| panic!("no {kind} condition on {name}: {p}"));
        (
            c["status"].as_str().unwrap_or("").to_string(),
            c["reason"].as_str().unwrap_or("").to_string(),
        )
    }
}

/// One gateway in front of every case: the good chain, a wrong hostname, an unknown CA, an
/// expired certificate, SAN matches and mismatches, and a policy with no valid CA.
fn lab() -> Lab {
    let ca = Ca::new("gatehouse test CA");
    let stranger = Ca::new("some other CA");
    let dir = ConfigDir::new();
    let good = TlsBackend::start(&dir, "good", ca.leaf(&["backend.example"], &[], false));
    let unknown = TlsBackend::start(
        &dir,
        "unknown",
        stranger.leaf(&["backend.example"], &[], false),
    );
    let expired = TlsBackend::start(&dir, "expired", ca.leaf(&["backend.example"], &[], true));
    let san = TlsBackend::start(
        &dir,
        "san",
        ca.leaf(
            &["backend.internal"],
            &["spiffe://cluster.local/ns/default/sa/backend"],
            false,
        ),
    );
    dir.write("ca/test-ca.pem", &ca.pem);
    let ip = unique_ip();
    let host = |h: &str| format!(r#"{{ {TRUST_TEST_CA}, hostname = "{h}" }}"#);
    let sans = |h: &str, s: &str| {
        format!(r#"{{ {TRUST_TEST_CA}, hostname = "{h}", subjectAltNames = [{s}] }}"#)
    };
    let toml = [
        format!(
            r#"
[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
[[Gateway.listeners]]
name = "http"
protocol = "HTTP"
port = 80

[[ConfigMap]]
name = "test-ca"
caFile = "ca/test-ca.pem"
"#
        ),
        case("good", good.addr, &host("backend.example")),
        case("wrong-host", good.addr, &host("other.example")),
        case("unknown-ca", unknown.addr, &host("backend.example")),
        case("expired", expired.addr, &host("backend.example")),
        case(
            "san-uri",
            san.addr,
            &sans("sni.example", r#"{ type = "URI", uri = "spiffe://cluster.local/ns/default/sa/backend" }"#),
        ),
        case(
            "san-dns",
            san.addr,
            &sans("sni.example", r#"{ type = "Hostname", hostname = "backend.internal" }"#),
        ),
        case(
            "san-mismatch",
            san.addr,
            &sans("backend.internal", r#"{ type = "Hostname", hostname = "other.internal" }"#),
        ),
        case(
            "no-ca",
            good.addr,
            r#"{ caCertificateRefs = [{ group = "", kind = "ConfigMap", name = "missing" }], hostname = "backend.example" }"#,
        ),
    ]
    .join("\n");
    dir.write("gatehouse.toml", &toml);
    let check = dir.check(&[]);
    assert!(check.status.success(), "{toml}\n{:?}", text(&check));
    let addr = SocketAddr::from((ip, 80));
    let gw = Gateway::start(dir, &[addr]);
    Lab {
        gw,
        addr,
        _backends: vec![good, unknown, expired, san],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_tls_policy_verifies_backends_and_fails_closed() {
    if !have_openssl() {
        return;
    }
    let lab = lab();

    // A chain to the policy's CA, for the policy's hostname: proxied over TLS.
    let r = lab.get("/good").await;
    assert_eq!(r.status.as_u16(), 200, "{}", lab.gw.log());
    let page = String::from_utf8_lossy(&r.body);
    assert!(
        page.contains("s_server"),
        "not the TLS backend's page: {page}"
    );
    assert_eq!(
        lab.policy_condition("good", "Accepted").await,
        ("True".into(), "Accepted".into())
    );

    // The certificate does not name the policy's hostname.
    assert_eq!(lab.get("/wrong-host").await.status.as_u16(), 502);
    // The chain leads to another CA.
    assert_eq!(lab.get("/unknown-ca").await.status.as_u16(), 502);
    // Expired.
    assert_eq!(lab.get("/expired").await.status.as_u16(), 502);

    // subjectAltNames: the certificate must carry one of them; hostname is only the SNI.
    assert_eq!(
        lab.get("/san-uri").await.status.as_u16(),
        200,
        "{}",
        lab.gw.log()
    );
    assert_eq!(lab.get("/san-dns").await.status.as_u16(), 200);
    // ... and then hostname itself no longer counts.
    assert_eq!(lab.get("/san-mismatch").await.status.as_u16(), 502);

    // A policy without a valid CA certificate: requests fail (5xx), status says why.
    assert_eq!(lab.get("/no-ca").await.status.as_u16(), 500);
    assert_eq!(
        lab.policy_condition("no-ca", "Accepted").await,
        ("False".into(), "NoValidCACertificate".into())
    );
    assert_eq!(
        lab.policy_condition("no-ca", "ResolvedRefs").await,
        ("False".into(), "InvalidCACertificateRef".into())
    );

    // Every failure names its reason in the log and the metric.
    for (policy, reason) in [
        ("wrong-host", "name_mismatch"),
        ("unknown-ca", "unknown_ca"),
        ("expired", "expired"),
        ("san-mismatch", "name_mismatch"),
    ] {
        assert!(
            log_has(
                &lab.gw,
                &format!("BackendTLSPolicy default/{policy} failed ({reason})")
            ),
            "no {reason} for {policy} in the log:\n{}",
            lab.gw.log()
        );
        let metrics = String::from_utf8_lossy(&lab.admin("/metrics").await.body).into_owned();
        let series = format!(
            "gatehouse_backend_tls_errors_total{{policy=\"default/{policy}\",reason=\"{reason}\"}}"
        );
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&series) && !l.ends_with(" 0")),
            "{series} not counted:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_applies_a_policy_change_to_the_next_connection() {
    if !have_openssl() {
        return;
    }
    let lab = lab();
    assert_eq!(lab.get("/wrong-host").await.status.as_u16(), 502);
    // Fix the hostname of the failing policy.
    let path = lab.gw.dir.path().join("gatehouse.toml");
    let toml = std::fs::read_to_string(&path).expect("read gatehouse.toml");
    let fixed = toml.replacen(
        "hostname = \"other.example\"",
        "hostname = \"backend.example\"",
        1,
    );
    assert_ne!(toml, fixed);
    lab.gw.dir.write("gatehouse.toml", &fixed);
    lab.gw.reload();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = lab.get("/wrong-host").await.status.as_u16();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after the reload: {}",
            lab.gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And back: the changed policy does not reuse the connection verified under the old one.
    lab.gw.dir.write("gatehouse.toml", &toml);
    lab.gw.reload();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = lab.get("/wrong-host").await.status.as_u16();
        if status == 502 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after the reload: {}",
            lab.gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_presents_its_backend_client_certificate_and_another_gateway_does_not() {
    if !have_openssl() {
        return;
    }
    let ca = Ca::new("gatehouse test CA");
    let client_ca = Ca::new("backend's client CA");
    let dir = ConfigDir::new();
    dir.write("ca/client-ca.pem", &client_ca.pem);
    let client_ca_file = dir.path().join("ca/client-ca.pem");
    // The backend requires a client certificate from its client CA.
    let backend = TlsBackend::start_with(
        &dir,
        "mtls",
        ca.leaf(&["backend.example"], &[], false),
        &[
            "-www",
            "-Verify",
            "1",
            "-verify_return_error",
            "-CAfile",
            client_ca_file.to_str().expect("UTF-8 path"),
        ],
    );
    let (cert, key) = client_ca.client_leaf("gatehouse.example");
    dir.write("client/gw.pem", &cert);
    dir.write("client/gw-key.pem", &key);
    dir.write("ca/test-ca.pem", &ca.pem);
    let (with_ip, without_ip) = (unique_ip(), unique_ip());
    let toml = format!(
        r#"
[[Gateway]]
name = "with"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{with_ip}" }}]
tls = {{ backend = {{ clientCertificateRef = {{ name = "gw-client" }} }} }}
listeners = [{{ name = "http", protocol = "HTTP", port = 80 }}]

[[Gateway]]
name = "without"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{without_ip}" }}]
listeners = [{{ name = "http", protocol = "HTTP", port = 80 }}]

[[Secret]]
name = "gw-client"
certFile = "client/gw.pem"
keyFile = "client/gw-key.pem"

[[ConfigMap]]
name = "test-ca"
caFile = "ca/test-ca.pem"

[[Service]]
name = "mtls"
ports = [{{ name = "https", port = 443, targetPort = {port} }}]
endpoints = ["{ip}"]

[[HTTPRoute]]
name = "mtls"
parentRefs = [{{ name = "with" }}, {{ name = "without" }}]
rules = [{{ backendRefs = [{{ name = "mtls", port = 443 }}] }}]

[[BackendTLSPolicy]]
name = "mtls"
targetRefs = [{{ group = "", kind = "Service", name = "mtls" }}]
validation = {{ {TRUST_TEST_CA}, hostname = "backend.example" }}
"#,
        port = backend.addr.port(),
        ip = backend.addr.ip(),
    );
    dir.write("gatehouse.toml", &toml);
    let check = dir.check(&[]);
    assert!(check.status.success(), "{toml}\n{:?}", text(&check));
    let (with, without) = (
        SocketAddr::from((with_ip, 80)),
        SocketAddr::from((without_ip, 80)),
    );
    let gw = Gateway::start(dir, &[with, without]);

    // Same policy, same backend: only the Gateway with the certificate gets through. Twice
    // each, so a pooled connection of one Gateway is never handed to the other.
    for _ in 0..2 {
        let r = Client::http1(with).get("app.example", "/").await;
        assert_eq!(r.status.as_u16(), 200, "{}", gw.log());
        assert!(String::from_utf8_lossy(&r.body).contains("s_server"));
        let r = Client::http1(without).get("app.example", "/").await;
        assert_eq!(r.status.as_u16(), 502, "{}", gw.log());
    }
}

/// Active HTTP health checks of a port a BackendTLSPolicy claims speak TLS and verify it:
/// of two `s_server -www` endpoints, the one whose certificate the policy's CA did not sign
/// leaves the rotation, and every request then reaches the good one.
#[tokio::test(flavor = "multi_thread")]
async fn health_checks_of_a_policy_port_speak_tls_and_drop_the_endpoint_that_fails_it() {
    if !have_openssl() {
        return;
    }
    let ca = Ca::new("gatehouse test CA");
    let stranger = Ca::new("some other CA");
    let dir = ConfigDir::new();
    let good = TlsBackend::start(&dir, "good", ca.leaf(&["backend.example"], &[], false));
    let bad = TlsBackend::start(&dir, "bad", stranger.leaf(&["backend.example"], &[], false));
    dir.write("ca/test-ca.pem", &ca.pem);
    let ip = unique_ip();
    dir.write(
        "gatehouse.toml",
        &format!(
            r#"
[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [{{ name = "http", protocol = "HTTP", port = 80 }}]

[[ConfigMap]]
name = "test-ca"
caFile = "ca/test-ca.pem"

[[Service]]
name = "checked"
ports = [{{ name = "https", port = 443 }}]
endpoints = ["{good}", "{bad}"]
healthCheck = {{ type = "HTTP", path = "/", interval = "1s", timeout = "1s", unhealthyThreshold = 1, healthyThreshold = 1 }}

[[HTTPRoute]]
name = "checked"
parentRefs = [{{ name = "gw" }}]
rules = [{{ backendRefs = [{{ name = "checked", port = 443 }}] }}]

[[BackendTLSPolicy]]
name = "checked"
targetRefs = [{{ group = "", kind = "Service", name = "checked", sectionName = "https" }}]
validation = {{ {TRUST_TEST_CA}, hostname = "backend.example" }}
"#,
            good = good.addr,
            bad = bad.addr,
        ),
    );
    let addr = SocketAddr::from((ip, 80));
    let gw = tokio::task::spawn_blocking(move || Gateway::start(dir, &[addr]))
        .await
        .unwrap();
    let dropped = format!("endpoint={} healthy=false", bad.addr);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !gw.log().contains(&dropped) {
        assert!(
            Instant::now() < deadline,
            "the bad endpoint never left the rotation:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !gw.log()
            .contains(&format!("endpoint={} healthy=false", good.addr)),
        "{}",
        gw.log()
    );
    // Every request now reaches the good endpoint over verified TLS.
    for _ in 0..6 {
        let r = Client::http1(addr).get("app.example", "/").await;
        assert_eq!(r.status.as_u16(), 200);
        assert!(String::from_utf8_lossy(&r.body).contains("s_server"));
    }
}
