//! The daemon tables of `gatehouse.toml`: `[admin]`, `[log]`, `[runtime]`, `[announce]`.

use super::{duration, one_of};
use crate::decode::{Cx, Value};
use gatehouse_model::settings::{LogFormat, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;

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
            if let Some(d) = t.get("shutdownGrace").and_then(|v| duration(cx, &v)) {
                s.runtime.shutdown_grace = d;
            }
        }
        "announce" => {
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
        }
        _ => {}
    }
    t.finish(cx);
}
