//! The daemon tables of `gatehouse.toml`: `[admin]`, `[log]`, `[runtime]`, `[announce]`,
//! `[ha]` (in `ha.rs`), `[http]`, `[limits]`, `[forwarded]`, `[proxyProtocol]`.

use super::{duration, one_of};
use crate::decode::{Cx, Table, Value};
use gatehouse_model::path::EscapedSlashes;
use gatehouse_model::settings::{AnnounceMode, Limits, LogFormat, Runtime, Settings};
use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub(super) fn parse(cx: &mut Cx<'_>, name: &str, v: &Value<'_, '_>, s: &mut Settings) {
    let Some(mut t) = v.table(cx) else {
        return;
    };
    match name {
        "admin" => {
            if let Some(v) = t.get("listen")
                && let Some(text) = v.str(cx)
            {
                match text.parse::<SocketAddr>() {
                        Ok(addr) => s.admin.listen = addr,
                        Err(_) => v.error(
                            cx,
                            format!("\"{text}\" is not an address and port, e.g. \"127.0.0.1:9542\" or \"[::1]:9542\""),
                        ),
                    }
            }
            if let Some(b) = t.opt_bool(cx, "allowRemote") {
                s.admin.allow_remote = b;
            }
        }
        "log" => {
            if let Some(v) = t.get("format")
                && let Some(f) = one_of(cx, &v, &["text", "json"])
            {
                s.log.format = if f == "json" {
                    LogFormat::Json
                } else {
                    LogFormat::Text
                };
            }
            if let Some(level) = t.opt_str(cx, "level") {
                s.log.level = level;
            }
            if let Some(b) = t.opt_bool(cx, "accessLog") {
                s.log.access_log = b;
            }
        }
        "runtime" => {
            if let Some(v) = t.get("threads")
                && let Some(n) = v.int_in(cx, 0, 1024)
            {
                s.runtime.threads = n as usize;
            }
            if let Some(v) = t.get("stateDir")
                && let Some(dir) = v.str(cx)
            {
                if dir.starts_with('/') {
                    s.runtime.state_dir = PathBuf::from(dir);
                } else {
                    v.error(cx, "must be an absolute path");
                }
            }
            if let Some(v) = t.get("shutdownGrace")
                && let Some(d) = duration(cx, &v)
            {
                if d > Runtime::MAX_SHUTDOWN_GRACE {
                    v.error(
                        cx,
                        format!(
                            "must be at most {}s: the systemd unit stops gatehouse after TimeoutStopSec={}s, and a longer drain would be killed with its VIPs still on the interfaces",
                            Runtime::MAX_SHUTDOWN_GRACE.as_secs(),
                            Runtime::UNIT_TIMEOUT_STOP.as_secs()
                        ),
                    );
                } else {
                    s.runtime.shutdown_grace = d;
                }
            }
            if let Some(b) = t.opt_bool(cx, "allowEmptyReload") {
                s.runtime.allow_empty_reload = b;
            }
        }
        "announce" => {
            if let Some(v) = t.get("mode")
                && let Some(m) = one_of(cx, &v, &["self", "keepalived"])
            {
                s.announce.mode = if m == "keepalived" {
                    AnnounceMode::Keepalived
                } else {
                    AnnounceMode::SelfManaged
                };
            }
            if let Some(v) = t.get("garpCount")
                && let Some(n) = v.int_in(cx, 1, 100)
            {
                s.announce.garp_count = n as u32;
            }
            if let Some(v) = t.get("garpInterval")
                && let Some(d) = duration(cx, &v)
            {
                if d.is_zero() {
                    v.error(cx, "must be greater than 0s");
                } else {
                    s.announce.garp_interval = d;
                }
            }
            if let Some(d) = t.get("refreshInterval").and_then(|v| duration(cx, &v)) {
                s.announce.refresh_interval = d;
            }
            if let Some(v) = t.get("conflictRetry")
                && let Some(d) = duration(cx, &v)
            {
                if d < Duration::from_secs(1) {
                    v.error(cx, "must be at least 1s: unusable VIPs are retried from the once-a-second check");
                } else {
                    s.announce.conflict_retry = d;
                }
            }
        }
        "http" => {
            if let Some(b) = t.opt_bool(cx, "mergeSlashes") {
                s.http.path.merge_slashes = b;
            }
            if let Some(v) = t.get("escapedSlashes")
                && let Some(e) = one_of(cx, &v, &["keep", "reject"])
            {
                s.http.path.escaped_slashes = if e == "reject" {
                    EscapedSlashes::Reject
                } else {
                    EscapedSlashes::Keep
                };
            }
            if let Some(b) = t.opt_bool(cx, "h2c") {
                s.http.h2c = b;
            }
        }
        "ha" => super::ha::parse(cx, &mut t, &mut s.ha),
        "limits" => limits(cx, &mut t, &mut s.limits),
        "forwarded" => {
            if let Some(v) = t.get("trustedProxies") {
                s.forwarded.trusted_proxies = networks(cx, &v);
            }
        }
        "proxyProtocol" => {
            if let Some(v) = t.get("ports")
                && let Some(items) = v.array(cx)
            {
                for item in items {
                    let Some(port) = item.port(cx) else { continue };
                    if s.proxy_protocol.ports.contains(&port) {
                        item.error(cx, format!("port {port} is listed twice"));
                    } else {
                        s.proxy_protocol.ports.push(port);
                    }
                }
            }
            let sources = t.get("trustedSources");
            if let Some(v) = &sources {
                s.proxy_protocol.trusted_sources = networks(cx, v);
            }
            if !s.proxy_protocol.ports.is_empty() && s.proxy_protocol.trusted_sources.is_empty() {
                let message = "ports that read PROXY headers need trustedSources: the header lets whoever sends it claim any client address";
                match &sources {
                    Some(v) => v.error(cx, message),
                    None => cx.error(&t.span(), &t.path, message),
                }
            }
        }
        _ => {}
    }
    t.finish(cx);
}

/// A list of addresses or CIDR blocks (`trustedProxies`, `trustedSources`).
fn networks(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Vec<IpNet> {
    let mut out = Vec::new();
    for item in v.array(cx).unwrap_or_default() {
        let Some(text) = item.str(cx) else { continue };
        let net = text
            .parse::<IpNet>()
            .ok()
            .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from));
        match net {
            Some(n) => out.push(n.trunc()),
            None => item.error(
                cx,
                format!("\"{text}\" is not an address or CIDR block, e.g. \"10.0.0.0/8\" or \"192.0.2.7\""),
            ),
        }
    }
    out
}

fn limits(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, l: &mut Limits) {
    let mut int = |cx: &mut Cx<'_>, key: &'static str, min: i64, max: i64| {
        t.get(key).and_then(|v| v.int_in(cx, min, max))
    };
    if let Some(n) = int(cx, "maxConnections", 1, 10_000_000) {
        l.max_connections = n as usize;
    }
    if let Some(n) = int(cx, "maxRequestHeaderBytes", 1024, 1 << 20) {
        l.max_request_header_bytes = n as usize;
    }
    if let Some(n) = int(cx, "maxRequestHeaders", 1, 1000) {
        l.max_request_headers = n as usize;
    }
    if let Some(n) = int(cx, "maxRequestBodyBytes", 0, i64::MAX) {
        l.max_request_body_bytes = n as u64;
    }
    if let Some(n) = int(cx, "h2MaxConcurrentStreams", 1, 10_000) {
        l.h2_max_concurrent_streams = n as u32;
    }
    if let Some(n) = int(cx, "maxMirrorsInFlight", 0, 1_000_000) {
        l.max_mirrors_in_flight = n as usize;
    }
    if let Some(n) = int(cx, "udpMaxFlows", 1, 1_000_000) {
        l.udp_max_flows = n as usize;
    }
    let mut positive = |cx: &mut Cx<'_>, key: &'static str| {
        let v = t.get(key)?;
        let d = duration(cx, &v)?;
        if d.is_zero() {
            v.error(cx, "must be greater than 0s");
            return None;
        }
        Some(d)
    };
    if let Some(d) = positive(cx, "requestHeaderTimeout") {
        l.request_header_timeout = d;
    }
    if let Some(d) = positive(cx, "idleTimeout") {
        l.idle_timeout = d;
    }
    if let Some(d) = positive(cx, "passthroughIdleTimeout") {
        l.passthrough_idle_timeout = d;
    }
    if let Some(d) = positive(cx, "udpIdleTimeout") {
        l.udp_idle_timeout = d;
    }
    if let Some(d) = t
        .get("backendResponseTimeout")
        .and_then(|v| duration(cx, &v))
    {
        l.backend_response_timeout = d;
    }
    if let Some(d) = t.get("tcpKeepalive").and_then(|v| duration(cx, &v)) {
        l.tcp_keepalive = d;
    }
}

#[cfg(test)]
mod tests {
    use crate::SourceFile;
    use std::time::Duration;

    fn parse(toml: &str) -> Result<crate::Document, String> {
        let src = SourceFile::new("gatehouse.toml", "/etc/gatehouse/gatehouse.toml", toml);
        crate::parse(&[src]).map_err(|d| d.to_string())
    }

    #[test]
    fn conflict_retry_defaults_to_10s_and_is_read_from_announce() {
        let doc = parse("").expect("empty file");
        assert_eq!(
            doc.settings.announce.conflict_retry,
            Duration::from_secs(10)
        );
        let doc = parse("[announce]\nconflictRetry = \"30s\"\n").expect("30s");
        assert_eq!(
            doc.settings.announce.conflict_retry,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn proxy_protocol_ports_need_trusted_sources() {
        let err = parse("[proxyProtocol]\nports = [443]\n").expect_err("no sources");
        assert!(
            err.contains("gatehouse.toml:1:1") && err.contains("need trustedSources"),
            "{err}"
        );
        let err =
            parse("[proxyProtocol]\nports = [443]\ntrustedSources = []\n").expect_err("empty");
        assert!(err.contains("gatehouse.toml:3:18"), "{err}");
        let doc = parse("[proxyProtocol]\nports = [443, 80]\ntrustedSources = [\"192.0.2.0/24\", \"2001:db8::7\"]\n")
            .expect("valid");
        let pp = &doc.settings.proxy_protocol;
        assert!(pp.expects(443) && pp.expects(80) && !pp.expects(8080));
        assert!(pp.trusts("192.0.2.9".parse().unwrap()));
        assert!(
            pp.trusts("::ffff:192.0.2.9".parse().unwrap()),
            "IPv4-mapped peers count as IPv4"
        );
        assert!(!pp.trusts("198.51.100.1".parse().unwrap()));
    }

    #[test]
    fn conflict_retry_under_one_second_is_a_located_error() {
        let err = parse("[announce]\nconflictRetry = \"500ms\"\n").expect_err("500ms");
        assert!(
            err.contains("gatehouse.toml:2:") && err.contains("must be at least 1s"),
            "{err}"
        );
    }
}
