//! [`Announcer`]: the one type the daemon uses for its VIPs.
//!
//! The daemon calls [`Announcer::apply`] after each configuration it applies,
//! [`Announcer::tick`] once a second, [`Announcer::host_addresses`] for the status of
//! Gateways without addresses, and [`Announcer::shutdown`] when it stops. Inside, the
//! [`VipManager`](crate::manager::VipManager) puts addresses on interfaces (probing first,
//! recording ownership) and turns what happened into events that start and stop the
//! [`Schedule`]'s per-VIP announcements. Every call returns or keeps a [`Report`]: the state
//! of each VIP, which the daemon maps into metrics and Gateway status.
//!
//! In `[announce] mode = "keepalived"` the [`Keepalived`] writer takes the manager's place:
//! it writes keepalived's include file, and each VIP's state is read from the interfaces
//! (on this box: [`VipState::Active`]; elsewhere: [`VipState::Standby`]). Switching modes
//! hands the addresses over: from "self" to "keepalived", gatehouse takes off the addresses
//! it added; back to "self", the instances it wrote for keepalived are removed.
//!
//! Retries: a VIP that could not be used (another host answered the probe, no interface
//! holds it, netlink refused) is tried again by `tick` every `[announce] conflictRetry`
//! (10 s by default); `tick` returns a new report only when some VIP's state changed.

use crate::keepalived::{self, Keepalived};
pub use crate::manager::VipState;
use crate::manager::{Event, VipManager, all_unusable};
use crate::netlink::{Netlink, is_link_local};
use crate::ownership::OwnershipFile;
use crate::pnet_sender::PnetSender;
use crate::schedule::{FrameEvent, Schedule};
use gatehouse_model::Snapshot;
use gatehouse_model::settings::{Announce, AnnounceMode};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The state of every VIP of the applied configuration, by address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub vips: BTreeMap<IpAddr, VipState>,
}

impl Report {
    pub fn get(&self, ip: IpAddr) -> Option<&VipState> {
        self.vips.get(&ip)
    }
}

/// Puts the configuration's VIPs on interfaces and announces them.
pub struct Announcer {
    schedule: Schedule,
    state_dir: PathBuf,
    settings: Announce,
    manager: Option<VipManager>,
    /// `[announce] mode = "keepalived"`: writes keepalived's configuration instead.
    keepalived: Option<Keepalived>,
    /// Whether the first apply happened (leftovers of an earlier run are dealt with then).
    started: bool,
    /// This executable, for keepalived's readiness check; read at start, before a package
    /// upgrade can replace the file.
    exe: PathBuf,
    /// For [`Announcer::host_addresses`] when no VIP needed a manager.
    netlink: Option<Netlink>,
    report: Report,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("state_dir", &self.state_dir)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Announcer {
    /// `state_dir` holds the ownership file (`vips.json`); `observer` sees every frame
    /// announced (the daemon counts them in Prometheus).
    pub fn new(
        settings: Announce,
        state_dir: &Path,
        observer: impl Fn(&FrameEvent<'_>) + Send + Sync + 'static,
    ) -> Self {
        Announcer {
            schedule: Schedule::new(Arc::new(PnetSender::new()), settings.clone())
                .with_observer(observer),
            state_dir: state_dir.to_owned(),
            settings,
            manager: None,
            keepalived: None,
            started: false,
            exe: executable(),
            netlink: None,
            report: Report::default(),
        }
    }

    /// The latest report.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Reconciles the interfaces with `snapshot`'s VIPs: adds (after probing) and announces
    /// new ones, withdraws and removes those that left. The first call after start also
    /// adopts or removes addresses an earlier gatehouse left behind. Must run inside Tokio.
    pub async fn apply(&mut self, snapshot: &Snapshot) -> Report {
        self.settings = snapshot.settings.announce.clone();
        self.schedule.set_settings(self.settings.clone());
        let first = !std::mem::replace(&mut self.started, true);
        if self.settings.mode == AnnounceMode::Keepalived {
            return self.apply_keepalived(snapshot, first).await;
        }
        if self.keepalived.take().is_some() || first {
            keepalived::retire(&snapshot.settings.ha);
        }
        if self.manager.is_none() {
            match Netlink::connect() {
                Ok(netlink) => {
                    let file = OwnershipFile::open(&self.state_dir);
                    self.manager =
                        Some(VipManager::new(netlink, file, self.settings.conflict_retry));
                }
                Err(e) => {
                    if !snapshot.vips.is_empty() {
                        tracing::error!("VIPs cannot be managed: {e}");
                    }
                    self.report.vips = all_unusable(&snapshot.vips, &e.to_string());
                    return self.report.clone();
                }
            }
        }
        let Some(manager) = self.manager.as_mut() else {
            return self.report.clone();
        };
        // Stop announcing the VIPs that leave before their addresses come off, so no refresh
        // claims an address this host no longer has.
        for (ip, _) in self.schedule.announced() {
            if !snapshot.vips.iter().any(|v| v.address == ip) {
                self.schedule.withdraw(ip);
            }
        }
        let events = manager
            .reconcile(&snapshot.vips, self.settings.conflict_retry)
            .await;
        self.report.vips = manager.states().clone();
        self.handle(events);
        self.report.clone()
    }

    /// keepalived mode: hands over what mode "self" left, then writes keepalived's file.
    async fn apply_keepalived(&mut self, snapshot: &Snapshot, first: bool) -> Report {
        if let Some(mut manager) = self.manager.take() {
            // A reload from mode "self": keepalived claims the addresses from now on.
            self.schedule.withdraw_all();
            manager.withdraw_all().await;
            self.netlink = Some(manager.netlink().clone());
        }
        if self.keepalived.is_none() {
            let netlink = match self.netlink.clone().map_or_else(Netlink::connect, Ok) {
                Ok(n) => n,
                Err(e) => {
                    let why = format!("cannot read the interfaces: {e}");
                    tracing::error!("{why}");
                    self.report.vips = all_unusable(&snapshot.vips, &why);
                    return self.report.clone();
                }
            };
            if first {
                VipManager::hand_over(&netlink, &self.state_dir).await;
            }
            self.keepalived = Some(Keepalived::new(netlink, self.exe.clone()));
        }
        let Some(k) = self.keepalived.as_mut() else {
            return self.report.clone();
        };
        self.report.vips = k.apply(snapshot).await;
        self.report.clone()
    }

    /// Once a second: puts back removed addresses, re-announces on links that came back up,
    /// retries unusable VIPs when `conflictRetry` has passed. Returns a new report when some
    /// VIP's state changed.
    pub async fn tick(&mut self) -> Option<Report> {
        if let Some(k) = self.keepalived.as_mut() {
            let vips = k.roles().await?;
            if vips == self.report.vips {
                return None;
            }
            self.report.vips = vips;
            return Some(self.report.clone());
        }
        let manager = self.manager.as_mut().filter(|m| !m.idle())?;
        let (events, changed) = manager.tick().await;
        let states = manager.states().clone();
        self.handle(events);
        if !changed {
            return None;
        }
        self.report.vips = states;
        Some(self.report.clone())
    }

    /// The host's addresses: those of interfaces that are up, without IPv6 link-local ones,
    /// sorted IPv4 first; the loopback's when there are no others.
    pub async fn host_addresses(&mut self) -> Vec<IpAddr> {
        if self.manager.is_none() && self.keepalived.is_none() && self.netlink.is_none() {
            self.netlink = Netlink::connect().ok();
        }
        let netlink = match (&self.manager, &self.keepalived, &self.netlink) {
            (Some(m), _, _) => m.netlink(),
            (None, Some(k), _) => k.netlink(),
            (None, None, Some(n)) => n,
            (None, None, None) => return Vec::new(),
        };
        let (Ok(links), Ok(addrs)) = (netlink.links().await, netlink.addresses().await) else {
            return Vec::new();
        };
        let on = |loopback: bool| {
            let mut ips: Vec<IpAddr> = addrs
                .iter()
                .filter(|a| {
                    links
                        .iter()
                        .any(|l| l.index == a.index && l.loopback == loopback && (loopback || l.up))
                })
                .map(|a| a.ip)
                .filter(|ip| !is_link_local(*ip))
                .collect();
            ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
            ips.dedup();
            ips
        };
        let ips = on(false);
        if ips.is_empty() { on(true) } else { ips }
    }

    /// Stops announcing, removes every address gatehouse added and updates the ownership
    /// file. In keepalived mode nothing is touched: the readiness check fails once gatehouse
    /// is gone, and keepalived moves the addresses to the other box.
    pub async fn shutdown(&mut self) {
        self.schedule.withdraw_all();
        if let Some(m) = self.manager.as_mut() {
            m.withdraw_all().await;
        }
    }

    fn handle(&self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Up { ip, interface } => {
                    // A VIP already being announced that comes up again (it was put back
                    // after someone removed it) gets a fresh burst, not just the next refresh.
                    let started = self.schedule.announce_up(ip, &interface).and_then(|new| {
                        if new {
                            return Ok(true);
                        }
                        self.schedule.withdraw(ip);
                        self.schedule.announce_up(ip, &interface)
                    });
                    if let Err(err) = started {
                        tracing::error!(vip = %ip, interface, "cannot announce: {err}");
                    }
                }
                Event::Down { ip, .. } => {
                    self.schedule.withdraw(ip);
                }
                Event::LinkUp { interface } => {
                    self.schedule.link_up(&interface);
                }
            }
        }
    }
}

/// The path of this executable. Linux reports a file replaced since the start (a package
/// upgrade before the restart) as "PATH (deleted)": the path is what keepalived should run.
fn executable() -> PathBuf {
    let Ok(exe) = std::env::current_exe() else {
        return PathBuf::from("/usr/bin/gatehouse");
    };
    match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(path) => PathBuf::from(path),
        None => exe,
    }
}
