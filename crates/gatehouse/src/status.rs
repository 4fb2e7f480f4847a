//! `gatehouse status`: the running daemon's Gateway API status, like
//! `kubectl get gateway,httproute,tlsroute,tcproute`, read from its admin listener.

use crate::cli::{StatusArgs, StatusOutput};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// The admin address: `--admin`, else `[admin] listen` of the configuration, else the default.
fn admin_addr(args: &StatusArgs) -> SocketAddr {
    if let Some(a) = args.admin {
        return a;
    }
    let files = crate::configdir::read(&args.config).ok();
    files
        .and_then(|f| gatehouse_config::parse(&f).ok())
        .map(|d| d.settings.admin.listen)
        .unwrap_or_else(|| gatehouse_model::settings::Admin::default().listen)
}

async fn fetch(addr: SocketAddr, verbose: bool) -> Result<Value> {
    let path = if verbose {
        "/status?verbose"
    } else {
        "/status"
    };
    get_json(addr, path).await
}

/// GETs `path` from the admin listener at `addr` and reads the JSON it answers.
pub async fn get_json(addr: SocketAddr, path: &str) -> Result<Value> {
    let tcp = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .context("timed out")?
        .with_context(|| {
            format!("cannot reach the admin listener at {addr}: is gatehouse running?")
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status.is_success(),
        "the admin listener answered {status}: {}",
        String::from_utf8_lossy(&body).trim_end()
    );
    serde_json::from_slice(&body)
        .with_context(|| format!("the admin listener's {path} is not JSON"))
}

fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn cond<'a>(conditions: &'a Value, kind: &str) -> &'a str {
    conditions
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("Unknown")
}

fn key_name(key: &Value) -> String {
    match key["namespace"].as_str() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", key["name"].as_str().unwrap_or("")),
        _ => key["name"].as_str().unwrap_or("").to_string(),
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(i, c)| {
                    if i + 1 == r.len() {
                        c.clone()
                    } else {
                        format!("{c:<w$}  ", w = widths[i])
                    }
                })
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn render(doc: &Value, wide: bool) -> String {
    let now = crate::admin::now();
    let first_seen = &doc["firstSeen"];
    let age_of = |kind: &str, key: &Value| {
        let k = format!("{kind}/{}", key_name(key));
        first_seen[&k]
            .as_u64()
            .map_or("-".to_string(), |t| age(now.saturating_sub(t)))
    };
    let reload = &doc["reload"];
    let mut out = format!(
        "generation {}; last reload: {} ({}, {} ago)\n",
        doc["generation"],
        reload["lastResult"].as_str().unwrap_or(""),
        reload["trigger"].as_str().unwrap_or(""),
        age(now.saturating_sub(reload["lastAttempt"].as_u64().unwrap_or(now)))
    );
    for e in reload["errors"].as_array().into_iter().flatten() {
        out.push_str(&format!("  rejected: {}\n", e.as_str().unwrap_or("")));
    }
    let status = &doc["status"];
    let mut gw = vec![
        vec![
            "GATEWAY",
            "CLASS",
            "ADDRESS",
            "PROGRAMMED",
            "LISTENERS",
            "ATTACHED",
            "AGE",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>(),
    ];
    let mut listeners = vec![
        vec![
            "GATEWAY",
            "LISTENER",
            "ACCEPTED",
            "PROGRAMMED",
            "ATTACHED",
            "REASON",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>(),
    ];
    for g in status["gateways"].as_array().into_iter().flatten() {
        // Each VIP with this box's role: "192.0.2.10 (MASTER)".
        let role = |value: &str| {
            g["vips"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["address"] == value)
                .and_then(|v| v["role"].as_str())
                .map(|r| format!("{value} ({r})"))
                .unwrap_or_else(|| value.to_string())
        };
        let addrs: Vec<String> = g["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["value"].as_str())
            .map(role)
            .collect();
        let ls = g["listeners"].as_array().cloned().unwrap_or_default();
        let attached: u64 = ls.iter().filter_map(|l| l["attachedRoutes"].as_u64()).sum();
        gw.push(vec![
            key_name(&g["key"]),
            g["gatewayClassName"].as_str().unwrap_or("").to_string(),
            if addrs.is_empty() {
                "*".to_string()
            } else {
                addrs.join(",")
            },
            cond(&g["conditions"], "Programmed").to_string(),
            ls.len().to_string(),
            attached.to_string(),
            age_of("Gateway", &g["key"]),
        ]);
        for l in &ls {
            let problem = l["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| {
                    (c["status"] == "False" && c["type"] != "Conflicted")
                        || (c["status"] == "True" && c["type"] == "Conflicted")
                })
                .map(|c| {
                    format!(
                        "{}: {}",
                        c["reason"].as_str().unwrap_or(""),
                        c["message"].as_str().unwrap_or("")
                    )
                })
                .unwrap_or_default();
            listeners.push(vec![
                key_name(&g["key"]),
                l["name"].as_str().unwrap_or("").to_string(),
                cond(&l["conditions"], "Accepted").to_string(),
                cond(&l["conditions"], "Programmed").to_string(),
                l["attachedRoutes"].to_string(),
                problem,
            ]);
        }
    }
    let mut routes = vec![
        vec![
            "ROUTE",
            "KIND",
            "PARENTS",
            "ACCEPTED",
            "RESOLVEDREFS",
            "AGE",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>(),
    ];
    let mut route_problems = Vec::new();
    for r in status["routes"].as_array().into_iter().flatten() {
        let parents = r["parents"].as_array().cloned().unwrap_or_default();
        let names: Vec<String> = parents
            .iter()
            .map(|p| {
                let pr = &p["parentRef"];
                match pr["sectionName"].as_str() {
                    Some(s) => format!(
                        "{}/{}/{s}",
                        pr["namespace"].as_str().unwrap_or(""),
                        pr["name"].as_str().unwrap_or("")
                    ),
                    None => format!(
                        "{}/{}",
                        pr["namespace"].as_str().unwrap_or(""),
                        pr["name"].as_str().unwrap_or("")
                    ),
                }
            })
            .collect();
        let all = |kind: &str| {
            let v: Vec<&str> = parents
                .iter()
                .map(|p| cond(&p["conditions"], kind))
                .collect();
            if v.iter().all(|s| *s == "True") {
                "True".to_string()
            } else {
                v.join(",")
            }
        };
        let kind = r["key"]["kind"].as_str().unwrap_or("");
        routes.push(vec![
            key_name(&r["key"]),
            kind.to_string(),
            names.join(","),
            all("Accepted"),
            all("ResolvedRefs"),
            age_of(kind, &r["key"]),
        ]);
        for p in &parents {
            for c in p["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["status"] == "False")
            {
                route_problems.push(format!(
                    "  {kind} {}: {}={} {}: {}",
                    key_name(&r["key"]),
                    c["type"].as_str().unwrap_or(""),
                    c["status"].as_str().unwrap_or(""),
                    c["reason"].as_str().unwrap_or(""),
                    c["message"].as_str().unwrap_or("")
                ));
            }
        }
    }
    out.push('\n');
    out.push_str(&table(&gw));
    out.push_str("\n\n");
    if wide {
        out.push_str(&table(&listeners));
        out.push_str("\n\n");
    }
    out.push_str(&table(&routes));
    out.push('\n');
    if wide && !route_problems.is_empty() {
        out.push('\n');
        route_problems.dedup();
        out.push_str(&route_problems.join("\n"));
        out.push('\n');
    }
    out.push_str(&policies(status));
    out
}

/// The BackendTLSPolicies, and every problem condition of theirs (a policy's problems mean
/// failed requests, so they are shown without `--wide`).
fn policies(status: &Value) -> String {
    let list = status["backendTlsPolicies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        return String::new();
    }
    let mut rows = vec![
        ["BACKENDTLSPOLICY", "ANCESTORS", "ACCEPTED", "RESOLVEDREFS"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
    ];
    let mut problems = Vec::new();
    for p in &list {
        let ancestors: Vec<String> = p["ancestors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let r = &a["ancestorRef"];
                format!(
                    "{}/{}",
                    r["namespace"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or("")
                )
            })
            .collect();
        rows.push(vec![
            key_name(&p["key"]),
            if ancestors.is_empty() {
                "-".to_string()
            } else {
                ancestors.join(",")
            },
            cond(&p["conditions"], "Accepted").to_string(),
            cond(&p["conditions"], "ResolvedRefs").to_string(),
        ]);
        for c in p["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["status"] == "False")
        {
            problems.push(format!(
                "  BackendTLSPolicy {}: {}={} {}: {}",
                key_name(&p["key"]),
                c["type"].as_str().unwrap_or(""),
                c["status"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            ));
        }
    }
    let mut out = String::from("\n");
    out.push_str(&table(&rows));
    out.push('\n');
    if !problems.is_empty() {
        out.push('\n');
        out.push_str(&problems.join("\n"));
        out.push('\n');
    }
    out
}

/// `gatehouse status --ready [--hold D]`: whether the daemon serves a configuration (and
/// still does after `hold`). Any failure to ask is "not ready".
async fn ready(addr: SocketAddr, hold: Option<Duration>) -> Result<(), String> {
    let ask = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot reach the admin listener at {addr}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let path = match hold {
            Some(h) => format!("/readyz?hold={}ms", h.as_millis()),
            None => "/readyz".to_string(),
        };
        let req = hyper::Request::get(path)
            .header("host", addr.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("the admin listener at {addr} closed: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("not ready ({})", resp.status()))
        }
    };
    let limit = hold.unwrap_or_default() + Duration::from_secs(1);
    tokio::time::timeout(limit, ask)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from {addr} within {limit:?}")))
}

pub fn run(args: &StatusArgs) -> Result<ExitCode> {
    let addr = admin_addr(args);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.ready {
        return Ok(match rt.block_on(ready(addr, args.hold)) {
            Ok(()) => {
                println!("ready");
                ExitCode::SUCCESS
            }
            Err(why) => {
                eprintln!("{why}");
                ExitCode::from(1)
            }
        });
    }
    let doc = rt.block_on(fetch(addr, args.verbose))?;
    match args.output {
        StatusOutput::Json => println!("{}", serde_json::to_string_pretty(&doc)?),
        StatusOutput::Table => print!("{}", render(&doc, false)),
        StatusOutput::Wide => print!("{}", render(&doc, true)),
    }
    Ok(ExitCode::SUCCESS)
}
