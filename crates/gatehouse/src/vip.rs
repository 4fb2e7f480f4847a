//! The daemon's side of virtual IPs: after each applied configuration, put its VIPs on their
//! interfaces and announce them (gratuitous ARP / unsolicited NA), take off the ones that
//! left, report unusable addresses in the Gateways' status (`AddressNotUsable`), and every
//! second put back removed addresses and re-announce on links that came back up.

use gatehouse_announce::vips::{Event, VipManager, VipState};
use gatehouse_announce::{Announcer, PnetSender};
use gatehouse_model::Snapshot;
use gatehouse_model::status::{Condition, Status, condition, reason};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// VIP management and its metrics.
pub struct Vips {
    manager: Option<VipManager>,
    /// For listing the host's addresses.
    netlink: Option<gatehouse_announce::netlink::Netlink>,
    announcer: Announcer,
    state: IntGaugeVec,
    last: BTreeMap<IpAddr, (String, String)>,
}

impl std::fmt::Debug for Vips {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vips")
            .field("vips", &self.last.len())
            .finish_non_exhaustive()
    }
}

impl Vips {
    pub fn new(registry: &Registry, snapshot: &Snapshot) -> Vips {
        let state = IntGaugeVec::new(
            Opts::new(
                "gatehouse_vip_state",
                "1 while a VIP is on its interface and announced, 0 when it cannot be used.",
            ),
            &["vip", "interface", "gateway"],
        )
        .expect("valid metric definition");
        let sent = IntCounterVec::new(
            Opts::new("gatehouse_vip_announcements_total", "Gratuitous ARP and unsolicited neighbour advertisement frames, by VIP, interface, reason and result."),
            &["vip", "interface", "reason", "result"],
        )
        .expect("valid metric definition");
        let _ = registry.register(Box::new(state.clone()));
        let _ = registry.register(Box::new(sent.clone()));
        let announcer = Announcer::new(
            Arc::new(PnetSender::new()),
            snapshot.settings.announce.clone(),
        )
        .with_observer(move |e| {
            let result = if e.result.is_ok() { "ok" } else { "error" };
            sent.with_label_values(&[&e.vip.to_string(), e.interface, e.reason.as_str(), result])
                .inc();
        });
        Vips {
            manager: None,
            netlink: None,
            announcer,
            state,
            last: BTreeMap::new(),
        }
    }

    fn handle(&self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Up { ip, interface } => {
                    // A VIP already being announced that comes up again (it was put back
                    // after someone removed it) gets a fresh burst, not just the next refresh.
                    let started = self.announcer.announce_up(ip, &interface).and_then(|new| {
                        if new {
                            return Ok(true);
                        }
                        self.announcer.withdraw(ip);
                        self.announcer.announce_up(ip, &interface)
                    });
                    if let Err(err) = started {
                        tracing::error!(vip = %ip, interface, "cannot announce: {err}");
                    }
                }
                Event::Down { ip, .. } => {
                    self.announcer.withdraw(ip);
                }
                Event::LinkUp { interface } => {
                    self.announcer.link_up(&interface);
                }
            }
        }
    }

    /// Reconciles the interfaces with `snapshot`'s VIPs and marks unusable addresses in
    /// `status`.
    pub async fn apply(&mut self, snapshot: &Snapshot, status: &mut Status) {
        self.announcer
            .set_settings(snapshot.settings.announce.clone());
        if snapshot.vips.is_empty() && self.manager.is_none() {
            return;
        }
        if self.manager.is_none() {
            match gatehouse_announce::netlink::Netlink::connect() {
                Ok(n) => self.manager = Some(VipManager::new(n)),
                Err(e) => {
                    tracing::error!("VIPs cannot be managed: {e}");
                    return;
                }
            }
        }
        let Some(manager) = self.manager.as_mut() else {
            return;
        };
        let (states, events) = manager.reconcile(&snapshot.vips).await;
        self.handle(events);
        let mut now = BTreeMap::new();
        for vip in &snapshot.vips {
            let gateway = vip.gateway.namespaced_name();
            match states.get(&vip.address) {
                Some(VipState::Active { interface }) => {
                    self.state
                        .with_label_values(&[&vip.address.to_string(), interface, &gateway])
                        .set(1);
                    now.insert(vip.address, (interface.clone(), gateway));
                }
                Some(VipState::Local) | None => {}
                Some(VipState::Failed(why)) => {
                    let interface = vip.interface.clone().unwrap_or_default();
                    self.state
                        .with_label_values(&[&vip.address.to_string(), &interface, &gateway])
                        .set(0);
                    now.insert(vip.address, (interface, gateway));
                    if let Some(g) = status.gateways.iter_mut().find(|g| g.key == vip.gateway) {
                        let generation = g.conditions.first().map_or(0, |c| c.observed_generation);
                        let mut c = Condition::new(
                            condition::PROGRAMMED,
                            false,
                            reason::ADDRESS_NOT_USABLE,
                            format!("{}: {why}", vip.address),
                        );
                        c.observed_generation = generation;
                        g.conditions.retain(|c| c.kind != condition::PROGRAMMED);
                        g.conditions.push(c);
                    }
                }
            }
        }
        for (ip, (interface, gateway)) in &self.last {
            if !now.contains_key(ip) {
                let _ = self
                    .state
                    .remove_label_values(&[&ip.to_string(), interface, gateway]);
            }
        }
        self.last = now;
    }

    /// Gateways without addresses are bound everywhere: their status shows the host's
    /// addresses (those of interfaces that are up, without IPv6 link-local ones; the
    /// loopback's when there are no others).
    pub async fn show_host_addresses(&mut self, status: &mut Status) {
        let everywhere: Vec<usize> = status
            .gateways
            .iter()
            .enumerate()
            .filter(|(_, g)| g.addresses.is_empty())
            .filter(|(_, g)| {
                let programmed = g
                    .conditions
                    .iter()
                    .find(|c| c.kind == condition::PROGRAMMED);
                programmed.is_none_or(|c| c.reason != reason::ADDRESS_NOT_ASSIGNED)
            })
            .map(|(i, _)| i)
            .collect();
        if everywhere.is_empty() {
            return;
        }
        if self.netlink.is_none() {
            self.netlink = gatehouse_announce::netlink::Netlink::connect().ok();
        }
        let Some(netlink) = &self.netlink else { return };
        let (Ok(links), Ok(addrs)) = (netlink.links().await, netlink.addresses().await) else {
            return;
        };
        let link_local =
            |ip: &IpAddr| matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
        let on = |loopback: bool| {
            let mut ips: Vec<IpAddr> = addrs
                .iter()
                .filter(|a| {
                    links
                        .iter()
                        .any(|l| l.index == a.index && l.loopback == loopback && (loopback || l.up))
                })
                .map(|a| a.ip)
                .filter(|ip| !link_local(ip))
                .collect();
            ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
            ips.dedup();
            ips
        };
        let mut ips = on(false);
        if ips.is_empty() {
            ips = on(true);
        }
        for i in everywhere {
            status.gateways[i].addresses = ips
                .iter()
                .map(|ip| gatehouse_model::status::GatewayAddress {
                    kind: "IPAddress".into(),
                    value: ip.to_string(),
                })
                .collect();
        }
    }

    /// Puts back removed addresses and re-announces on links that came back up. True when a
    /// VIP's state changed (then [`Vips::refresh_status`]).
    pub async fn tick(&mut self) -> bool {
        if let Some(m) = self.manager.as_mut() {
            let events = m.tick().await;
            self.handle(events);
        }
        false
    }

    /// Writes the VIPs' latest state into `status`.
    pub fn refresh_status(&self, _status: &mut Status) {}

    /// Stops announcing and takes off every address gatehouse added.
    pub async fn shutdown(&mut self) {
        self.announcer.withdraw_all();
        if let Some(m) = self.manager.as_mut() {
            m.withdraw_all().await;
        }
    }
}
