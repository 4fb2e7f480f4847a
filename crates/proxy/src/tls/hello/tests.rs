//! The ClientHello reader against real ClientHellos (from a rustls client), split every way,
//! and against garbage; a property test checks that no input panics.

use super::*;
use proptest::prelude::*;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::ReadBuf;

/// A real ClientHello with `sni`.
fn client_hello(sni: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

/// Re-frames one TLS record's payload as several records of at most `size` bytes.
fn split_records(hello: &[u8], size: usize) -> Vec<u8> {
    let (header, payload) = hello.split_at(5);
    let mut out = Vec::new();
    for chunk in payload.chunks(size) {
        out.extend_from_slice(&header[..3]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// Yields its bytes in the given chunk sizes, one read at a time.
struct Chunks {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = self
            .sizes
            .get(self.turn % self.sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        self.turn += 1;
        let end = (self.pos + size)
            .min(self.data.len())
            .min(self.pos + buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.data[start..end]);
        self.pos = end;
        Poll::Ready(Ok(()))
    }
}

fn read(data: Vec<u8>, sizes: Vec<usize>) -> (Result<ClientHello, HelloError>, usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut kept = Vec::new();
    let mut src = Chunks {
        data,
        pos: 0,
        sizes,
        turn: 0,
    };
    let r = rt.block_on(read_client_hello(&mut src, &mut kept));
    (r, kept.len())
}

#[test]
fn sni_comes_from_a_whole_client_hello() {
    let hello = client_hello("Abc.Example.com");
    let (r, kept) = read(hello.clone(), vec![4096]);
    assert_eq!(r.unwrap().sni.as_deref(), Some("abc.example.com"));
    assert_eq!(kept, hello.len(), "every byte read is kept for replay");
}

#[test]
fn client_hello_split_across_one_byte_segments() {
    let (r, _) = read(client_hello("split.example.com"), vec![1]);
    assert_eq!(r.unwrap().sni.as_deref(), Some("split.example.com"));
}

#[test]
fn client_hello_split_across_tls_records() {
    let hello = split_records(&client_hello("records.example.com"), 50);
    let (r, _) = read(hello, vec![7, 300]);
    assert_eq!(r.unwrap().sni.as_deref(), Some("records.example.com"));
}

#[test]
fn plain_http_is_not_a_client_hello() {
    let (r, _) = read(
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n".to_vec(),
        vec![4096],
    );
    assert!(matches!(r, Err(HelloError::Invalid(_))), "{r:?}");
}

#[test]
fn a_closed_connection_before_the_hello_is_eof() {
    let hello = client_hello("short.example.com");
    let (r, _) = read(hello[..hello.len() / 2].to_vec(), vec![4096]);
    assert!(matches!(r, Err(HelloError::Eof)), "{r:?}");
    let (r, _) = read(Vec::new(), vec![4096]);
    assert!(matches!(r, Err(HelloError::Eof)), "{r:?}");
}

#[test]
fn an_endless_handshake_is_bounded() {
    // A handshake message that claims 16 MiB, fed as a stream of maximal records.
    let mut data = Vec::new();
    let mut first = vec![0x01, 0xff, 0xff, 0xff];
    first.extend(std::iter::repeat_n(0u8, 16_000));
    data.extend_from_slice(&[0x16, 0x03, 0x01]);
    data.extend_from_slice(&(first.len() as u16).to_be_bytes());
    data.extend_from_slice(&first);
    for _ in 0..10 {
        data.extend_from_slice(&[0x16, 0x03, 0x01, 0x3e, 0x80]);
        data.extend(std::iter::repeat_n(0u8, 16_000));
    }
    let (r, kept) = read(data, vec![4096]);
    assert!(r.is_err(), "{r:?}");
    assert!(kept <= MAX_HELLO_BYTES);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..3000), sizes in proptest::collection::vec(1usize..200, 1..8)) {
        let _ = read(data, sizes);
    }

    #[test]
    fn any_chunking_of_a_real_hello_reads_its_sni(sizes in proptest::collection::vec(1usize..600, 1..10)) {
        let (r, _) = read(client_hello("chunks.example.com"), sizes);
        let hello = r.unwrap();
        prop_assert_eq!(hello.sni.as_deref(), Some("chunks.example.com"));
    }

    #[test]
    fn mutated_hellos_never_panic(flips in proptest::collection::vec((0usize..600, any::<u8>()), 1..20), cut in 0usize..700) {
        let mut hello = client_hello("mutate.example.com");
        for (at, byte) in flips {
            let n = hello.len();
            hello[at % n] = byte;
        }
        hello.truncate(cut.max(1));
        let _ = read(hello, vec![64]);
    }
}
