//! Active health checks (`[[Service]] healthCheck`): every interval, each endpoint of the
//! Service's first port is probed, and `unhealthyThreshold` failures in a row (or
//! `healthyThreshold` successes) flip it out of (or back into) the rotation.
//!
//! ```text
//! TCP:  connect                                  (within timeout)
//! HTTP: connect ─▶ GET path ─▶ 2xx or 3xx        (within timeout)
//! a port a BackendTLSPolicy claims: connect ─▶ TLS handshake verified as the policy says
//!       ─▶ (HTTP) GET over TLS
//! ```
//!
//! The TLS client comes from the generation being served, looked up by the policy's name
//! at every round ([`TlsForChecks`]), so a changed policy applies to the next check, and a
//! policy without a usable CA fails the checks (as it fails requests). A check presents no
//! client certificate: a backend that requires one fails it.

use crate::backends::Pool;
use crate::tls::upstream::TlsConnect;
use gatehouse_model::backend::{HealthCheck, HealthCheckKind, Service};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a health check of a Service under its BackendTLSPolicy finds in the generation
/// being served.
#[derive(Debug)]
pub enum CheckTls {
    /// The served generation does not have this Service with this policy yet (a reload is
    /// being applied): skip the round, change nothing.
    NotYet,
    /// The policy cannot verify anything (no usable CA): the check fails.
    Unusable,
    Ready(Arc<TlsConnect>),
}

/// Looks up the TLS client of a Service's health checks in the generation being served.
pub type TlsForChecks = Arc<dyn Fn(&Service) -> CheckTls + Send + Sync>;

/// Checks a pool's endpoints every interval while the pool exists.
pub(crate) fn spawn(
    pool: &Arc<Pool>,
    hc: HealthCheck,
    mut stop: tokio::sync::watch::Receiver<bool>,
    tls: TlsForChecks,
) {
    let weak = Arc::downgrade(pool);
    tokio::spawn(async move {
        loop {
            let Some(pool) = weak.upgrade() else { return };
            round(&pool, &hc, &tls).await;
            drop(pool);
            tokio::select! {
                _ = tokio::time::sleep(hc.interval) => {}
                _ = stop.changed() => return,
            }
        }
    });
}

/// One round of checks against every endpoint of `pool`.
async fn round(pool: &Pool, hc: &HealthCheck, tls: &TlsForChecks) {
    let service = pool.service();
    let connector = match service.health_check_tls {
        None => None,
        Some(_) => match tls(service) {
            CheckTls::NotYet => return,
            CheckTls::Unusable => Some(None),
            CheckTls::Ready(c) => Some(Some(c)),
        },
    };
    let target_port = service.ports.first().map_or(80, |p| p.target_port);
    for t in pool.targets().iter() {
        let addr = t.addr(target_port);
        let ok = match &connector {
            None => probe(hc, addr, None).await,
            Some(None) => false,
            Some(Some(c)) => probe(hc, addr, Some(c)).await,
        };
        let streak = t.health_streak.load(Ordering::Relaxed);
        let healthy = t.healthy.load(Ordering::Relaxed);
        if ok == healthy {
            t.health_streak.store(0, Ordering::Relaxed);
            continue;
        }
        let streak = streak + 1;
        let threshold = if healthy {
            hc.unhealthy_threshold
        } else {
            hc.healthy_threshold
        };
        if streak >= threshold {
            t.healthy.store(ok, Ordering::Relaxed);
            t.health_streak.store(0, Ordering::Relaxed);
            tracing::info!(service = %service.key, endpoint = %addr, healthy = ok, "endpoint health changed");
        } else {
            t.health_streak.store(streak, Ordering::Relaxed);
        }
    }
}

/// A TCP connect (and the TLS handshake under a policy), or an HTTP/1.1 GET answered with
/// 2xx or 3xx, within the timeout.
async fn probe(hc: &HealthCheck, addr: SocketAddr, tls: Option<&TlsConnect>) -> bool {
    let attempt = async {
        let tcp = TcpStream::connect(addr).await.ok()?;
        match tls {
            None => http(hc, addr, tcp).await,
            Some(c) => match c.handshake(tcp).await {
                Ok(s) => http(hc, addr, s).await,
                Err((why, message)) => {
                    tracing::debug!(endpoint = %addr, reason = ?why, "health check TLS handshake failed: {message}");
                    Some(false)
                }
            },
        }
    };
    matches!(
        tokio::time::timeout(hc.timeout, attempt).await,
        Ok(Some(true))
    )
}

/// The HTTP part of a check on an open connection (a TCP check passes here).
async fn http<S: AsyncRead + AsyncWrite + Unpin>(
    hc: &HealthCheck,
    addr: SocketAddr,
    mut s: S,
) -> Option<bool> {
    if hc.kind == HealthCheckKind::Tcp {
        return Some(true);
    }
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: gatehouse-health-check\r\nConnection: close\r\n\r\n",
        hc.path
    );
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = [0u8; 16];
    let mut n = 0;
    while n < 12 {
        let k = s.read(&mut buf[n..]).await.ok()?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let line = std::str::from_utf8(&buf[..n]).ok()?;
    let code: u16 = line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()?;
    Some((200..400).contains(&code))
}
