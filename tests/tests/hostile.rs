//! Hostile clients against the real binary, over real sockets, each case bounded in time:
//! routing bypasses through path tricks, oversized and slow request heads, idle HTTP/1 and
//! HTTP/2 connections, stalled request bodies, more connections than `maxConnections`, idle
//! passthrough, spoofed forwarding headers, request smuggling and HTTP/2 rapid reset.

use gatehouse_tests::raw::{self, End, H2_END_HEADERS, H2_END_STREAM, H2_HEADERS, H2_PREFACE};
use gatehouse_tests::raw::{H2_RST_STREAM, H2_SETTINGS, body, exchange, h2_frame, hpack, metric};
use gatehouse_tests::{Client, ConfigDir, Echo, Gateway, unique_ip};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

struct Lab {
    gw: Gateway,
    addr: SocketAddr,
    echo: Echo,
}

/// gatehouse.toml: `settings`, then Gateway `gw` with one HTTP listener on `ip`:8080, then
/// `resources` (routes and Services).
fn http_gateway(ip: std::net::Ipv4Addr, settings: &str, resources: &str) -> String {
    format!(
        r#"{settings}

[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
[[Gateway.listeners]]
name = "web"
protocol = "HTTP"
port = 8080
{resources}"#
    )
}

/// A gateway with `[limits]` (and any other settings) from `settings`: `/admin` is blocked by
/// a weight-0 backendRef (503), `/api/` and everything else go to an echo backend.
fn lab(settings: &str) -> Lab {
    let ip = unique_ip();
    let echo = Echo::start("public");
    let routes = format!(
        r#"
[[HTTPRoute]]
name = "blocked-admin"
parentRefs = [{{ name = "gw" }}]
[[HTTPRoute.rules]]
matches = [{{ path = {{ type = "PathPrefix", value = "/admin" }} }}]
backendRefs = [{{ name = "public", port = 80, weight = 0 }}]

[[HTTPRoute]]
name = "public"
parentRefs = [{{ name = "gw" }}]
[[HTTPRoute.rules]]
backendRefs = [{{ name = "public", port = 80 }}]

[[Service]]
name = "public"
ports = [{{ port = 80 }}]
endpoints = ["{echo}"]
"#,
        echo = echo.addr
    );
    let addr = SocketAddr::from((ip, 8080));
    let text = http_gateway(ip, settings, &routes);
    let gw = Gateway::start(ConfigDir::with_main(&text), &[addr]);
    Lab { gw, addr, echo }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n").into_bytes()
}

fn rejected(lab: &Lab, reason: &str) -> f64 {
    metric(
        lab.gw.admin,
        &format!("gatehouse_http_rejected_requests_total{{reason=\"{reason}\"}}"),
    )
}

#[test]
fn dot_segments_double_slashes_and_encoded_characters_cannot_bypass_a_rule() {
    let lab = lab("");
    for path in [
        "/admin",
        "/public/../admin",
        "//admin",
        "/%61dmin",
        "/public/%2e%2e/admin",
        "/./admin/x",
        "/public/..//admin",
    ] {
        let (resp, _) = exchange(lab.addr, &get(path), WAIT);
        assert_eq!(raw::statuses(&resp), [503], "{path}: {resp}");
    }
    assert_eq!(lab.echo.requests_seen("admin"), 0);
}

#[test]
fn the_backend_receives_the_normalized_path_and_the_query_untouched() {
    let lab = lab("");
    let (resp, _) = exchange(lab.addr, &get("/api/./v1/../items//x?q=%2e%2e/a"), WAIT);
    assert_eq!(raw::statuses(&resp), [200], "{resp}");
    let echoed: serde_json::Value = serde_json::from_str(body(&resp)).expect("echo JSON");
    assert_eq!(echoed["path"], "/api/items/x?q=%2e%2e/a");
    // An encoded slash is a character of a segment, never a separator.
    let (resp, _) = exchange(lab.addr, &get("/files/a%2fb"), WAIT);
    let echoed: serde_json::Value = serde_json::from_str(body(&resp)).expect("echo JSON");
    assert_eq!(echoed["path"], "/files/a%2Fb");
}

#[test]
fn a_path_above_the_root_or_not_absolute_is_400_and_never_reaches_a_backend() {
    let lab = lab("");
    for req in [
        get("/../etc/passwd"),
        get("/%2e%2e/x"),
        get("/a%zz"),
        b"OPTIONS * HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n".to_vec(),
    ] {
        let (resp, end) = exchange(lab.addr, &req, WAIT);
        assert_eq!(raw::statuses(&resp), [400], "{resp}");
        assert_eq!(end, End::Closed);
    }
    assert_eq!(lab.echo.requests_seen("passwd"), 0);
    assert_eq!(rejected(&lab, "path_above_root"), 2.0);
    assert_eq!(rejected(&lab, "path_bad_escape"), 1.0);
    assert_eq!(rejected(&lab, "path_not_origin_form"), 1.0);
}

#[test]
fn encoded_slashes_are_refused_when_configured() {
    let lab = lab("[http]\nescapedSlashes = \"reject\"");
    let (resp, _) = exchange(lab.addr, &get("/files/a%2Fb"), WAIT);
    assert_eq!(raw::statuses(&resp), [400], "{resp}");
    assert_eq!(rejected(&lab, "path_escaped_slash"), 1.0);
}

#[test]
fn oversized_heads_and_too_many_headers_get_431() {
    let lab = lab("[limits]\nmaxRequestHeaderBytes = 4096\nmaxRequestHeaders = 20");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: app.example\r\nX-Big: {}\r\n\r\n",
        "a".repeat(5000)
    );
    let (resp, end) = exchange(lab.addr, big.as_bytes(), WAIT);
    assert_eq!(raw::statuses(&resp), [431], "{resp}");
    assert_eq!(end, End::Closed);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: app.example\r\n");
    for i in 0..25 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (resp, _) = exchange(lab.addr, many.as_bytes(), WAIT);
    assert_eq!(raw::statuses(&resp), [431], "{resp}");
    // A head that never ends is cut off at the limit, not buffered further.
    let mut s = raw::connect(lab.addr);
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: app.example\r\nX-Endless: ");
    let _ = s.write_all(&[b'a'; 8192]);
    let (got, end) = raw::read_until_close(&mut s, WAIT);
    assert_eq!(raw::statuses(&String::from_utf8_lossy(&got)), [431]);
    assert_ne!(end, End::Open);
    assert_eq!(rejected(&lab, "header_too_large"), 2.0);
    assert_eq!(rejected(&lab, "too_many_headers"), 1.0);
    assert_eq!(lab.echo.requests_seen("/"), 0);
}

#[test]
fn a_slowloris_head_is_closed_within_the_header_timeout() {
    let lab = lab("[limits]\nrequestHeaderTimeout = \"1s\"");
    let mut s = raw::connect(lab.addr);
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET / HTTP/1.1\r\nHost: app.example\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa".iter() {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let (got, end) = raw::read_until_close(&mut s, Duration::from_millis(500));
    assert!(
        closed || end != End::Open,
        "still open after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let text = String::from_utf8_lossy(&got);
    assert!(text.is_empty() || raw::statuses(&text) == [408], "{text}");
    assert_eq!(rejected(&lab, "header_timeout"), 1.0);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let lab = lab("[limits]\nidleTimeout = \"1s\"");
    let mut s = raw::connect(lab.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n")
        .expect("write");
    let started = Instant::now();
    let (got, end) = raw::read_until_close(&mut s, Duration::from_secs(4));
    assert_eq!(raw::statuses(&String::from_utf8_lossy(&got)), [200]);
    assert_eq!(end, End::Closed);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[test]
fn an_idle_h2_connection_is_closed_after_the_idle_timeout() {
    let lab = lab("[limits]\nidleTimeout = \"1s\"");
    let mut s = raw::connect(lab.addr);
    s.write_all(H2_PREFACE).expect("preface");
    s.write_all(&h2_frame(H2_SETTINGS, 0, 0, &[]))
        .expect("settings");
    let started = Instant::now();
    let (_, end) = raw::read_until_close(&mut s, Duration::from_secs(4));
    assert_ne!(end, End::Open);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn h2_streams_that_announce_a_body_and_send_nothing_are_bounded_by_the_backend_timeout() {
    let lab = lab("[limits]\nbackendResponseTimeout = \"1s\"\nidleTimeout = \"30s\"");
    let mut s = raw::connect(lab.addr);
    s.write_all(H2_PREFACE).expect("preface");
    s.write_all(&h2_frame(H2_SETTINGS, 0, 0, &[]))
        .expect("settings");
    for i in 0..20u32 {
        let block = hpack("POST", "/stall", "app.example", &[("content-length", "10")]);
        s.write_all(&h2_frame(H2_HEADERS, H2_END_HEADERS, 2 * i + 1, &block))
            .expect("headers");
    }
    // Every stream is answered (504) or reset once the backend timeout passes; read what
    // comes for a while and count HEADERS and RST_STREAM frames.
    let started = Instant::now();
    let (got, _) = raw::read_until_close(&mut s, Duration::from_secs(4));
    let mut answered = std::collections::BTreeSet::new();
    let mut i = 0;
    while i + 9 <= got.len() {
        let len =
            (usize::from(got[i]) << 16) | (usize::from(got[i + 1]) << 8) | usize::from(got[i + 2]);
        let kind = got[i + 3];
        let stream =
            u32::from_be_bytes([got[i + 5], got[i + 6], got[i + 7], got[i + 8]]) & 0x7fff_ffff;
        if (kind == H2_HEADERS || kind == H2_RST_STREAM) && stream != 0 {
            answered.insert(stream);
        }
        i += 9 + len;
    }
    assert_eq!(
        answered.len(),
        20,
        "streams answered within {:?}",
        started.elapsed()
    );
    drop(s);
    // The backend connections those streams held are released.
    let deadline = Instant::now() + WAIT;
    let held = || {
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3
                    && f[3] == "01"
                    && f[2].ends_with(&format!(":{:04X}", lab.echo.addr.port()))
                    && f[2].starts_with(&hex_ip(lab.echo.addr.ip()))
            })
            .count()
    };
    while held() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        held() <= 1,
        "{} connections to the backend still open",
        held()
    );
}

/// An IPv4 address as /proc/net/tcp writes it.
fn hex_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{:02X}{:02X}{:02X}{:02X}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(_) => String::from("-"),
    }
}

#[test]
fn a_declared_body_over_the_limit_is_413_without_reaching_the_backend() {
    let lab = lab("[limits]\nmaxRequestBodyBytes = 1000");
    let req = format!(
        "POST /upload HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5000\r\n\r\n{}",
        "x".repeat(5000)
    );
    let (resp, _) = exchange(lab.addr, req.as_bytes(), WAIT);
    assert_eq!(raw::statuses(&resp), [413], "{resp}");
    assert_eq!(lab.echo.requests_seen("/upload"), 0);
    // A chunked body is counted as it streams.
    let chunk = "x".repeat(600);
    let req = format!(
        "POST /chunked HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let (resp, _) = exchange(lab.addr, req.as_bytes(), WAIT);
    assert_eq!(raw::statuses(&resp), [413], "{resp}");
    assert_eq!(rejected(&lab, "body_too_large"), 2.0);
}

#[test]
fn connections_over_the_cap_are_closed_counted_and_service_recovers() {
    let lab = lab("[limits]\nmaxConnections = 20\nrequestHeaderTimeout = \"30s\"");
    let mut held: Vec<_> = (0..20).map(|_| raw::connect(lab.addr)).collect();
    // A connection is closed unanswered once the gateway holds 20. Held connections can race
    // with the start-up readiness probe for the last slot (one of them refused, the probe's
    // slot freed a moment later): hold one more until a connection is refused.
    let over_the_cap = || {
        let mut s = raw::connect(lab.addr);
        let _ = s.write_all(&get("/"));
        let (got, end) = raw::read_until_close(&mut s, WAIT);
        got.is_empty() && end != End::Open
    };
    let deadline = Instant::now() + WAIT;
    while !over_the_cap() {
        assert!(
            Instant::now() < deadline,
            "no connection was refused with {} held:\n{}",
            held.len(),
            lab.gw.log()
        );
        held.push(raw::connect(lab.addr));
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = (0..50).filter(|_| over_the_cap()).count();
    assert_eq!(refused, 50);
    let counted = metric(
        lab.gw.admin,
        "gatehouse_downstream_connections_rejected_total{reason=\"max_connections\"}",
    );
    assert!(counted >= 50.0, "{counted}");
    drop(held);
    let deadline = Instant::now() + WAIT;
    loop {
        let (resp, _) = exchange(lab.addr, &get("/back"), Duration::from_secs(2));
        if raw::statuses(&resp) == [200] {
            break;
        }
        assert!(Instant::now() < deadline, "service did not recover: {resp}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn forwarding_headers_from_an_untrusted_client_are_replaced() {
    let lab = lab("");
    let req = b"GET /whoami HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\nX-Forwarded-For: 10.9.9.9\r\nX-Forwarded-Host: admin.internal\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Prefix: /admin\r\nForwarded: for=10.9.9.9\r\nX-Real-IP: 10.9.9.9\r\n\r\n";
    let (resp, _) = exchange(lab.addr, req, WAIT);
    let echoed: serde_json::Value = serde_json::from_str(body(&resp)).expect("echo JSON");
    let h = |n: &str| echoed["headers"][n][0].as_str().map(str::to_string);
    assert_eq!(h("X-Forwarded-For").as_deref(), Some("127.0.0.1"));
    assert_eq!(h("X-Forwarded-Host").as_deref(), Some("app.example"));
    assert_eq!(h("X-Forwarded-Proto").as_deref(), Some("http"));
    assert_eq!(h("X-Forwarded-Port").as_deref(), Some("8080"));
    assert_eq!(h("X-Forwarded-Prefix"), None);
    assert_eq!(h("Forwarded"), None);
    assert_eq!(h("X-Real-Ip"), None);
}

#[test]
fn forwarding_headers_from_a_trusted_proxy_are_kept_and_appended_to() {
    let lab = lab("[forwarded]\ntrustedProxies = [\"127.0.0.0/8\"]\n[log]\naccessLog = true");
    let req = b"GET /whoami HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nForwarded: for=203.0.113.9\r\n\r\n";
    let (resp, _) = exchange(lab.addr, req, WAIT);
    let echoed: serde_json::Value = serde_json::from_str(body(&resp)).expect("echo JSON");
    let h = |n: &str| echoed["headers"][n][0].as_str().map(str::to_string);
    assert_eq!(
        h("X-Forwarded-For").as_deref(),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(h("X-Forwarded-Proto").as_deref(), Some("https"));
    assert_eq!(h("Forwarded").as_deref(), Some("for=203.0.113.9"));
    // The access log records the client the trusted proxy vouches for.
    let deadline = Instant::now() + WAIT;
    while !lab.gw.log().contains("client=203.0.113.9") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        lab.gw.log().contains("client=203.0.113.9"),
        "{}",
        lab.gw.log()
    );
}

#[test]
fn request_smuggling_attempts_are_refused_or_read_one_way_only() {
    let lab = lab("");
    let cases: [&[u8]; 5] = [
        // Content-Length and Transfer-Encoding together: chunked wins and the connection
        // closes after the response (RFC 9112 §6.1); the "smuggled" request is never routed.
        b"POST /first HTTP/1.1\r\nHost: app.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n",
        // Two different Content-Lengths.
        b"POST /first HTTP/1.1\r\nHost: app.example\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nAAAAGET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n",
        // An obsolete line fold.
        b"GET /first HTTP/1.1\r\nHost: app.example\r\nX-Folded: a\r\n b\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n",
        // A malformed chunk size.
        b"POST /first HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n",
        // Transfer-Encoding that is not chunked.
        b"POST /first HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: gzip, identity\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n",
    ];
    for (i, req) in cases.iter().enumerate() {
        let (resp, end) = exchange(lab.addr, req, WAIT);
        let codes = raw::statuses(&resp);
        assert!(codes.len() <= 1, "case {i}: more than one response: {resp}");
        assert!(
            codes.is_empty() || codes == [400] || codes == [200] || codes == [501],
            "case {i}: {resp}"
        );
        assert_ne!(end, End::Open, "case {i}: the connection stayed open");
    }
    // Bare LF line endings are read as one request, as HTTP/1 parsers do.
    let (resp, _) = exchange(
        lab.addr,
        b"GET /bare-lf HTTP/1.1\nHost: app.example\nConnection: close\n\n",
        WAIT,
    );
    assert!(raw::statuses(&resp).len() <= 1, "{resp}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(lab.echo.requests_seen("smuggled"), 0);
}

#[test]
fn h2_rapid_reset_does_not_cost_unbounded_work_and_the_gateway_keeps_serving() {
    let lab = lab("");
    let mut s = raw::connect(lab.addr);
    s.write_all(H2_PREFACE).expect("preface");
    s.write_all(&h2_frame(H2_SETTINGS, 0, 0, &[]))
        .expect("settings");
    let mut burst = Vec::new();
    for i in 0..2000u32 {
        let id = 2 * i + 1;
        let block = hpack("GET", "/reset", "app.example", &[]);
        burst.extend(h2_frame(
            H2_HEADERS,
            H2_END_HEADERS | H2_END_STREAM,
            id,
            &block,
        ));
        burst.extend(h2_frame(H2_RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let started = Instant::now();
    let _ = s.write_all(&burst);
    let (_, end) = raw::read_until_close(&mut s, Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(6));
    // The connection is cut off (GOAWAY and close) rather than served stream by stream.
    assert_ne!(end, End::Open);
    std::thread::sleep(Duration::from_millis(500));
    assert!(lab.echo.requests_seen("/reset") < 2000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let resp = rt.block_on(async { Client::h2c(lab.addr).get("app.example", "/after").await });
    assert_eq!(resp.status, 200);
}

/// The bytes of a ClientHello for `name`.
fn client_hello(name: &str) -> Vec<u8> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let server = rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), server).expect("tls");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write_tls");
    }
    out
}

#[test]
fn an_idle_passthrough_connection_is_closed_on_both_sides() {
    let backend = std::net::TcpListener::bind((unique_ip(), 9443)).expect("backend");
    let backend_addr = backend.local_addr().expect("addr");
    let ip = unique_ip();
    let text = format!(
        r#"[limits]
passthroughIdleTimeout = "1s"

[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
[[Gateway.listeners]]
name = "pass"
protocol = "TLS"
port = 8443
hostname = "pass.example"
tls = {{ mode = "Passthrough" }}

[[TLSRoute]]
name = "pass"
parentRefs = [{{ name = "gw" }}]
hostnames = ["pass.example"]
[[TLSRoute.rules]]
backendRefs = [{{ name = "sink", port = 443 }}]

[[Service]]
name = "sink"
ports = [{{ port = 443 }}]
endpoints = ["{backend_addr}"]
"#
    );
    let addr = SocketAddr::from((ip, 8443));
    let _gw = Gateway::start(ConfigDir::with_main(&text), &[addr]);
    let mut client = raw::connect(addr);
    client
        .write_all(&client_hello("pass.example"))
        .expect("hello");
    let (mut spliced, _) = backend.accept().expect("the gateway connects the backend");
    let started = Instant::now();
    let (hello, backend_end) = raw::read_until_close(&mut spliced, Duration::from_secs(4));
    assert!(!hello.is_empty(), "the ClientHello was passed on");
    assert_eq!(backend_end, End::Closed);
    let (_, client_end) = raw::read_until_close(&mut client, Duration::from_secs(1));
    assert_ne!(client_end, End::Open);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// The SETTINGS the gateway sends first on an HTTP/2 connection, as (id, value) pairs.
fn server_settings(addr: SocketAddr) -> Vec<(u16, u32)> {
    let mut s = raw::connect(addr);
    s.write_all(H2_PREFACE).expect("preface");
    s.write_all(&h2_frame(H2_SETTINGS, 0, 0, &[]))
        .expect("settings");
    let (got, _) = raw::read_until_close(&mut s, Duration::from_millis(500));
    assert!(
        got.len() >= 9 && got[3] == H2_SETTINGS,
        "no SETTINGS frame first: {got:?}"
    );
    let len = (usize::from(got[0]) << 16) | (usize::from(got[1]) << 8) | usize::from(got[2]);
    got[9..9 + len]
        .chunks(6)
        .map(|p| {
            (
                u16::from_be_bytes([p[0], p[1]]),
                u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
            )
        })
        .collect()
}

#[test]
fn h2_concurrent_streams_and_header_list_size_are_announced_from_the_limits() {
    let lab = lab("[limits]\nh2MaxConcurrentStreams = 7\nmaxRequestHeaderBytes = 8192");
    let settings = server_settings(lab.addr);
    // SETTINGS_MAX_CONCURRENT_STREAMS (3) and SETTINGS_MAX_HEADER_LIST_SIZE (6).
    assert!(settings.contains(&(3, 7)), "{settings:?}");
    assert!(settings.contains(&(6, 8192)), "{settings:?}");
}

#[test]
fn h2c_can_be_turned_off() {
    let lab = lab("[http]\nh2c = false");
    let mut s = raw::connect(lab.addr);
    s.write_all(H2_PREFACE).expect("preface");
    s.write_all(&h2_frame(H2_SETTINGS, 0, 0, &[]))
        .expect("settings");
    let (got, end) = raw::read_until_close(&mut s, WAIT);
    let text = String::from_utf8_lossy(&got);
    // Read as HTTP/1, the preface is not a request gatehouse serves.
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
    assert_ne!(end, End::Open);
    assert_eq!(lab.echo.requests_seen("/"), 0);
}

#[test]
fn mirrors_over_the_in_flight_limit_are_dropped_and_counted() {
    let ip = unique_ip();
    let main = Echo::start("main");
    let mirror = Echo::start("mirror");
    let routes = format!(
        r#"
[[HTTPRoute]]
name = "mirrored"
parentRefs = [{{ name = "gw" }}]
[[HTTPRoute.rules]]
filters = [{{ type = "RequestMirror", requestMirror = {{ backendRef = {{ name = "mirror", port = 80 }} }} }}]
backendRefs = [{{ name = "main", port = 80 }}]

[[Service]]
name = "main"
ports = [{{ port = 80 }}]
endpoints = ["{main}"]
[[Service]]
name = "mirror"
ports = [{{ port = 80 }}]
endpoints = ["{mirror}"]
"#,
        main = main.addr,
        mirror = mirror.addr
    );
    let text = http_gateway(ip, "[limits]\nmaxMirrorsInFlight = {MAX}", &routes);
    let addr = SocketAddr::from((ip, 8080));
    let gw = Gateway::start(ConfigDir::with_main(&text.replace("{MAX}", "0")), &[addr]);
    let (resp, _) = exchange(addr, &get("/copied"), WAIT);
    assert_eq!(raw::statuses(&resp), [200], "{resp}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(mirror.requests_seen("/copied"), 0);
    assert_eq!(
        metric(gw.admin, "gatehouse_http_mirrors_dropped_total"),
        1.0
    );
    // With room in flight, the same request is mirrored.
    gw.dir.write("gatehouse.toml", &text.replace("{MAX}", "10"));
    gw.reload();
    let deadline = Instant::now() + WAIT;
    while mirror.requests_seen("/copied") == 0 && Instant::now() < deadline {
        let _ = exchange(addr, &get("/copied"), WAIT);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(mirror.requests_seen("/copied") > 0);
}
