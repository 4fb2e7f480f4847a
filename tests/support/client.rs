//! A small HTTP client over hyper's connection API: any Host header, HTTP/1.1 or h2c with
//! prior knowledge, one connection per [`Client`] reused across requests.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::{http1, http2};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// Each request must finish within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// A connection to the gateway.
pub struct Client {
    addr: SocketAddr,
    h2: bool,
    sender: Option<Sender>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("h2", &self.h2)
            .finish()
    }
}

/// A response with its whole body.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The echo backend's JSON (null when the body is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The name of the echo backend that answered, if one did.
    pub fn backend(&self) -> Option<String> {
        self.json()["name"].as_str().map(str::to_string)
    }

    /// A response header, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// What the backend received of a request header (values joined with ','), if anything.
    pub fn echoed_header(&self, name: &str) -> Option<String> {
        let j = self.json();
        let headers = j["headers"].as_object()?;
        let (_, v) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
        let values: Vec<&str> = v.as_array()?.iter().filter_map(|x| x.as_str()).collect();
        Some(values.join(","))
    }
}

impl Client {
    pub fn http1(addr: SocketAddr) -> Client {
        Client {
            addr,
            h2: false,
            sender: None,
        }
    }

    pub fn h2c(addr: SocketAddr) -> Client {
        Client {
            addr,
            h2: true,
            sender: None,
        }
    }

    async fn connect(&mut self) -> std::io::Result<()> {
        let tcp = TcpStream::connect(self.addr).await?;
        let io = TokioIo::new(tcp);
        let sender = if self.h2 {
            let (s, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(conn);
            Sender::H2(s)
        } else {
            let (s, conn) = http1::handshake(io).await.map_err(std::io::Error::other)?;
            tokio::spawn(conn.with_upgrades());
            Sender::H1(s)
        };
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends a request; a closed keep-alive connection is replaced once.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> std::io::Result<Resp> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.send_inner(req))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out"))?
    }

    async fn send_inner(&mut self, req: Request<Full<Bytes>>) -> std::io::Result<Resp> {
        let ready = match &mut self.sender {
            Some(Sender::H1(s)) => s.ready().await.is_ok(),
            Some(Sender::H2(s)) => s.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            self.connect().await?;
        }
        let resp = match self.sender.as_mut().expect("connected") {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(std::io::Error::other(e));
            }
        };
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
    }

    /// GET `path` with Host `host`.
    pub async fn get(&mut self, host: &str, path: &str) -> Resp {
        self.request("GET", host, path, &[]).await
    }

    /// A request with extra headers; panics on transport errors (tests expect a response).
    pub async fn request(
        &mut self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let req = build(method, host, path, headers, Bytes::new(), self.h2);
        match self.send(req).await {
            Ok(r) => r,
            Err(e) => panic!("{method} http://{host}{path} via {}: {e}", self.addr),
        }
    }
}

/// Builds a request; for HTTP/2 the host goes into the URI's authority.
pub fn build(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    h2: bool,
) -> Request<Full<Bytes>> {
    let uri = if h2 {
        format!("http://{host}{path}")
    } else {
        path.to_string()
    };
    let mut b = Request::builder().method(method).uri(uri);
    if !h2 {
        b = b.header("host", host);
    }
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Full::new(body)).expect("valid request")
}
