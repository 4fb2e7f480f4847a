//! Daemon settings: the `[admin]`, `[log]`, `[runtime]` and `[announce]` tables of
//! `gatehouse.toml`, with the defaults an operator gets when a table or key is absent.

use serde::Serialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub admin: Admin,
    pub log: Log,
    pub runtime: Runtime,
    pub announce: Announce,
}

/// The admin listener: `/metrics`, `/status`, `/healthz`, `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Admin {
    pub listen: SocketAddr,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9542)),
        }
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
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            threads: 0,
            state_dir: PathBuf::from("/var/lib/gatehouse"),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Gratuitous ARP / unsolicited neighbour advertisement schedule for VIPs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Announce {
    pub garp_count: u32,
    pub garp_interval: Duration,
    /// Zero disables the periodic re-announcement.
    pub refresh_interval: Duration,
}

impl Default for Announce {
    fn default() -> Self {
        Announce {
            garp_count: 3,
            garp_interval: Duration::from_secs(1),
            refresh_interval: Duration::from_secs(60),
        }
    }
}
