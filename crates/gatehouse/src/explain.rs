//! `gatehouse explain URL`: which listener, route, rule, filters and backends a request
//! would meet, and what the client would get, without sending it.
//!
//! ```text
//! --config DIR   load the files as `check` does, explain against that snapshot
//! --admin ADDR   ask the running daemon (GET /explain): its snapshot, its endpoints' health
//! ```
//!
//! Both end in [`gatehouse_model::explain::explain`], which calls the data plane's own
//! `decide`. [`Query`] is what the command line (or the admin query string) says about the
//! request; [`prepare`] turns it into the connection facts and request head the data plane
//! would have.

use crate::cli::{ExplainArgs, Output};
use anyhow::{Context, Result, bail};
use gatehouse_model::Snapshot;
use gatehouse_model::conn::{ConnInfo, TlsInfo};
use gatehouse_model::explain::{EndpointState, Explanation, Request, Verdict};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

/// A request to explain, as given.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub url: String,
    pub method: String,
    /// `Name: value` lines.
    pub headers: Vec<String>,
    /// The address the client connects to; default: the URL's host when it is an address,
    /// else the address of the first listener on the URL's port.
    pub to: Option<IpAddr>,
}

impl Query {
    /// The admin endpoint's query string for this request.
    pub fn to_query_string(&self) -> String {
        let mut pairs = url_pairs();
        pairs.append_pair("url", &self.url);
        pairs.append_pair("method", &self.method);
        for h in &self.headers {
            pairs.append_pair("header", h);
        }
        if let Some(to) = self.to {
            pairs.append_pair("to", &to.to_string());
        }
        pairs.finish()
    }

    /// Reads the admin endpoint's query string.
    pub fn from_query_string(q: &str) -> Result<Query> {
        let mut out = Query {
            method: "GET".into(),
            ..Query::default()
        };
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            match &*k {
                "url" => out.url = v.into_owned(),
                "method" => out.method = v.into_owned(),
                "header" => out.headers.push(v.into_owned()),
                "to" => out.to = Some(v.parse().context("to: not an IP address")?),
                other => bail!("unknown parameter {other:?}"),
            }
        }
        if out.url.is_empty() {
            bail!("the url parameter is required");
        }
        Ok(out)
    }
}

fn url_pairs() -> form_urlencoded::Serializer<'static, String> {
    form_urlencoded::Serializer::new(String::new())
}

/// The connection and request head the data plane would see for `q` under `snapshot`.
pub fn prepare(snapshot: &Snapshot, q: &Query) -> Result<(ConnInfo, Request)> {
    let uri: http::Uri = q
        .url
        .parse()
        .with_context(|| format!("{:?} is not a URL", q.url))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => bail!("the URL must start with http:// or https://"),
    };
    let authority = uri.authority().context("the URL has no host")?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let ip = match (q.to, host.parse::<IpAddr>()) {
        (Some(ip), _) | (None, Ok(ip)) => ip,
        (None, Err(_)) => snapshot
            .ports
            .iter()
            .find(|g| g.port == port)
            .and_then(|g| g.addresses.first().copied())
            .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    };
    let mut conn = ConnInfo::new(
        SocketAddr::new(ip, port),
        SocketAddr::from(([127, 0, 0, 1], 40000)),
    );
    if https {
        conn.tls = Some(TlsInfo {
            sni: host
                .parse::<IpAddr>()
                .is_err()
                .then(|| host.to_ascii_lowercase()),
            h2: false,
            version: "TLSv1.3",
        });
    }
    let mut headers = vec![("host".to_string(), authority.as_str().to_string())];
    for h in &q.headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("header {h:?}: expected `Name: value`"))?;
        let name = name.trim().to_ascii_lowercase();
        if name == "host" {
            headers.retain(|(n, _)| n != "host");
        }
        headers.push((name, value.trim().to_string()));
    }
    let method = q.method.to_ascii_uppercase();
    Ok((
        conn,
        Request {
            method,
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers,
        },
    ))
}

/// The endpoints of a Service port as configured (no health known).
pub fn configured_endpoints(snapshot: &Snapshot, service: usize, port: u16) -> Vec<EndpointState> {
    use gatehouse_model::backend::Endpoint;
    snapshot
        .services
        .get(service)
        .map(|s| {
            s.endpoints
                .iter()
                .filter_map(|e| match e {
                    Endpoint::Ip { addr, port: p } => Some(EndpointState {
                        address: SocketAddr::new(*addr, p.unwrap_or(port)),
                        healthy: None,
                    }),
                    Endpoint::Dns { .. } => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The admin listener's `/explain`: the daemon's snapshot, with the health its pools see.
pub fn from_daemon(
    generation: &gatehouse_proxy::Generation,
    query: &str,
) -> std::result::Result<serde_json::Value, String> {
    let q = Query::from_query_string(query).map_err(|e| format!("{e:#}"))?;
    let snapshot = &generation.snapshot;
    let (conn, req) = prepare(snapshot, &q).map_err(|e| format!("{e:#}"))?;
    let e = gatehouse_model::explain::explain(snapshot, &conn, &req, &|service, port| {
        generation
            .pools
            .get(service)
            .map(|p| {
                p.endpoint_states(port)
                    .into_iter()
                    .map(|(address, ok)| EndpointState {
                        address,
                        healthy: Some(ok),
                    })
                    .collect()
            })
            .unwrap_or_default()
    });
    serde_json::to_value(e).map_err(|e| e.to_string())
}

pub fn run(args: &ExplainArgs) -> Result<ExitCode> {
    let q = Query {
        url: args.url.clone(),
        method: args.method.clone(),
        headers: args.header.clone(),
        to: args.to,
    };
    let explanation: Explanation = match args.admin {
        Some(admin) => {
            let path = format!("/explain?{}", q.to_query_string());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let value = rt.block_on(crate::status::get_json(admin, &path))?;
            serde_json::from_value(value).context("the daemon's /explain is not an explanation")?
        }
        None => {
            let files = crate::configdir::read(&args.config)?;
            let loaded = gatehouse_config::load(&files, &|p: &std::path::Path| std::fs::read(p), 1)
                .map_err(|d| anyhow::anyhow!("the configuration does not load:\n{d}"))?;
            let snapshot = &loaded.snapshot;
            let (conn, req) = prepare(snapshot, &q)?;
            gatehouse_model::explain::explain(snapshot, &conn, &req, &|s, p| {
                configured_endpoints(snapshot, s, p)
            })
        }
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&explanation)?),
        _ => print!("{}", text(&explanation)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The explanation for a terminal.
pub fn text(e: &Explanation) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "request   {} {} (Host {}{}) to {}",
        e.method,
        e.path,
        e.host.as_deref().unwrap_or("-"),
        e.sni
            .as_deref()
            .map_or(String::new(), |sni| format!(", SNI {sni}")),
        e.local
    );
    let _ = writeln!(s, "\nlisteners at {}:", e.local);
    if e.listeners.is_empty() {
        let _ = writeln!(s, "  (none on this address and port)");
    }
    for l in &e.listeners {
        let mark = if l.chosen { "*" } else { " " };
        let _ = writeln!(
            s,
            "{mark} {} ({}, hostname {}): {}",
            l.listener,
            l.protocol,
            l.hostname.as_deref().unwrap_or("-"),
            l.why
        );
    }
    if !e.rules.is_empty() {
        let _ = writeln!(s, "\nrules, in routing order:");
    }
    for r in &e.rules {
        let mark = match r.verdict {
            Verdict::Selected => "*",
            Verdict::LostOnPrecedence => "~",
            Verdict::NoMatch => " ",
        };
        let name = r
            .rule_name
            .as_deref()
            .map_or(String::new(), |n| format!(" ({n})"));
        let _ = writeln!(
            s,
            "{mark} {} rule {}{name} match {} [{}] {}: {}",
            r.route, r.rule, r.matched, r.hostnames, r.conditions, r.why
        );
    }
    if !e.filters.is_empty() {
        let _ = writeln!(s, "\nfilters: {}", e.filters.join(", "));
    }
    if !e.backends.is_empty() {
        let _ = writeln!(s, "\nbackends:");
    }
    for b in &e.backends {
        let _ = writeln!(
            s,
            "  {} weight {} ({:.1}%): {}",
            b.backend, b.weight, b.share, b.target
        );
        for ep in &b.endpoints {
            let health = match ep.healthy {
                Some(true) => "healthy",
                Some(false) => "unhealthy",
                None => "health unknown (ask the daemon with --admin)",
            };
            let _ = writeln!(s, "      endpoint {} {health}", ep.address);
        }
        if b.outcome.forward_to.is_none() {
            let _ = writeln!(s, "      drawn: {}", outcome(&b.outcome));
        }
    }
    let _ = writeln!(s, "\noutcome: {}", outcome(&e.outcome));
    s
}

fn outcome(o: &gatehouse_model::explain::Outcome) -> String {
    match (o.status, &o.location, &o.forward_to) {
        (Some(code), Some(loc), _) => format!("{code} Location: {loc}"),
        (Some(code), None, _) => format!("{code} ({})", o.why),
        (None, _, Some(to)) => format!("forwarded to {to}"),
        (None, _, None) => o.why.clone(),
    }
}
