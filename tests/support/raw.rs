//! Raw sockets for tests that speak HTTP the way a hostile or broken client does: bytes as
//! they are written, read back with a deadline, HTTP/2 frames built by hand, and the admin
//! listener's metrics read without an HTTP client library.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How a raw exchange ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The gateway closed the connection (FIN).
    Closed,
    /// The gateway reset the connection.
    Reset,
    /// Still open when the deadline passed.
    Open,
}

/// Connects to `addr` (panics when it cannot).
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Reads until the peer closes or `within` passes; returns what arrived and how it ended.
pub fn read_until_close(s: &mut TcpStream, within: Duration) -> (Vec<u8>, End) {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, End::Open);
        }
        s.set_read_timeout(Some(left)).expect("read timeout");
        match s.read(&mut buf) {
            Ok(0) => return (got, End::Closed),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (got, End::Reset);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (got, End::Open);
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Sends `request` on a new connection and reads until the gateway closes (or `within`).
pub fn exchange(addr: SocketAddr, request: &[u8], within: Duration) -> (String, End) {
    let mut s = connect(addr);
    s.write_all(request).expect("write request");
    let (got, end) = read_until_close(&mut s, within);
    (String::from_utf8_lossy(&got).into_owned(), end)
}

/// The status codes of every HTTP/1 response in `text`, in order.
pub fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter(|(i, _)| *i == 0 || text[..*i].ends_with('\n'))
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// The body of the first response in `text` (after the blank line).
pub fn body(text: &str) -> &str {
    text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// One HTTP/2 frame.
pub fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const H2_HEADERS: u8 = 1;
pub const H2_RST_STREAM: u8 = 3;
pub const H2_SETTINGS: u8 = 4;
pub const H2_END_STREAM: u8 = 0x1;
pub const H2_END_HEADERS: u8 = 0x4;

/// An HPACK header block (no Huffman, no indexing) for `method` `path` on `authority`, with
/// extra literal headers.
pub fn hpack(method: &str, path: &str, authority: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        assert!(s.len() < 127, "short strings only");
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = vec![match method {
        "GET" => 0x82,
        "POST" => 0x83,
        m => panic!("method {m} not encoded"),
    }];
    out.push(0x86); // :scheme http
    out.push(0x04); // :path, literal without indexing, name from the static table
    string(&mut out, path);
    out.push(0x01); // :authority
    string(&mut out, authority);
    for (n, v) in extra {
        out.push(0x00); // literal name and value
        string(&mut out, n);
        string(&mut out, v);
    }
    out
}

/// The value of one sample of the admin listener's `/metrics` (0 when absent). `series` is
/// the metric name with its labels as the exposition writes them, e.g.
/// `gatehouse_http_rejected_requests_total{reason="header_timeout"}`.
pub fn metric(admin: SocketAddr, series: &str) -> f64 {
    let (text, _) = exchange(
        admin,
        b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
