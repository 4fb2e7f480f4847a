//! Addresses and links over rtnetlink: what `ip addr add/del` and `ip link show` do.
//!
//! Every address gatehouse adds carries the address protocol [`GATEHOUSE_PROTO`] (`IFA_PROTO`,
//! Linux 6.1 and later; older kernels ignore the attribute), and [`Netlink::addresses`]
//! reports each address's protocol, so gatehouse recognises its own addresses after a crash.

use crate::AnnounceError;
use crate::ownership::GATEHOUSE_PROTO;
use futures_util::TryStreamExt as _;
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressProtocol};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType};
use std::net::IpAddr;

/// An IPv6 link-local address (fe80::/10): never a VIP, a status address or a VRRP source.
pub fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// A network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up and the carrier is present.
    pub up: bool,
    pub loopback: bool,
    pub mac: Option<[u8; 6]>,
}

/// An address on an interface.
#[derive(Clone, Debug)]
pub struct Address {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix_len: u8,
    /// `IFA_PROTO`: who added the address, when the kernel reports it.
    pub proto: Option<u8>,
    message: AddressMessage,
}

impl Address {
    /// A /32 or /128, as gatehouse adds VIPs.
    pub fn is_host(&self) -> bool {
        (self.ip.is_ipv4() && self.prefix_len == 32)
            || (self.ip.is_ipv6() && self.prefix_len == 128)
    }

    /// Tagged with gatehouse's address protocol.
    pub fn tagged(&self) -> bool {
        self.proto == Some(GATEHOUSE_PROTO)
    }

    /// Whether `ip` is inside this address's connected subnet.
    pub fn covers(&self, ip: IpAddr) -> bool {
        match (self.ip, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                ipnet::Ipv4Net::new(a, self.prefix_len).is_ok_and(|n| n.contains(&b))
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                ipnet::Ipv6Net::new(a, self.prefix_len).is_ok_and(|n| n.contains(&b))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
impl Address {
    /// An address as a dump would report it, for the manager's unit tests.
    pub fn for_test(index: u32, ip: IpAddr, prefix_len: u8, proto: Option<u8>) -> Address {
        Address {
            index,
            ip,
            prefix_len,
            proto,
            message: AddressMessage::default(),
        }
    }
}

/// A netlink connection (in the network namespace of the process).
#[derive(Clone, Debug)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

fn netlink_error(what: &str, e: rtnetlink::Error) -> AnnounceError {
    let eperm =
        matches!(&e, rtnetlink::Error::NetlinkError(m) if m.code.map(|c| c.get()) == Some(-1));
    if eperm {
        AnnounceError::Netlink(format!(
            "{what} needs CAP_NET_ADMIN: Operation not permitted"
        ))
    } else {
        AnnounceError::Netlink(format!("{what}: {e}"))
    }
}

impl Netlink {
    /// Opens a netlink socket; must run inside a tokio runtime.
    pub fn connect() -> Result<Netlink, AnnounceError> {
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| AnnounceError::Netlink(format!("cannot open a netlink socket: {e}")))?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub async fn links(&self) -> Result<Vec<Link>, AnnounceError> {
        let mut out = Vec::new();
        let mut stream = self.handle.link().get().execute();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| netlink_error("listing links", e))?
        {
            let name = msg.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            let mac = msg.attributes.iter().find_map(|a| match a {
                LinkAttribute::Address(m) if m.len() == 6 => {
                    Some([m[0], m[1], m[2], m[3], m[4], m[5]])
                }
                _ => None,
            });
            let flags = msg.header.flags;
            out.push(Link {
                index: msg.header.index,
                name: name.unwrap_or_default(),
                up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp),
                loopback: msg.header.link_layer_type == LinkLayerType::Loopback
                    || flags.contains(LinkFlags::Loopback),
                mac,
            });
        }
        Ok(out)
    }

    pub async fn addresses(&self) -> Result<Vec<Address>, AnnounceError> {
        let mut out = Vec::new();
        let mut stream = self.handle.address().get().execute();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| netlink_error("listing addresses", e))?
        {
            let ip = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let ip = ip.or_else(|| {
                msg.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            let proto = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Protocol(p) => Some(u8::from(*p)),
                _ => None,
            });
            if let Some(ip) = ip {
                out.push(Address {
                    index: msg.header.index,
                    ip,
                    prefix_len: msg.header.prefix_len,
                    proto,
                    message: msg,
                });
            }
        }
        Ok(out)
    }

    /// Adds `ip` as a host address (/32 or /128) to the interface `index`, tagged with
    /// [`GATEHOUSE_PROTO`].
    pub async fn add(&self, index: u32, ip: IpAddr) -> Result<(), AnnounceError> {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        let mut req = self.handle.address().add(index, ip, prefix);
        req.message_mut()
            .attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(
                GATEHOUSE_PROTO,
            )));
        if ip.is_ipv6() {
            // No kernel duplicate address detection: gatehouse probed before adding (see
            // `probe`), and a tentative address would delay the announcement.
            req.message_mut().header.flags |=
                netlink_packet_route::address::AddressHeaderFlags::Nodad;
        }
        req.execute()
            .await
            .map_err(|e| netlink_error(&format!("adding {ip}"), e))
    }

    /// Removes an address found by [`Netlink::addresses`].
    pub async fn remove(&self, address: &Address) -> Result<(), AnnounceError> {
        self.handle
            .address()
            .del(address.message.clone())
            .execute()
            .await
            .map_err(|e| netlink_error(&format!("removing {}", address.ip), e))
    }
}
