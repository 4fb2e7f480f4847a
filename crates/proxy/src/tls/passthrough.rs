//! TLS passthrough: the connection goes, unread past its ClientHello, to a backend chosen by
//! SNI. The kept ClientHello bytes are written first, then the connection is spliced by
//! [`crate::l4`] (half-close passed on, `[limits] passthroughIdleTimeout`).

use crate::Generation;
use crate::l4::{self, AccessLog, L4Error, Spliced};
use gatehouse_model::conn::ConnInfo;
use gatehouse_model::listener::Listener;
use gatehouse_model::settings::Limits;
use gatehouse_model::tls::SniTable;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A passthrough connection about to be spliced.
#[derive(Debug)]
pub struct Splice<'a> {
    pub generation: &'a Generation,
    pub listener: &'a Listener,
    pub routes: &'a SniTable,
    pub limits: &'a Limits,
}

impl Splice<'_> {
    /// Connects the client to a backend of the route `sni` selects and splices until both
    /// sides close, or until no byte has moved either way for `passthroughIdleTimeout`.
    pub async fn run(
        &self,
        info: &ConnInfo,
        sni: Option<&str>,
        mut client: TcpStream,
        kept: &[u8],
    ) -> Result<Spliced, L4Error> {
        let started = std::time::Instant::now();
        let rule = sni
            .and_then(|s| self.routes.lookup(s))
            .ok_or(L4Error::NoRoute)?;
        // Passthrough originates no TLS (its rules carry no policy): no listener identity.
        let mut up = l4::connect(self.generation, &rule.backends, self.limits, info, None).await?;
        if up.stream.write_all(kept).await.is_err() {
            return Err(L4Error::NoEndpoint);
        }
        let route = rule.rule.route.namespaced_name();
        let done = l4::run_splice(
            &mut client,
            &mut up.stream,
            self.limits,
            route,
            kept.len() as u64,
            started,
        )
        .await;
        AccessLog {
            mode: "passthrough",
            info,
            sni,
            listener: self.listener,
            backend: &up.backend.name,
            endpoint: up.endpoint,
        }
        .write(self.generation, &done);
        Ok(done)
    }
}
