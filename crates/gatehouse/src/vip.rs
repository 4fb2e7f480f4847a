//! The daemon's side of virtual IPs: a thin adapter over [`gatehouse_announce::Announcer`],
//! which puts the VIPs on interfaces (probing first, recording ownership in
//! `<stateDir>/vips.json`), announces them and retries unusable ones. This module turns its
//! [`Report`] into metrics (`gatehouse_vip_state`, `gatehouse_vip_active`,
//! `gatehouse_vip_announcements_total`) and into the Gateways' status: each Gateway lists its
//! VIPs with this box's role (`Active`; `MASTER` or `BACKUP` in keepalived mode), and a VIP
//! that cannot be used makes its Gateway `Programmed=False`, reason `AddressNotUsable`, with
//! the reason in the message; when it becomes usable (a retry from [`Vips::tick`]) the
//! Gateway's own condition comes back. A BACKUP box's Gateways stay `Programmed=True`: their
//! listeners are bound and serve the moment keepalived moves the address here.

use gatehouse_announce::{Announcer, Report, VipState};
use gatehouse_model::Snapshot;
use gatehouse_model::resource::ResourceKey;
use gatehouse_model::settings::AnnounceMode;
use gatehouse_model::snapshot::Vip;
use gatehouse_model::status::{Condition, Status, VipStatus, condition, reason, vip_role};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// VIP management and its metrics.
pub struct Vips {
    announcer: Announcer,
    state: IntGaugeVec,
    active: IntGaugeVec,
    mode: AnnounceMode,
    /// The labels of each VIP's `gatehouse_vip_state` series.
    last: BTreeMap<IpAddr, (String, String)>,
    /// The VIPs of the applied configuration.
    vips: Vec<Vip>,
    /// The `Programmed` condition of each Gateway with VIPs, as the configuration set it.
    programmed: BTreeMap<ResourceKey, Option<Condition>>,
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
                "1 while a VIP is usable (on its interface and announced; in keepalived mode also ready to take over), 0 when it cannot be used.",
            ),
            &["vip", "interface", "gateway"],
        )
        .expect("valid metric definition");
        let active = IntGaugeVec::new(
            Opts::new(
                "gatehouse_vip_active",
                "1 while the VIP is on this box's interface (keepalived MASTER here), 0 while it is not (BACKUP, or unusable).",
            ),
            &["address"],
        )
        .expect("valid metric definition");
        let sent = IntCounterVec::new(
            Opts::new("gatehouse_vip_announcements_total", "Gratuitous ARP and unsolicited neighbour advertisement frames, by VIP, interface, reason and result."),
            &["vip", "interface", "reason", "result"],
        )
        .expect("valid metric definition");
        let _ = registry.register(Box::new(state.clone()));
        let _ = registry.register(Box::new(active.clone()));
        let _ = registry.register(Box::new(sent.clone()));
        let announcer = Announcer::new(
            snapshot.settings.announce.clone(),
            &snapshot.settings.runtime.state_dir,
            move |e| {
                let result = if e.result.is_ok() { "ok" } else { "error" };
                sent.with_label_values(&[
                    &e.vip.to_string(),
                    e.interface,
                    e.reason.as_str(),
                    result,
                ])
                .inc();
            },
        );
        Vips {
            announcer,
            state,
            active,
            mode: snapshot.settings.announce.mode,
            last: BTreeMap::new(),
            vips: Vec::new(),
            programmed: BTreeMap::new(),
        }
    }

    /// Reconciles the interfaces with `snapshot`'s VIPs and marks unusable addresses in
    /// `status`.
    pub async fn apply(&mut self, snapshot: &Snapshot, status: &mut Status) {
        let report = self.announcer.apply(snapshot).await;
        self.mode = snapshot.settings.announce.mode;
        self.vips.clone_from(&snapshot.vips);
        self.programmed = status
            .gateways
            .iter()
            .filter(|g| self.vips.iter().any(|v| v.gateway == g.key))
            .map(|g| {
                let programmed = g
                    .conditions
                    .iter()
                    .find(|c| c.kind == condition::PROGRAMMED)
                    .cloned();
                (g.key.clone(), programmed)
            })
            .collect();
        self.metrics(&report);
        self.refresh_status(status);
    }

    /// Sets each VIP's `gatehouse_vip_state` series, and drops those of VIPs that left.
    fn metrics(&mut self, report: &Report) {
        let mut now = BTreeMap::new();
        for vip in &self.vips {
            let gateway = vip.gateway.namespaced_name();
            let (interface, value, active) = match report.get(vip.address) {
                Some(VipState::Active { interface }) => (interface.clone(), 1, 1),
                Some(VipState::Standby { interface, .. }) => (interface.clone(), 1, 0),
                Some(VipState::NotUsable { interface, .. }) => (
                    interface
                        .clone()
                        .or_else(|| vip.interface.clone())
                        .unwrap_or_default(),
                    0,
                    0,
                ),
                Some(VipState::Local) | None => continue,
            };
            let vip_label = vip.address.to_string();
            self.active.with_label_values(&[&vip_label]).set(active);
            if let Some((old_interface, old_gateway)) = self.last.get(&vip.address)
                && (*old_interface != interface || *old_gateway != gateway)
            {
                let _ = self
                    .state
                    .remove_label_values(&[&vip_label, old_interface, old_gateway]);
            }
            self.state
                .with_label_values(&[&vip_label, &interface, &gateway])
                .set(value);
            now.insert(vip.address, (interface, gateway));
        }
        for (ip, (interface, gateway)) in &self.last {
            if !now.contains_key(ip) {
                let _ = self
                    .state
                    .remove_label_values(&[&ip.to_string(), interface, gateway]);
                let _ = self.active.remove_label_values(&[&ip.to_string()]);
            }
        }
        self.last = now;
    }

    /// Writes the latest report into `status`: `Programmed=False`, `AddressNotUsable` on each
    /// Gateway with an unusable VIP; the configuration's own condition on the others.
    pub fn refresh_status(&self, status: &mut Status) {
        let report = self.announcer.report();
        for g in &mut status.gateways {
            let Some(original) = self.programmed.get(&g.key) else {
                continue;
            };
            g.vips = self
                .vips
                .iter()
                .filter(|v| v.gateway == g.key)
                .map(|v| self.vip_status(v, report.get(v.address)))
                .collect();
            let problems: Vec<String> = self
                .vips
                .iter()
                .filter(|v| v.gateway == g.key)
                .filter_map(|v| match report.get(v.address) {
                    Some(VipState::NotUsable { why, .. })
                        if why.contains(&v.address.to_string()) =>
                    {
                        Some(why.clone())
                    }
                    Some(VipState::NotUsable { why, .. }) => Some(format!("{}: {why}", v.address)),
                    _ => None,
                })
                .collect();
            let at = g
                .conditions
                .iter()
                .position(|c| c.kind == condition::PROGRAMMED);
            let next = if problems.is_empty() {
                original.clone()
            } else {
                let mut c = Condition::new(
                    condition::PROGRAMMED,
                    false,
                    reason::ADDRESS_NOT_USABLE,
                    problems.join("; "),
                );
                c.observed_generation = original.as_ref().map_or_else(
                    || g.conditions.first().map_or(0, |c| c.observed_generation),
                    |o| o.observed_generation,
                );
                Some(c)
            };
            // In place, so the conditions keep their order.
            match (at, next) {
                (Some(i), Some(c)) => g.conditions[i] = c,
                (Some(i), None) => {
                    g.conditions.remove(i);
                }
                (None, Some(c)) => g.conditions.push(c),
                (None, None) => {}
            }
        }
    }

    /// This box's part in one VIP.
    fn vip_status(&self, vip: &Vip, state: Option<&VipState>) -> VipStatus {
        let keepalived = self.mode == AnnounceMode::Keepalived;
        let (interface, role) = match state {
            Some(VipState::Active { interface }) if keepalived => {
                (interface.clone(), vip_role::MASTER)
            }
            Some(VipState::Active { interface }) => (interface.clone(), vip_role::ACTIVE),
            Some(VipState::Standby {
                interface,
                keepalived,
            }) => {
                let role = match keepalived.as_deref() {
                    Some("FAULT") => vip_role::FAULT,
                    Some("STOP" | "DELETED") => vip_role::STOPPED,
                    _ => vip_role::BACKUP,
                };
                (interface.clone(), role)
            }
            Some(VipState::Local) => (String::new(), vip_role::LOCAL),
            Some(VipState::NotUsable { interface, .. }) => (
                interface
                    .clone()
                    .or_else(|| vip.interface.clone())
                    .unwrap_or_default(),
                vip_role::NOT_USABLE,
            ),
            None => (
                vip.interface.clone().unwrap_or_default(),
                vip_role::NOT_USABLE,
            ),
        };
        VipStatus {
            address: vip.address.to_string(),
            interface,
            role: role.to_string(),
        }
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
        let ips = self.announcer.host_addresses().await;
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

    /// Puts back removed addresses, re-announces on links that came back up, retries
    /// unusable VIPs. True when a VIP's state changed (then [`Vips::refresh_status`]).
    pub async fn tick(&mut self) -> bool {
        match self.announcer.tick().await {
            Some(report) => {
                self.metrics(&report);
                true
            }
            None => false,
        }
    }

    /// Stops announcing and takes off every address gatehouse added.
    pub async fn shutdown(&mut self) {
        self.announcer.shutdown().await;
    }
}
