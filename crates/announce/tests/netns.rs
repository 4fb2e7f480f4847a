//! End-to-end: the real `Schedule` + `PnetSender` put exactly the bytes of `frames` on a veth
//! link, and a sender without `CAP_NET_RAW` gets the capability error.
//!
//! Needs root (network namespaces, `AF_PACKET`) and `ip`; without them it prints why and
//! passes. It builds two namespaces joined by a veth pair (192.0.2.0/24 only) and, since one
//! process cannot sit in two namespaces without `setns` (unsafe code), re-runs this test
//! binary inside each with `ip netns exec`, selecting [`child_process_entry_point`] and a role
//! from `GATEHOUSE_NETNS_ROLE`.
//! B starts with stale neighbour entries for both VIPs pointing at another MAC (a failover);
//! after the announcement both must point at A, which shows B's kernel accepted the frames.
//! The child processes:
//! - `receive` (namespace B): an `AF_PACKET` socket on `veth-b` prints every ARP or
//!   neighbour-advertisement frame from A's MAC as a `FRAME <hex>` line;
//! - `send` (namespace A): announces 192.0.2.100 and 2001:db8::100 on `veth-a`, 3 frames each,
//!   and prints the interface MAC and the counters;
//! - `unprivileged` (namespace A, as `nobody` via `setpriv`): sends one frame and prints the
//!   error. Skipped with a printed reason when `setpriv` is missing.
//!
//! The namespaces are deleted by a guard on every path, including a failed assertion.

use gatehouse_announce::{AnnounceError, LinkSender, PnetSender, Schedule, frames};
use gatehouse_model::settings::Announce;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const ROLE: &str = "GATEHOUSE_NETNS_ROLE";
const IFACE: &str = "GATEHOUSE_NETNS_IFACE";
const SRC_MAC: &str = "GATEHOUSE_NETNS_SRC_MAC";
const MAC_A: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
/// The MAC B believes the VIPs are at before the announcement.
const OLD_MAC: &str = "02:00:5e:00:53:99";
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const FRAMES_PER_VIP: u32 = 3;
/// How long the receiver listens before giving up.
const RECEIVE_FOR: Duration = Duration::from_secs(10);

#[test]
fn pnet_sender_puts_exact_announcements_on_a_veth_link() {
    if let Some(reason) = missing_prerequisite() {
        eprintln!("skipped: {reason}");
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let ns = Namespaces::create();

    // B already maps both VIPs to another host's MAC: the failover case. The kernel must
    // accept our frames (ARP parsing; NA hop limit, checksum, Override flag) to update them.
    for vip in [VIP4.to_string(), VIP6.to_string()] {
        let args = [
            "-n", &ns.b, "neigh", "replace", &vip, "lladdr", OLD_MAC, "dev", "veth-b", "nud",
            "stale",
        ];
        let out = output(ip(&args));
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // ARP ignores a second update within `locktime` (1 s) of the first.
    let neigh_added = Instant::now();

    // Receiver in B, ready before anything is sent.
    let mut receiver = child_command(&ns.b, &exe, "receive", "veth-b")
        .env(SRC_MAC, hex(&MAC_A))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn receiver");
    let stdout = receiver.stdout.take().expect("piped stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready_by = Instant::now() + Duration::from_secs(10);
    loop {
        let left = ready_by.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            // libtest may print "test child_process_entry_point ... " on the same line.
            Ok(line) if line.ends_with("READY") => break,
            Ok(_) => continue,
            Err(error) => panic!("receiver never became ready: {error}"),
        }
    }

    std::thread::sleep(Duration::from_millis(1100).saturating_sub(neigh_added.elapsed()));

    // Sender in A, through the real Schedule and PnetSender.
    let sent = output(child_command(&ns.a, &exe, "send", "veth-a"));
    let sent_stdout = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success(),
        "sender failed:\n{sent_stdout}\n{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(
        sent_stdout.contains(&format!("MAC {}", hex(&MAC_A))),
        "PnetSender::mac must read veth-a's MAC:\n{sent_stdout}"
    );
    for (vip, reason) in [(IpAddr::V4(VIP4), "up"), (IpAddr::V6(VIP6), "up")] {
        let line = format!("COUNT {vip} veth-a {reason} sent={FRAMES_PER_VIP} errors=0");
        assert!(
            sent_stdout.contains(&line),
            "missing {line:?} in:\n{sent_stdout}"
        );
    }

    // Everything B saw from A's MAC.
    let mut received = Vec::new();
    for line in lines.iter() {
        if let Some((_, frame)) = line.split_once("FRAME ") {
            received.push(unhex(frame));
        }
    }
    let status = receiver.wait().expect("wait for receiver");
    assert!(status.success(), "receiver failed: {status}");

    let mut expected = Vec::new();
    for _ in 0..FRAMES_PER_VIP {
        expected.push(frames::gratuitous_arp(MAC_A, VIP4).to_vec());
        expected.push(frames::unsolicited_na(MAC_A, VIP6));
    }
    expected.sort();
    // veth does not pad, but a real NIC pads short frames to 60 bytes: allow zero padding.
    let mut trimmed: Vec<Vec<u8>> = received
        .iter()
        .map(
            |frame| match expected.iter().find(|want| frame.starts_with(want)) {
                Some(want) if frame[want.len()..].iter().all(|&b| b == 0) => want.clone(),
                _ => frame.clone(),
            },
        )
        .collect();
    trimmed.sort();
    assert_eq!(
        trimmed.iter().map(|f| hex(f)).collect::<Vec<_>>(),
        expected.iter().map(|f| hex(f)).collect::<Vec<_>>(),
        "frames captured on veth-b"
    );
    eprintln!(
        "captured on veth-b: {} frames, byte-identical to frames::*",
        trimmed.len()
    );

    // B's kernel accepted them: both neighbour entries now point at A.
    for vip in [VIP4.to_string(), VIP6.to_string()] {
        let out = output(ip(&[
            "-n", &ns.b, "neigh", "show", "to", &vip, "dev", "veth-b",
        ]));
        let entry = String::from_utf8_lossy(&out.stdout);
        assert!(
            entry.contains(&format!("lladdr {}", mac_text(&MAC_A))),
            "B's neighbour entry for {vip} was not updated to A's MAC: {entry:?}"
        );
        eprintln!("B's neighbour entry: {}", entry.trim());
    }

    // Without CAP_NET_RAW.
    if !which("setpriv") {
        eprintln!("skipped the CAP_NET_RAW check: setpriv is not installed");
    } else if !world_executable(&exe) {
        eprintln!(
            "skipped the CAP_NET_RAW check: nobody cannot execute {}",
            exe.display()
        );
    } else {
        let mut command = Command::new("ip");
        command
            .args([
                "netns",
                "exec",
                &ns.a,
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
            ])
            .args(["--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
            .arg(&exe)
            .args(CHILD_ARGS)
            .env(ROLE, "unprivileged")
            .env(IFACE, "veth-a");
        let out = output(command);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want =
            "ERROR sending a gratuitous ARP on veth-a needs CAP_NET_RAW: Operation not permitted";
        assert!(stdout.contains(want), "unprivileged sender:\n{stdout}");
        eprintln!("without CAP_NET_RAW: {want}");
    }

    let names = [ns.a.clone(), ns.b.clone()];
    drop(ns);
    let list = String::from_utf8_lossy(&output(ip(&["netns", "list"])).stdout).into_owned();
    for name in names {
        assert!(
            !list.contains(&name),
            "namespace {name} left behind: {list}"
        );
    }
}

/// The entry point of the child processes; does nothing unless `GATEHOUSE_NETNS_ROLE` is set.
#[test]
fn child_process_entry_point() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let iface = std::env::var(IFACE).expect("GATEHOUSE_NETNS_IFACE");
    match role.as_str() {
        "receive" => receive(&iface),
        "send" => send(&iface),
        "unprivileged" => unprivileged(&iface),
        other => panic!("unknown role {other}"),
    }
}

const CHILD_ARGS: [&str; 4] = [
    "--exact",
    "child_process_entry_point",
    "--nocapture",
    "--test-threads=1",
];

fn receive(iface: &str) {
    let src: [u8; 6] = unhex(&std::env::var(SRC_MAC).expect("source MAC"))
        .try_into()
        .expect("6-byte MAC");
    let link = pnet_datalink::interfaces()
        .into_iter()
        .find(|link| link.name == iface)
        .expect("receive interface");
    let config = pnet_datalink::Config {
        read_timeout: Some(Duration::from_millis(100)),
        ..Default::default()
    };
    let pnet_datalink::Channel::Ethernet(_tx, mut rx) =
        pnet_datalink::channel(&link, config).expect("AF_PACKET receiver")
    else {
        panic!("not an Ethernet channel");
    };
    say("READY");
    let want = 2 * FRAMES_PER_VIP as usize;
    let mut seen = 0;
    let deadline = Instant::now() + RECEIVE_FOR;
    while seen < want && Instant::now() < deadline {
        match rx.next() {
            Ok(frame) if is_announcement_from(frame, &src) => {
                say(&format!("FRAME {}", hex(frame)));
                seen += 1;
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
            Err(error) => panic!("receive on {iface}: {error}"),
        }
    }
}

/// ARP, or ICMPv6 type 136, from `src`.
fn is_announcement_from(frame: &[u8], src: &[u8; 6]) -> bool {
    frame.len() >= 42
        && frame[6..12] == src[..]
        && (frame[12..14] == [0x08, 0x06]
            || (frame[12..14] == [0x86, 0xdd]
                && frame.len() > 54
                && frame[20] == 58
                && frame[54] == 136))
}

fn send(iface: &str) {
    let sender = PnetSender::new();
    say(&format!(
        "MAC {}",
        hex(&sender.mac(iface).expect("MAC of the send interface"))
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let settings = Announce {
            garp_count: FRAMES_PER_VIP,
            garp_interval: Duration::from_millis(50),
            refresh_interval: Duration::ZERO,
            ..Announce::default()
        };
        let announcer = Schedule::new(Arc::new(sender), settings);
        announcer
            .announce_up(IpAddr::V4(VIP4), iface)
            .expect("announce IPv4");
        announcer
            .announce_up(IpAddr::V6(VIP6), iface)
            .expect("announce IPv6");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let counts: BTreeMap<_, _> = announcer.counts();
        for (key, counts) in counts {
            say(&format!(
                "COUNT {} {} {} sent={} errors={}",
                key.vip, key.interface, key.reason, counts.sent, counts.errors
            ));
        }
    });
}

fn unprivileged(iface: &str) {
    let frame = frames::gratuitous_arp(MAC_A, VIP4);
    match PnetSender::new().send(iface, &frame) {
        Ok(()) => say("SENT without CAP_NET_RAW"),
        Err(error @ AnnounceError::PermissionDenied { .. }) => say(&format!("ERROR {error}")),
        Err(error) => say(&format!("OTHER ERROR {error:?}")),
    }
}

fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // Best effort: the parent reports what it did not see.
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Two namespaces `gh-ann-<pid>-{a,b}` joined by veth-a/veth-b; deleted on drop.
struct Namespaces {
    a: String,
    b: String,
}

impl Namespaces {
    fn create() -> Namespaces {
        let pid = std::process::id();
        let ns = Namespaces {
            a: format!("gh-ann-{pid}-a"),
            b: format!("gh-ann-{pid}-b"),
        };
        ns.delete(); // leftovers of a killed run with the same pid
        let (a, b) = (ns.a.as_str(), ns.b.as_str());
        let mac = mac_text(&MAC_A);
        for args in [
            &["netns", "add", a][..],
            &["netns", "add", b],
            &[
                "link", "add", "veth-a", "netns", a, "type", "veth", "peer", "name", "veth-b",
                "netns", b,
            ],
            &["-n", a, "link", "set", "veth-a", "address", &mac],
            &["-n", a, "addr", "add", "192.0.2.1/24", "dev", "veth-a"],
            &["-n", b, "addr", "add", "192.0.2.2/24", "dev", "veth-b"],
            &["-n", a, "link", "set", "veth-a", "up"],
            &["-n", b, "link", "set", "veth-b", "up"],
        ] {
            let out = output(ip(args));
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ns
    }

    fn delete(&self) {
        for name in [&self.a, &self.b] {
            // Fails harmlessly when the namespace does not exist; the veths go with them.
            let _ = ip(&["netns", "del", name]).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.delete();
    }
}

fn child_command(ns: &str, exe: &std::path::Path, role: &str, iface: &str) -> Command {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(CHILD_ARGS)
        .env(ROLE, role)
        .env(IFACE, iface);
    command
}

fn ip(args: &[&str]) -> Command {
    let mut command = Command::new("ip");
    command.args(args);
    command
}

fn output(mut command: Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("run {command:?}: {error}"))
}

fn missing_prerequisite() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        return Some("needs root for network namespaces and AF_PACKET".into());
    }
    if !which("ip") {
        return Some("needs the `ip` command (iproute2)".into());
    }
    None
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Whether a user other than the owner can run `path` (every directory above it searchable).
fn world_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .all(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
