//! The frame capture of `vips.rs` and `ha.rs`: announcement-like frames (ARP, ICMPv6 neighbour
//! advertisements) seen on a host's interface, by the test binary re-run inside the host's
//! namespace (the `capture` role), and the parsers that read them back.

use super::{CAPTURE_LIFETIME, CHILD_ARGS, Host, IFACE, Proc, ROLE};
use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Announcement-like frames (ARP, ICMPv6 neighbour advertisements) seen on a host's
/// interface, by this test binary re-run inside the host's namespace (`capture` role).
#[derive(Debug)]
pub struct Capture {
    proc: Proc,
}

impl Capture {
    pub fn start(host: &Host) -> Capture {
        let exe = std::env::current_exe().expect("test binary path");
        let mut proc = Proc::spawn(
            &host.ns,
            &exe,
            CHILD_ARGS,
            &[(ROLE, "capture"), (IFACE, &host.iface)],
        );
        // libtest may print "test child_process_entry_point ... " on the same line.
        proc.wait_line(0, "CAPTURE READY");
        Capture { proc }
    }

    /// Every frame so far, with its arrival time.
    pub fn frames(&self) -> Vec<(Instant, Vec<u8>)> {
        self.proc
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(at, l)| Some((*at, unhex(l.split_once("FRAME ")?.1.trim()))))
            .collect()
    }

    /// Gratuitous ARPs (request form, sender = target = `vip`) from `mac` at or after `since`.
    pub fn garps(&self, mac: &str, vip: &str, since: Instant) -> Vec<Arp> {
        let mac = parse_mac(mac);
        let vip: Ipv4Addr = vip.parse().expect("IPv4 VIP");
        self.frames()
            .into_iter()
            .filter(|(at, _)| *at >= since)
            .filter_map(|(_, f)| parse_arp(&f))
            .filter(|a| a.eth_src == mac && a.op == 1 && a.sender_ip == vip && a.target_ip == vip)
            .collect()
    }

    /// Neighbour advertisements for `vip` from `mac` at or after `since`.
    pub fn nas(&self, mac: &str, vip: &str, since: Instant) -> Vec<Na> {
        let mac = parse_mac(mac);
        let vip: Ipv6Addr = vip.parse().expect("IPv6 VIP");
        self.frames()
            .into_iter()
            .filter(|(at, _)| *at >= since)
            .filter_map(|(_, f)| parse_na(&f))
            .filter(|n| n.eth_src == mac && n.target == vip)
            .collect()
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}

/// The child side: prints `FRAME <hex>` for every ARP and ICMPv6 NA frame on `iface` until
/// killed (or `CAPTURE_LIFETIME`), or until nobody reads its output.
pub fn capture(iface: &str) {
    let link = pnet_datalink::interfaces()
        .into_iter()
        .find(|link| link.name == iface)
        .unwrap_or_else(|| panic!("no interface {iface}"));
    let config = pnet_datalink::Config {
        read_timeout: Some(Duration::from_millis(100)),
        ..Default::default()
    };
    let pnet_datalink::Channel::Ethernet(_tx, mut rx) =
        pnet_datalink::channel(&link, config).expect("AF_PACKET socket")
    else {
        panic!("not an Ethernet channel");
    };
    if say("CAPTURE READY").is_err() {
        return;
    }
    let until = Instant::now() + CAPTURE_LIFETIME;
    while Instant::now() < until {
        match rx.next() {
            Ok(frame) if parse_arp(frame).is_some() || parse_na(frame).is_some() => {
                if say(&format!("FRAME {}", hex(frame))).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
            Err(error) => panic!("receive on {iface}: {error}"),
        }
    }
}

fn say(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

// ---------------------------------------------------------------------------------------
// Frames

/// An Ethernet ARP frame for IPv4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arp {
    pub eth_src: [u8; 6],
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

impl std::fmt::Display for Arp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ARP op {} from {}: sender {} {}, target {}",
            self.op,
            mac_text(&self.eth_src),
            mac_text(&self.sender_mac),
            self.sender_ip,
            self.target_ip
        )
    }
}

pub fn parse_arp(f: &[u8]) -> Option<Arp> {
    if f.len() < 42 || f[12..14] != [0x08, 0x06] || f[14..20] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let ip4 = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    Some(Arp {
        eth_src: f[6..12].try_into().ok()?,
        op: u16::from_be_bytes([f[20], f[21]]),
        sender_mac: f[22..28].try_into().ok()?,
        sender_ip: ip4(&f[28..32]),
        target_ip: ip4(&f[38..42]),
    })
}

/// An ICMPv6 neighbour advertisement (type 136) in an Ethernet frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Na {
    pub eth_src: [u8; 6],
    pub hop_limit: u8,
    pub target: Ipv6Addr,
    pub override_flag: bool,
    pub solicited: bool,
    /// The Target Link-Layer Address option.
    pub tlla: Option<[u8; 6]>,
}

impl std::fmt::Display for Na {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NA from {}: target {}, override {}, solicited {}, hop limit {}, TLLA {}",
            mac_text(&self.eth_src),
            self.target,
            self.override_flag,
            self.solicited,
            self.hop_limit,
            self.tlla
                .map_or_else(|| "none".to_string(), |m| mac_text(&m))
        )
    }
}

pub fn parse_na(f: &[u8]) -> Option<Na> {
    // Ethernet (14) + IPv6 (40) + ICMPv6 NA without options (24).
    if f.len() < 78 || f[12..14] != [0x86, 0xdd] || f[20] != 58 || f[54] != 136 {
        return None;
    }
    let target: [u8; 16] = f[62..78].try_into().ok()?;
    let mut tlla = None;
    let mut opt = &f[78..];
    while opt.len() >= 8 && opt[1] > 0 {
        let len = usize::from(opt[1]) * 8;
        if opt.len() < len {
            break;
        }
        if opt[0] == 2 && len == 8 {
            tlla = opt[2..8].try_into().ok();
        }
        opt = &opt[len..];
    }
    Some(Na {
        eth_src: f[6..12].try_into().ok()?,
        hop_limit: f[21],
        target: Ipv6Addr::from(target),
        override_flag: f[58] & 0x20 != 0,
        solicited: f[58] & 0x40 != 0,
        tlla,
    })
}

pub fn parse_mac(text: &str) -> [u8; 6] {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex MAC"))
        .collect();
    bytes.try_into().expect("6-byte MAC")
}

pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}
