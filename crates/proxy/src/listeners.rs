//! The listener manager: one listening socket per (address, port) the snapshot asks for,
//! reconciled on every apply.
//!
//! New addresses are bound before anything is closed; sockets no longer wanted stop
//! accepting, while connections they accepted carry on. A socket does not know whether its
//! port is plaintext or TLS: each accepted connection looks that up in the generation
//! current at that moment, so a port can change between the two without refusing anyone.

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Accept backlog of every listening socket.
const BACKLOG: i32 = 1024;

/// Why a socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// The sockets `ports` need: each group's addresses, or the wildcard address (IPv6 with
/// IPv4 mapped, so one socket serves both families) when the group has none.
pub fn wanted(ports: &[gatehouse_model::snapshot::PortGroup]) -> BTreeSet<SocketAddr> {
    let mut out = BTreeSet::new();
    for g in ports {
        if g.addresses.is_empty() {
            out.insert(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), g.port));
        } else {
            for a in &g.addresses {
                out.insert(SocketAddr::new(*a, g.port));
            }
        }
    }
    out
}

/// Binds a listening socket. The wildcard IPv6 address takes IPv4 too; where the host has
/// no IPv6, it falls back to the IPv4 wildcard. Addresses not (yet) on this host can be
/// bound (IP_FREEBIND), so a VIP's listener can start before the address is up.
pub fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), BindError> {
    match bind_once(addr) {
        Err(e)
            if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && e.raw_os_error() == Some(97) =>
        {
            // EAFNOSUPPORT: no IPv6 on this host.
            let v4 = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), addr.port());
            bind_once(v4).map_err(|source| BindError { addr: v4, source })
        }
        other => other.map_err(|source| BindError { addr, source }),
    }
}

fn bind_once(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(SockProtocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    #[cfg(target_os = "linux")]
    {
        if !addr.ip().is_unspecified() {
            if addr.is_ipv4() {
                socket.set_freebind_v4(true)?;
            } else {
                socket.set_freebind_v6(true)?;
            }
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    let std_listener: std::net::TcpListener = socket.into();
    let local = std_listener.local_addr()?;
    Ok((TcpListener::from_std(std_listener)?, local))
}

/// A socket that is accepting.
#[derive(Debug)]
struct Running {
    stop: watch::Sender<bool>,
    local: SocketAddr,
    /// Ends (and the socket closes) once `stop` is sent.
    task: tokio::task::JoinHandle<()>,
}

/// The set of listening sockets.
#[derive(Debug, Default)]
pub struct Listeners {
    running: BTreeMap<SocketAddr, Running>,
}

impl Listeners {
    /// Makes the running sockets match `wanted`: binds the missing ones first (reporting those
    /// that fail), then stops the ones no longer wanted. `on_accept` handles each connection.
    ///
    /// Linux refuses a wildcard and a specific address listening on one port at once, so when
    /// a port moves between "every address" and specific addresses the old sockets of that
    /// port are closed first and the new ones bound right after (a gap of milliseconds); every
    /// other change binds before it closes.
    pub async fn reconcile<F>(
        &mut self,
        wanted: &BTreeSet<SocketAddr>,
        on_accept: F,
    ) -> Vec<BindError>
    where
        F: Fn(TcpStream, SocketAddr) + Clone + Send + Sync + 'static,
    {
        let mut errors = Vec::new();
        let mut in_use = Vec::new();
        for addr in wanted {
            if self.running.contains_key(addr) {
                continue;
            }
            match self.start(*addr, on_accept.clone()) {
                Ok(()) => {}
                Err(e) if e.source.kind() == std::io::ErrorKind::AddrInUse => in_use.push(e),
                Err(e) => errors.push(e),
            }
        }
        let gone: Vec<SocketAddr> = self
            .running
            .keys()
            .filter(|a| !wanted.contains(a))
            .copied()
            .collect();
        // Close the leaving sockets that hold a port a new socket could not get, then retry.
        let blocking: Vec<SocketAddr> = gone
            .iter()
            .filter(|g| in_use.iter().any(|e| e.addr.port() == g.port()))
            .copied()
            .collect();
        for addr in &blocking {
            self.stop(*addr).await;
        }
        for e in in_use {
            if blocking.iter().any(|b| b.port() == e.addr.port()) {
                if let Err(e) = self.start(e.addr, on_accept.clone()) {
                    errors.push(e);
                }
            } else {
                errors.push(e);
            }
        }
        for addr in gone.into_iter().filter(|a| !blocking.contains(a)) {
            self.stop(addr).await;
        }
        for e in &errors {
            tracing::error!("{e}");
        }
        errors
    }

    fn start<F>(&mut self, addr: SocketAddr, on_accept: F) -> Result<(), BindError>
    where
        F: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
    {
        let (listener, local) = bind(addr)?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, stop_rx, on_accept));
        tracing::info!(address = %local, "listening");
        self.running.insert(addr, Running { stop, local, task });
        Ok(())
    }

    /// Stops accepting on `addr` and waits until its socket is closed; the connections it
    /// accepted carry on.
    async fn stop(&mut self, addr: SocketAddr) {
        if let Some(r) = self.running.remove(&addr) {
            let _ = r.stop.send(true);
            let _ = r.task.await;
            tracing::info!(address = %r.local, "stopped listening");
        }
    }

    /// The actual local addresses of the running sockets (ports resolved when 0 was asked).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.running.values().map(|r| r.local).collect()
    }

    /// Stops accepting everywhere.
    pub async fn stop_all(&mut self) {
        let all: Vec<SocketAddr> = self.running.keys().copied().collect();
        for addr in all {
            self.stop(addr).await;
        }
    }
}

async fn accept_loop<F>(listener: TcpListener, mut stop: watch::Receiver<bool>, on_accept: F)
where
    F: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
{
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => on_accept(stream, peer),
                Err(e) => {
                    // Out of file descriptors or a similar transient condition: back off
                    // briefly rather than spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}
