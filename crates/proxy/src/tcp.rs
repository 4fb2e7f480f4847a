//! TCP listeners (TCPRoute) and TLS listeners with mode Terminate (TLSRoute): connections
//! spliced to a TCP backend by [`crate::l4`], counted and logged per connection.
//!
//! ```text
//! TCP:           accept ─▶ the listener's one rule ─▶ connect (weighted) ─▶ splice
//! TLS Terminate: ClientHello (SNI) ─▶ TLSRoute by SNI ─▶ rustls handshake ─▶ connect ─▶ splice
//! ```
//!
//! A connection that finds no route or no reachable backend is closed without a byte (no
//! TLS alert either), and counted by reason.

use crate::Generation;
use crate::io::Replay;
use crate::l4::{self, AccessLog};
use crate::metrics::Metrics;
use gatehouse_model::conn::ConnInfo;
use gatehouse_model::decide::ListenerId;
use gatehouse_model::listener::ListenerKind;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A connection to a TCP listener, spliced to a backend of the listener's rule. It keeps
/// `generation` until it closes, so a reload does not cut it.
pub(crate) async fn serve_tcp(
    mut client: TcpStream,
    info: &ConnInfo,
    generation: Arc<Generation>,
    id: ListenerId,
    metrics: &Metrics,
) {
    let started = Instant::now();
    let port = info.local.port();
    let Some(listener) = generation.snapshot.listeners.get(id) else {
        return;
    };
    let ListenerKind::Tcp { rule } = &listener.kind else {
        return;
    };
    let Some(rule) = rule else {
        tracing::debug!(client = %info.peer, listener = %listener.label(), "closed: no TCPRoute attached");
        metrics.tcp_unrouted(port, "no_route");
        return;
    };
    let limits = generation.snapshot.settings.limits;
    let mut up = match l4::connect(&generation, &rule.backends, &limits, info, Some(id)).await {
        Ok(up) => up,
        Err(e) => {
            tracing::debug!(client = %info.peer, listener = %listener.label(), "closed: {e}");
            metrics.tcp_unrouted(port, e.reason());
            return;
        }
    };
    let route = rule.rule.route.namespaced_name();
    let done = l4::run_splice(&mut client, &mut up.stream, &limits, route, 0, started).await;
    AccessLog {
        mode: "tcp",
        info,
        sni: None,
        listener,
        backend: &up.backend.name,
        endpoint: up.endpoint,
    }
    .write(&generation, &done);
    metrics.tcp_done(listener, &done);
}

/// A TLS-terminated connection of a TLS listener with mode Terminate: the plaintext is
/// spliced to a backend of the TLSRoute its SNI selected (`rule_of` looked it up before the
/// handshake, so a connection without a route never gets a certificate).
pub(crate) async fn serve_terminated(
    mut client: TlsStream<Replay<TcpStream>>,
    info: &ConnInfo,
    sni: Option<&str>,
    generation: &Generation,
    id: ListenerId,
    started: Instant,
    metrics: &Metrics,
) {
    let port = info.local.port();
    let Some(listener) = generation.snapshot.listeners.get(id) else {
        return;
    };
    let ListenerKind::TlsTerminate { routes, .. } = &listener.kind else {
        return;
    };
    let Some(rule) = sni.and_then(|s| routes.lookup(s)) else {
        metrics.sni_unmatched(port, "no_route");
        return;
    };
    let limits = generation.snapshot.settings.limits;
    let mut up = match l4::connect(generation, &rule.backends, &limits, info, Some(id)).await {
        Ok(up) => up,
        Err(e) => {
            tracing::debug!(client = %info.peer, sni = sni.unwrap_or(""), "TLS terminate closed: {e}");
            metrics.sni_unmatched(port, e.reason());
            return;
        }
    };
    let route = rule.rule.route.namespaced_name();
    let done = l4::run_splice(&mut client, &mut up.stream, &limits, route, 0, started).await;
    AccessLog {
        mode: "tls_terminate",
        info,
        sni,
        listener,
        backend: &up.backend.name,
        endpoint: up.endpoint,
    }
    .write(generation, &done);
    metrics.tls_terminate_done(listener, &done);
}
