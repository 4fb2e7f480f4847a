//! Daemon settings: the `[admin]`, `[log]`, `[runtime]`, `[announce]`, `[ha]`, `[http]`,
//! `[limits]`, `[forwarded]` and `[proxyProtocol]` tables of `gatehouse.toml`, with the defaults an operator gets when a
//! table or key is absent.

use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub admin: Admin,
    pub log: Log,
    pub runtime: Runtime,
    pub announce: Announce,
    pub ha: Ha,
    pub http: Http,
    pub limits: Limits,
    pub forwarded: Forwarded,
    pub proxy_protocol: ProxyProtocol,
}

/// The admin listener: `/metrics`, `/status`, `/healthz`, `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Admin {
    pub listen: SocketAddr,
    /// A non-loopback `listen` is intended (else it is warned about).
    pub allow_remote: bool,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9542)),
            allow_remote: false,
        }
    }
}

impl Admin {
    /// The warning an operator gets when the admin listener is reachable from the network
    /// without `allowRemote = true`.
    pub fn remote_warning(&self) -> Option<String> {
        (!self.listen.ip().is_loopback() && !self.allow_remote).then(|| {
            format!(
                "the admin listener {} is not on a loopback address: /status and /metrics are open to the network; keep it on 127.0.0.1 or set [admin] allowRemote = true",
                self.listen
            )
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Log {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive; `RUST_LOG` overrides it.
    pub level: String,
    pub access_log: bool,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: LogFormat::Text,
            level: "info".into(),
            access_log: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Runtime {
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Where sticky pool allocations are kept.
    pub state_dir: PathBuf,
    /// How long SIGTERM waits for in-flight requests and connections.
    pub shutdown_grace: Duration,
    /// Whether a reload started by a file change may remove every Gateway or every serving
    /// listener (a SIGHUP, i.e. `systemctl reload`, always may).
    pub allow_empty_reload: bool,
}

impl Runtime {
    /// `TimeoutStopSec` of the shipped systemd unit (systemd/gatehouse.service).
    pub const UNIT_TIMEOUT_STOP: Duration = Duration::from_secs(45);
    /// The longest `shutdownGrace`: the drain, then taking VIPs off and exiting, must end
    /// before systemd's stop timeout kills the process.
    pub const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(40);
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            threads: 0,
            state_dir: PathBuf::from("/var/lib/gatehouse"),
            shutdown_grace: Duration::from_secs(30),
            allow_empty_reload: false,
        }
    }
}

/// Who puts the Gateways' addresses on this box's interfaces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnounceMode {
    /// gatehouse adds each VIP to its interface and announces it (one box per address).
    #[default]
    #[serde(rename = "self")]
    SelfManaged,
    /// keepalived owns the addresses (VRRP between boxes); gatehouse writes its
    /// configuration (`[ha]`), binds the addresses whether present or not, and never adds,
    /// removes or announces them.
    Keepalived,
}

/// Gratuitous ARP / unsolicited neighbour advertisement schedule for VIPs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Announce {
    pub mode: AnnounceMode,
    pub garp_count: u32,
    pub garp_interval: Duration,
    /// Zero disables the periodic re-announcement.
    pub refresh_interval: Duration,
    /// How often a VIP that could not be used (another host answered for it, no interface
    /// holds it, ...) is tried again.
    pub conflict_retry: Duration,
}

impl Default for Announce {
    fn default() -> Self {
        Announce {
            mode: AnnounceMode::SelfManaged,
            garp_count: 3,
            garp_interval: Duration::from_secs(1),
            refresh_interval: Duration::from_secs(60),
            conflict_retry: Duration::from_secs(10),
        }
    }
}

/// `[ha]`: the keepalived (VRRP) configuration gatehouse writes when `[announce] mode =
/// "keepalived"`. Every box of a pair gets the same Gateways; `priority` and `peers` differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ha {
    /// Unicast VRRP peers (each instance takes those of its address family); none means
    /// multicast adverts (224.0.0.18, ff02::12).
    pub peers: Vec<IpAddr>,
    /// This box's VRRP priority, 1 to 254; the highest live box holds the addresses.
    pub priority: u8,
    /// `virtual_router_id` of the first instance; the others count up from it.
    pub router_id_base: u8,
    /// The interface of every instance, instead of the one whose subnet holds each address.
    pub interface: Option<String>,
    /// VRRP advertisement interval: the backup takes over after about 3.5 of them.
    pub advert_interval: Duration,
    /// Whether a higher-priority box that comes back takes the addresses back.
    pub preempt: bool,
    /// VRRP version: 3 (sub-second adverts, IPv6) or 2 (whole seconds; authentication).
    pub vrrp_version: u8,
    /// VRRPv2 simple password (`authentication { auth_type PASS }`); never shown in status.
    #[serde(skip)]
    pub auth_pass: Option<String>,
    /// The include file gatehouse writes on every applied configuration.
    pub keepalived_config: PathBuf,
    /// keepalived's pid file: the process gets SIGHUP when the include file changed.
    pub keepalived_pid_file: PathBuf,
    /// The user keepalived runs the readiness check as.
    pub script_user: String,
}

impl Ha {
    /// The shortest advert interval keepalived accepts (VRRPv3 counts centiseconds).
    pub const MIN_ADVERT_INTERVAL: Duration = Duration::from_millis(10);
    /// The longest VRRPv3 advert interval (12 bits of centiseconds).
    pub const MAX_ADVERT_INTERVAL_V3: Duration = Duration::from_millis(40_950);
    /// How long the readiness check holds its request to gatehouse: it answers at once when
    /// gatehouse dies or stops being ready, else after this, within keepalived's one-second
    /// script interval.
    pub const READY_HOLD: Duration = Duration::from_millis(800);
}

impl Default for Ha {
    fn default() -> Self {
        Ha {
            peers: Vec::new(),
            priority: 100,
            router_id_base: 51,
            interface: None,
            advert_interval: Duration::from_millis(100),
            preempt: false,
            vrrp_version: 3,
            auth_pass: None,
            keepalived_config: PathBuf::from("/etc/keepalived/conf.d/gatehouse.conf"),
            keepalived_pid_file: PathBuf::from("/run/keepalived.pid"),
            script_user: "gatehouse".into(),
        }
    }
}

/// `[http]`: how requests are read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Http {
    /// Path normalization (`mergeSlashes`, `escapedSlashes`).
    pub path: crate::path::PathOptions,
    /// HTTP/2 with prior knowledge on plaintext ports.
    pub h2c: bool,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            path: crate::path::PathOptions::default(),
            h2c: true,
        }
    }
}

/// `[limits]`: what one client, or all of them, may hold. Each default is chosen against
/// nginx, HAProxy and Envoy (docs/configuration.md cites them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Client connections open at once, process-wide; above it new ones are closed at once.
    pub max_connections: usize,
    /// The request line and headers together (HTTP/1), or the header list (HTTP/2): 431.
    pub max_request_header_bytes: usize,
    /// Header fields of one request: 431.
    pub max_request_headers: usize,
    /// The whole request head must arrive within this, from its first byte.
    pub request_header_timeout: Duration,
    /// A connection with no request in flight is closed after this (HTTP/1 keep-alive and
    /// HTTP/2 alike).
    pub idle_timeout: Duration,
    /// Request body size: 413 above it; 0 is unlimited.
    pub max_request_body_bytes: u64,
    /// Concurrent streams one HTTP/2 client connection may open.
    pub h2_max_concurrent_streams: u32,
    /// How long a backend may take to send each part of its response when the route sets no
    /// `timeouts` (504); zero waits forever.
    pub backend_response_timeout: Duration,
    /// A passthrough connection with no bytes either way for this long is closed.
    pub passthrough_idle_timeout: Duration,
    /// A UDP flow (one client address and port) with no datagram either way for this long
    /// ends; a UDPRoute rule's `timeouts.idle` overrides it.
    pub udp_idle_timeout: Duration,
    /// UDP flows open at once, process-wide; a datagram that would start another is dropped.
    pub udp_max_flows: usize,
    /// TCP keepalive idle time on client and backend sockets; zero turns keepalive off.
    pub tcp_keepalive: Duration,
    /// RequestMirror copies in flight at once; more are dropped (and counted).
    pub max_mirrors_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_request_header_bytes: 32 * 1024,
            max_request_headers: 100,
            request_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_request_body_bytes: 0,
            h2_max_concurrent_streams: 100,
            backend_response_timeout: Duration::from_secs(60),
            passthrough_idle_timeout: Duration::from_secs(600),
            udp_idle_timeout: Duration::from_secs(60),
            udp_max_flows: 10_000,
            tcp_keepalive: Duration::from_secs(60),
            max_mirrors_in_flight: 256,
        }
    }
}

/// `[proxyProtocol]`: ports whose connections start with a PROXY protocol header (v1 or v2)
/// from a load balancer in front of gatehouse, and which peers may send one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProxyProtocol {
    pub ports: Vec<u16>,
    /// Peers allowed to connect to those ports; anyone else is closed at once, since a PROXY
    /// header lets its sender claim any client address.
    pub trusted_sources: Vec<ipnet::IpNet>,
}

impl ProxyProtocol {
    /// Whether connections to `port` carry a PROXY header.
    pub fn expects(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }

    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_sources.iter().any(|n| n.contains(&ip))
    }
}

/// `[forwarded]`: whose forwarding headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Forwarded {
    /// Peers whose `X-Forwarded-*`, `Forwarded` and `X-Real-IP` are kept and appended to;
    /// from every other peer they are removed and set from the connection.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Forwarded {
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_listener_off_loopback_is_a_warning_unless_allowed() {
        let mut admin = Admin::default();
        assert_eq!(admin.remote_warning(), None);
        admin.listen = "[::1]:9542".parse().unwrap();
        assert_eq!(admin.remote_warning(), None);
        admin.listen = "0.0.0.0:9542".parse().unwrap();
        assert!(
            admin
                .remote_warning()
                .unwrap()
                .contains("allowRemote = true")
        );
        admin.allow_remote = true;
        assert_eq!(admin.remote_warning(), None);
    }

    #[test]
    fn the_shutdown_grace_cap_stays_below_the_shipped_units_stop_timeout() {
        let unit = include_str!("../../../systemd/gatehouse.service");
        let stop = unit
            .lines()
            .find_map(|l| l.strip_prefix("TimeoutStopSec="))
            .expect("the unit sets TimeoutStopSec");
        assert_eq!(
            stop.trim().parse::<u64>().ok(),
            Some(Runtime::UNIT_TIMEOUT_STOP.as_secs())
        );
        assert!(Runtime::MAX_SHUTDOWN_GRACE + Duration::from_secs(5) <= Runtime::UNIT_TIMEOUT_STOP);
        assert!(Runtime::default().shutdown_grace <= Runtime::MAX_SHUTDOWN_GRACE);
    }
}
