//! The listener manager: for every (address, port) the snapshot asks for, one listening socket
//! per serving thread, all bound with `SO_REUSEPORT` so the kernel spreads new connections
//! over the threads and a connection never leaves the thread that accepted it (nginx's
//! `reuseport`, Pingora's no-steal runtime).
//!
//! Reconciled on every apply: new addresses are bound before anything is closed; sockets no
//! longer wanted stop accepting, while connections they accepted carry on. A socket does not
//! know whether its port is plaintext or TLS: each accepted connection looks that up in the
//! generation current at that moment, so a port can change between the two without refusing
//! anyone.
//!
//! Before the sockets of an address are bound, a probe socket without `SO_REUSEPORT` is bound
//! to it: a port another process (even another gatehouse) holds is reported as in use instead
//! of being silently shared. Options the accepted sockets need (`TCP_NODELAY`, TCP keepalive)
//! are set on the listening sockets, which Linux copies to every socket they accept.
//!
//! UDP ports (UDP listeners) get one socket per address, bound without `SO_REUSEPORT` or
//! `SO_REUSEADDR` (so a port held elsewhere is reported in use), read by one serving thread
//! (spread over the threads address by address); [`crate::udp`] relays what arrives.

use socket2::{Domain, Protocol as SockProtocol, Socket, TcpKeepalive, Type};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

/// Accept backlog of every listening socket.
const BACKLOG: i32 = 4096;

/// Whether a socket takes TCP connections or UDP datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    /// `""` for TCP, `"udp "` for UDP: what goes before an address in logs and status.
    pub fn prefix(self) -> &'static str {
        match self {
            Transport::Tcp => "",
            Transport::Udp => "udp ",
        }
    }
}

/// Why a socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {}{addr}: {source}", transport.prefix())]
pub struct BindError {
    pub transport: Transport,
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// What an accepting socket hands each connection to: the stream, the client's address, and
/// the local address when the socket's own address says it (not for wildcard sockets).
pub type OnAccept = Arc<dyn Fn(TcpStream, SocketAddr, Option<SocketAddr>) + Send + Sync>;

/// What serves a bound UDP socket (its actual local address given) until the receiver turns
/// true.
pub type OnUdp = Arc<
    dyn Fn(
            UdpSocket,
            SocketAddr,
            watch::Receiver<bool>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// One serving thread as the listener manager sees it: where to run its accept loops and
/// what to do with a connection or a UDP socket.
#[derive(Clone)]
pub struct Acceptor {
    pub runtime: tokio::runtime::Handle,
    pub on_accept: OnAccept,
    pub on_udp: OnUdp,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor").finish_non_exhaustive()
    }
}

/// Options of the listening sockets, inherited by the connections they accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketOptions {
    /// TCP keepalive idle time; `None` leaves keepalive off.
    pub keepalive: Option<Duration>,
}

impl SocketOptions {
    fn keepalive(&self) -> Option<TcpKeepalive> {
        self.keepalive.map(|idle| {
            TcpKeepalive::new()
                .with_time(idle)
                .with_interval(Duration::from_secs(10))
                .with_retries(6)
        })
    }
}

/// The sockets a snapshot needs: each port group's addresses, or the wildcard address (IPv6
/// with IPv4 mapped, so one socket serves both families) when the group has none; TCP for
/// `snapshot.ports`, UDP for `snapshot.udp_ports`.
pub fn wanted(snapshot: &gatehouse_model::Snapshot) -> BTreeSet<(Transport, SocketAddr)> {
    let mut out = BTreeSet::new();
    for (transport, groups) in [
        (Transport::Tcp, &snapshot.ports),
        (Transport::Udp, &snapshot.udp_ports),
    ] {
        for g in groups {
            if g.addresses.is_empty() {
                let any = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), g.port);
                out.insert((transport, any));
            } else {
                for a in &g.addresses {
                    out.insert((transport, SocketAddr::new(*a, g.port)));
                }
            }
        }
    }
    out
}

/// Binds `count` listening sockets sharing `addr` (`SO_REUSEPORT`). The wildcard IPv6
/// address takes IPv4 too; where the host has no IPv6, it falls back to the IPv4 wildcard.
/// Addresses not (yet) on this host can be bound (IP_FREEBIND), so a VIP's listener can
/// start before the address is up.
pub fn bind(
    addr: SocketAddr,
    count: usize,
    options: &SocketOptions,
) -> Result<Vec<std::net::TcpListener>, BindError> {
    match bind_set(addr, count, options) {
        Err(e)
            if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && e.raw_os_error() == Some(97) =>
        {
            // EAFNOSUPPORT: no IPv6 on this host.
            let v4 = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), addr.port());
            bind_set(v4, count, options).map_err(|source| BindError {
                transport: Transport::Tcp,
                addr: v4,
                source,
            })
        }
        other => other.map_err(|source| BindError {
            transport: Transport::Tcp,
            addr,
            source,
        }),
    }
}

/// Binds the UDP socket of `addr`, with the wildcard IPv6 address falling back to IPv4 as
/// [`bind`] does.
pub fn bind_udp(addr: SocketAddr) -> Result<std::net::UdpSocket, BindError> {
    let error = |addr, source| BindError {
        transport: Transport::Udp,
        addr,
        source,
    };
    match crate::udp::socket::bind(addr) {
        Err(e)
            if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && e.raw_os_error() == Some(97) =>
        {
            let v4 = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), addr.port());
            crate::udp::socket::bind(v4).map_err(|e| error(v4, e))
        }
        other => other.map_err(|e| error(addr, e)),
    }
}

fn socket(addr: SocketAddr, reuse_port: bool, options: &SocketOptions) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(SockProtocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    if !addr.ip().is_unspecified() {
        if addr.is_ipv4() {
            socket.set_freebind_v4(true)?;
        } else {
            socket.set_freebind_v6(true)?;
        }
    }
    socket.set_tcp_nodelay(true)?;
    if let Some(ka) = options.keepalive() {
        socket.set_tcp_keepalive(&ka)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_set(
    addr: SocketAddr,
    count: usize,
    options: &SocketOptions,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut addr = addr;
    if addr.port() != 0 {
        // Refuse a port someone else holds rather than share it through SO_REUSEPORT.
        socket(addr, false, options)?.bind(&addr.into())?;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let s = socket(addr, true, options)?;
        s.bind(&addr.into())?;
        s.listen(BACKLOG)?;
        let l: std::net::TcpListener = s.into();
        // Port 0: the first socket picks the port, the others join it.
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

/// The sockets of one address, one per serving thread.
#[derive(Debug)]
struct Running {
    stop: watch::Sender<bool>,
    local: SocketAddr,
    /// Each ends (and its socket closes) once `stop` is sent.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The set of listening sockets.
#[derive(Debug, Default)]
pub struct Listeners {
    running: BTreeMap<(Transport, SocketAddr), Running>,
    /// Spreads UDP sockets over the serving threads.
    next_udp_thread: usize,
}

impl Listeners {
    /// Makes the running sockets match `wanted`: binds the missing ones first (reporting those
    /// that fail), then stops the ones no longer wanted. Each serving thread in `acceptors`
    /// gets one socket of every address.
    ///
    /// Linux refuses a wildcard and a specific address listening on one port at once, so when
    /// a port moves between "every address" and specific addresses the old sockets of that
    /// port are closed first and the new ones bound right after (a gap of milliseconds); every
    /// other change binds before it closes.
    pub async fn reconcile(
        &mut self,
        wanted: &BTreeSet<(Transport, SocketAddr)>,
        acceptors: &[Acceptor],
        options: &SocketOptions,
    ) -> Vec<BindError> {
        let mut errors = Vec::new();
        let mut in_use = Vec::new();
        for key in wanted {
            if self.running.contains_key(key) {
                continue;
            }
            match self.start(*key, acceptors, options) {
                Ok(()) => {}
                Err(e) if e.source.kind() == std::io::ErrorKind::AddrInUse => in_use.push(e),
                Err(e) => errors.push(e),
            }
        }
        let gone: Vec<(Transport, SocketAddr)> = self
            .running
            .keys()
            .filter(|a| !wanted.contains(a))
            .copied()
            .collect();
        // Close the leaving sockets that hold a port a new socket could not get, then retry.
        let blocks = |g: &(Transport, SocketAddr), e: &BindError| {
            g.0 == e.transport && g.1.port() == e.addr.port()
        };
        let blocking: Vec<(Transport, SocketAddr)> = gone
            .iter()
            .filter(|g| in_use.iter().any(|e| blocks(g, e)))
            .copied()
            .collect();
        for key in &blocking {
            self.stop(*key).await;
        }
        for e in in_use {
            if blocking.iter().any(|b| blocks(b, &e)) {
                if let Err(e) = self.start((e.transport, e.addr), acceptors, options) {
                    errors.push(e);
                }
            } else {
                errors.push(e);
            }
        }
        for key in gone.into_iter().filter(|a| !blocking.contains(a)) {
            self.stop(key).await;
        }
        for e in &errors {
            tracing::error!("{e}");
        }
        errors
    }

    fn start(
        &mut self,
        (transport, addr): (Transport, SocketAddr),
        acceptors: &[Acceptor],
        options: &SocketOptions,
    ) -> Result<(), BindError> {
        let running = match transport {
            Transport::Tcp => start_tcp(addr, acceptors, options)?,
            Transport::Udp => {
                let socket = bind_udp(addr)?;
                let a = &acceptors[self.next_udp_thread % acceptors.len().max(1)];
                self.next_udp_thread += 1;
                start_udp(socket, addr, a)
            }
        };
        self.running.insert((transport, addr), running);
        Ok(())
    }

    /// Stops accepting on `addr` and waits until its sockets are closed; the connections
    /// they accepted carry on. A UDP socket's flows end with it (their replies would have
    /// no socket to leave from).
    async fn stop(&mut self, key: (Transport, SocketAddr)) {
        if let Some(r) = self.running.remove(&key) {
            let _ = r.stop.send(true);
            for t in r.tasks {
                let _ = t.await;
            }
            tracing::info!(address = %format_args!("{}{}", key.0.prefix(), r.local), "stopped listening");
        }
    }

    /// The actual local addresses of the running sockets (ports resolved when 0 was asked).
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        self.running.iter().map(|(k, r)| (k.0, r.local)).collect()
    }

    /// Stops accepting everywhere.
    pub async fn stop_all(&mut self) {
        let all: Vec<(Transport, SocketAddr)> = self.running.keys().copied().collect();
        for key in all {
            self.stop(key).await;
        }
    }
}

/// Binds the TCP sockets of `addr`, one per serving thread, and starts their accept loops.
fn start_tcp(
    addr: SocketAddr,
    acceptors: &[Acceptor],
    options: &SocketOptions,
) -> Result<Running, BindError> {
    let sockets = bind(addr, acceptors.len(), options)?;
    let local = sockets
        .first()
        .and_then(|s| s.local_addr().ok())
        .unwrap_or(addr);
    let known_local =
        (!local.ip().is_unspecified()).then(|| gatehouse_model::conn::canonical(local));
    let (stop, stop_rx) = watch::channel(false);
    let tasks = sockets
        .into_iter()
        .zip(acceptors)
        .map(|(socket, a)| {
            let stop = stop_rx.clone();
            let on_accept = a.on_accept.clone();
            a.runtime.spawn(async move {
                // Registered with the reactor of the thread that accepts on it.
                match TcpListener::from_std(socket) {
                    Ok(l) => accept_loop(l, stop, known_local, on_accept).await,
                    Err(e) => tracing::error!(address = %local, "cannot accept: {e}"),
                }
            })
        })
        .collect();
    tracing::info!(address = %local, sockets = acceptors.len(), "listening");
    Ok(Running { stop, local, tasks })
}

/// Starts serving a bound UDP socket on the serving thread `a`.
fn start_udp(socket: std::net::UdpSocket, addr: SocketAddr, a: &Acceptor) -> Running {
    let local = socket.local_addr().unwrap_or(addr);
    let (stop, stop_rx) = watch::channel(false);
    let on_udp = a.on_udp.clone();
    let task = a.runtime.spawn(async move {
        // Registered with the reactor of the thread that reads it.
        match UdpSocket::from_std(socket) {
            Ok(s) => on_udp(s, local, stop_rx).await,
            Err(e) => tracing::error!(address = %local, "cannot read UDP: {e}"),
        }
    });
    tracing::info!(address = %format_args!("udp {local}"), "listening");
    Running {
        stop,
        local,
        tasks: vec![task],
    }
}

async fn accept_loop(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    local: Option<SocketAddr>,
    on_accept: OnAccept,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    on_accept(stream, peer, local);
                }
                Err(e) => {
                    // Out of file descriptors or a similar transient condition: back off
                    // (up to a second) rather than spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SocketOptions {
        SocketOptions {
            keepalive: Some(Duration::from_secs(45)),
        }
    }

    #[test]
    fn every_socket_of_an_address_shares_one_port() {
        let set = bind("127.0.0.1:0".parse().unwrap(), 3, &opts()).unwrap();
        let ports: BTreeSet<u16> = set.iter().map(|s| s.local_addr().unwrap().port()).collect();
        assert_eq!(set.len(), 3);
        assert_eq!(ports.len(), 1);
    }

    #[test]
    fn a_port_held_by_another_socket_is_reported_in_use_not_shared() {
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = other.local_addr().unwrap();
        let err = bind(addr, 2, &opts()).unwrap_err();
        assert_eq!(err.source.kind(), std::io::ErrorKind::AddrInUse);
        // Even another gatehouse's SO_REUSEPORT sockets are not joined.
        let first = bind("127.0.0.1:0".parse().unwrap(), 1, &opts()).unwrap();
        let addr = first[0].local_addr().unwrap();
        assert!(bind(addr, 1, &opts()).is_err());
    }

    #[test]
    fn accepted_connections_inherit_nodelay_and_keepalive() {
        let set = bind("127.0.0.1:0".parse().unwrap(), 1, &opts()).unwrap();
        let addr = set[0].local_addr().unwrap();
        set[0].set_nonblocking(false).unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = set[0].accept().unwrap();
        let s = socket2::SockRef::from(&accepted);
        assert!(s.tcp_nodelay().unwrap());
        assert!(s.keepalive().unwrap());
        assert_eq!(s.tcp_keepalive_time().unwrap(), Duration::from_secs(45));
    }
}
