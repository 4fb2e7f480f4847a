//! RequestMirror: a copy of the request sent to another backend after the client's request
//! is done. The mirror's response is read and dropped; failures are logged and counted
//! nowhere else. Only one endpoint of the mirror Service receives each copy.

use crate::backends::Pool;
use crate::{Generation, Shared};
use bytes::Bytes;
use gatehouse_model::backend::{AppProtocol, BackendTarget};
use gatehouse_model::filter::Mirror;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use std::sync::Arc;
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
    request: Option<RequestHeader>,
}

impl Job {
    pub fn new(m: &Mirror, generation: &Generation) -> Option<Job> {
        let BackendTarget::Service {
            service,
            target_port,
            protocol,
            ..
        } = &m.target
        else {
            return None;
        };
        Some(Job {
            name: m.name.clone(),
            pool: generation.pools.get(*service)?.clone(),
            target_port: *target_port,
            protocol: *protocol,
            request: None,
        })
    }

    /// The request as it went to the main backend (after filters).
    pub fn set_request(&mut self, req: RequestHeader) {
        self.request = Some(req);
    }

    /// Sends the copy in the background.
    pub fn send(self, downstream: &RequestHeader, body: Bytes, shared: &Arc<Shared>) {
        let req = self.request.clone().unwrap_or_else(|| downstream.clone());
        let shared = shared.clone();
        tokio::spawn(async move {
            let name = self.name.clone();
            match tokio::time::timeout(MIRROR_TIMEOUT, self.run(req, body, &shared)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(mirror = %name, "mirror request failed: {e}"),
                Err(_) => tracing::debug!(mirror = %name, "mirror request timed out"),
            }
        });
    }

    async fn run(
        self,
        req: RequestHeader,
        body: Bytes,
        shared: &Shared,
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
        let connector = &shared.mirror_connector;
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
