//! HTTPS listeners (TLS terminated with rustls) against the real binary: the certificate and
//! listener chosen by SNI, ALPN (h2, http/1.1) and TLS 1.2/1.3, key formats, connections the
//! gateway must close without a TLS alert, and the HTTPS cases of gateway-api-semantics.md
//! §1.5 (HTTPRouteHTTPSListener and the misdirected-request table, over HTTP/2 and HTTP/1.1).
//! Certificates are made at test time by a test CA; the client trusts that CA only.

use gatehouse_tests::conformance::{INFRA, Infra, echo, gateway, service};
use gatehouse_tests::tls::*;
use gatehouse_tests::{ConfigDir, Echo, Gateway, require_openssl, unique_ip};
use std::net::{Ipv4Addr, SocketAddr};

/// One HTTPS listener for `www.example.com` on :443 with a `kind` certificate, and an
/// HTTPRoute to an echo backend named `web`.
struct Simple {
    ca: Ca,
    leaf: Leaf,
    _web: Echo,
    gw: Gateway,
    addr: SocketAddr,
}

fn simple(kind: KeyKind) -> Simple {
    let ca = Ca::new("gatehouse test CA");
    let leaf = ca.leaf(&["www.example.com"], kind);
    let web = echo("web", INFRA);
    let ip = unique_ip();
    let dir = ConfigDir::new();
    let toml = format!(
        "{}{}{}{}",
        leaf.secret(&dir, "www-cert", INFRA),
        gateway(
            "simple",
            ip,
            &https_listener("https", 443, Some("www.example.com"), "www-cert")
        ),
        http_route("web", INFRA, "simple", None, &[], "/", "web"),
        service("web", INFRA, &[&web]),
    );
    let gw = start(dir, &toml, ip, &[443]);
    Simple {
        ca,
        leaf,
        _web: web,
        gw,
        addr: SocketAddr::from((ip, 443)),
    }
}

// ---------------------------------------------------------------------------------------------
// Certificate and listener selection by SNI

#[tokio::test(flavor = "multi_thread")]
async fn certificate_chosen_by_sni() {
    let ca = Ca::new("gatehouse test CA");
    let exact = ca.leaf(&["a.example.com"], KeyKind::EcdsaP256Pkcs8);
    let wild = ca.leaf(
        &["*.example.com", "deep.x.example.com"],
        KeyKind::EcdsaP256Pkcs8,
    );
    let wild_b = ca.leaf(&["*.b.example.com"], KeyKind::EcdsaP256Pkcs8);
    let default = ca.leaf(&["default.test", "other.test"], KeyKind::EcdsaP256Pkcs8);
    let web = echo("web", INFRA);
    let ip = unique_ip();
    let dir = ConfigDir::new();
    let listeners = [
        https_listener("exact", 443, Some("a.example.com"), "exact"),
        https_listener("wildcard", 443, Some("*.example.com"), "wildcard"),
        https_listener("wildcard-b", 443, Some("*.b.example.com"), "wildcard-b"),
        https_listener("catch-all", 443, None, "catch-all"),
    ]
    .join("\n");
    let toml = format!(
        "{}{}{}{}{}{}{}",
        exact.secret(&dir, "exact", INFRA),
        wild.secret(&dir, "wildcard", INFRA),
        wild_b.secret(&dir, "wildcard-b", INFRA),
        default.secret(&dir, "catch-all", INFRA),
        gateway("by-sni", ip, &listeners),
        http_route("web", INFRA, "by-sni", None, &[], "/", "web"),
        service("web", INFRA, &[&web]),
    );
    let gw = start(dir, &toml, ip, &[443]);
    let addr = SocketAddr::from((ip, 443));
    let all = [&exact, &wild, &wild_b, &default];
    let tls = Tls::new(&ca).alpn(&["h2", "http/1.1"]);

    let mut failures = Vec::new();
    // (SNI sent or None, name to verify and Host, certificate wanted)
    let cases: [(Option<&str>, &str, &Leaf); 7] = [
        (Some("a.example.com"), "a.example.com", &exact),
        (Some("x.example.com"), "x.example.com", &wild),
        // Listener wildcards match one or more labels.
        (Some("deep.x.example.com"), "deep.x.example.com", &wild),
        // The most specific wildcard wins.
        (Some("x.b.example.com"), "x.b.example.com", &wild_b),
        (Some("other.test"), "other.test", &default),
        (Some("default.test"), "default.test", &default),
        // A client without SNI gets the listener without hostname.
        (None, "default.test", &default),
    ];
    for (sni, name, want) in cases {
        let client = if sni.is_some() {
            tls.clone()
        } else {
            tls.clone().no_sni()
        };
        let what = format!("SNI {sni:?}");
        let mut conn = match client.connect(addr, name).await {
            Ok(s) => {
                let got = peer_leaf(&s);
                if got != want.der {
                    failures.push(format!(
                        "{what}: want certificate {}, got {}",
                        want.label(),
                        which(&got, &all)
                    ));
                    continue;
                }
                match Https::over(s).await {
                    Ok(c) => c,
                    Err(e) => {
                        failures.push(format!("{what}: HTTP handshake: {e}"));
                        continue;
                    }
                }
            }
            Err(e) => {
                failures.push(format!(
                    "{what}: handshake failed (want certificate {}): {e}",
                    want.label()
                ));
                continue;
            }
        };
        match conn.get(name, "/sni").await {
            Ok(r) if outcome(&r) == "200 web" => {}
            Ok(r) => failures.push(format!(
                "{what}: GET /sni: want 200 web, got {}",
                outcome(&r)
            )),
            Err(e) => failures.push(format!("{what}: GET /sni: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n--- gateway log ---\n{}",
        failures.join("\n"),
        gw.log()
    );
}

// ---------------------------------------------------------------------------------------------
// ALPN and TLS versions

async fn negotiation_case(
    version: &'static rustls::SupportedProtocolVersion,
    offer: &[&str],
    want_alpn: Option<&str>,
) {
    let s = simple(KeyKind::EcdsaP256Pkcs8);
    let tls = Tls::new(&s.ca).only(version).alpn(offer);
    let conn = tls
        .connect(s.addr, "www.example.com")
        .await
        .unwrap_or_else(|e| panic!("handshake: {e}\n{}", s.gw.log()));
    assert_eq!(
        version_of(&conn),
        Some(version.version),
        "negotiated version"
    );
    assert_eq!(alpn_of(&conn).as_deref(), want_alpn, "negotiated ALPN");
    assert_eq!(peer_leaf(&conn), s.leaf.der, "certificate");
    let mut https = Https::over(conn).await.expect("HTTP handshake");
    assert_eq!(https.h2, want_alpn == Some("h2"));
    for path in ["/one", "/two?x=1"] {
        let r = https
            .get("www.example.com", path)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", s.gw.log()));
        assert_eq!(outcome(&r), "200 web", "GET {path}: {r:?}");
        assert_eq!(r.json()["path"], path);
        assert_eq!(
            r.echoed_header("x-forwarded-proto").as_deref(),
            Some("https"),
            "X-Forwarded-Proto the backend saw"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls13_alpn_h2() {
    negotiation_case(&TLS13, &["h2"], Some("h2")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls13_alpn_http11() {
    negotiation_case(&TLS13, &["http/1.1"], Some("http/1.1")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls12_alpn_h2() {
    negotiation_case(&TLS12, &["h2"], Some("h2")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls12_alpn_http11() {
    negotiation_case(&TLS12, &["http/1.1"], Some("http/1.1")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_alpn_is_http11() {
    negotiation_case(&TLS13, &[], None).await;
}

// ---------------------------------------------------------------------------------------------
// Key formats and certificate types

async fn key_case(kind: KeyKind) {
    let s = simple(kind);
    for version in [&TLS13, &TLS12] {
        let tls = Tls::new(&s.ca).only(version).alpn(&["h2", "http/1.1"]);
        let conn = tls
            .connect(s.addr, "www.example.com")
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{kind:?} {:?}: handshake: {e}\n{}",
                    version.version,
                    s.gw.log()
                )
            });
        assert_eq!(peer_leaf(&conn), s.leaf.der, "{kind:?}: certificate");
        assert_eq!(version_of(&conn), Some(version.version));
        let mut https = Https::over(conn).await.expect("HTTP handshake");
        let r = https.get("www.example.com", "/key").await.expect("GET");
        assert_eq!(outcome(&r), "200 web", "{kind:?} {:?}", version.version);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_ecdsa_p256_pkcs8() {
    key_case(KeyKind::EcdsaP256Pkcs8).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_ecdsa_p256_sec1() {
    require_openssl!();
    key_case(KeyKind::EcdsaP256Sec1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_ed25519_pkcs8() {
    key_case(KeyKind::Ed25519Pkcs8).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rsa_pkcs8() {
    require_openssl!();
    key_case(KeyKind::RsaPkcs8).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rsa_pkcs1() {
    require_openssl!();
    key_case(KeyKind::RsaPkcs1).await;
}

// ---------------------------------------------------------------------------------------------
// Connections the gateway must close, without a TLS alert

/// Listeners `a.example.com` and `*.wild.test` only (no listener without hostname).
fn no_catch_all() -> Simple {
    let ca = Ca::new("gatehouse test CA");
    let leaf = ca.leaf(&["a.example.com", "*.wild.test"], KeyKind::EcdsaP256Pkcs8);
    let web = echo("web", INFRA);
    let ip = unique_ip();
    let dir = ConfigDir::new();
    let listeners = [
        https_listener("a", 443, Some("a.example.com"), "cert"),
        https_listener("wild", 443, Some("*.wild.test"), "cert"),
    ]
    .join("\n");
    let toml = format!(
        "{}{}{}{}",
        leaf.secret(&dir, "cert", INFRA),
        gateway("named-only", ip, &listeners),
        http_route("web", INFRA, "named-only", None, &[], "/", "web"),
        service("web", INFRA, &[&web]),
    );
    let gw = start(dir, &toml, ip, &[443]);
    Simple {
        ca,
        leaf,
        _web: web,
        gw,
        addr: SocketAddr::from((ip, 443)),
    }
}

/// A good connection (SNI a.example.com) still gets its answer.
async fn still_serves(s: &Simple) {
    let tls = Tls::new(&s.ca).alpn(&["h2"]);
    let mut https = Https::open(&tls, s.addr, "a.example.com")
        .await
        .unwrap_or_else(|e| panic!("good connection after a rejected one: {e}\n{}", s.gw.log()));
    let r = https.get("a.example.com", "/after").await.expect("GET");
    assert_eq!(outcome(&r), "200 web");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_sni_is_rejected_without_alert() {
    let s = no_catch_all();
    let tls = Tls::new(&s.ca);
    for sni in ["unknown.test", "wild.test", "b.example.com"] {
        if let Err(e) = expect_rejected(&tls, s.addr, sni).await {
            panic!("SNI {sni}: {e}\n{}", s.gw.log());
        }
        if let Err(e) = expect_closed_silently(&tls, s.addr, sni).await {
            panic!("SNI {sni} (raw ClientHello): {e}\n{}", s.gw.log());
        }
    }
    still_serves(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_sni_without_listener_without_hostname_is_rejected_without_alert() {
    let s = no_catch_all();
    let tls = Tls::new(&s.ca).no_sni();
    if let Err(e) = expect_rejected(&tls, s.addr, "a.example.com").await {
        panic!("no SNI: {e}\n{}", s.gw.log());
    }
    if let Err(e) = expect_closed_silently(&tls, s.addr, "a.example.com").await {
        panic!("no SNI (raw ClientHello): {e}\n{}", s.gw.log());
    }
    still_serves(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_to_tls_port_is_closed() {
    let s = no_catch_all();
    let (got, end) = send_raw(
        s.addr,
        b"GET / HTTP/1.1\r\nHost: a.example.com\r\nConnection: keep-alive\r\n\r\n",
    )
    .await;
    assert!(
        matches!(end, End::Eof | End::Reset),
        "plain HTTP on a TLS port: want the connection closed, got {end:?} after {:?}",
        String::from_utf8_lossy(&got)
    );
    still_serves(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_to_tls_port_is_closed() {
    let s = no_catch_all();
    let garbage: [&[u8]; 3] = [
        // Not a TLS record at all.
        b"\x00\xff\x13\x37 this is not TLS \xde\xad\xbe\xef\r\n\r\n",
        // A handshake record whose message is not a ClientHello.
        &[0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0x00, 0x00, 0x01, 0x00],
        // A ClientHello record header whose body is rubbish.
        &[
            0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef,
        ],
    ];
    for bytes in garbage {
        let (got, end) = send_raw(s.addr, bytes).await;
        assert!(
            matches!(end, End::Eof | End::Reset),
            "garbage {bytes:02x?}: want the connection closed, got {end:?} after {got:02x?}"
        );
    }
    still_serves(&s).await;
}

// ---------------------------------------------------------------------------------------------
// A ClientHello in 1-byte writes

#[tokio::test(flavor = "multi_thread")]
async fn client_hello_in_one_byte_writes_terminate() {
    let s = simple(KeyKind::EcdsaP256Pkcs8);
    for offer in ["h2", "http/1.1"] {
        let tls = Tls::new(&s.ca).alpn(&[offer]);
        let tap = Tap::new(tcp(s.addr).await.expect("connect"), true);
        let conn = tls
            .handshake(tap, "www.example.com")
            .await
            .unwrap_or_else(|e| panic!("{offer}: handshake in 1-byte writes: {e}\n{}", s.gw.log()));
        assert_eq!(peer_leaf(&conn), s.leaf.der);
        assert_eq!(alpn_of(&conn).as_deref(), Some(offer));
        let mut https = Https::over(conn).await.expect("HTTP handshake");
        let r = https
            .get("www.example.com", "/bytes")
            .await
            .unwrap_or_else(|e| panic!("{offer}: GET: {e}\n{}", s.gw.log()));
        assert_eq!(outcome(&r), "200 web", "{offer}");
    }
}

// ---------------------------------------------------------------------------------------------
// §1.5: HTTPS listeners of the conformance fixture `same-namespace-with-https-listener`

/// The fixture Gateway: four HTTPS :443 listeners sharing one certificate.
fn https_fixture(ip: Ipv4Addr) -> String {
    let listeners = [
        https_listener("https", 443, None, "tls-validity-checks-certificate"),
        https_listener(
            "https-with-hostname",
            443,
            Some("second-example.org"),
            "tls-validity-checks-certificate",
        ),
        https_listener(
            "https-with-wildcard-hostname",
            443,
            Some("*.wildcard.org"),
            "tls-validity-checks-certificate",
        ),
        https_listener(
            "https-with-hostname-matching-wildcard",
            443,
            Some("fourth-example.wildcard.org"),
            "tls-validity-checks-certificate",
        ),
    ]
    .join("\n");
    gateway("same-namespace-with-https-listener", ip, &listeners)
}

/// The fixture with `routes`, the infra backends, and a certificate valid for every name the
/// cases use (the fixture's own has SANs `*`, `*.org`, `*.wildcard.org`, which webpki does
/// not accept for these names).
fn https_fixture_lab(routes: &str) -> (Ca, Infra, Gateway, SocketAddr) {
    let ca = Ca::new("gatehouse test CA");
    let leaf = ca.leaf(
        &[
            "example.org",
            "second-example.org",
            "unknown-example.org",
            "*.wildcard.org",
        ],
        KeyKind::EcdsaP256Pkcs8,
    );
    let infra = Infra::start();
    let ip = unique_ip();
    let dir = ConfigDir::new();
    let toml = format!(
        "{}{}{}{}",
        infra.toml(),
        leaf.secret(&dir, "tls-validity-checks-certificate", INFRA),
        https_fixture(ip),
        routes,
    );
    let gw = start(dir, &toml, ip, &[443]);
    (ca, infra, gw, SocketAddr::from((ip, 443)))
}

const GW: &str = "same-namespace-with-https-listener";

#[tokio::test(flavor = "multi_thread")]
async fn http_route_https_listener() {
    let routes = format!(
        "{}{}",
        // Hostname example.org: attaches to the listener without hostname only.
        http_route(
            "httproute-https-test",
            INFRA,
            GW,
            None,
            &["example.org"],
            "/",
            "infra-backend-v1"
        ),
        http_route(
            "httproute-https-test-no-hostname",
            INFRA,
            GW,
            Some("https-with-hostname"),
            &[],
            "/",
            "infra-backend-v2"
        ),
    );
    let (ca, _infra, gw, addr) = https_fixture_lab(&routes);
    let tls = Tls::new(&ca);
    for alpn in ["h2", "http/1.1"] {
        let mut c = HttpsChecker::new(&tls, addr, alpn);
        c.check("example.org", "example.org", "/", "200 infra-backend-v1")
            .await;
        // The handshake succeeds on the listener without hostname; no route takes the host.
        c.check("unknown-example.org", "unknown-example.org", "/", "404")
            .await;
        c.check(
            "second-example.org",
            "second-example.org",
            "/",
            "200 infra-backend-v2",
        )
        .await;
        c.finish(&gw);
    }
}

fn misdirected_routes() -> String {
    const P: &str = "/detect-misdirected-requests";
    format!(
        "{}{}{}{}",
        http_route(
            "https-listener-detect-misdirected-requests-test-1",
            INFRA,
            GW,
            None,
            &["example.org"],
            P,
            "infra-backend-v1"
        ),
        http_route(
            "https-listener-detect-misdirected-requests-test-2",
            INFRA,
            GW,
            Some("https-with-hostname"),
            &[],
            P,
            "infra-backend-v2"
        ),
        http_route(
            "https-listener-detect-misdirected-requests-test-3",
            INFRA,
            GW,
            Some("https-with-wildcard-hostname"),
            &[],
            P,
            "infra-backend-v3"
        ),
        http_route(
            "https-listener-detect-misdirected-requests-test-4",
            INFRA,
            GW,
            Some("https-with-hostname-matching-wildcard"),
            &[],
            P,
            "infra-backend-v1"
        ),
    )
}

/// The table of §1.5, HTTPRouteHTTPSListenerDetectMisdirectedRequests.
const MISDIRECTED: &[(&str, &str, &str)] = &[
    ("example.org", "example.org", "200 infra-backend-v1"),
    ("example.org", "second-example.org", "421"),
    ("example.org", "unknown-example.org", "404"),
    (
        "second-example.org",
        "second-example.org",
        "200 infra-backend-v2",
    ),
    ("second-example.org", "example.org", "421"),
    ("second-example.org", "unknown-example.org", "421"),
    (
        "third-example.wildcard.org",
        "third-example.wildcard.org",
        "200 infra-backend-v3",
    ),
    (
        "third-example.wildcard.org",
        "fith-example.wildcard.org",
        "200 infra-backend-v3",
    ),
    (
        "third-example.wildcard.org",
        "fourth-example.wildcard.org",
        "421",
    ),
    ("third-example.wildcard.org", "second-example.org", "421"),
    ("third-example.wildcard.org", "unknown-example.org", "421"),
    (
        "fourth-example.wildcard.org",
        "fourth-example.wildcard.org",
        "200 infra-backend-v1",
    ),
    (
        "fourth-example.wildcard.org",
        "fith-example.wildcard.org",
        "421",
    ),
    ("unknown-example.org", "example.org", "200 infra-backend-v1"),
    ("unknown-example.org", "unknown-example.org", "404"),
];

async fn misdirected_case(alpn: &str) {
    let (ca, _infra, gw, addr) = https_fixture_lab(&misdirected_routes());
    let mut c = HttpsChecker::new(&Tls::new(&ca), addr, alpn);
    for (sni, host, want) in MISDIRECTED {
        c.check(sni, host, "/detect-misdirected-requests", want)
            .await;
    }
    c.finish(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_https_listener_detect_misdirected_requests_http2() {
    misdirected_case("h2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_https_listener_detect_misdirected_requests_http1() {
    misdirected_case("http/1.1").await;
}
