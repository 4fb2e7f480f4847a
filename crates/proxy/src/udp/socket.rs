//! The UDP listening socket: bound like a TCP listener (IP_FREEBIND for addresses not yet on
//! the host, one dual-stack socket for the wildcard), with the destination address of every
//! datagram read from `IP_PKTINFO` / `IPV6_PKTINFO`, so a reply leaves from the address the
//! client wrote to even when the socket is bound to every address.

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, sendmsg, setsockopt,
    sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Binds a non-blocking UDP socket to `addr` that reports each datagram's destination.
/// Neither `SO_REUSEADDR` nor `SO_REUSEPORT` is set: a port someone else holds is refused.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
        setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)?;
    }
    // On a dual-stack socket this reports the destination of IPv4 datagrams.
    setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)?;
    if !addr.ip().is_unspecified() {
        if addr.is_ipv4() {
            socket.set_freebind_v4(true)?;
        } else {
            socket.set_freebind_v6(true)?;
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// One datagram read from a listening socket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Received {
    pub len: usize,
    /// The client, as the socket reports it (IPv4 clients of a dual-stack socket are
    /// IPv4-mapped IPv6 addresses).
    pub from: SocketAddr,
    /// The address the client sent to (the socket's own address when pktinfo is missing).
    pub to: IpAddr,
}

/// A listening socket with the address it is bound to, learned once when it starts (not
/// asked of the kernel per datagram).
#[derive(Debug)]
pub(crate) struct Listening {
    pub socket: UdpSocket,
    pub local: SocketAddr,
}

impl Listening {
    pub(crate) fn new(socket: UdpSocket, local: SocketAddr) -> Listening {
        Listening { socket, local }
    }

    /// Reads one datagram into `buf` without waiting (`WouldBlock` when none is queued).
    pub(crate) fn try_recv(&self, buf: &mut [u8], cmsg: &mut Vec<u8>) -> std::io::Result<Received> {
        try_recv(&self.socket, self.local.ip(), buf, cmsg)
    }

    /// Sends `data` to `to` from `from` (see [`try_send`]).
    pub(crate) fn try_send(
        &self,
        data: &[u8],
        to: SocketAddr,
        from: IpAddr,
    ) -> std::io::Result<usize> {
        try_send(
            &self.socket,
            self.local.ip().is_unspecified(),
            data,
            to,
            from,
        )
    }
}

/// Reads one datagram into `buf` without waiting (`WouldBlock` when none is queued); `own`
/// is the socket's address, the destination when pktinfo is missing.
fn try_recv(
    socket: &UdpSocket,
    own: IpAddr,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
) -> std::io::Result<Received> {
    socket.try_io(Interest::READABLE, || {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(cmsg.as_mut_slice()),
            MsgFlags::empty(),
        )
        .map_err(std::io::Error::from)?;
        let from = msg
            .address
            .and_then(|a| to_std(&a))
            .ok_or_else(|| std::io::Error::other("a datagram without a source address"))?;
        let mut to = own;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                match c {
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        to = IpAddr::V4(u32::from_be(info.ipi_addr.s_addr).into());
                    }
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        to = IpAddr::V6(info.ipi6_addr.s6_addr.into());
                    }
                    _ => {}
                }
            }
        }
        Ok(Received {
            len: msg.bytes,
            from,
            to,
        })
    })
}

/// Sends `data` to `to` from the address `from` without waiting (`WouldBlock` when the
/// socket's send buffer is full). `from` is set only for a `wildcard` socket; a socket
/// bound to one address sends from it anyway.
///
/// The send goes straight to the kernel, not through tokio's readiness: a UDP socket is
/// almost always writable, and the rare full buffer drops the datagram, as a router would.
fn try_send(
    socket: &UdpSocket,
    wildcard: bool,
    data: &[u8],
    to: SocketAddr,
    from: IpAddr,
) -> std::io::Result<usize> {
    let dest = SockaddrStorage::from(to);
    {
        let iov = [IoSlice::new(data)];
        let v4;
        let v6;
        let cmsgs: &[ControlMessage<'_>] = match (wildcard, from.to_canonical()) {
            (false, _) => &[],
            (true, IpAddr::V4(a)) => {
                v4 = [libc_in_pktinfo(a)];
                &[ControlMessage::Ipv4PacketInfo(&v4[0])]
            }
            (true, IpAddr::V6(a)) => {
                v6 = [nix::libc::in6_pktinfo {
                    ipi6_addr: nix::libc::in6_addr {
                        s6_addr: a.octets(),
                    },
                    ipi6_ifindex: 0,
                }];
                &[ControlMessage::Ipv6PacketInfo(&v6[0])]
            }
        };
        sendmsg(
            socket.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::empty(),
            Some(&dest),
        )
        .map_err(std::io::Error::from)
    }
}

fn libc_in_pktinfo(a: std::net::Ipv4Addr) -> nix::libc::in_pktinfo {
    nix::libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: nix::libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        ipi_addr: nix::libc::in_addr { s_addr: 0 },
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Room for the control messages [`try_recv`] asks for.
pub(crate) fn cmsg_buffer() -> Vec<u8> {
    nix::cmsg_space!(nix::libc::in6_pktinfo, nix::libc::in_pktinfo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wildcard_socket_learns_each_datagrams_destination_and_replies_from_it() {
        let std = bind("[::]:0".parse().unwrap()).unwrap();
        let local = std.local_addr().unwrap();
        let port = local.port();
        let socket = Listening::new(UdpSocket::from_std(std).unwrap(), local);
        let mut buf = [0u8; 64];
        let mut cmsg = cmsg_buffer();
        // 127.0.0.2 is not what an unconnected client's reply would come from by default.
        for dest in ["127.0.0.2", "::1"] {
            let dest: IpAddr = dest.parse().unwrap();
            let bind_to = if dest.is_ipv4() {
                "127.0.0.1:0"
            } else {
                "[::1]:0"
            };
            let client = UdpSocket::bind(bind_to).await.unwrap();
            client
                .send_to(b"ping", SocketAddr::new(dest, port))
                .await
                .unwrap();
            socket.socket.readable().await.unwrap();
            let got = loop {
                match socket.try_recv(&mut buf, &mut cmsg) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        socket.socket.readable().await.unwrap();
                    }
                    other => break other.unwrap(),
                }
            };
            assert_eq!(&buf[..got.len], b"ping");
            assert_eq!(got.to.to_canonical(), dest);
            socket.try_send(b"pong", got.from, got.to).unwrap();
            let (n, from) = client.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"pong");
            assert_eq!(from, SocketAddr::new(dest, port));
        }
    }
}
