//! The virtual IPs a configuration asks for, put on and taken off interfaces.
//!
//! A VIP goes on the interface the configuration names, else on the one whose connected
//! subnet holds it, as a /32 or /128 (IPv6 without duplicate address detection). An
//! address already on an interface when gatehouse first saw it is used but never removed
//! by gatehouse. An address inside the loopback's subnet (127.0.0.0/8) is already local:
//! nothing is added or announced. [`VipManager::tick`] puts back an address someone
//! removed and reports links that came back up, so the caller re-announces.

use crate::netlink::{Address, Link, Netlink};
use gatehouse_model::snapshot::Vip;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What became of one VIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VipState {
    /// On `interface` and announced there.
    Active { interface: String },
    /// Already local (loopback): served, nothing to announce.
    Local,
    /// Cannot be used; the reason says why (no interface, permission denied, ...).
    Failed(String),
}

/// Something the caller should announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The VIP is on the interface (new, or put back): announce it.
    Up { ip: IpAddr, interface: String },
    /// The VIP left the interface: stop announcing it.
    Down { ip: IpAddr, interface: String },
    /// The link came back up: announce every VIP on it again.
    LinkUp { interface: String },
}

#[derive(Clone, Debug)]
struct Owned {
    index: u32,
    interface: String,
    /// Added by gatehouse (and so removed by it); false when it was already there.
    added: bool,
}

/// Keeps the interfaces' addresses in line with the VIPs of the configuration.
#[derive(Debug)]
pub struct VipManager {
    netlink: Netlink,
    owned: BTreeMap<IpAddr, Owned>,
    links_up: BTreeMap<u32, bool>,
}

/// The interface a VIP belongs on: the named one, else the one whose subnet holds it.
fn choose<'a>(vip: &Vip, links: &'a [Link], addrs: &[Address]) -> Result<Option<&'a Link>, String> {
    if let Some(name) = &vip.interface {
        return links
            .iter()
            .find(|l| &l.name == name)
            .map(Some)
            .ok_or_else(|| format!("no interface named {name}"));
    }
    let host_prefix = |a: &Address| {
        (a.ip.is_ipv4() && a.prefix_len == 32) || (a.ip.is_ipv6() && a.prefix_len == 128)
    };
    let holder = addrs
        .iter()
        .filter(|a| !host_prefix(a) && a.covers(vip.address))
        .max_by_key(|a| a.prefix_len)
        .and_then(|a| links.iter().find(|l| l.index == a.index));
    match holder {
        Some(l) if l.loopback => Ok(None),
        Some(l) => Ok(Some(l)),
        None => Err(format!(
            "no interface has a subnet that holds {}; name one with interface = \"...\"",
            vip.address
        )),
    }
}

impl VipManager {
    pub fn new(netlink: Netlink) -> VipManager {
        VipManager {
            netlink,
            owned: BTreeMap::new(),
            links_up: BTreeMap::new(),
        }
    }

    /// Puts the `wanted` VIPs on their interfaces and takes off the ones gatehouse added that
    /// are no longer wanted. Returns each wanted VIP's state and what to announce.
    pub async fn reconcile(&mut self, wanted: &[Vip]) -> (BTreeMap<IpAddr, VipState>, Vec<Event>) {
        let mut states = BTreeMap::new();
        let mut events = Vec::new();
        let (links, addrs) = match (self.netlink.links().await, self.netlink.addresses().await) {
            (Ok(l), Ok(a)) => (l, a),
            (Err(e), _) | (_, Err(e)) => {
                for v in wanted {
                    states.insert(v.address, VipState::Failed(e.to_string()));
                }
                return (states, events);
            }
        };
        for l in &links {
            self.links_up.entry(l.index).or_insert(l.up);
        }
        for vip in wanted {
            if let Some(o) = self.owned.get(&vip.address) {
                states.insert(
                    vip.address,
                    VipState::Active {
                        interface: o.interface.clone(),
                    },
                );
                continue;
            }
            let link = match choose(vip, &links, &addrs) {
                Ok(Some(l)) => l,
                Ok(None) => {
                    states.insert(vip.address, VipState::Local);
                    continue;
                }
                Err(why) => {
                    tracing::error!(vip = %vip.address, gateway = %vip.gateway, "address not usable: {why}");
                    states.insert(vip.address, VipState::Failed(why));
                    continue;
                }
            };
            let present = addrs.iter().any(|a| a.ip == vip.address);
            if !present {
                if let Err(e) = self.netlink.add(link.index, vip.address).await {
                    tracing::error!(vip = %vip.address, interface = %link.name, "address not usable: {e}");
                    states.insert(vip.address, VipState::Failed(e.to_string()));
                    continue;
                }
                tracing::info!(vip = %vip.address, interface = %link.name, "address added");
            }
            self.owned.insert(
                vip.address,
                Owned {
                    index: link.index,
                    interface: link.name.clone(),
                    added: !present,
                },
            );
            states.insert(
                vip.address,
                VipState::Active {
                    interface: link.name.clone(),
                },
            );
            events.push(Event::Up {
                ip: vip.address,
                interface: link.name.clone(),
            });
        }
        let gone: Vec<IpAddr> = self
            .owned
            .keys()
            .filter(|ip| !wanted.iter().any(|v| v.address == **ip))
            .copied()
            .collect();
        for ip in gone {
            if let Some(o) = self.owned.remove(&ip) {
                events.push(Event::Down {
                    ip,
                    interface: o.interface.clone(),
                });
                if o.added {
                    self.remove_address(ip, &addrs).await;
                }
            }
        }
        (states, events)
    }

    async fn remove_address(&self, ip: IpAddr, addrs: &[Address]) {
        let host = |a: &&Address| a.ip == ip && (a.prefix_len == 32 || a.prefix_len == 128);
        if let Some(a) = addrs.iter().find(host) {
            match self.netlink.remove(a).await {
                Ok(()) => tracing::info!(vip = %ip, "address removed"),
                Err(e) => tracing::error!(vip = %ip, "{e}"),
            }
        }
    }

    /// Checks the interfaces: puts back addresses gatehouse added that someone removed, and
    /// reports links that came back up.
    pub async fn tick(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let (Ok(links), Ok(addrs)) = (self.netlink.links().await, self.netlink.addresses().await)
        else {
            return events;
        };
        for l in &links {
            let was_up = self.links_up.insert(l.index, l.up);
            if l.up && was_up == Some(false) && self.owned.values().any(|o| o.index == l.index) {
                tracing::info!(interface = %l.name, "link up: announcing its addresses again");
                events.push(Event::LinkUp {
                    interface: l.name.clone(),
                });
            }
        }
        for (ip, o) in &self.owned {
            if o.added && !addrs.iter().any(|a| a.ip == *ip) {
                match self.netlink.add(o.index, *ip).await {
                    Ok(()) => {
                        tracing::warn!(vip = %ip, interface = %o.interface, "address was removed from the interface: put back");
                        events.push(Event::Up {
                            ip: *ip,
                            interface: o.interface.clone(),
                        });
                    }
                    Err(e) => tracing::error!(vip = %ip, "cannot put the address back: {e}"),
                }
            }
        }
        events
    }

    /// Takes off every address gatehouse added (shutdown).
    pub async fn withdraw_all(&mut self) {
        let addrs = self.netlink.addresses().await.unwrap_or_default();
        let owned = std::mem::take(&mut self.owned);
        for (ip, o) in owned {
            if o.added {
                self.remove_address(ip, &addrs).await;
            }
        }
    }
}
