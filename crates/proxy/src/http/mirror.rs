//! RequestMirror: a copy of the request sent to another backend after the client's request
//! is done. The mirror's response is read and dropped; failures are logged at debug. Only one
//! endpoint of the mirror Service receives each copy. At most `[limits] maxMirrorsInFlight`
//! copies are in flight at once; the ones over it are dropped and counted
//! (`gatehouse_http_mirrors_dropped_total`).

use crate::backends::Pool;
use crate::tls::upstream::UpstreamPeerTls;
use crate::{Generation, Shared};
use bytes::Bytes;
use gatehouse_model::backend::{AppProtocol, BackendTarget};
use gatehouse_model::filter::Mirror;
use pingora_core::connectors::http::Connector;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long one mirrored request may take.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(10);

/// One mirror copy to send.
#[derive(Debug)]
pub struct Job {
    name: String,
    pool: Arc<Pool>,
    target_port: u16,
    protocol: AppProtocol,
    /// The BackendTLSPolicy's client side, when the mirror's Service port speaks TLS.
    tls: Option<UpstreamPeerTls>,
    request: Option<RequestHeader>,
}

impl Job {
    /// A copy of the request for `m`; `listener` is the one the request came in on (its
    /// Gateway's client certificate is presented to a TLS backend).
    pub fn new(m: &Mirror, generation: &Generation, listener: Option<usize>) -> Option<Job> {
        let BackendTarget::Service {
            service,
            target_port,
            protocol,
            tls,
            ..
        } = &m.target
        else {
            return None;
        };
        // A TLS port whose client configuration is unusable is not mirrored (never in
        // plaintext).
        let tls = match tls {
            Some(id) => Some(
                generation
                    .upstream_tls
                    .get(*id, *protocol, listener)?
                    .clone(),
            ),
            None => None,
        };
        Some(Job {
            name: m.name.clone(),
            pool: generation.pools.get(*service)?.clone(),
            target_port: *target_port,
            protocol: *protocol,
            tls,
            request: None,
        })
    }

    /// The request as it went to the main backend (after filters).
    pub fn set_request(&mut self, req: RequestHeader) {
        self.request = Some(req);
    }

    /// Sends the copy in the background, unless `max` copies are in flight already.
    pub fn send(
        self,
        downstream: &RequestHeader,
        body: Bytes,
        shared: &Arc<Shared>,
        connector: &Arc<Connector>,
        max: usize,
    ) {
        if shared.mirrors_in_flight.fetch_add(1, Ordering::SeqCst) >= max {
            shared.mirrors_in_flight.fetch_sub(1, Ordering::SeqCst);
            shared.metrics.mirrors_dropped.inc();
            return;
        }
        let req = self.request.clone().unwrap_or_else(|| downstream.clone());
        let shared = shared.clone();
        let connector = connector.clone();
        tokio::spawn(async move {
            let name = self.name.clone();
            match tokio::time::timeout(MIRROR_TIMEOUT, self.run(req, body, &connector)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(mirror = %name, "mirror request failed: {e}"),
                Err(_) => tracing::debug!(mirror = %name, "mirror request timed out"),
            }
            shared.mirrors_in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    async fn run(
        self,
        req: RequestHeader,
        body: Bytes,
        connector: &Connector,
    ) -> pingora_error::Result<()> {
        let (_, addr) = self.pool.pick(self.target_port, &[]).map_err(|_| {
            pingora_error::Error::explain(
                pingora_error::ErrorType::ConnectNoRoute,
                "no healthy mirror endpoint",
            )
        })?;
        let mut peer = HttpPeer::new(addr, false, String::new());
        if self.protocol == AppProtocol::H2c {
            peer.options.set_http_version(2, 2);
        }
        if let Some(tls) = &self.tls {
            tls.apply(&mut peer);
        }
        let (mut session, _reused) = connector.get_http_session(&peer).await?;
        let mut req = req;
        if body.is_empty() {
            req.remove_header(&http::header::TRANSFER_ENCODING);
            let _ = req.insert_header(http::header::CONTENT_LENGTH, "0");
        } else {
            req.remove_header(&http::header::TRANSFER_ENCODING);
            let _ = req.insert_header(http::header::CONTENT_LENGTH, body.len().to_string());
        }
        session.write_request_header(Box::new(req)).await?;
        if !body.is_empty() {
            session.write_request_body(body, true).await?;
        }
        session.finish_request_body().await?;
        session.read_response_header().await?;
        while session.read_response_body().await?.is_some() {}
        connector
            .release_http_session(session, &peer, Some(Duration::from_secs(60)))
            .await;
        Ok(())
    }
}
