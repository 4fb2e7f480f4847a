//! Helpers for `ha.rs`: a box (a namespace of [`crate::vips::Net`] running `gatehouse run`
//! in `[announce] mode = "keepalived"`, its `gatehouse echo` backend and keepalived), the
//! gatehouse and keepalived configurations, and the client (`client.rs`).
//!
//! The include file keepalived reads is the one gatehouse writes (`[ha] keepalivedConfig`);
//! keepalived's own main file only enables script security and includes it, as
//! `etc/gatehouse/examples/keepalived.conf` does.

pub mod client;

use crate::vips::{
    Capture, DEADLINE, GARP_COUNT, Gatehouse, Host, Proc, VIP4, VIP6, curl, echo_service, gateway,
    has_addr, parse_arp, start_echo,
};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The VIPs the two boxes share: IPv4 first (the one asked for by ARP), then IPv6.
pub const VIPS: [&str; 2] = [VIP4, VIP6];

/// One box's `[ha]`: its priority, the other box's addresses and whether to preempt.
#[derive(Clone, Debug)]
pub struct HaSettings {
    pub priority: u8,
    pub peers: [String; 2],
    pub preempt: bool,
}

/// The gatehouse.toml of a box: the same on both boxes apart from `[ha]` priority and peers
/// and the paths of this box's files.
pub fn gatehouse_toml(gh: &Gatehouse, files: &Path, ha: &HaSettings) -> String {
    format!(
        r#"[admin]
listen = "127.0.0.1:9542"

[runtime]
stateDir = "{state}"
shutdownGrace = "2s"

[announce]
mode = "keepalived"
garpCount = {GARP_COUNT}

[ha]
peers = ["{peer4}", "{peer6}"]
priority = {priority}
preempt = {preempt}
keepalivedConfig = "{include}"
keepalivedPidFile = "{pid}"
scriptUser = "root"

[log]
accessLog = false
{gateway}{service}"#,
        state = gh.state_dir().display(),
        peer4 = ha.peers[0],
        peer6 = ha.peers[1],
        priority = ha.priority,
        preempt = ha.preempt,
        include = files.join("gatehouse.conf").display(),
        pid = files.join("keepalived.pid").display(),
        gateway = gateway("gw", &[(VIP4, None), (VIP6, None)]),
        service = echo_service(),
    )
}

/// keepalived's main configuration: script security, and the include file gatehouse writes.
pub fn keepalived_main(include: &Path) -> String {
    format!(
        "global_defs {{\n    enable_script_security\n}}\ninclude {}\n",
        include.display()
    )
}

/// `keepalived --dont-fork --vrrp` in a namespace, logging to its output. On drop (or
/// [`Keepalived::stop`]) SIGTERM, which releases its addresses; its VRRP child is killed by
/// pid if it outlived the parent.
#[derive(Debug)]
pub struct Keepalived {
    proc: Proc,
    vrrp_pid: PathBuf,
    stopped: bool,
}

impl Keepalived {
    pub fn start(ns: &str, files: &Path) -> Keepalived {
        let main = files.join("keepalived.conf");
        std::fs::write(&main, keepalived_main(&files.join("gatehouse.conf")))
            .expect("write keepalived.conf");
        let vrrp_pid = files.join("vrrp.pid");
        let path = |name: &str| files.join(name).display().to_string();
        let args = [
            "--dont-fork".to_string(),
            "--log-console".into(),
            "--log-detail".into(),
            "--no-syslog".into(),
            "--vrrp".into(),
            "--use-file".into(),
            main.display().to_string(),
            "--pid".into(),
            path("keepalived.pid"),
            "--vrrp_pid".into(),
            vrrp_pid.display().to_string(),
            "--checkers_pid".into(),
            path("checkers.pid"),
        ];
        let proc = Proc::spawn(ns, Path::new("keepalived"), args, &[]);
        let k = Keepalived {
            proc,
            vrrp_pid,
            stopped: false,
        };
        let pid_file = files.join("keepalived.pid");
        assert!(
            crate::vips::wait_until(DEADLINE, || pid_file.exists()),
            "keepalived never wrote {}:\n{}",
            pid_file.display(),
            k.proc.log()
        );
        k
    }

    pub fn line_count(&self) -> usize {
        self.proc.line_count()
    }

    pub fn lines_since(&self, from: usize) -> Vec<(Instant, String)> {
        self.proc.lines_since(from)
    }

    /// Waits for a log line from index `from` on that contains `needle`.
    pub fn wait_line(&mut self, from: usize, needle: &str) -> Instant {
        self.proc.wait_line(from, needle).0
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    pub fn stop(mut self) -> String {
        let status = self.proc.stop();
        self.stopped = true;
        self.reap_child();
        format!("{}\n(exit {status})", self.proc.log())
    }

    /// The VRRP child, if it is still there after the parent left (it should not be).
    fn reap_child(&self) {
        let Some(pid) = std::fs::read_to_string(&self.vrrp_pid)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        else {
            return;
        };
        let gone = crate::vips::wait_until(Duration::from_secs(3), || {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map_or(true, |comm| comm.trim() != "keepalived")
        });
        if !gone {
            eprintln!("keepalived's VRRP child {pid} outlived its parent: SIGKILL");
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.proc.stop();
            self.reap_child();
        }
    }
}

/// One of the two boxes. Fields drop in order: keepalived first (it takes its addresses
/// off), then gatehouse, the echo backend, and last the folder of keepalived's files.
#[derive(Debug)]
pub struct HaBox {
    pub keepalived: Option<Keepalived>,
    pub gh: Gatehouse,
    _echo: Proc,
    pub host: Host,
    pub name: String,
    pub echo: String,
    pub ha: HaSettings,
    files: tempfile::TempDir,
}

impl HaBox {
    /// Starts the echo backend and gatehouse (which writes the include file); keepalived is
    /// started separately ([`HaBox::start_keepalived`]).
    pub fn new(host: &Host, name: &str, ha: HaSettings) -> HaBox {
        let echo = format!("echo-{name}");
        let echo_proc = start_echo(&host.ns, &echo);
        let files = tempfile::tempdir().expect("keepalived tempdir");
        let mut b = HaBox {
            keepalived: None,
            gh: Gatehouse::new(&host.ns),
            _echo: echo_proc,
            host: host.clone(),
            name: name.to_string(),
            echo,
            ha,
            files,
        };
        b.gh.write(&gatehouse_toml(&b.gh, b.files.path(), &b.ha));
        b.gh.start();
        let include = b.include_path();
        assert!(
            crate::vips::wait_until(DEADLINE, || include.exists()),
            "gatehouse on {name} never wrote {}:\n{}",
            include.display(),
            b.gh.log()
        );
        b
    }

    pub fn include_path(&self) -> PathBuf {
        self.files.path().join("gatehouse.conf")
    }

    pub fn include(&self) -> String {
        std::fs::read_to_string(self.include_path()).unwrap_or_default()
    }

    /// `gatehouse_<iface>_ipv4|ipv6`: the VRRP instance of `vip` on this box.
    pub fn instance(&self, vip: &str) -> String {
        let family = if vip.contains(':') { "ipv6" } else { "ipv4" };
        format!("gatehouse_{}_{family}", self.host.iface.replace('-', "_"))
    }

    pub fn start_keepalived(&mut self) {
        assert!(self.keepalived.is_none(), "keepalived already runs");
        self.keepalived = Some(Keepalived::start(&self.host.ns, self.files.path()));
    }

    pub fn keepalived(&mut self) -> &mut Keepalived {
        self.keepalived.as_mut().expect("keepalived runs")
    }

    /// Log lines of keepalived so far (0 when it does not run).
    pub fn mark(&self) -> usize {
        self.keepalived.as_ref().map_or(0, Keepalived::line_count)
    }

    /// Waits until keepalived logs that both instances entered `state` (BACKUP, MASTER,
    /// FAULT) after its line `from`.
    pub fn wait_state(&mut self, from: usize, state: &str) {
        for vip in VIPS {
            let needle = format!("({}) Entering {state} STATE", self.instance(vip));
            self.keepalived().wait_line(from, &needle);
        }
    }

    /// Whether this box has every VIP (`true`) or none (`false`); `None` in between.
    pub fn holds(&self) -> Option<bool> {
        let held = VIPS.iter().filter(|v| has_addr(&self.host.ns, v)).count();
        match held {
            0 => Some(false),
            n if n == VIPS.len() => Some(true),
            _ => None,
        }
    }

    /// Rewrites gatehouse.toml with `ha`; gatehouse rewrites the include file and reloads
    /// keepalived. Returns when the include file shows the change.
    pub fn reconfigure(&mut self, ha: HaSettings) {
        self.ha = ha;
        let text = gatehouse_toml(&self.gh, self.files.path(), &self.ha);
        let from = self.gh.proc().line_count();
        self.gh.write(&text);
        self.gh.proc().wait_line(from, "keepalived reloaded");
    }

    /// The role `/status` shows for `vip` (`MASTER`, `BACKUP`, ...), if any.
    pub fn status_role(&self, vip: &str) -> Option<String> {
        let body = curl(
            &self.host.ns,
            "http://127.0.0.1:9542/status",
            Duration::from_secs(2),
        )
        .ok()?;
        let status: serde_json::Value = serde_json::from_str(&body).ok()?;
        status["status"]["gateways"]
            .as_array()?
            .iter()
            .flat_map(|g| g["vips"].as_array().cloned().unwrap_or_default())
            .find(|v| v["address"] == vip)
            .and_then(|v| v["role"].as_str().map(str::to_string))
    }

    /// `gatehouse_vip_active{address="<vip>"}` of `/metrics`, if present.
    pub fn vip_active(&self, vip: &str) -> Option<String> {
        let body = curl(
            &self.host.ns,
            "http://127.0.0.1:9542/metrics",
            Duration::from_secs(2),
        )
        .ok()?;
        let needle = format!("gatehouse_vip_active{{address=\"{vip}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .map(|v| v.trim().to_string())
    }
}

/// One ARP request for the IPv4 VIP from the client and the replies that followed it before the
/// next request: (arrival, sender MAC) each.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub at: Instant,
    pub replies: Vec<(Instant, [u8; 6])>,
}

/// The client's ARP requests for the IPv4 VIP (its own and its kernel's) in the capture, each
/// with the replies to it.
pub fn arp_exchanges(capture: &Capture, client: &Host) -> Vec<Exchange> {
    let vip: Ipv4Addr = VIP4.parse().expect("IPv4 VIP");
    let me: Ipv4Addr = client.v4.parse().expect("IPv4 client");
    let mut exchanges: Vec<Exchange> = Vec::new();
    for (at, frame) in capture.frames() {
        let Some(arp) = parse_arp(&frame) else {
            continue;
        };
        if arp.op == 1 && arp.sender_ip == me && arp.target_ip == vip {
            exchanges.push(Exchange {
                at,
                replies: Vec::new(),
            });
        } else if arp.op == 2
            && arp.sender_ip == vip
            && arp.target_ip == me
            && let Some(last) = exchanges.last_mut()
        {
            last.replies.push((at, arp.sender_mac));
        }
    }
    exchanges
}
