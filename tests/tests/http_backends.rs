//! Timeouts and backend protocols (`shared/reference/gateway-api-semantics.md` §1.3, §2
//! "Timeouts and retry"), plus HTTP/1.1 keep-alive and listener hostname matching, against
//! the real binary. One test per conformance case, named after it.
//!
//! Each test runs its own Gateway (`same-namespace`, HTTP on port 80 of an address of its
//! own) in front of `infra-backend-v1`: a `gatehouse echo` behind a Service with the
//! fixture's ports 8080 (HTTP), 8081 (`kubernetes.io/h2c`) and 8082 (`kubernetes.io/ws`).

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use gatehouse_tests::client::{REQUEST_TIMEOUT, build};
use gatehouse_tests::{Client, ConfigDir, Echo, Gateway, Resp, text, unique_ip};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const V1: &str = "infra-backend-v1";

/// A Gateway on a fresh address with an HTTP listener on port 80 (`hostname` optional) and
/// `infra-backend-v1`; `rules` are the `[[HTTPRoute.rules]]` of one route attached to it.
struct Lab {
    addr: SocketAddr,
    gw: Gateway,
    _v1: Echo,
}

impl Lab {
    fn start(listener_hostname: Option<&str>, rules: &str) -> Lab {
        let ip = unique_ip();
        let v1 = Echo::start(V1);
        let hostname = listener_hostname.map_or(String::new(), |h| format!("hostname = \"{h}\""));
        let toml = format!(
            r#"
[[Gateway]]
name = "same-namespace"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
[[Gateway.listeners]]
name = "http"
protocol = "HTTP"
port = 80
{hostname}

[[Service]]
name = "{V1}"
ports = [
  {{ name = "http", port = 8080 }},
  {{ name = "h2c", port = 8081, appProtocol = "kubernetes.io/h2c" }},
  {{ name = "ws", port = 8082, appProtocol = "kubernetes.io/ws" }},
]
endpoints = ["{v1}"]

[[HTTPRoute]]
name = "route"
parentRefs = [{{ name = "same-namespace" }}]
{rules}
"#,
            v1 = v1.addr,
        );
        let dir = ConfigDir::with_main(&toml);
        let check = dir.check(&[]);
        assert!(check.status.success(), "{toml}\n{:?}", text(&check));
        let addr = SocketAddr::from((ip, 80));
        let gw = Gateway::start(dir, &[addr]);
        Lab { addr, gw, _v1: v1 }
    }

    /// The Host the harness sends on port 80: the bare address.
    fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    /// One request on a connection of its own (a timed-out request may close its connection).
    async fn get(&self, path: &str) -> Resp {
        Client::http1(self.addr).get(&self.host(), path).await
    }
}

/// The status is 200 and infra-backend-v1 answered.
fn expect_v1(r: &Resp, what: &str) {
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, 200, "{what}: {body}");
    assert_eq!(r.backend().as_deref(), Some(V1), "{what}: {body}");
}

/// The catalog's three cases for a timeout of 500ms on `/<name>` and 0s on `/disable-<name>`.
async fn timeout_cases(lab: &Lab, name: &str) {
    let r = lab.get(&format!("/{name}")).await;
    expect_v1(&r, &format!("/{name}"));
    let path = format!("/{name}?delay=1s");
    let r = lab.get(&path).await;
    let timed_out = [408, 504].contains(&r.status.as_u16());
    assert!(
        timed_out,
        "GET {path}: want 504 (or 408), got {r:?}\n{}",
        lab.gw.log()
    );
    let path = format!("/disable-{name}?delay=1s");
    let r = lab.get(&path).await;
    expect_v1(&r, &format!("GET {path}"));
    assert_eq!(r.json()["path"], path.as_str(), "GET {path}");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_timeout_request() {
    let lab = Lab::start(
        None,
        r#"
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/request-timeout" } }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
timeouts = { request = "500ms" }
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/disable-request-timeout" } }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
timeouts = { request = "0s" }
"#,
    );
    timeout_cases(&lab, "request-timeout").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_timeout_backend_request() {
    let lab = Lab::start(
        None,
        r#"
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/backend-timeout" } }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
timeouts = { backendRequest = "500ms" }
[[HTTPRoute.rules]]
matches = [{ path = { type = "PathPrefix", value = "/disable-backend-timeout" } }]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
timeouts = { backendRequest = "0s" }
"#,
    );
    timeout_cases(&lab, "backend-timeout").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_backend_protocol_h2c() {
    let rules = r#"
[[HTTPRoute.rules]]
backendRefs = [{ name = "infra-backend-v1", port = 8081 }]
"#;
    let lab = Lab::start(None, rules);
    // h2c with prior knowledge from the client to the :80 listener, and h2c upstream.
    let r = Client::h2c(lab.addr).get(&lab.host(), "/").await;
    expect_v1(&r, "GET / over h2c");
    let proto = &r.json()["proto"];
    assert_eq!(
        proto, "HTTP/2.0",
        "the h2c backend port must be spoken to in HTTP/2"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_route_backend_protocol_web_socket() {
    let rules = r#"
[[HTTPRoute.rules]]
backendRefs = [{ name = "infra-backend-v1", port = 8082 }]
"#;
    let lab = Lab::start(None, rules);
    let url = format!("ws://{}/ws", lab.host());
    let mut request = url.as_str().into_client_request().expect("request");
    let origin = "ws://gateway/HTTPRouteBackendProtocolWebSocket"
        .parse()
        .expect("origin");
    request.headers_mut().insert("origin", origin);
    let exchange = async {
        let tcp = TcpStream::connect(lab.addr).await.expect("connect");
        let (mut ws, resp) = tokio_tungstenite::client_async(request, tcp)
            .await
            .unwrap_or_else(|e| panic!("websocket handshake to {url}: {e}\n{}", lab.gw.log()));
        assert_eq!(resp.status(), 101);
        let mut replies = Vec::new();
        for sent in [
            Message::text("Websocket Support!"),
            Message::binary(vec![1, 2, 3, 4, 5, 6, 7]),
        ] {
            ws.send(sent.clone()).await.expect("send");
            let reply = loop {
                match ws.next().await {
                    Some(Ok(m)) if m.is_text() || m.is_binary() => break m,
                    Some(Ok(_)) => continue,
                    other => panic!("no reply to {sent:?}: {other:?}"),
                }
            };
            replies.push((sent, reply));
        }
        let _ = ws.close(None).await;
        replies
    };
    let replies = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("no websocket echo: {}", lab.gw.log()));
    for (sent, reply) in replies {
        assert_eq!(
            reply,
            sent,
            "the echo of a {} frame",
            if sent.is_text() { "text" } else { "binary" }
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http11_keep_alive_reuses_one_connection() {
    let rules = r#"
[[HTTPRoute.rules]]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
"#;
    let lab = Lab::start(None, rules);
    // One TCP connection, no reconnects: the 20 requests must all be answered on it.
    let tcp = TcpStream::connect(lab.addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    for i in 0..20 {
        let path = format!("/keep-alive/{i}");
        let req = build("GET", &lab.host(), &path, &[], Bytes::new(), false);
        let send = async {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            Ok::<_, hyper::Error>((parts, body.collect().await?.to_bytes()))
        };
        let (parts, body) = tokio::time::timeout(REQUEST_TIMEOUT, send)
            .await
            .unwrap_or_else(|_| panic!("request {i} timed out"))
            .unwrap_or_else(|e| panic!("request {i} on the kept-alive connection: {e}"));
        let body = String::from_utf8_lossy(&body);
        assert_eq!(parts.status, 200, "request {i}: {body}");
        assert_eq!(parts.version, hyper::Version::HTTP_11, "request {i}");
        let close = parts
            .headers
            .get("connection")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        assert!(
            !close,
            "request {i}: the gateway asked to close the connection"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn host_matching_no_listener_hostname_gets_404() {
    let rules = r#"
[[HTTPRoute.rules]]
backendRefs = [{ name = "infra-backend-v1", port = 8080 }]
"#;
    let lab = Lab::start(Some("foo.example.com"), rules);
    let mut c = Client::http1(lab.addr);
    let r = c.get("foo.example.com", "/").await;
    expect_v1(&r, "GET foo.example.com/ (the listener's hostname)");
    for host in ["bar.example.com", "example.com", "a.foo.example.com"] {
        let r = Client::http1(lab.addr).get(host, "/").await;
        assert_eq!(
            r.status, 404,
            "GET {host}/: no listener has this hostname: {r:?}"
        );
        assert_eq!(r.backend(), None, "GET {host}/ must not reach a backend");
    }
}
