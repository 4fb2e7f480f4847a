//! The PROXY protocol (HAProxy's; v1 text, v2 binary) on both sides of gatehouse.
//!
//! - In: on the ports `[proxyProtocol] ports` names, every connection must come from one of
//!   `trustedSources` and start with a header; the client address it carries becomes the
//!   connection's peer (access logs, metrics, forwarding headers, routing by source). A
//!   `LOCAL` header (a load balancer's health check) keeps the real peer. Anything else
//!   closes the connection, counted by reason.
//! - Out: a Service with `proxyProtocol = "v1"` or `"v2"` gets a header first on every
//!   connection gatehouse forwards at layer 4 (TLS passthrough, TCPRoute, TLSRoute
//!   Terminate), so its endpoints learn the client's address.
//!
//! The header is read exactly, never past its end, so the bytes after it are read by the
//! HTTP, TLS or splice code as if the header had not been there.

use gatehouse_model::backend::ProxyVersion;
use ppp::v2;
use std::net::{IpAddr, SocketAddr};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// The longest v1 header (the specification's 107 bytes, CRLF included).
const V1_MAX: usize = 107;
/// The longest v2 header accepted: 16 bytes, then addresses and TLVs.
const V2_MAX: usize = 16 + 2048;
/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Why a PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("the peer is not in [proxyProtocol] trustedSources")]
    Untrusted,
    #[error("the connection does not start with a PROXY header")]
    Missing,
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
    #[error("PROXY header longer than {0} bytes")]
    TooLong(usize),
    #[error("closed or failed before the PROXY header ended: {0}")]
    Io(#[from] std::io::Error),
    #[error("no PROXY header within the request header timeout")]
    Timeout,
}

impl ProxyHeaderError {
    /// The `reason` label of `gatehouse_downstream_connections_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyHeaderError::Untrusted => "proxy_protocol_untrusted",
            ProxyHeaderError::Timeout => "proxy_protocol_timeout",
            _ => "proxy_protocol_malformed",
        }
    }
}

/// Reads the PROXY header at the start of `tcp`: the client's address, or `None` for a
/// `LOCAL` header (or an unknown / UNIX address family), which keeps the real peer.
pub async fn read(tcp: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut head = [0u8; 16];
    // Both versions have at least six header bytes: reading them cannot go past the end.
    tcp.read_exact(&mut head[..6]).await?;
    if &head[..6] == b"PROXY " {
        read_v1(tcp, &head[..6]).await
    } else if head[..6] == V2_SIGNATURE[..6] {
        tcp.read_exact(&mut head[6..]).await?;
        if &head[..12] != V2_SIGNATURE {
            return Err(ProxyHeaderError::Missing);
        }
        let length = usize::from(u16::from_be_bytes([head[14], head[15]]));
        if 16 + length > V2_MAX {
            return Err(ProxyHeaderError::TooLong(V2_MAX));
        }
        let mut all = Vec::with_capacity(16 + length);
        all.extend_from_slice(&head);
        all.resize(16 + length, 0);
        tcp.read_exact(&mut all[16..]).await?;
        parse_v2(&all)
    } else {
        Err(ProxyHeaderError::Missing)
    }
}

/// The rest of a v1 line: what has arrived is peeked, and consumed up to the CRLF (or whole,
/// when the CRLF has not arrived yet: all of it belongs to the header then).
async fn read_v1(
    tcp: &mut TcpStream,
    start: &[u8],
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut line = start.to_vec();
    let mut peeked = [0u8; V1_MAX];
    loop {
        let room = V1_MAX - line.len();
        let n = tcp.peek(&mut peeked[..room]).await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        // A CR at the end of what was read may be followed by the LF of the next segment.
        let seen = &peeked[..n];
        let end = line
            .last()
            .filter(|b| **b == b'\r' && seen[0] == b'\n')
            .map(|_| 1)
            .or_else(|| seen.windows(2).position(|w| w == b"\r\n").map(|i| i + 2));
        let take = end.unwrap_or(n);
        let mut got = vec![0u8; take];
        tcp.read_exact(&mut got).await?;
        line.extend_from_slice(&got);
        if end.is_some() {
            return parse_v1(&line);
        }
        if line.len() >= V1_MAX {
            return Err(ProxyHeaderError::TooLong(V1_MAX));
        }
    }
}

fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let header =
        ppp::v1::Header::try_from(line).map_err(|e| ProxyHeaderError::Malformed(e.to_string()))?;
    Ok(match header.addresses {
        ppp::v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v1::Addresses::Unknown => None,
    })
}

fn parse_v2(bytes: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let header =
        v2::Header::try_from(bytes).map_err(|e| ProxyHeaderError::Malformed(e.to_string()))?;
    if header.command == v2::Command::Local {
        return Ok(None);
    }
    Ok(match header.addresses {
        v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
    })
}

/// The header a Service's endpoint gets: `client` connected to gatehouse at `local`. Mixed
/// families are both written as IPv6 (IPv4-mapped), as the header needs one family.
pub fn encode(version: ProxyVersion, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (client, local) = match (client.ip(), local.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (client, local),
        _ => (mapped(client), mapped(local)),
    };
    match version {
        ProxyVersion::V1 => {
            // Displays as the whole line: "PROXY TCP4 ... \r\n".
            ppp::v1::Addresses::from((client, local))
                .to_string()
                .into_bytes()
        }
        ProxyVersion::V2 => {
            let builder = v2::Builder::with_addresses(
                v2::Version::Two | v2::Command::Proxy,
                v2::Protocol::Stream,
                (client, local),
            );
            // Building into a Vec with two addresses cannot fail (no I/O, lengths known).
            builder.build().unwrap_or_default()
        }
    }
}

fn mapped(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    /// Sends `chunks` (with a pause between them) then `after`, and reads the header on the
    /// other side: its result and the bytes that follow it.
    async fn exchange(
        chunks: Vec<Vec<u8>>,
        after: &[u8],
    ) -> (Result<Option<SocketAddr>, String>, Vec<u8>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let after = after.to_vec();
        let writer = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            for chunk in chunks {
                c.write_all(&chunk).await.unwrap();
                c.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            c.write_all(&after).await.unwrap();
            c.shutdown().await.unwrap();
        });
        let (mut s, _) = listener.accept().await.unwrap();
        let got = read(&mut s).await.map_err(|e| e.to_string());
        let mut rest = Vec::new();
        if got.is_ok() {
            s.read_to_end(&mut rest).await.unwrap();
        }
        writer.await.unwrap();
        (got, rest)
    }

    fn client() -> SocketAddr {
        "192.0.2.7:51000".parse().unwrap()
    }

    fn local() -> SocketAddr {
        "192.0.2.1:443".parse().unwrap()
    }

    #[tokio::test]
    async fn a_v1_header_gives_the_client_address_and_nothing_after_it_is_consumed() {
        let header = encode(ProxyVersion::V1, client(), local());
        assert_eq!(header, b"PROXY TCP4 192.0.2.7 192.0.2.1 51000 443\r\n");
        let (got, rest) = exchange(vec![header], b"GET / HTTP/1.1\r\n").await;
        assert_eq!(got, Ok(Some(client())));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_v1_header_split_anywhere_is_read_whole() {
        let header = encode(ProxyVersion::V1, client(), local());
        for cut in [7, 20, header.len() - 1] {
            let (a, b) = header.split_at(cut);
            let (got, rest) = exchange(vec![a.to_vec(), b.to_vec()], b"hello").await;
            assert_eq!(got, Ok(Some(client())), "cut at {cut}");
            assert_eq!(rest, b"hello", "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn a_v2_header_gives_the_client_address_for_both_families() {
        let header = encode(ProxyVersion::V2, client(), local());
        assert!(header.starts_with(V2_SIGNATURE));
        let (got, rest) = exchange(vec![header], b"\x16\x03\x01").await;
        assert_eq!(got, Ok(Some(client())));
        assert_eq!(rest, b"\x16\x03\x01");
        let v6: SocketAddr = "[2001:db8::7]:51000".parse().unwrap();
        let header = encode(ProxyVersion::V2, v6, "[2001:db8::1]:443".parse().unwrap());
        let (got, _) = exchange(vec![header[..10].to_vec(), header[10..].to_vec()], b"").await;
        assert_eq!(got, Ok(Some(v6)));
    }

    #[tokio::test]
    async fn a_local_header_keeps_the_real_peer() {
        let local_cmd = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Local,
            v2::Protocol::Unspecified,
            v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        let (got, _) = exchange(vec![local_cmd], b"").await;
        assert_eq!(got, Ok(None));
        let (got, _) = exchange(vec![b"PROXY UNKNOWN\r\n".to_vec()], b"").await;
        assert_eq!(got, Ok(None));
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        for bad in [
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            b"PROXY TCP4 192.0.2.7 nonsense\r\n".to_vec(),
            b"PROXY TCP4 999.0.2.7 192.0.2.1 1 2\r\n".to_vec(),
            [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat(),
        ] {
            let (got, _) = exchange(vec![bad.clone()], b"").await;
            assert!(
                got.is_err(),
                "{:?} was accepted",
                String::from_utf8_lossy(&bad)
            );
        }
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        let (got, _) = exchange(vec![huge], b"").await;
        assert!(got.unwrap_err().contains("longer than"));
    }

    #[test]
    fn mixed_families_are_sent_as_ipv6() {
        let v6_local: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let header = encode(ProxyVersion::V1, client(), v6_local);
        assert_eq!(
            header,
            b"PROXY TCP6 ::ffff:192.0.2.7 2001:db8::1 51000 443\r\n"
        );
    }
}
