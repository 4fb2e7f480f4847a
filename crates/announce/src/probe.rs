//! Duplicate address detection before a VIP is claimed: is anyone on the link already using
//! the address?
//!
//! On the VIP's interface gatehouse sends [`PROBES`] probes [`PROBE_INTERVAL`] apart, an ARP
//! Probe for IPv4 (RFC 5227 §2.1.1) or a DAD neighbour solicitation for IPv6 (RFC 4862
//! §5.4.2), built by [`crate::frames`], and listens until [`LISTEN_AFTER_LAST`] after the last
//! one: [`DURATION`] in all (300 ms). RFC 5227 waits seconds (`PROBE_WAIT`, `PROBE_MIN`,
//! `ANNOUNCE_WAIT`) because it was written for hosts choosing an address at boot; a host on
//! the same segment answers within a millisecond or two, so three probes in 300 ms still
//! survive a lost frame or two and keep a failover short.
//!
//! What counts as "in use" ([`conflict`]): from another MAC, an ARP packet whose sender IP is
//! the VIP (the owner's reply, or its own announcement), an ARP Probe for the VIP (someone
//! else is claiming it at the same moment), a neighbour advertisement whose target is the
//! VIP, or a DAD solicitation for it. Frames from our own MAC are our own probes, looped back
//! to the `AF_PACKET` socket.
//!
//! The socket I/O blocks, so [`probe`] runs it on Tokio's blocking pool: the control runtime
//! keeps running while a probe listens. The read timeout bounds every wait.

use crate::error::AnnounceError;
use crate::frames;
use crate::pnet_sender::{find, os_error};
use pnet_datalink::{Channel, Config, MacAddr};
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How many probes are sent.
pub const PROBES: u32 = 3;
/// The time between two probes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How long gatehouse listens for an answer after the last probe.
pub const LISTEN_AFTER_LAST: Duration = Duration::from_millis(100);
/// How long a probe takes when nobody answers.
pub const DURATION: Duration = Duration::from_millis(300);
/// How long one read waits, so the loop notices when a probe is due.
const READ_TIMEOUT: Duration = Duration::from_millis(10);

/// What a probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nobody answered: the address is free.
    Free,
    /// A host with this MAC answered for the address.
    InUse([u8; 6]),
    /// The interface has no MAC address (tun, WireGuard): ARP and ND do not apply.
    NotProbed,
}

/// Probes `ip` on `interface` (see the module documentation). Takes about [`DURATION`]
/// unless someone answers sooner.
pub async fn probe(interface: String, ip: IpAddr) -> Result<Outcome, AnnounceError> {
    let task = tokio::task::spawn_blocking(move || probe_blocking(&interface, ip));
    task.await.unwrap_or_else(|e| {
        Err(AnnounceError::Netlink(format!(
            "the duplicate address probe for {ip} stopped: {e}"
        )))
    })
}

fn probe_blocking(interface: &str, ip: IpAddr) -> Result<Outcome, AnnounceError> {
    let link = find(interface)?;
    let Some(MacAddr(a, b, c, d, e, f)) = link.mac else {
        return Ok(Outcome::NotProbed);
    };
    let mac = [a, b, c, d, e, f];
    if mac == [0; 6] {
        return Ok(Outcome::NotProbed);
    }
    let frame = match ip {
        IpAddr::V4(v4) => frames::arp_probe(mac, v4).to_vec(),
        IpAddr::V6(v6) => frames::dad_neighbour_solicitation(mac, v6),
    };
    let what = frames::describe(&frame);
    let config = Config {
        read_timeout: Some(READ_TIMEOUT),
        write_timeout: Some(crate::pnet_sender::WRITE_TIMEOUT),
        promiscuous: false,
        ..Config::default()
    };
    let channel = pnet_datalink::channel(&link, config)
        .map_err(|error| os_error(interface, "opening a raw socket for", what, error))?;
    let Channel::Ethernet(mut tx, mut rx) = channel else {
        return Err(AnnounceError::UnsupportedChannel {
            interface: interface.to_owned(),
        });
    };
    let start = Instant::now();
    let end = PROBE_INTERVAL * (PROBES - 1) + LISTEN_AFTER_LAST;
    let mut sent = 0;
    loop {
        let elapsed = start.elapsed();
        if sent < PROBES && elapsed >= PROBE_INTERVAL * sent {
            match tx.send_to(&frame, None) {
                Some(Ok(())) | None => {}
                Some(Err(error)) => return Err(os_error(interface, "sending", what, error)),
            }
            sent += 1;
        }
        if elapsed >= end {
            return Ok(Outcome::Free);
        }
        match rx.next() {
            Ok(received) => {
                if let Some(owner) = conflict(received, mac, ip) {
                    return Ok(Outcome::InUse(owner));
                }
            }
            Err(error) if error.kind() == io::ErrorKind::TimedOut => {}
            Err(error) => return Err(os_error(interface, "receiving answers to", what, error)),
        }
    }
}

/// The MAC of another host that `frame` shows using (or claiming) `ip`, if it does.
pub fn conflict(frame: &[u8], ours: [u8; 6], ip: IpAddr) -> Option<[u8; 6]> {
    let eth_src: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
    if eth_src == ours {
        return None;
    }
    match ip {
        IpAddr::V4(vip) => {
            // Ethernet ARP for IPv4: htype 1, ptype 0x0800, hlen 6, plen 4.
            if frame.get(12..14)? != [0x08, 0x06] || frame.get(14..20)? != [0, 1, 8, 0, 6, 4] {
                return None;
            }
            let op = u16::from_be_bytes([frame[20], frame[21]]);
            let sender_mac: [u8; 6] = frame.get(22..28)?.try_into().ok()?;
            let sender_ip = frame.get(28..32)?;
            let target_ip = frame.get(38..42)?;
            let theirs = sender_ip == vip.octets();
            let probing = op == 1 && sender_ip == [0, 0, 0, 0] && target_ip == vip.octets();
            ((theirs || probing) && sender_mac != ours).then_some(sender_mac)
        }
        IpAddr::V6(vip) => {
            // Ethernet + IPv6 with ICMPv6 next (no extension headers in ND) + NS/NA header.
            if frame.get(12..14)? != [0x86, 0xdd] || *frame.get(20)? != 58 {
                return None;
            }
            let kind = *frame.get(54)?;
            let target = frame.get(62..78)?;
            if target != vip.octets() {
                return None;
            }
            let source_unspecified = frame.get(22..38)? == [0; 16];
            match kind {
                // A neighbour advertisement for the VIP: its Target Link-Layer Address, else
                // the Ethernet source.
                136 => Some(target_link_layer(frame.get(78..)?).unwrap_or(eth_src)),
                // Someone else running DAD for the same address.
                135 if source_unspecified => Some(eth_src),
                _ => None,
            }
        }
    }
}

/// The Target Link-Layer Address option (type 2) among ND options.
fn target_link_layer(mut options: &[u8]) -> Option<[u8; 6]> {
    while options.len() >= 8 && options[1] > 0 {
        let len = usize::from(options[1]) * 8;
        let option = options.get(..len)?;
        if option[0] == 2 && len == 8 {
            return option[2..8].try_into().ok();
        }
        options = &options[len..];
    }
    None
}

/// `02:47:48:00:00:02`, as `ip link` writes a MAC.
pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const OURS: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    const THEIRS: [u8; 6] = [0x02, 0x47, 0x48, 0x00, 0x00, 0x02];
    const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

    /// An ARP reply from `THEIRS` saying it has `sender_ip`.
    fn arp_reply(sender_ip: Ipv4Addr) -> Vec<u8> {
        let mut f = frames::gratuitous_arp(THEIRS, sender_ip).to_vec();
        f[0..6].copy_from_slice(&OURS);
        f[21] = 2; // reply
        f[32..38].copy_from_slice(&OURS);
        f[38..42].copy_from_slice(&[0, 0, 0, 0]);
        f
    }

    #[test]
    fn probes_take_three_hundred_milliseconds() {
        assert_eq!(PROBE_INTERVAL * (PROBES - 1) + LISTEN_AFTER_LAST, DURATION);
    }

    #[test]
    fn an_arp_reply_for_the_vip_names_the_owner() {
        assert_eq!(conflict(&arp_reply(VIP4), OURS, VIP4.into()), Some(THEIRS));
        assert_eq!(
            conflict(&arp_reply(Ipv4Addr::new(192, 0, 2, 7)), OURS, VIP4.into()),
            None
        );
    }

    #[test]
    fn another_hosts_probe_or_announcement_is_a_conflict_but_our_own_is_not() {
        let theirs = frames::arp_probe(THEIRS, VIP4);
        assert_eq!(conflict(&theirs, OURS, VIP4.into()), Some(THEIRS));
        let announcement = frames::gratuitous_arp(THEIRS, VIP4);
        assert_eq!(conflict(&announcement, OURS, VIP4.into()), Some(THEIRS));
        let ours = frames::arp_probe(OURS, VIP4);
        assert_eq!(conflict(&ours, OURS, VIP4.into()), None);
    }

    #[test]
    fn a_neighbour_advertisement_for_the_vip_names_its_target_link_layer_address() {
        let na = frames::unsolicited_na(THEIRS, VIP6);
        assert_eq!(conflict(&na, OURS, VIP6.into()), Some(THEIRS));
        let other = frames::unsolicited_na(THEIRS, Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(conflict(&other, OURS, VIP6.into()), None);
        // Without the option, the Ethernet source.
        let mut bare = na.clone();
        bare.truncate(78);
        assert_eq!(conflict(&bare, OURS, VIP6.into()), Some(THEIRS));
    }

    #[test]
    fn a_simultaneous_dad_solicitation_is_a_conflict_but_our_own_is_not() {
        let theirs = frames::dad_neighbour_solicitation(THEIRS, VIP6);
        assert_eq!(conflict(&theirs, OURS, VIP6.into()), Some(THEIRS));
        let ours = frames::dad_neighbour_solicitation(OURS, VIP6);
        assert_eq!(conflict(&ours, OURS, VIP6.into()), None);
    }

    #[test]
    fn short_or_foreign_frames_are_not_conflicts() {
        assert_eq!(conflict(&[0u8; 10], OURS, VIP4.into()), None);
        let na = frames::unsolicited_na(THEIRS, VIP6);
        assert_eq!(conflict(&na[..60], OURS, VIP6.into()), None);
        assert_eq!(conflict(&na, OURS, VIP4.into()), None);
        assert_eq!(conflict(&arp_reply(VIP4), OURS, VIP6.into()), None);
    }

    #[test]
    fn macs_are_written_as_ip_link_does() {
        assert_eq!(mac_text(&THEIRS), "02:47:48:00:00:02");
    }
}
