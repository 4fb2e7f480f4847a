//! TLS for the tests (`tls_terminate.rs`, `tls_passthrough.rs`, `tcp_routes.rs` and the
//! observability lab): a test CA and leaf certificates made at test time (`certs`: rcgen,
//! plus the `openssl` CLI for RSA keys and the PKCS#1/SEC1 encodings), configuration snippets
//! (`config`), a rustls client (ring) that checks the chain against the test CA and reports
//! which leaf it got (`client`), HTTP/1.1 and HTTP/2 over that client (`https`), the
//! "rejected without a TLS alert" check of the conformance harness (`reject`), and TLS
//! backends for passthrough (`server`: an in-process rustls server that reports the SNI it
//! saw, and `openssl s_server`). Everything is re-exported here, so tests name it `tls::X`.

mod certs;
mod client;
mod config;
mod https;
mod reject;
mod server;

pub use certs::{Ca, KeyKind, Leaf, openssl_missing, which};
pub use client::{ClientTls, Tap, Tls, alpn_of, peer_leaf, tcp, version_of};
pub use config::{http_route, https_listener, start, tls_listener, tls_route, tls_service};
pub use https::{Https, HttpsChecker, outcome};
pub use reject::{End, client_hello, expect_closed_silently, expect_rejected, rejection, send_raw};
pub use rustls::version::{TLS12, TLS13};
pub use server::{OpensslServer, Report, Seen, TlsBackend, passthrough_report};

use std::sync::Arc;

/// ring, the only provider the tests (and the product) build.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
