//! The client of `ha.rs`: this test binary re-run inside the client namespace (role
//! `client`), which GETs each VIP over a new connection every [`EVERY`] and asks who has the
//! IPv4 one by ARP every [`ARP_EVERY`]; and the parent's side, which reads its answers back.
//!
//! Each request runs on a thread of its own, so a request that hangs until its timeout
//! delays no other: the client keeps sampling every 10 ms through an outage. Times are
//! wall-clock microseconds ([`now_us`]), comparable between the two processes.

use crate::vips::{CHILD_ARGS, Host, IFACE, Proc, ROLE, parse_mac};
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the client starts a request.
pub const EVERY: Duration = Duration::from_millis(10);
/// Connect and answer, together, within this or the request counts as failed.
pub const TIMEOUT: Duration = Duration::from_millis(200);
/// How often the client sends an ARP request for the VIP.
pub const ARP_EVERY: Duration = Duration::from_millis(50);
/// How long a client child runs at most if nobody stops it.
const LIFETIME: Duration = Duration::from_secs(300);

const VIPS: &str = "GATEHOUSE_HA_VIPS";
const MAC: &str = "GATEHOUSE_HA_MAC";
const SOURCE: &str = "GATEHOUSE_HA_SOURCE";

/// Wall-clock microseconds since the epoch.
pub fn now_us() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

/// Milliseconds between two [`now_us`] times, for messages.
pub fn ms(from: u64, to: u64) -> f64 {
    (to as f64 - from as f64) / 1000.0
}

/// One request: to which VIP, when it started and ended, and the echo backend's name or why
/// none.
#[derive(Clone, Debug)]
pub struct Answer {
    pub vip: String,
    pub start: u64,
    pub end: u64,
    pub result: Result<String, String>,
}

impl Answer {
    pub fn from(&self, name: &str) -> bool {
        self.result.as_deref() == Ok(name)
    }
}

/// The running client child.
#[derive(Debug)]
pub struct Client {
    proc: Proc,
}

impl Client {
    /// Starts the client in `host`'s namespace against `vips` (the first one IPv4, asked
    /// for by ARP too) and waits until it runs.
    pub fn start(host: &Host, vips: &[&str]) -> Client {
        let vips = vips.join(",");
        let exe = std::env::current_exe().expect("test binary path");
        let mut proc = Proc::spawn(
            &host.ns,
            &exe,
            CHILD_ARGS,
            &[
                (ROLE, "client"),
                (IFACE, &host.iface),
                (VIPS, &vips),
                (MAC, &host.mac),
                (SOURCE, &host.v4),
            ],
        );
        proc.wait_line(0, "CLIENT READY");
        Client { proc }
    }

    /// Every answer for `vip` so far, in the order the requests started.
    pub fn answers(&self, vip: &str) -> Vec<Answer> {
        let mut all: Vec<Answer> = self
            .proc
            .lines_since(0)
            .iter()
            .filter_map(|(_, line)| parse(line))
            .filter(|a| a.vip == vip)
            .collect();
        all.sort_by_key(|a| a.start);
        all
    }

    /// Answers for `vip` of requests that ended at or after `since`.
    pub fn answers_since(&self, vip: &str, since: u64) -> Vec<Answer> {
        let mut all = self.answers(vip);
        all.retain(|a| a.end >= since);
        all
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let all = self.proc.lines_since(0);
        let from = all.len().saturating_sub(lines);
        all[from..]
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `R <vip> <start> <end> ok <name>` or `R <vip> <start> <end> err <why>`.
fn parse(line: &str) -> Option<Answer> {
    let rest = &line[line.find("R ")? + 2..];
    let mut words = rest.splitn(5, ' ');
    let vip = words.next()?.to_string();
    let start = words.next()?.parse().ok()?;
    let end = words.next()?.parse().ok()?;
    let result = match (words.next()?, words.next().unwrap_or("")) {
        ("ok", name) => Ok(name.to_string()),
        (_, why) => Err(why.to_string()),
    };
    Some(Answer {
        vip,
        start,
        end,
        result,
    })
}

/// The child side: runs until killed, until `LIFETIME`, or until nobody reads its output.
pub fn client() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let iface = var(IFACE);
    let vips: Vec<IpAddr> = var(VIPS)
        .split(',')
        .map(|v| v.parse().expect("VIPs"))
        .collect();
    let Some(IpAddr::V4(vip)) = vips.first().copied() else {
        panic!("the first VIP must be IPv4: {vips:?}");
    };
    let mac = parse_mac(&var(MAC));
    let source: Ipv4Addr = var(SOURCE).parse().expect("an IPv4 source");
    let link = pnet_datalink::interfaces()
        .into_iter()
        .find(|link| link.name == iface)
        .unwrap_or_else(|| panic!("no interface {iface}"));
    let pnet_datalink::Channel::Ethernet(mut tx, _rx) =
        pnet_datalink::channel(&link, pnet_datalink::Config::default()).expect("AF_PACKET socket")
    else {
        panic!("not an Ethernet channel");
    };
    let request = arp_request(mac, source, vip);
    std::thread::spawn(move || {
        loop {
            if let Some(Err(error)) = tx.send_to(&request, None) {
                eprintln!("ARP request not sent: {error}");
            }
            std::thread::sleep(ARP_EVERY);
        }
    });
    if say("CLIENT READY").is_err() {
        return;
    }
    let began = Instant::now();
    let mut next = began;
    while began.elapsed() < LIFETIME {
        for &ip in &vips {
            let target = SocketAddr::new(ip, 80);
            std::thread::spawn(move || {
                let start = now_us();
                let result = get(target);
                let end = now_us();
                let line = match result {
                    Ok(name) => format!("R {ip} {start} {end} ok {name}"),
                    Err(why) => format!("R {ip} {start} {end} err {why}"),
                };
                if say(&line).is_err() {
                    std::process::exit(0);
                }
            });
        }
        next += EVERY;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// An ARP request (who has `vip`, tell `source`) from `mac`, broadcast.
fn arp_request(mac: [u8; 6], source: Ipv4Addr, vip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&source.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&vip.octets());
    f
}

/// One GET over a new connection, HTTP/1.0 (so the body ends with the connection): the echo
/// backend's name, or what went wrong.
fn get(target: SocketAddr) -> Result<String, String> {
    let deadline = Instant::now() + TIMEOUT;
    let mut stream = TcpStream::connect_timeout(&target, TIMEOUT).map_err(|e| e.to_string())?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream
        .set_write_timeout(Some(left()))
        .and_then(|()| stream.write_all(b"GET / HTTP/1.0\r\nHost: ha.test\r\n\r\n"))
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        stream
            .set_read_timeout(Some(left()))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
        if Instant::now() >= deadline {
            return Err("timed out reading".into());
        }
    }
    let text = String::from_utf8_lossy(&response);
    let status = text.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        return Err(format!("status {status:?}"));
    }
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = body
        .find('{')
        .zip(body.rfind('}'))
        .map_or("", |(from, to)| &body[from..=to]);
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not echo JSON ({e})"))?;
    value["name"]
        .as_str()
        .map(|n| n.replace(' ', "_"))
        .ok_or_else(|| "no name in the echo".into())
}

fn say(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}
