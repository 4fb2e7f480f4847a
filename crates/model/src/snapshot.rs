//! The immutable compiled configuration the data plane serves.
//!
//! One `Arc<Snapshot>` is swapped in per successful reload; a connection or request loads it
//! once and keeps it for its whole life, so it never sees half of a change.

use crate::ResourceKey;
use crate::backend::Service;
use crate::decide::ListenerId;
use crate::hostname::select_by_host;
use crate::listener::Listener;
use crate::settings::Settings;
use ipnet::IpNet;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};

/// A virtual IP a Gateway asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vip {
    pub gateway: ResourceKey,
    pub address: IpAddr,
    /// The interface named by the configuration, else the one whose subnet holds the address.
    pub interface: Option<String>,
}

/// One block of a LoadBalancerIPPool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum IpBlock {
    Cidr(IpNet),
    Range { start: IpAddr, stop: IpAddr },
}

impl IpBlock {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match self {
            IpBlock::Cidr(net) => net.contains(&ip),
            IpBlock::Range { start, stop } => {
                *start <= ip && ip <= *stop && start.is_ipv4() == ip.is_ipv4()
            }
        }
    }
}

/// A `[[LoadBalancerIPPool]]`: addresses for Gateways that name none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IpPool {
    pub name: String,
    pub blocks: Vec<IpBlock>,
}

/// Listeners sharing one port, and whether connections there start with TLS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortGroup {
    pub port: u16,
    pub tls: bool,
    /// Whether a TCP listener is on the port (on some address): connections to it are
    /// spliced, not read as HTTP.
    pub tcp: bool,
    /// Indexes into `Snapshot::listeners`.
    pub listeners: Vec<usize>,
    /// The addresses to bind; empty means the wildcard addresses.
    pub addresses: Vec<IpAddr>,
}

/// The compiled configuration.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Increases by one with every applied configuration.
    pub generation: u64,
    pub settings: Settings,
    /// Programmed listeners only.
    pub listeners: Vec<Listener>,
    /// TCP ports: HTTP, HTTPS, TLS and TCP listeners.
    pub ports: Vec<PortGroup>,
    /// UDP ports: UDP listeners (`tls` and `tcp` are false).
    pub udp_ports: Vec<PortGroup>,
    pub services: Vec<Service>,
    /// TLS to backends, one entry per applying BackendTLSPolicy (see [`crate::backend_tls`]).
    pub backend_tls: Vec<crate::backend_tls::BackendTls>,
    /// The client certificates Gateways present to TLS backends, one per Gateway that has a
    /// usable one.
    pub backend_client_certificates: Vec<crate::backend_tls::BackendClientCertificate>,
    pub vips: Vec<Vip>,
    pub pools: Vec<IpPool>,
    /// Gateways that name no address; a pool may give them one.
    pub gateways_without_addresses: Vec<ResourceKey>,
}

impl Snapshot {
    /// The listeners a connection to `local` may reach, with their ids: those of Gateways
    /// that name the local address, or, when no Gateway on the port names it, those of
    /// Gateways without addresses (bound everywhere). A specific address wins over the
    /// wildcard, as with nginx `listen`.
    pub fn listeners_at(
        &self,
        local: SocketAddr,
    ) -> impl Iterator<Item = (ListenerId, &Listener)> + Clone {
        self.at(&self.ports, local)
    }

    /// The UDP listener a datagram to `local` reaches, chosen as [`Snapshot::listeners_at`]
    /// chooses (a UDP listener has no hostname, so at most one is left).
    pub fn udp_listener_at(&self, local: SocketAddr) -> Option<(ListenerId, &Listener)> {
        self.at(&self.udp_ports, local).next()
    }

    fn at<'a>(
        &'a self,
        groups: &'a [PortGroup],
        local: SocketAddr,
    ) -> impl Iterator<Item = (ListenerId, &'a Listener)> + Clone {
        let ip = local.ip().to_canonical();
        let on_port = groups
            .iter()
            .filter(move |p| p.port == local.port())
            .flat_map(|p| p.listeners.iter())
            .map(|&i| (i, &self.listeners[i]));
        let specific = on_port.clone().any(|(_, l)| l.addresses.contains(&ip));
        on_port.filter(move |(_, l)| {
            if specific {
                l.addresses.contains(&ip)
            } else {
                l.addresses.is_empty()
            }
        })
    }

    /// The listener a request or TLS connection to `local` selects by its normalised Host or
    /// SNI, among the listeners of `protocol` (all when `None`): exact hostname, then the
    /// most specific wildcard, then the listener without one.
    pub fn select_listener_id(
        &self,
        local: SocketAddr,
        host: Option<&str>,
        protocol: Option<crate::listener::Protocol>,
    ) -> Option<(ListenerId, &Listener)> {
        let of = self
            .listeners_at(local)
            .filter(move |(_, l)| protocol.is_none_or(|p| l.protocol == p));
        let i = select_by_host(host, of.clone().map(|(_, l)| l.hostname.as_ref()))?;
        of.clone().nth(i)
    }

    /// [`Snapshot::select_listener_id`] among every protocol, without the id.
    pub fn select_listener(&self, local: SocketAddr, host: Option<&str>) -> Option<&Listener> {
        self.select_listener_id(local, host, None).map(|(_, l)| l)
    }

    pub fn service(&self, key: &ResourceKey) -> Option<&Service> {
        self.services.iter().find(|s| &s.key == key)
    }
}
