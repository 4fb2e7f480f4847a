//! The daemon tables, read from `gatehouse.toml` only: `[admin]`, `[log]`, `[runtime]`,
//! `[announce]`, `[ha]`, `[http]`, `[limits]`, `[forwarded]`, `[proxyProtocol]`
//! (docs/configuration.md, "Daemon settings").

use super::values::{
    AbsolutePath, Duration, InterfaceName, IpAddress, Network, Port, SocketAddress,
};
use schemars::JsonSchema;

/// The loopback admin listener: /metrics, /status, /explain, /healthz, /readyz.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Admin {
    /// Address and port of the admin listener: "127.0.0.1:9542" by default, or e.g.
    /// "[::1]:9542" (a change needs a restart).
    pub listen: Option<SocketAddress>,
    /// true: a `listen` address that is not loopback is intended, so it is no warning.
    /// Default false.
    pub allow_remote: Option<bool>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Logging.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Log {
    /// "text" (the default) or "json".
    pub format: Option<LogFormat>,
    /// A tracing EnvFilter, e.g. "info" (the default) or "info,gatehouse_proxy=debug";
    /// RUST_LOG overrides it.
    pub level: Option<String>,
    /// The access log: one line per request, connection or UDP flow. Default true.
    pub access_log: Option<bool>,
}

/// The process.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Runtime {
    /// Serving threads, 0 (the default) for one per core (a change needs a restart).
    #[schemars(range(max = 1024))]
    pub threads: Option<u16>,
    /// Where gatehouse keeps state across restarts. Default "/var/lib/gatehouse".
    pub state_dir: Option<AbsolutePath>,
    /// How long SIGTERM waits for connections to finish: 30s by default, at most 40s
    /// (below the unit's TimeoutStopSec=45).
    pub shutdown_grace: Option<Duration>,
    /// true: a file change may apply a configuration with no serving listener. Default
    /// false (`systemctl reload` always may).
    pub allow_empty_reload: Option<bool>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnnounceMode {
    #[serde(rename = "self")]
    SelfManaged,
    Keepalived,
}

/// How Gateway addresses (VIPs) are announced.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Announce {
    /// "self" (the default): gatehouse puts each VIP on its interface and announces it
    /// (gratuitous ARP, unsolicited neighbour advertisements); "keepalived": keepalived owns
    /// the addresses and gatehouse writes its configuration from [ha].
    pub mode: Option<AnnounceMode>,
    /// Announcements per VIP, 1 to 100. Default 3.
    #[schemars(range(min = 1, max = 100))]
    pub garp_count: Option<u32>,
    /// The time between them (mode "self"), greater than 0s. Default 1s.
    pub garp_interval: Option<Duration>,
    /// How often every VIP is announced again; "0s" disables. Default 60s.
    pub refresh_interval: Option<Duration>,
    /// How often a VIP that could not be used is tried again, at least 1s. Default 10s.
    pub conflict_retry: Option<Duration>,
}

/// VRRP with keepalived, when `[announce] mode = "keepalived"`.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ha {
    /// The other boxes' addresses on the shared link (unicast VRRP); empty (the default):
    /// multicast.
    pub peers: Option<Vec<IpAddress>>,
    /// 1 to 254; the live box with the highest priority holds the addresses. Default 100.
    #[schemars(range(min = 1, max = 254))]
    pub priority: Option<u8>,
    /// virtual_router_id of the first instance, 1 to 255; the others count up. Default 51.
    #[schemars(range(min = 1, max = 255))]
    pub router_id_base: Option<u8>,
    /// The interface of every instance; default: each Gateway address's own.
    pub interface: Option<InterfaceName>,
    /// true: a box that comes back takes the addresses back. Default false (nopreempt).
    pub preempt: Option<bool>,
    /// 3 (the default), or 2 only for authPass (whole-second adverts).
    #[schemars(range(min = 2, max = 3))]
    pub vrrp_version: Option<u8>,
    /// VRRP adverts. VRRPv3: 10ms to 40950ms in 10ms steps (default 100ms); VRRPv2: whole
    /// seconds.
    pub advert_interval: Option<Duration>,
    /// VRRPv2 simple password, 1 to 8 characters; never shown in /status.
    #[schemars(length(min = 1, max = 8))]
    pub auth_pass: Option<String>,
    /// Where the keepalived configuration is written. Default
    /// "/etc/keepalived/conf.d/gatehouse.conf".
    pub keepalived_config: Option<AbsolutePath>,
    /// keepalived gets SIGHUP through it when the file changed. Default "/run/keepalived.pid".
    pub keepalived_pid_file: Option<AbsolutePath>,
    /// The user keepalived runs the readiness check as. Default "gatehouse".
    #[schemars(length(min = 1, max = 32))]
    pub script_user: Option<String>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EscapedSlashes {
    Keep,
    Reject,
}

/// Request path handling.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Http {
    /// Merge repeated '/' in request paths. Default true.
    pub merge_slashes: Option<bool>,
    /// "keep" (the default): %2F and %5C stay encoded; "reject": answer 400.
    pub escaped_slashes: Option<EscapedSlashes>,
    /// HTTP/2 with prior knowledge on plaintext ports. Default true.
    pub h2c: Option<bool>,
}

/// Bounds on clients and backends.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Open client connections; more are accepted and closed at once. Default 10000.
    #[schemars(range(min = 1, max = 10_000_000))]
    pub max_connections: Option<u32>,
    /// Request line and headers, 1024 bytes to 1 MiB; over it: 431. Default 32768.
    #[schemars(range(min = 1024, max = 1_048_576))]
    pub max_request_header_bytes: Option<u32>,
    /// Request header fields; more: 431. Default 100.
    #[schemars(range(min = 1, max = 1000))]
    pub max_request_headers: Option<u32>,
    /// A request body in bytes; larger: 413. Default 0 (unlimited).
    pub max_request_body_bytes: Option<u64>,
    /// Concurrent HTTP/2 streams per connection. Default 100.
    #[schemars(range(min = 1, max = 10_000))]
    pub h2_max_concurrent_streams: Option<u32>,
    /// RequestMirror copies in flight; more are dropped. Default 256.
    #[schemars(range(max = 1_000_000))]
    pub max_mirrors_in_flight: Option<u32>,
    /// Open UDP flows; a datagram that would start another is dropped. Default 10000.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub udp_max_flows: Option<u32>,
    /// The whole request head must arrive within it; else 408. Default 10s.
    pub request_header_timeout: Option<Duration>,
    /// A keep-alive connection waiting for its next request is closed after it. Default 60s.
    pub idle_timeout: Option<Duration>,
    /// A spliced connection (TLS passthrough, TLS Terminate to TCP, TCPRoute) silent both
    /// ways for this long is closed. Default 10m.
    pub passthrough_idle_timeout: Option<Duration>,
    /// A UDP flow silent both ways for this long ends; a UDPRoute rule's timeouts.idle
    /// overrides it. Default 60s.
    pub udp_idle_timeout: Option<Duration>,
    /// When a rule sets no timeouts: a backend silent this long while the request waits
    /// gets 504; "0s": wait forever. Default 60s.
    pub backend_response_timeout: Option<Duration>,
    /// TCP keepalive on client and backend sockets; "0s" turns it off. Default 60s.
    pub tcp_keepalive: Option<Duration>,
}

/// Forwarding headers (Forwarded, X-Forwarded-*).
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Forwarded {
    /// Addresses or CIDR blocks whose forwarding headers are believed. Default none.
    pub trusted_proxies: Option<Vec<Network>>,
}

/// The PROXY protocol on listener ports.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProtocol {
    /// Ports whose connections start with a PROXY protocol header (v1 or v2); needs
    /// trustedSources.
    pub ports: Option<Vec<Port>>,
    /// The load balancers' addresses or CIDR blocks; any other peer on those ports is closed.
    pub trusted_sources: Option<Vec<Network>>,
}
