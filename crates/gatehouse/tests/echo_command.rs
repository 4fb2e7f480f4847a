//! End-to-end tests of `gatehouse echo`: the real binary on port 0 of 127.0.0.1, spoken to with
//! hyper's HTTP/1.1 and HTTP/2 (prior knowledge) client connections and a tungstenite client.

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const DEADLINE: Duration = Duration::from_secs(10);

/// A running `gatehouse echo`, killed on drop.
struct Echo {
    child: Child,
    addr: SocketAddr,
    stdout: mpsc::Receiver<String>,
}

impl Echo {
    fn start(name: &str) -> Echo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["echo", "--listen", "127.0.0.1:0", "--name", name])
            .args(["--namespace", "gateway-conformance-infra"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gatehouse echo");
        let (tx, stdout) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut echo = Echo {
            child,
            addr: "0.0.0.0:0".parse().expect("placeholder address"),
            stdout,
        };
        let prefix = format!("echo {name} listening on ");
        let line = echo.wait_for_line(|l| l.starts_with(&prefix));
        echo.addr = line[prefix.len()..]
            .parse()
            .expect("start line ends in an address");
        assert_ne!(echo.addr.port(), 0, "the start line shows the bound port");
        echo
    }

    /// The first stdout line (from now on) that `pred` accepts, or a panic at the deadline.
    fn wait_for_line(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => continue,
                Err(e) => panic!("no matching stdout line from echo: {e}"),
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits (to the deadline) for the exit.
    fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("echo did not exit within {DEADLINE:?} of SIGTERM");
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request on a fresh HTTP/1.1 connection.
async fn http1(addr: SocketAddr, req: Request<Full<Bytes>>) -> Response<Bytes> {
    let io = TokioIo::new(TcpStream::connect(addr).await.expect("connect"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    collect(sender.send_request(req).await.expect("h1 response")).await
}

/// One request on a fresh HTTP/2 connection with prior knowledge (h2c).
async fn http2(addr: SocketAddr, req: Request<Full<Bytes>>) -> Response<Bytes> {
    let io = TokioIo::new(TcpStream::connect(addr).await.expect("connect"));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    collect(sender.send_request(req).await.expect("h2 response")).await
}

async fn collect(resp: Response<hyper::body::Incoming>) -> Response<Bytes> {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Response::from_parts(parts, body)
}

fn get(uri: &str, host: &str) -> Request<Full<Bytes>> {
    Request::get(uri)
        .header("host", host)
        .body(Full::default())
        .expect("request")
}

fn json(resp: &Response<Bytes>) -> Value {
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    serde_json::from_slice(resp.body()).expect("echo body is JSON")
}

#[tokio::test]
async fn http1_echo_reports_the_request_as_echo_basic_does() {
    let echo = Echo::start("echo-v1");
    let req = Request::post("/some/path?a=1&b=%2F")
        .header("host", "example.com:8080")
        .header("x-header-add", "one")
        .header("x-header-add", "two")
        .header("X-Echo-Set-Header", "X-Foo:bar, X-Foo:baz,Other:1")
        .body(Full::new(Bytes::from_static(b"hello body")))
        .expect("request");
    let resp = http1(echo.addr, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-foo"], "bar,baz");
    assert_eq!(resp.headers()["other"], "1");
    let body = json(&resp);
    assert_eq!(body["path"], "/some/path?a=1&b=%2F");
    assert_eq!(body["host"], "example.com:8080");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["proto"], "HTTP/1.1");
    assert_eq!(body["namespace"], "gateway-conformance-infra");
    assert_eq!(body["pod"], "echo-v1");
    assert_eq!(body["name"], "echo-v1");
    assert_eq!(body["ingress"], "");
    assert_eq!(body["service"], "");
    assert_eq!(body["httpPort"], echo.addr.port().to_string());
    assert_eq!(body["bodyLength"], 10);
    assert!(body.get("tls").is_none());
    let headers = &body["headers"];
    assert_eq!(headers["X-Header-Add"], serde_json::json!(["one", "two"]));
    assert!(headers.get("Host").is_none(), "Host is kept out of headers");
    echo.wait_for_line(|l| {
        l.starts_with("Echoing back request made to /some/path?a=1&b=%2F to client (127.0.0.1:")
    });
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served_on_the_same_port() {
    let echo = Echo::start("echo-h2");
    let url = echo.url("/h2/path?q=v");
    let req = Request::get(&url)
        .header("x-echo-set-header", "X-H2:yes")
        .body(Full::default())
        .expect("request");
    let resp = http2(echo.addr, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-h2"], "yes");
    let body = json(&resp);
    assert_eq!(body["proto"], "HTTP/2.0");
    assert_eq!(body["path"], "/h2/path?q=v");
    assert_eq!(body["host"], echo.addr.to_string());
    assert_eq!(body["name"], "echo-h2");
}

#[tokio::test]
async fn delay_query_parameter_sleeps_before_answering() {
    let echo = Echo::start("echo-delay");
    let started = Instant::now();
    let resp = http1(echo.addr, get("/slow?x=1&delay=200ms", "slow.example")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let resp = http1(echo.addr, get("/?delay=soon", "slow.example")).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn health_and_status_endpoints() {
    let echo = Echo::start("echo-status");
    let resp = http1(echo.addr, get("/health", "h")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.body().as_ref(), b"OK");
    let resp = http1(echo.addr, get("/status/503", "h")).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let resp = http2(echo.addr, get(&echo.url("/status/302"), "h")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    for bad in ["/status/99", "/status/600", "/status/abc"] {
        let resp = http1(echo.addr, get(bad, "h")).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn body_over_ten_mebibytes_is_refused_with_413() {
    let echo = Echo::start("echo-big");
    let req = Request::put("/upload")
        .header("host", "h")
        .body(Full::new(Bytes::from(vec![b'x'; 1 << 20])))
        .expect("request");
    let resp = http1(echo.addr, req).await;
    assert_eq!(json(&resp)["bodyLength"], 1 << 20, "1 MiB is fine");

    // A declared length over the limit is refused before the body is sent.
    let mut raw = std::net::TcpStream::connect(echo.addr).expect("connect");
    raw.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let head = format!(
        "PUT /upload HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        (10 << 20) + 1
    );
    raw.write_all(head.as_bytes()).expect("write head");
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "answer: {answer}");
}

#[tokio::test]
async fn websocket_echoes_text_and_binary_messages() {
    let echo = Echo::start("echo-ws");
    let tcp = TcpStream::connect(echo.addr).await.expect("connect");
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{}/ws", echo.addr), tcp)
        .await
        .expect("websocket handshake (checks Sec-WebSocket-Accept)");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws.send(Message::text("hello")).await.expect("send text");
    assert_eq!(
        ws.next().await.expect("reply").expect("frame"),
        Message::text("hello")
    );
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send binary");
    assert_eq!(
        ws.next().await.expect("reply").expect("frame"),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    ws.close(None).await.expect("close");
    // The server answers the close and the stream ends.
    while let Some(Ok(_)) = ws.next().await {}
}

#[tokio::test]
async fn a_malformed_request_closes_only_its_own_connection() {
    let echo = Echo::start("echo-garbage");
    let mut raw = std::net::TcpStream::connect(echo.addr).expect("connect");
    raw.set_read_timeout(Some(DEADLINE)).expect("timeout");
    raw.write_all(b"\x01\x02 not http at all\r\n\r\n")
        .expect("write garbage");
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer); // a 400 or a bare close, then EOF
    let resp = http1(echo.addr, get("/still-up", "h")).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[test]
fn sigterm_exits_zero() {
    let echo = Echo::start("echo-term");
    let status = echo.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn an_address_in_use_is_an_error_with_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("local addr").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["echo", "--listen", &addr])
        .output()
        .expect("run gatehouse echo");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&addr), "stderr: {stderr}");
}
