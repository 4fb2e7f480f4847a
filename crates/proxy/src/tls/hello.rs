//! Reading a TLS ClientHello without answering it.
//!
//! The bytes are kept so they can be replayed: to a passthrough backend, or to our own TLS
//! handshake. rustls' `Acceptor` parses the hello, so a hello split across TCP segments or
//! TLS records is handled. The read is bounded in bytes here and in time by the caller.

use rustls::server::Acceptor;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most bytes a ClientHello may take (post-quantum key shares make hellos of a few KiB).
pub const MAX_HELLO_BYTES: usize = 64 * 1024;

/// What the ClientHello says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The SNI, normalised (lowercase, no trailing dot).
    pub sni: Option<String>,
}

/// Why no ClientHello could be read. Every case closes the connection without a TLS alert.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    #[error("the connection closed before a complete ClientHello")]
    Eof,
    #[error("the ClientHello is over {MAX_HELLO_BYTES} bytes")]
    TooLarge,
    #[error("not a TLS ClientHello: {0}")]
    Invalid(rustls::Error),
    #[error("reading the ClientHello: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads from `stream` until a whole ClientHello arrived; every byte read is appended to
/// `kept`.
pub async fn read_client_hello<S: AsyncRead + Unpin>(
    stream: &mut S,
    kept: &mut Vec<u8>,
) -> Result<ClientHello, HelloError> {
    let mut acceptor = Acceptor::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(HelloError::Eof);
        }
        if kept.len() + n > MAX_HELLO_BYTES {
            return Err(HelloError::TooLarge);
        }
        kept.extend_from_slice(&buf[..n]);
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            acceptor.read_tls(&mut rest)?;
            match acceptor.accept() {
                Ok(Some(accepted)) => {
                    let sni = accepted
                        .client_hello()
                        .server_name()
                        .and_then(gatehouse_model::hostname::normalize_request_host);
                    return Ok(ClientHello { sni });
                }
                Ok(None) => {}
                Err((e, _alert)) => return Err(HelloError::Invalid(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests;
