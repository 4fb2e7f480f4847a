//! The exact bytes of the two announcement frames, as pure functions.
//!
//! - IPv4: a gratuitous ARP ([`gratuitous_arp`]), 42 bytes. It uses the ARP **request** form
//!   (opcode 1, target hardware address zero, sender and target protocol address both the VIP),
//!   which is what `arping -U` sends and what RFC 5227 §3 calls an ARP Announcement. Linux
//!   updates an existing neighbour entry from either form; the request form is also what older
//!   switches and hosts that ignore unsolicited replies still learn from. keepalived sends this
//!   form too (kube-vip alternates request and reply).
//! - IPv6: an unsolicited neighbour advertisement ([`unsolicited_na`]), 86 bytes, as RFC 4861
//!   §7.2.6 describes: to all-nodes `ff02::1`, hop limit 255, Override set, Solicited clear,
//!   with a Target Link-Layer Address option so receivers can update their cache.
//!
//! - Before a VIP is claimed, duplicate address detection sends probes that ask whether
//!   anyone already holds the address without claiming it: an ARP Probe ([`arp_probe`], RFC
//!   5227 §2.1.1: sender IP `0.0.0.0`, target IP the VIP) and a DAD neighbour solicitation
//!   ([`dad_neighbour_solicitation`], RFC 4862 §5.4.2: from `::` to the VIP's solicited-node
//!   multicast address, no source link-layer option). Neither changes anyone's neighbour
//!   cache.
//!
//! The frames are complete Ethernet II frames (no FCS; the NIC adds it, and pads short frames
//! to 60 bytes). The schedule builds them and a [`LinkSender`](crate::LinkSender) puts them on
//! the wire unchanged.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Length of a gratuitous ARP frame: 14 bytes Ethernet + 28 bytes ARP.
pub const ARP_FRAME_LEN: usize = 42;
/// Length of an unsolicited NA frame: 14 Ethernet + 40 IPv6 + 32 ICMPv6.
pub const NA_FRAME_LEN: usize = 86;

/// Length of a DAD neighbour solicitation frame: 14 Ethernet + 40 IPv6 + 24 ICMPv6.
pub const NS_FRAME_LEN: usize = 78;

const BROADCAST: [u8; 6] = [0xff; 6];
/// `33:33` + the low 32 bits of `ff02::1` (RFC 2464 §7).
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const NEXT_HEADER_ICMPV6: u8 = 58;
const ICMPV6_NEIGHBOR_SOLICITATION: u8 = 135;
const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// ICMPv6 neighbour solicitation length: type, code, checksum (4) + reserved (4) + target (16).
const NS_ICMP_LEN: usize = 24;
/// Router = 0, Solicited = 0, Override = 1 (RFC 4861 §4.4).
const NA_FLAGS_OVERRIDE: u32 = 0x2000_0000;
const OPTION_TARGET_LINK_LAYER_ADDRESS: u8 = 2;
/// ICMPv6 message length: type, code, checksum (4) + flags (4) + target (16) + TLLA option (8).
const NA_ICMP_LEN: usize = 32;

/// A gratuitous ARP announcing that `vip` is at `sender_mac`, in the request form that
/// `arping -U` sends (see the module documentation for why).
pub fn gratuitous_arp(sender_mac: [u8; 6], vip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    let mut frame = [0u8; ARP_FRAME_LEN];
    // Ethernet II header.
    frame[0..6].copy_from_slice(&BROADCAST);
    frame[6..12].copy_from_slice(&sender_mac);
    frame[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    // ARP (RFC 826): Ethernet hardware, IPv4 protocol, 6- and 4-byte addresses, request.
    frame[14..16].copy_from_slice(&1u16.to_be_bytes());
    frame[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
    frame[18] = 6;
    frame[19] = 4;
    frame[20..22].copy_from_slice(&1u16.to_be_bytes());
    frame[22..28].copy_from_slice(&sender_mac);
    frame[28..32].copy_from_slice(&vip.octets());
    // Target hardware address stays zero.
    frame[38..42].copy_from_slice(&vip.octets());
    frame
}

/// An ARP Probe for `vip` from `sender_mac` (RFC 5227 §2.1.1): a broadcast request with
/// sender IP `0.0.0.0` and target IP `vip`. A host holding `vip` answers it; nobody learns
/// anything from it.
pub fn arp_probe(sender_mac: [u8; 6], vip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    let mut frame = gratuitous_arp(sender_mac, vip);
    // Sender protocol address 0.0.0.0: "I do not have an address yet".
    frame[28..32].copy_from_slice(&[0, 0, 0, 0]);
    frame
}

/// The solicited-node multicast address of `ip` (RFC 4291 §2.7.1): `ff02::1:ffXX:XXXX` with
/// the low 24 bits of `ip`.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet multicast address of an IPv6 multicast address (RFC 2464 §7): `33:33` and
/// its low 32 bits.
fn multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// A duplicate address detection neighbour solicitation for `vip` (RFC 4862 §5.4.2): from
/// the unspecified address `::` to `vip`'s solicited-node multicast group, hop limit 255, and
/// no Source Link-Layer Address option (RFC 4861 §4.3 forbids it with `::`). A host holding
/// `vip` answers with a neighbour advertisement to all-nodes.
pub fn dad_neighbour_solicitation(sender_mac: [u8; 6], vip: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(vip);
    let mut frame = Vec::with_capacity(NS_FRAME_LEN);
    frame.extend_from_slice(&multicast_mac(group));
    frame.extend_from_slice(&sender_mac);
    frame.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    frame.extend_from_slice(&0x6000_0000u32.to_be_bytes());
    // NS_ICMP_LEN is 24, so the cast is exact.
    frame.extend_from_slice(&(NS_ICMP_LEN as u16).to_be_bytes());
    frame.push(NEXT_HEADER_ICMPV6);
    frame.push(255);
    frame.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
    frame.extend_from_slice(&group.octets());
    let icmp_start = frame.len();
    frame.push(ICMPV6_NEIGHBOR_SOLICITATION);
    frame.push(0); // code
    frame.extend_from_slice(&[0, 0]); // checksum, filled in below
    frame.extend_from_slice(&[0, 0, 0, 0]); // reserved
    frame.extend_from_slice(&vip.octets());
    let checksum = icmpv6_checksum(Ipv6Addr::UNSPECIFIED, group, &frame[icmp_start..]);
    frame[icmp_start + 2..icmp_start + 4].copy_from_slice(&checksum.to_be_bytes());
    frame
}

/// An unsolicited neighbour advertisement announcing that `vip` is at `sender_mac`
/// (RFC 4861 §7.2.6), from `vip` to all-nodes `ff02::1`.
pub fn unsolicited_na(sender_mac: [u8; 6], vip: Ipv6Addr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(NA_FRAME_LEN);
    // Ethernet II header.
    frame.extend_from_slice(&ALL_NODES_MAC);
    frame.extend_from_slice(&sender_mac);
    frame.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    // IPv6 header: version 6, traffic class 0, flow label 0.
    frame.extend_from_slice(&0x6000_0000u32.to_be_bytes());
    // NA_ICMP_LEN is 32, so the cast is exact.
    frame.extend_from_slice(&(NA_ICMP_LEN as u16).to_be_bytes());
    frame.push(NEXT_HEADER_ICMPV6);
    frame.push(255); // hop limit: receivers drop ND messages with any other value
    frame.extend_from_slice(&vip.octets());
    frame.extend_from_slice(&ALL_NODES.octets());
    // ICMPv6 neighbour advertisement.
    let icmp_start = frame.len();
    frame.push(ICMPV6_NEIGHBOR_ADVERTISEMENT);
    frame.push(0); // code
    frame.extend_from_slice(&[0, 0]); // checksum, filled in below
    frame.extend_from_slice(&NA_FLAGS_OVERRIDE.to_be_bytes());
    frame.extend_from_slice(&vip.octets());
    // Target Link-Layer Address option; its length is in units of 8 bytes.
    frame.push(OPTION_TARGET_LINK_LAYER_ADDRESS);
    frame.push(1);
    frame.extend_from_slice(&sender_mac);

    let checksum = icmpv6_checksum(vip, ALL_NODES, &frame[icmp_start..]);
    frame[icmp_start + 2..icmp_start + 4].copy_from_slice(&checksum.to_be_bytes());
    frame
}

/// What a frame is, for messages: "a gratuitous ARP", "an unsolicited neighbour
/// advertisement", "an ARP probe", "a neighbour solicitation", or "a frame".
pub fn describe(frame: &[u8]) -> &'static str {
    match frame.get(12..14) {
        Some([0x08, 0x06]) if frame.get(28..32) == Some(&[0, 0, 0, 0]) => "an ARP probe",
        Some([0x86, 0xdd]) if frame.get(54) == Some(&ICMPV6_NEIGHBOR_SOLICITATION) => {
            "a neighbour solicitation"
        }
        Some([0x08, 0x06]) => "a gratuitous ARP",
        Some([0x86, 0xdd]) => "an unsolicited neighbour advertisement",
        _ => "a frame",
    }
}

/// The ICMPv6 checksum (RFC 4443 §2.3): the one's complement of the one's-complement sum of
/// the IPv6 pseudo-header (RFC 8200 §8.1) and the message, whose checksum field must be zero.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    // An ICMPv6 message longer than 4 GiB cannot exist; saturate rather than wrap anyway.
    let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut sum = 0u32;
    sum = ones_complement_add(sum, &src.octets());
    sum = ones_complement_add(sum, &dst.octets());
    sum = ones_complement_add(sum, &length.to_be_bytes());
    sum = ones_complement_add(sum, &[0, 0, 0, NEXT_HEADER_ICMPV6]);
    sum = ones_complement_add(sum, message);
    !fold(sum)
}

/// Adds `bytes` as big-endian 16-bit words (an odd last byte is padded with zero) to a running
/// one's-complement sum, folding carries so the `u32` never overflows.
pub(crate) fn ones_complement_add(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds the carries of a one's-complement sum into 16 bits.
pub(crate) fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 16 significant bits.
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0x0100);

    #[test]
    fn gratuitous_arp_is_the_arping_u_request_form() {
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            // Ethernet: dst broadcast, src MAC, ethertype ARP
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x02, 0x11, 0x22, 0x33, 0x44, 0x55,
            0x08, 0x06,
            // ARP: htype 1, ptype 0x0800, hlen 6, plen 4, oper 1 (request)
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
            // sha = MAC, spa = 192.0.2.100
            0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0xc0, 0x00, 0x02, 0x64,
            // tha = zero, tpa = 192.0.2.100
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x64,
        ];
        assert_eq!(gratuitous_arp(MAC, VIP4), expected);
    }

    #[test]
    fn unsolicited_na_has_override_tlla_and_all_nodes_destination() {
        // Checksum worked by hand, 16-bit words of the pseudo-header then the message:
        //   src 2001+0db8+0100 = 2eb9; dst ff02+0001 = ff03; length 0020; next header 003a;
        //   8800 (type 136, code 0); 2000 (flags); target 2eb9; option 0201 0211 2233 4455.
        //   2eb9+ff03+0020+003a+8800+2000+2eb9+0201+0211+2233+4455 = 0x26f69
        //   fold: 6f69 + 2 = 6f6b; complement: ffff - 6f6b = 9094.
        #[rustfmt::skip]
        let expected: [u8; 86] = [
            // Ethernet: dst 33:33:00:00:00:01, src MAC, ethertype IPv6
            0x33, 0x33, 0x00, 0x00, 0x00, 0x01,
            0x02, 0x11, 0x22, 0x33, 0x44, 0x55,
            0x86, 0xdd,
            // IPv6: version 6, tc 0, flow 0; payload length 32; next header 58; hop limit 255
            0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff,
            // src 2001:db8::100
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
            // dst ff02::1
            0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
            // ICMPv6: type 136, code 0, checksum 0x9094
            0x88, 0x00, 0x90, 0x94,
            // flags R=0 S=0 O=1, reserved
            0x20, 0x00, 0x00, 0x00,
            // target 2001:db8::100
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
            // option: type 2 (TLLA), length 1 (8 bytes), MAC
            0x02, 0x01, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55,
        ];
        assert_eq!(unsolicited_na(MAC, VIP6), expected);
    }

    /// Receivers verify by summing pseudo-header and message *including* the checksum: the
    /// one's-complement sum must be all ones.
    #[test]
    fn icmpv6_checksum_verifies_to_all_ones() {
        for (mac, vip) in [
            (MAC, VIP6),
            (
                [0xff; 6],
                Ipv6Addr::new(0xfe80, 0, 0, 0, 0xffff, 0xffff, 0xffff, 0xffff),
            ),
            ([0; 6], Ipv6Addr::UNSPECIFIED),
            (
                [0xde, 0xad, 0xbe, 0xef, 0x00, 0x01],
                Ipv6Addr::new(0x2001, 0xdb8, 0xabcd, 0x12, 0, 0, 0xfe, 0x9),
            ),
        ] {
            let frame = unsolicited_na(mac, vip);
            let icmp = &frame[54..];
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&frame[22..38]); // source address from the IPv6 header
            pseudo.extend_from_slice(&frame[38..54]); // destination address
            pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, frame[20]]); // next header from the header
            let sum = ones_complement_add(ones_complement_add(0, &pseudo), icmp);
            assert_eq!(fold(sum), 0xffff, "frame for {vip} at {mac:02x?}");
        }
    }

    #[test]
    fn ones_complement_sum_pads_an_odd_byte_and_folds_carries() {
        assert_eq!(fold(ones_complement_add(0, &[0x01])), 0x0100);
        assert_eq!(
            fold(ones_complement_add(0, &[0xff, 0xff, 0x00, 0x02])),
            0x0002
        );
    }

    #[test]
    fn arp_probe_has_sender_ip_zero_and_the_vip_as_target() {
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            // Ethernet: dst broadcast, src MAC, ethertype ARP
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x02, 0x11, 0x22, 0x33, 0x44, 0x55,
            0x08, 0x06,
            // ARP: htype 1, ptype 0x0800, hlen 6, plen 4, oper 1 (request)
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
            // sha = MAC, spa = 0.0.0.0
            0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x00, 0x00, 0x00, 0x00,
            // tha = zero, tpa = 192.0.2.100
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x64,
        ];
        assert_eq!(arp_probe(MAC, VIP4), expected);
    }

    #[test]
    fn solicited_node_group_keeps_the_low_24_bits() {
        assert_eq!(
            solicited_node(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0x12ab, 0xcdef)),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xffab, 0xcdef)
        );
    }

    #[test]
    fn dad_solicitation_is_from_unspecified_to_the_solicited_node_group() {
        // Checksum by hand: pseudo-header src :: (0); dst ff02+0001+ff00+0100; length 0018;
        //   next header 003a; message 8700 (type 135, code 0), reserved 0, target
        //   2001+0db8+0100. Sum 0x2b50e; fold b50e + 2 = b510; complement 4aef.
        #[rustfmt::skip]
        let expected: [u8; 78] = [
            // Ethernet: dst 33:33:ff:00:01:00, src MAC, ethertype IPv6
            0x33, 0x33, 0xff, 0x00, 0x01, 0x00,
            0x02, 0x11, 0x22, 0x33, 0x44, 0x55,
            0x86, 0xdd,
            // IPv6: version 6; payload length 24; next header 58; hop limit 255
            0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x3a, 0xff,
            // src ::
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            // dst ff02::1:ff00:100
            0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x01, 0x00,
            // ICMPv6: type 135, code 0, checksum 0x4aef, reserved
            0x87, 0x00, 0x4a, 0xef, 0x00, 0x00, 0x00, 0x00,
            // target 2001:db8::100, and no options
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
        ];
        assert_eq!(dad_neighbour_solicitation(MAC, VIP6), expected);
    }

    #[test]
    fn describe_names_the_frame_kind() {
        assert_eq!(describe(&arp_probe(MAC, VIP4)), "an ARP probe");
        assert_eq!(
            describe(&dad_neighbour_solicitation(MAC, VIP6)),
            "a neighbour solicitation"
        );
        assert_eq!(describe(&gratuitous_arp(MAC, VIP4)), "a gratuitous ARP");
        assert_eq!(
            describe(&unsolicited_na(MAC, VIP6)),
            "an unsolicited neighbour advertisement"
        );
        assert_eq!(describe(&[0u8; 3]), "a frame");
    }
}
