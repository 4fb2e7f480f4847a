//! `gatehouse echo`: a test backend modelled on the Gateway API conformance `echo-basic` server
//! (`shared/reference/gateway-api-semantics.md` §5).
//!
//! Data flow: [`run`] builds a tokio runtime, binds the listener, prints
//! `echo <name> listening on <addr>` and accepts until SIGTERM or SIGINT. Each connection is
//! served by hyper-util's auto builder (HTTP/1.1 with keep-alive, or HTTP/2 cleartext with prior
//! knowledge, told apart by the connection preface) and every request goes through [`handle`]:
//!
//! - `/health` answers `OK`; `/status/NNN` answers status NNN (200..=599);
//! - `/ws` upgrades to a WebSocket and echoes every text and binary message until close;
//! - anything else is echoed: the body is read (at most [`MAX_BODY`] bytes), `?delay=<Go
//!   duration>` is slept, `X-Echo-Set-Header` pairs become response headers, and the request is
//!   described as JSON ([`Echo`]) with one log line per request on stdout.
//!
//! Response header names go out Title-Cased on HTTP/1 (hyper keeps no per-response casing), which
//! is Go's canonical form; HTTP/2 lowercases them. A malformed request ends only its connection.

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Display;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The largest request body that is read; a longer one gets 413.
const MAX_BODY: usize = 10 << 20;
/// How long open requests may finish after SIGTERM/SIGINT before the process exits anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What `gatehouse echo` needs; the command line maps onto it.
#[derive(Debug, Clone)]
pub struct EchoArgs {
    /// Where to listen; port 0 picks a free port (the start line shows the bound address).
    pub listen: SocketAddr,
    /// Reported as `pod` and `name`.
    pub name: String,
    /// Reported as `namespace`.
    pub namespace: String,
}

/// Serves until SIGTERM or SIGINT, then drains for at most [`DRAIN_TIMEOUT`] and exits 0.
pub fn run(args: &EchoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

/// What every response reports about this backend.
#[derive(Debug)]
struct Backend {
    name: String,
    namespace: String,
    http_port: String,
}

async fn serve(args: &EchoArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("echo: cannot listen on {}", args.listen))?;
    let local = listener
        .local_addr()
        .context("echo: reading the bound address")?;
    // Handlers go in before the start line, so a signal sent right after it is not lost.
    let mut term = signal(SignalKind::terminate()).context("echo: installing a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("echo: installing a SIGINT handler")?;
    let backend = Arc::new(Backend {
        name: args.name.clone(),
        namespace: args.namespace.clone(),
        http_port: local.port().to_string(),
    });
    say(format_args!("echo {} listening on {local}", args.name));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .title_case_headers(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    eprintln!("echo: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let backend = backend.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(backend.clone(), peer, req));
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            // A malformed request or a reset ends this connection only; nothing to report.
            let _ = watcher.watch(conn).await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    Ok(())
}

type Resp = Response<Full<Bytes>>;

async fn handle(
    backend: Arc<Backend>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let path = req.uri().path();
    Ok(if path == "/health" {
        text(StatusCode::OK, "OK")
    } else if let Some(code) = path.strip_prefix("/status/") {
        status(code)
    } else if path == "/ws" {
        websocket(&mut req)
    } else {
        echo(&backend, peer, req).await
    })
}

/// A plain-text response, as Go's `http.Error` writes it.
fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn status(code: &str) -> Resp {
    match code.parse::<u16>().ok().filter(|c| (200..=599).contains(c)) {
        Some(code) => {
            let mut resp = Response::new(Full::default());
            // The filter above keeps `code` in the range `StatusCode` accepts.
            *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            resp
        }
        None => text(
            StatusCode::BAD_REQUEST,
            format!("Error parsing status code {code:?}: want 200..599\n"),
        ),
    }
}

/// The JSON body of an echo, field names as `echo-basic` writes them (plus `name`,
/// `httpPort` and `bodyLength`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Echo<'a> {
    path: &'a str,
    host: &'a str,
    method: &'a str,
    proto: &'static str,
    headers: BTreeMap<String, Vec<String>>,
    namespace: &'a str,
    ingress: &'a str,
    service: &'a str,
    pod: &'a str,
    name: &'a str,
    http_port: &'a str,
    body_length: usize,
}

async fn echo(backend: &Backend, peer: SocketAddr, req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    // Go's RequestURI: the request-target as received (HTTP/2: `:path`).
    let request_uri = match (parts.version, parts.uri.path_and_query()) {
        (Version::HTTP_2, Some(pq)) => pq.as_str().to_owned(),
        _ => parts.uri.to_string(),
    };
    say(format_args!(
        "Echoing back request made to {request_uri} to client ({peer})"
    ));

    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY} bytes\n"),
        )
    };
    // A declared length over the limit is refused before any of the body is read.
    if body.size_hint().lower() > MAX_BODY as u64 {
        return too_large();
    }
    let body_length = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes().len(),
        Err(e) if e.is::<LengthLimitError>() => return too_large(),
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("reading the body: {e}\n")),
    };
    if let Some(raw) = query_value(parts.uri.query(), "delay") {
        match parse_go_duration(&raw) {
            Ok(delay) => tokio::time::sleep(delay).await,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("invalid delay {raw:?}: {e}\n"),
                );
            }
        }
    }

    // Go takes the host from an absolute request-target or `:authority` first.
    let host = match parts.uri.authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => parts
            .headers
            .get(header::HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default(),
    };
    let echo = Echo {
        path: &request_uri,
        host: &host,
        method: parts.method.as_str(),
        proto: proto(parts.version),
        headers: go_headers(&parts.headers, parts.version),
        namespace: &backend.namespace,
        ingress: "",
        service: "",
        pod: &backend.name,
        name: &backend.name,
        http_port: &backend.http_port,
        body_length,
    };
    let mut json = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut json,
        serde_json::ser::PrettyFormatter::with_indent(b" "),
    );
    if let Err(e) = echo.serialize(&mut ser) {
        return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"));
    }
    let mut resp = Response::new(Full::new(Bytes::from(json)));
    let headers = resp.headers_mut();
    set_echo_headers(&parts.headers, headers);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn proto(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// The request headers as Go's `r.Header`: canonical names, one entry per header line, no
/// `Host`, and (HTTP/2 only) several `cookie` fields joined with `; `.
fn go_headers(headers: &HeaderMap, version: Version) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if name == header::HOST {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        out.entry(canonical_name(name.as_str()))
            .or_default()
            .push(value);
    }
    if version == Version::HTTP_2
        && let Some(cookies) = out.get_mut("Cookie").filter(|c| c.len() > 1)
    {
        *cookies = vec![cookies.join("; ")];
    }
    out
}

/// Go's `CanonicalMIMEHeaderKey` for a valid (lowercase) token: `x-header-add` → `X-Header-Add`.
fn canonical_name(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let c = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            c
        })
        .collect()
}

/// `X-Echo-Set-Header: Name1:val1,Name2:val2` → response headers; a repeated name appends
/// `,value`. Pairs whose name or value HTTP cannot carry are skipped.
fn set_echo_headers(request: &HeaderMap, response: &mut HeaderMap) {
    for list in request.get_all("x-echo-set-header") {
        let Ok(list) = list.to_str() else { continue };
        for pair in list.split(',') {
            let pair = pair.trim();
            let (name, value) = pair.split_once(':').unwrap_or((pair, ""));
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            let value = match response.get(&name) {
                Some(old) => {
                    let mut joined = old.as_bytes().to_vec();
                    joined.push(b',');
                    joined.extend_from_slice(value.trim().as_bytes());
                    HeaderValue::from_bytes(&joined)
                }
                None => HeaderValue::from_str(value.trim()),
            };
            if let Ok(value) = value {
                response.insert(name, value);
            }
        }
    }
}

/// The first value of `key` in a query string, decoded as Go's `url.ParseQuery` does.
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (unescape(k)? == key).then(|| unescape(v)).flatten()
    })
}

/// Query unescaping: `+` is a space, `%XX` a byte; a bad escape or non-UTF-8 result is `None`.
fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Go's `time.ParseDuration` (`1m30s`, `1.5h`, `500ms`, `-2s`, `0`); a negative delay is none.
fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        if number.matches('.').count() > 1 || !number.contains(|c: char| c.is_ascii_digit()) {
            return Err("want a number before each unit".into());
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err("missing unit".into()),
            other => return Err(format!("unknown unit {other:?}")),
        };
        // `number` is digits with at most one dot, which always parses ("5." and ".5" too).
        nanos += number.parse::<f64>().map_err(|e| e.to_string())? * scale;
        rest = tail;
    }
    if nanos > i64::MAX as f64 {
        return Err("duration out of range".into());
    }
    Ok(if negative {
        Duration::ZERO
    } else {
        Duration::from_nanos(nanos as u64)
    })
}

/// `/ws`: answer a WebSocket upgrade with 101 and echo messages on the upgraded connection.
fn websocket(req: &mut Request<Incoming>) -> Resp {
    let headers = req.headers();
    let has_token = |name: HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let key = headers.get(header::SEC_WEBSOCKET_KEY);
    let (Some(key), true, true) = (
        key,
        has_token(header::UPGRADE, "websocket"),
        req.method() == Method::GET && req.version() == Version::HTTP_11,
    ) else {
        return text(
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade (GET, HTTP/1.1, Upgrade: websocket, Sec-WebSocket-Key)\n",
        );
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v != "13")
    {
        let mut resp = text(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version\n",
        );
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return resp;
    }
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        // Pings and the closing handshake are answered by tungstenite itself.
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut resp = Response::new(Full::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    // The accept key is base64, always a valid header value.
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    resp
}

/// One line to stdout, flushed at once (tests and the mirror feature read it); a closed stdout
/// is ignored rather than a panic.
fn say(line: impl Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_time_parse_duration() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_go_duration("1s"), Ok(ms(1000)));
        assert_eq!(parse_go_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_go_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_go_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("-2s"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("2µs"), Ok(Duration::from_micros(2)));
        for bad in ["", "5", "s", "1x", "1..5s", "-", "ms5", "10000000000h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn header_names_are_go_canonical() {
        assert_eq!(canonical_name("x-header-add"), "X-Header-Add");
        assert_eq!(canonical_name("content-type"), "Content-Type");
        assert_eq!(canonical_name("x--a"), "X--A");
    }

    #[test]
    fn query_value_takes_the_first_decoded_match() {
        let q = Some("a=1&delay=1%30ms&delay=2s");
        assert_eq!(query_value(q, "delay").as_deref(), Some("10ms"));
        assert_eq!(
            query_value(Some("x=%zz&delay"), "delay").as_deref(),
            Some("")
        );
        assert_eq!(query_value(Some("a+b=c+d"), "a b").as_deref(), Some("c d"));
        assert_eq!(query_value(None, "delay"), None);
    }

    #[test]
    fn echo_set_header_pairs_become_response_headers_and_repeats_append() {
        let mut request = HeaderMap::new();
        request.append(
            "x-echo-set-header",
            HeaderValue::from_static("X-Foo: a, Bar:b"),
        );
        request.append(
            "x-echo-set-header",
            HeaderValue::from_static("x-foo:c,:bad,"),
        );
        let mut response = HeaderMap::new();
        set_echo_headers(&request, &mut response);
        assert_eq!(response["x-foo"], "a,c");
        assert_eq!(response["bar"], "b");
        assert_eq!(response.len(), 2);
    }

    #[test]
    fn status_outside_200_to_599_is_a_bad_request() {
        assert_eq!(status("503").status(), StatusCode::SERVICE_UNAVAILABLE);
        for bad in ["100", "600", "abc", ""] {
            assert_eq!(status(bad).status(), StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }
}
