//! The virtual IPs a configuration asks for, put on and taken off interfaces.
//!
//! A VIP goes on the interface the configuration names, else on the one whose connected
//! subnet holds it, as a /32 or /128 tagged with [`GATEHOUSE_PROTO`]. An address inside the
//! loopback's subnet (127.0.0.0/8) is already local: nothing is added or announced.
//!
//! Whose address is it ([`crate::ownership`]): one gatehouse added (tagged, or listed in
//! `<stateDir>/vips.json`) is removed when it leaves the configuration and at shutdown; any
//! other address already on an interface is the operator's, used but never removed. On the
//! first reconcile after start, gatehouse's addresses left by a crash are adopted when still
//! wanted and removed when not.
//!
//! Before adding a VIP the manager probes for it ([`crate::probe`]). When another host
//! answers, the VIP is not added: it is [`VipState::NotUsable`] with the other host's MAC,
//! and, like every VIP that could not be used, tried again by [`VipManager::tick`] every
//! `retry`. An address already on the interface is not probed. A reload that puts one of
//! gatehouse's addresses on another interface moves it (off the old, probed, onto the new);
//! the operator's addresses stay where the operator put them. `tick` also puts back an
//! address gatehouse added that someone removed (without probing: the claim was ours; when
//! that fails, say the interface is gone, the VIP becomes unusable and is retried), claims
//! like a new VIP an operator's address that was removed while still configured, and reports
//! links that came back up, so the caller re-announces.

use crate::netlink::{Address, Link, Netlink};
#[cfg(doc)]
use crate::ownership::GATEHOUSE_PROTO;
use crate::ownership::OwnershipFile;
use crate::probe::{self, Outcome};
use gatehouse_model::snapshot::Vip;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;

/// What became of one VIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VipState {
    /// On `interface` and announced there.
    Active { interface: String },
    /// Already local (loopback): served, nothing to announce.
    Local,
    /// `[announce] mode = "keepalived"`: not on this box's interfaces (keepalived is BACKUP
    /// here, or no box holds it); `interface` is where it goes when this box takes over.
    /// `keepalived` is the state keepalived last reported for the VIP's instance here
    /// (`BACKUP`, `FAULT`, `STOP`), when it did.
    Standby {
        interface: String,
        keepalived: Option<String>,
    },
    /// Cannot be used: `why` says why (another host has it, no interface, permission
    /// denied, ...). Tried again periodically.
    NotUsable {
        /// The interface it would go on, when one was found.
        interface: Option<String>,
        why: String,
    },
}

/// Every VIP of `vips` as unusable, for `why` (interfaces as the configuration names them).
pub(crate) fn all_unusable(vips: &[Vip], why: &str) -> BTreeMap<IpAddr, VipState> {
    vips.iter()
        .map(|v| {
            let state = VipState::NotUsable {
                interface: v.interface.clone(),
                why: why.to_string(),
            };
            (v.address, state)
        })
        .collect()
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
    /// The VIP as the configuration last gave it.
    vip: Vip,
    index: u32,
    interface: String,
    /// Added by gatehouse (and so removed by it); false for the operator's address.
    added: bool,
}

/// Keeps the interfaces' addresses in line with the VIPs of the configuration.
#[derive(Debug)]
pub struct VipManager {
    netlink: Netlink,
    file: OwnershipFile,
    owned: BTreeMap<IpAddr, Owned>,
    links_up: BTreeMap<u32, bool>,
    /// Wanted VIPs that could not be used, and when to try each again.
    unusable: BTreeMap<IpAddr, (Vip, Instant)>,
    /// The state of every wanted VIP.
    states: BTreeMap<IpAddr, VipState>,
    retry: Duration,
    /// Whether leftovers of a previous run were dealt with (first reconcile).
    started: bool,
}

/// The interface a VIP belongs on: the named one, else the one whose subnet holds it.
pub(crate) fn choose<'a>(
    vip: &Vip,
    links: &'a [Link],
    addrs: &[Address],
) -> Result<Option<&'a Link>, String> {
    if let Some(name) = &vip.interface {
        return links
            .iter()
            .find(|l| &l.name == name)
            .map(Some)
            .ok_or_else(|| format!("no interface named {name}"));
    }
    let holder = addrs
        .iter()
        .filter(|a| !a.is_host() && a.covers(vip.address))
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

/// Whether gatehouse added `a`: a host address (/32, /128) tagged with [`GATEHOUSE_PROTO`]
/// or listed in the ownership file. Anything else is the operator's.
fn ours(a: &Address, file: &OwnershipFile) -> bool {
    a.is_host() && (a.tagged() || file.contains(a.ip))
}

impl VipManager {
    pub fn new(netlink: Netlink, file: OwnershipFile, retry: Duration) -> VipManager {
        VipManager {
            netlink,
            file,
            owned: BTreeMap::new(),
            links_up: BTreeMap::new(),
            unusable: BTreeMap::new(),
            states: BTreeMap::new(),
            retry,
            started: false,
        }
    }

    /// The state of every wanted VIP, as of the last reconcile or tick.
    pub fn states(&self) -> &BTreeMap<IpAddr, VipState> {
        &self.states
    }

    /// Nothing on the interfaces and nothing to retry: `tick` has nothing to do.
    pub fn idle(&self) -> bool {
        self.owned.is_empty() && self.unusable.is_empty()
    }

    /// Whether gatehouse added `a` (in this run or an earlier one).
    fn ours(&self, a: &Address) -> bool {
        ours(a, &self.file)
    }

    /// Puts the `wanted` VIPs on their interfaces and takes off the ones gatehouse added that
    /// are no longer wanted. `retry` is how often unusable VIPs are tried again. Returns what
    /// to announce; the states are in [`VipManager::states`].
    pub async fn reconcile(&mut self, wanted: &[Vip], retry: Duration) -> Vec<Event> {
        self.retry = retry;
        let mut events = Vec::new();
        let (links, addrs) = match (self.netlink.links().await, self.netlink.addresses().await) {
            (Ok(l), Ok(a)) => (l, a),
            (Err(e), _) | (_, Err(e)) => {
                self.states = wanted
                    .iter()
                    .map(|v| {
                        let why = e.to_string();
                        (
                            v.address,
                            VipState::NotUsable {
                                interface: None,
                                why,
                            },
                        )
                    })
                    .collect();
                let now = Instant::now();
                for v in wanted {
                    self.unusable
                        .insert(v.address, (v.clone(), now + self.retry));
                }
                return events;
            }
        };
        for l in &links {
            self.links_up.entry(l.index).or_insert(l.up);
        }
        if !self.started {
            self.remove_leftovers(wanted, &addrs).await;
            self.started = true;
        }
        let mut states = BTreeMap::new();
        let mut claim = Vec::new();
        let mut moving = Vec::new();
        for vip in wanted {
            let chosen = choose(vip, &links, &addrs);
            let Some(o) = self.owned.get_mut(&vip.address) else {
                claim.push(vip.clone());
                continue;
            };
            o.vip.clone_from(vip);
            let moved = matches!(chosen, Ok(Some(l)) if l.index != o.index);
            if !(moved && o.added) {
                let interface = o.interface.clone();
                states.insert(vip.address, VipState::Active { interface });
                continue;
            }
            // The configuration now puts one of gatehouse's addresses on another interface:
            // stop announcing it and take it off the old one (known to be ours here, even
            // without the tag or the file); `claim` adds it to the new one.
            moving.push(vip.address);
            claim.push(vip.clone());
        }
        let addrs = if moving.is_empty() {
            addrs
        } else {
            for ip in moving {
                if let Some(o) = self.owned.remove(&ip) {
                    events.push(Event::Down {
                        ip,
                        interface: o.interface,
                    });
                    self.remove_address(ip, &addrs).await;
                }
            }
            self.netlink.addresses().await.unwrap_or(addrs)
        };
        let claimed = self.claim(claim, &links, &addrs, &mut events).await;
        states.extend(claimed);
        // Only wanted VIPs that are still unusable are retried.
        self.unusable
            .retain(|ip, _| matches!(states.get(ip), Some(VipState::NotUsable { .. })));
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
        self.states = states;
        events
    }

    /// First reconcile: gatehouse's addresses from an earlier run that are no longer wanted
    /// come off; stale entries of the ownership file go.
    async fn remove_leftovers(&mut self, wanted: &[Vip], addrs: &[Address]) {
        let leftovers: Vec<IpAddr> = addrs
            .iter()
            .filter(|a| self.ours(a) && !wanted.iter().any(|v| v.address == a.ip))
            .map(|a| a.ip)
            .collect();
        for ip in leftovers {
            tracing::info!(vip = %ip, "removing an address an earlier gatehouse added and the configuration no longer has");
            self.remove_address(ip, addrs).await;
        }
        for ip in self.file.listed() {
            if !addrs.iter().any(|a| a.ip == ip && a.is_host()) {
                self.file.forget(ip);
            }
        }
    }

    /// `[announce] mode = "keepalived"` at start: addresses an earlier gatehouse added in
    /// mode "self" (tagged) come off, so only keepalived claims them, and the ownership file
    /// is emptied. Untagged addresses the file lists stay: they may be keepalived's now.
    pub async fn hand_over(netlink: &Netlink, state_dir: &std::path::Path) {
        let mut file = OwnershipFile::open(state_dir);
        let Ok(addrs) = netlink.addresses().await else {
            return;
        };
        for a in addrs.iter().filter(|a| a.is_host() && a.tagged()) {
            match netlink.remove(a).await {
                Ok(()) => {
                    tracing::info!(vip = %a.ip, "removed an address gatehouse added in [announce] mode \"self\": keepalived owns the addresses now")
                }
                Err(e) => tracing::error!(vip = %a.ip, "{e}"),
            }
        }
        for ip in file.listed() {
            file.forget(ip);
        }
    }

    /// Puts VIPs that are not on an interface yet on one: adopts or uses an address already
    /// there, else probes and adds. Returns their states.
    async fn claim(
        &mut self,
        vips: Vec<Vip>,
        links: &[Link],
        addrs: &[Address],
        events: &mut Vec<Event>,
    ) -> BTreeMap<IpAddr, VipState> {
        let mut states = BTreeMap::new();
        let mut probes = Vec::new();
        for vip in vips {
            let link = match choose(&vip, links, addrs) {
                Ok(Some(l)) => l,
                Ok(None) => {
                    self.unusable.remove(&vip.address);
                    states.insert(vip.address, VipState::Local);
                    continue;
                }
                Err(why) => {
                    states.insert(vip.address, self.not_usable(&vip, None, why));
                    continue;
                }
            };
            if let Some(present) = addrs.iter().find(|a| a.ip == vip.address) {
                let added = self.ours(present);
                if !added || present.index == link.index {
                    if added {
                        // Listed too when only the tag said so (the file was lost).
                        self.file.record(vip.address, &link.name);
                        tracing::info!(vip = %vip.address, interface = %link.name, "adopted an address an earlier gatehouse added");
                    }
                    states.insert(vip.address, self.active(&vip, link, added, events));
                    continue;
                }
                // Gatehouse's, left by an earlier run on an interface the configuration no
                // longer picks.
                tracing::info!(vip = %vip.address, interface = %link.name, "moving the address to the interface the configuration now picks");
                self.remove_address(vip.address, addrs).await;
            }
            let (interface, ip) = (link.name.clone(), vip.address);
            let probe = tokio::spawn(async move {
                let started = Instant::now();
                let outcome = probe::probe(interface, ip).await;
                (outcome, started.elapsed())
            });
            probes.push((vip, link, probe));
        }
        // The probes run side by side; each takes about `probe::DURATION`.
        for (vip, link, probe) in probes {
            let (outcome, took) = match probe.await {
                Ok((outcome, took)) => (Ok(outcome), took),
                Err(e) => (Err(e), Duration::ZERO),
            };
            let probe_ms = took.as_millis();
            tracing::debug!(vip = %vip.address, interface = %link.name, probe_ms, "duplicate address probe: {outcome:?}");
            let outcome = match outcome {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(e)) => {
                    tracing::warn!(vip = %vip.address, interface = %link.name, "cannot check whether another host uses the address; adding it anyway: {e}");
                    Outcome::NotProbed
                }
                Err(e) => {
                    tracing::warn!(vip = %vip.address, "duplicate address probe failed: {e}");
                    Outcome::NotProbed
                }
            };
            if let Outcome::InUse(mac) = outcome {
                let why = format!(
                    "{} is already in use by {} on {}",
                    vip.address,
                    probe::mac_text(&mac),
                    link.name
                );
                let state = self.not_usable(&vip, Some(&link.name), why);
                states.insert(vip.address, state);
                continue;
            }
            self.file.record(vip.address, &link.name);
            if let Err(e) = self.netlink.add(link.index, vip.address).await {
                self.file.forget(vip.address);
                let state = self.not_usable(&vip, Some(&link.name), e.to_string());
                states.insert(vip.address, state);
                continue;
            }
            tracing::info!(vip = %vip.address, interface = %link.name, probe_ms, "address added");
            states.insert(vip.address, self.active(&vip, link, true, events));
        }
        states
    }

    fn active(&mut self, vip: &Vip, link: &Link, added: bool, events: &mut Vec<Event>) -> VipState {
        self.unusable.remove(&vip.address);
        self.owned.insert(
            vip.address,
            Owned {
                vip: vip.clone(),
                index: link.index,
                interface: link.name.clone(),
                added,
            },
        );
        events.push(Event::Up {
            ip: vip.address,
            interface: link.name.clone(),
        });
        VipState::Active {
            interface: link.name.clone(),
        }
    }

    /// Records that `vip` cannot be used now; logged when the reason is new.
    fn not_usable(&mut self, vip: &Vip, interface: Option<&str>, why: String) -> VipState {
        let state = VipState::NotUsable {
            interface: interface.map(str::to_owned),
            why: why.clone(),
        };
        if self.states.get(&vip.address) != Some(&state) {
            tracing::error!(vip = %vip.address, gateway = %vip.gateway, retry_seconds = self.retry.as_secs(), "address not usable: {why}");
        }
        self.unusable
            .insert(vip.address, (vip.clone(), Instant::now() + self.retry));
        state
    }

    async fn remove_address(&mut self, ip: IpAddr, addrs: &[Address]) {
        let Some(a) = addrs.iter().find(|a| a.ip == ip && a.is_host()) else {
            self.file.forget(ip);
            return;
        };
        match self.netlink.remove(a).await {
            Ok(()) => {
                tracing::info!(vip = %ip, "address removed");
                self.file.forget(ip);
            }
            Err(e) => tracing::error!(vip = %ip, "{e}"),
        }
    }

    /// Checks the interfaces: puts back addresses gatehouse added that someone removed,
    /// reports links that came back up, and tries again the unusable VIPs whose time has
    /// come. Returns what to announce and whether any VIP's state changed.
    pub async fn tick(&mut self) -> (Vec<Event>, bool) {
        let mut events = Vec::new();
        let (Ok(links), Ok(addrs)) = (self.netlink.links().await, self.netlink.addresses().await)
        else {
            return (events, false);
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
        let missing: Vec<(IpAddr, Owned)> = self
            .owned
            .iter()
            .filter(|(ip, _)| !addrs.iter().any(|a| a.ip == **ip))
            .map(|(ip, o)| (*ip, o.clone()))
            .collect();
        let mut changed = false;
        for (ip, o) in missing {
            if o.added {
                self.file.record(ip, &o.interface);
                match self.netlink.add(o.index, ip).await {
                    Ok(()) => {
                        tracing::warn!(vip = %ip, interface = %o.interface, "address was removed from the interface: put back");
                        events.push(Event::Up {
                            ip,
                            interface: o.interface.clone(),
                        });
                        continue;
                    }
                    // The interface went away, say: the VIP is unusable until a retry finds
                    // it a place, rather than failing here every second.
                    Err(e) => {
                        self.file.forget(ip);
                        let why = format!("cannot put {ip} back on {}: {e}", o.interface);
                        let state = self.not_usable(&o.vip, Some(&o.interface), why);
                        self.states.insert(ip, state);
                    }
                }
            } else {
                // The operator took their address away while the configuration still wants
                // it: claimed now like any new VIP (probed, then added as gatehouse's).
                tracing::info!(vip = %ip, interface = %o.interface, "the operator's address was removed; claiming it");
                self.unusable.insert(ip, (o.vip.clone(), Instant::now()));
            }
            self.owned.remove(&ip);
            events.push(Event::Down {
                ip,
                interface: o.interface.clone(),
            });
            changed = true;
        }
        let now = Instant::now();
        let due: Vec<Vip> = self
            .unusable
            .values()
            .filter(|(_, at)| *at <= now)
            .map(|(vip, _)| vip.clone())
            .collect();
        if due.is_empty() {
            return (events, changed);
        }
        let claimed = self.claim(due, &links, &addrs, &mut events).await;
        for (ip, state) in claimed {
            if self.states.get(&ip) != Some(&state) {
                if matches!(state, VipState::Active { .. }) {
                    tracing::info!(vip = %ip, "address usable now");
                }
                changed = true;
            }
            self.states.insert(ip, state);
        }
        (events, changed)
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
        self.unusable.clear();
    }

    /// The netlink connection, for the caller's own queries.
    pub fn netlink(&self) -> &Netlink {
        &self.netlink
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::GATEHOUSE_PROTO;
    use gatehouse_model::resource::{Kind, ResourceKey};

    fn link(index: u32, name: &str, loopback: bool) -> Link {
        Link {
            index,
            name: name.into(),
            up: true,
            loopback,
            mac: (!loopback).then_some([2, 0, 0, 0, 0, index as u8]),
        }
    }

    fn addr(index: u32, ip: &str, prefix_len: u8, proto: Option<u8>) -> Address {
        Address::for_test(index, ip.parse().unwrap(), prefix_len, proto)
    }

    fn vip(ip: &str, interface: Option<&str>) -> Vip {
        Vip {
            gateway: ResourceKey::new(Kind::Gateway, "default", "gw"),
            address: ip.parse().unwrap(),
            interface: interface.map(str::to_owned),
        }
    }

    fn links() -> Vec<Link> {
        vec![
            link(1, "lo", true),
            link(2, "eth0", false),
            link(3, "eth1", false),
        ]
    }

    fn addrs() -> Vec<Address> {
        vec![
            addr(1, "127.0.0.1", 8, None),
            addr(2, "192.0.2.1", 24, None),
            addr(3, "192.0.2.129", 25, None),
            addr(2, "2001:db8::1", 64, None),
            // A host address is a VIP, not a connected subnet.
            addr(3, "198.51.100.7", 32, None),
        ]
    }

    fn chosen(v: &Vip) -> Result<Option<String>, String> {
        let (links, addrs) = (links(), addrs());
        choose(v, &links, &addrs).map(|l| l.map(|l| l.name.clone()))
    }

    #[test]
    fn the_longest_connected_subnet_that_holds_the_vip_picks_the_interface() {
        assert_eq!(chosen(&vip("192.0.2.10", None)), Ok(Some("eth0".into())));
        assert_eq!(chosen(&vip("192.0.2.200", None)), Ok(Some("eth1".into())));
        assert_eq!(chosen(&vip("2001:db8::100", None)), Ok(Some("eth0".into())));
    }

    #[test]
    fn a_named_interface_wins_over_the_subnet_and_must_exist() {
        assert_eq!(
            chosen(&vip("192.0.2.10", Some("eth1"))),
            Ok(Some("eth1".into()))
        );
        let missing = chosen(&vip("192.0.2.10", Some("eth9"))).unwrap_err();
        assert!(missing.contains("no interface named eth9"), "{missing}");
    }

    #[test]
    fn a_vip_in_the_loopback_subnet_is_local() {
        assert_eq!(chosen(&vip("127.0.0.53", None)), Ok(None));
    }

    #[test]
    fn a_vip_no_subnet_holds_asks_for_an_interface_and_host_addresses_are_not_subnets() {
        let why = chosen(&vip("198.51.100.8", None)).unwrap_err();
        assert!(why.contains("interface = "), "{why}");
    }

    #[test]
    fn gatehouses_addresses_are_tagged_or_listed_host_addresses_and_nothing_else_is() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = OwnershipFile::open(dir.path());
        file.record("192.0.2.11".parse().unwrap(), "eth0");
        let tag = Some(GATEHOUSE_PROTO);
        assert!(ours(&addr(2, "192.0.2.10", 32, tag), &file));
        assert!(ours(&addr(2, "2001:db8::10", 128, tag), &file));
        assert!(ours(&addr(2, "192.0.2.11", 32, None), &file));
        // The operator's: untagged and unlisted, another program's tag, or a subnet.
        assert!(!ours(&addr(2, "192.0.2.12", 32, None), &file));
        assert!(!ours(&addr(2, "192.0.2.12", 32, Some(3)), &file));
        assert!(!ours(&addr(2, "192.0.2.11", 24, tag), &file));
    }
}
