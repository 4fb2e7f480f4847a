//! TLS passthrough: the connection goes, unread past its ClientHello, to a backend chosen by
//! SNI. The kept ClientHello bytes are written first, then both directions are copied until
//! each side has closed (a half-close is passed on).

use crate::Generation;
use crate::backends::NoEndpoint;
use gatehouse_model::backend::{BackendTarget, Pick};
use gatehouse_model::tls::SniTable;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How long connecting to one backend endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a passthrough connection was closed without reaching a backend.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    #[error("no TLSRoute for this SNI")]
    NoRoute,
    #[error("the backendRef drawn is not resolved")]
    Unresolved,
    #[error("the route has no backend with weight")]
    NoBackend,
    #[error("no endpoint of the backend could be reached")]
    NoEndpoint,
}

impl PassthroughError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PassthroughError::NoRoute => "no_route",
            PassthroughError::Unresolved => "unresolved_backend",
            PassthroughError::NoBackend => "no_backend",
            PassthroughError::NoEndpoint => "no_endpoint",
        }
    }
}

/// A finished passthrough connection.
#[derive(Debug)]
pub struct Spliced {
    /// `namespace/name` of the TLSRoute.
    pub route: String,
    /// Bytes from the client to the backend (the ClientHello included).
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Connects the client to a backend of the route `sni` selects and splices until both sides
/// close.
pub async fn splice(
    generation: &Generation,
    routes: &SniTable,
    sni: Option<&str>,
    mut client: TcpStream,
    kept: &[u8],
    peer: SocketAddr,
    listener: &str,
) -> Result<Spliced, PassthroughError> {
    let started = std::time::Instant::now();
    let rule = sni
        .and_then(|s| routes.lookup(s))
        .ok_or(PassthroughError::NoRoute)?;
    let backend = match rule.backends.pick(fastrand::u64(..)) {
        Pick::Backend(b) => b,
        Pick::AllWeightsZero | Pick::NoBackends => return Err(PassthroughError::NoBackend),
    };
    let BackendTarget::Service {
        service,
        target_port,
        ..
    } = &backend.target
    else {
        return Err(PassthroughError::Unresolved);
    };
    let pool = generation
        .pools
        .get(*service)
        .ok_or(PassthroughError::Unresolved)?;
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut upstream = loop {
        let (target, addr) = match pool.pick(*target_port, &tried) {
            Ok(t) => t,
            Err(NoEndpoint::Empty | NoEndpoint::NoneHealthy) => {
                return Err(PassthroughError::NoEndpoint);
            }
        };
        tried.push(addr);
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                pool.connect_succeeded(&target);
                break s;
            }
            Ok(Err(e)) => {
                tracing::debug!(endpoint = %addr, "passthrough connect failed: {e}");
                pool.connect_failed(&target);
            }
            Err(_) => {
                tracing::debug!(endpoint = %addr, "passthrough connect timed out");
                pool.connect_failed(&target);
            }
        }
    };
    let _ = upstream.set_nodelay(true);
    if upstream.write_all(kept).await.is_err() {
        return Err(PassthroughError::NoEndpoint);
    }
    let route = rule.rule.route.namespaced_name();
    let copied = tokio::io::copy_bidirectional(&mut client, &mut upstream)
        .await
        .unwrap_or((0, 0));
    let to_backend = copied.0 + kept.len() as u64;
    if generation.snapshot.settings.log.access_log {
        tracing::info!(
            target: "gatehouse::access",
            client = %SocketAddr::new(peer.ip().to_canonical(), peer.port()),
            sni = sni.unwrap_or_default(),
            listener,
            route = %route,
            backend = %backend.name,
            endpoint = %tried.last().map(|a| a.to_string()).unwrap_or_default(),
            bytes_in = to_backend,
            bytes_out = copied.1,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "passthrough"
        );
    }
    Ok(Spliced {
        route,
        bytes_in: to_backend,
        bytes_out: copied.1,
    })
}
