//! Helpers for `observability.rs`: the admin listener's documents (`/metrics` parsed into
//! samples, `/status` as JSON), waits on deadlines for counters and generations, atomic
//! configuration rewrites with SIGHUP, configuration snippets, the "lab" (an HTTP, an HTTPS
//! and a TLS passthrough listener with every kind of route) and traffic of every kind.

use crate::process::DEADLINE;
use crate::tls::{
    Ca, Https, KeyKind, Tap, Tls, TlsBackend, expect_rejected, https_listener, tcp, tls_listener,
    tls_route, tls_service,
};
use crate::{Client, ConfigDir, Echo, Gateway, Resp, unique_ip};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

// ---------------------------------------------------------------------------------------------
// The admin listener

/// GET `path` from the admin listener at `admin`.
pub async fn admin_get(admin: SocketAddr, path: &str) -> Resp {
    Client::http1(admin).get(&admin.to_string(), path).await
}

/// The text of `/metrics`.
pub async fn metrics_text(gw: &Gateway) -> String {
    let r = admin_get(gw.admin, "/metrics").await;
    assert_eq!(r.status, 200, "/metrics: {r:?}");
    String::from_utf8(r.body.to_vec()).expect("/metrics is UTF-8")
}

/// `/status` as JSON.
pub async fn status_doc(gw: &Gateway) -> Value {
    let r = admin_get(gw.admin, "/status").await;
    assert_eq!(r.status, 200, "/status: {r:?}");
    serde_json::from_slice(&r.body).expect("/status is JSON")
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// Whether every `(name, value)` of `want` is among this sample's labels.
    pub fn has(&self, want: &[(&str, &str)]) -> bool {
        want.iter()
            .all(|(k, v)| self.labels.get(*k).map(String::as_str) == Some(*v))
    }
}

/// Parses the samples (not the comments) of a Prometheus text exposition.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("unparsable metrics line {line:?}"),
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut end = None;
            loop {
                // A label name up to '=', or the closing brace.
                let mut key = String::new();
                loop {
                    match chars.next() {
                        Some((i, '}')) => {
                            end = Some(i);
                            break;
                        }
                        Some((_, '=')) => break,
                        Some((_, ',')) => {}
                        Some((_, c)) => key.push(c),
                        None => panic!("unterminated labels in {line:?}"),
                    }
                }
                if end.is_some() {
                    break;
                }
                assert_eq!(chars.next().map(|c| c.1), Some('"'), "{line:?}");
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => panic!("bad escape in {line:?}"),
                        },
                        Some((_, '"')) => break,
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value in {line:?}"),
                    }
                }
                labels.insert(key.trim().to_string(), value);
            }
            rest = &body[end.expect("closing brace") + 1..];
        }
        let value = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

/// The samples named `name` carrying every label of `labels`.
pub fn series<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name && s.has(labels))
        .collect()
}

/// The value of the one sample named `name` whose labels are exactly `labels` (None when
/// there is none).
pub fn exact(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && s.labels.len() == labels.len() && s.has(labels))
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} twice: {found:?}");
    found.first().map(|s| s.value)
}

/// Polls `/metrics` until `done` holds for its samples or the deadline passes; returns the
/// last samples either way (the caller asserts).
pub async fn wait_metrics(gw: &Gateway, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let samples = parse_metrics(&metrics_text(gw).await);
        if done(&samples) || Instant::now() >= deadline {
            return samples;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `/status` until `done` holds or the deadline passes; returns the last document.
pub async fn wait_status(gw: &Gateway, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let doc = status_doc(gw).await;
        if done(&doc) || Instant::now() >= deadline {
            return doc;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Replaces gatehouse.toml atomically (a hidden temporary file renamed over it, so the
/// watcher never sees half a file), then sends SIGHUP.
pub fn rewrite(gw: &Gateway, toml: &str) {
    let dir = gw.dir.path();
    let tmp = dir.join(".gatehouse.toml.tmp");
    std::fs::write(&tmp, toml).expect("write the new configuration");
    std::fs::rename(&tmp, dir.join("gatehouse.toml")).expect("rename it into place");
    gw.reload();
}

/// Rewrites the configuration and waits until `/status` shows a newer generation applied;
/// returns that document.
pub async fn reload_ok(gw: &Gateway, toml: &str) -> Value {
    let before = status_doc(gw).await["generation"]
        .as_u64()
        .expect("generation");
    rewrite(gw, toml);
    let doc = wait_status(gw, |d| {
        d["generation"].as_u64() > Some(before) && d["reload"]["lastResult"] == "success"
    })
    .await;
    assert!(
        doc["generation"].as_u64() > Some(before),
        "generation {before} still served after the rewrite: {doc:#}\n--- gateway log ---\n{}",
        gw.log()
    );
    doc
}

/// Rewrites the configuration with one the daemon must reject and waits until `/status`
/// reports the failure (with its errors, the served configuration kept); returns that
/// document.
pub async fn reload_rejected(gw: &Gateway, toml: &str) -> Value {
    rewrite(gw, toml);
    let doc = wait_status(gw, |d| d["reload"]["lastResult"] == "failure").await;
    assert_eq!(
        doc["reload"]["lastResult"],
        "failure",
        "the broken configuration was not rejected: {doc:#}\n--- gateway log ---\n{}",
        gw.log()
    );
    assert!(
        doc["reload"]["errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "a rejected reload without errors: {doc:#}"
    );
    assert!(
        doc["status"]["gateways"]
            .as_array()
            .is_some_and(|g| !g.is_empty()),
        "the served configuration is gone after a rejected reload: {doc:#}"
    );
    doc
}

// ---------------------------------------------------------------------------------------------
// Configuration snippets

/// `[admin]` on `admin` and `[log]` with `log` (lines such as `format = "json"`).
pub fn daemon(admin: SocketAddr, log: &str) -> String {
    format!("[admin]\nlisten = \"{admin}\"\n\n[log]\n{log}\n")
}

/// A Service `name` in `default`, port 8080 → 3000 of `echo`.
pub fn echo_service(name: &str, echo: &Echo) -> String {
    format!(
        r#"
[[Service]]
name = "{name}"
ports = [{{ port = 8080, targetPort = 3000 }}]
endpoints = ["{}"]
"#,
        echo.addr.ip()
    )
}

/// An HTTPRoute in `default` on gateway `gw`'s listener `section` for `hostnames`, one rule
/// with `backend_refs` (an inline TOML array body).
pub fn route(name: &str, section: &str, hostnames: &[&str], backend_refs: &str) -> String {
    let hostnames = hostnames
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[[HTTPRoute]]
name = "{name}"
parentRefs = [{{ name = "gw", sectionName = "{section}" }}]
hostnames = [{hostnames}]
[[HTTPRoute.rules]]
backendRefs = [{backend_refs}]
"#
    )
}

/// A Gateway `name` in `default` bound to `ip`, with `listeners` (inline tables, each ending
/// with a comma).
pub fn gateway(name: &str, ip: Ipv4Addr, listeners: &[String]) -> String {
    format!(
        r#"
[[Gateway]]
name = "{name}"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [
{}
]
"#,
        listeners.join("\n")
    )
}

/// An HTTP listener on port 80, optionally with a hostname.
pub fn http_listener(name: &str, hostname: Option<&str>) -> String {
    let host = hostname
        .map(|h| format!(", hostname = \"{h}\""))
        .unwrap_or_default();
    format!("  {{ name = \"{name}\", protocol = \"HTTP\", port = 80{host} }},")
}

// ---------------------------------------------------------------------------------------------
// The lab: one Gateway `default/gw` with
// - `web`: HTTP :80, no hostname; routes `a` (a.example.com → echo-a), `b` (b.example.com →
//   echo-b), `missing` (missing.example.com → a Service that does not exist: 500), `zero`
//   (zero.example.com → echo-a with weight 0: 503) and `down` (down.example.com → a Service
//   whose endpoint refuses connections: 503);
// - `secure`: HTTPS :443 for secure.example.com (a certificate of a test CA); route `secure`
//   → echo-a;
// - `pass`: TLS Passthrough :443 for pass.example.com; TLSRoute `pass` → a TLS backend.

pub const A: &str = "a.example.com";
pub const B: &str = "b.example.com";
pub const MISSING: &str = "missing.example.com";
pub const ZERO: &str = "zero.example.com";
pub const SECURE: &str = "secure.example.com";
pub const PASS: &str = "pass.example.com";
/// Routed to a Service whose one endpoint refuses connections (503).
pub const DOWN: &str = "down.example.com";
/// A Host no route takes (404 on `web`).
pub const NOWHERE: &str = "nowhere.example.com";

/// What a lab configuration contains besides the Gateway and the daemon settings.
#[derive(Debug, Clone, Copy)]
pub struct LabRoutes {
    pub b: bool,
}

/// The lab and its backends.
#[derive(Debug)]
pub struct Lab {
    pub gw: Gateway,
    pub ip: Ipv4Addr,
    pub ca: Ca,
    pub tls_backend: TlsBackend,
    pub echo_a: Echo,
    pub echo_b: Echo,
    /// The address of the `down` Service's endpoint, where nothing listens.
    down: Ipv4Addr,
    secret: String,
    log: String,
}

impl Lab {
    /// Starts the backends and the gateway; `log` is the body of `[log]`.
    pub async fn start(log: &str) -> Lab {
        let ip = unique_ip();
        let admin = SocketAddr::from((unique_ip(), 9542));
        let ca = Ca::new("observability test CA");
        let leaf = ca.leaf(&[SECURE], KeyKind::EcdsaP256Pkcs8);
        let backend_leaf = ca.leaf(&[PASS], KeyKind::EcdsaP256Pkcs8);
        let tls_backend = TlsBackend::start("tls-backend", backend_leaf).await;
        let echo_a = Echo::start("echo-a");
        let echo_b = Echo::start("echo-b");
        let down = unique_ip();
        let dir = ConfigDir::new();
        let secret = leaf.secret(&dir, "secure-cert", "default");
        let toml = LabParts {
            admin,
            ip,
            log: log.to_string(),
            secret: secret.clone(),
            tls_backend: tls_backend.addr,
            echo_a: &echo_a,
            echo_b: &echo_b,
            down,
        }
        .toml(LabRoutes { b: true });
        dir.write("gatehouse.toml", &toml);
        let gw = Gateway::start(
            dir,
            &[SocketAddr::from((ip, 80)), SocketAddr::from((ip, 443))],
        );
        assert_eq!(gw.admin, admin);
        Lab {
            gw,
            ip,
            ca,
            tls_backend,
            echo_a,
            echo_b,
            down,
            secret,
            log: log.to_string(),
        }
    }

    /// The lab's configuration with `routes`.
    pub fn toml(&self, routes: LabRoutes) -> String {
        LabParts {
            admin: self.gw.admin,
            ip: self.ip,
            log: self.log.clone(),
            secret: self.secret.clone(),
            tls_backend: self.tls_backend.addr,
            echo_a: &self.echo_a,
            echo_b: &self.echo_b,
            down: self.down,
        }
        .toml(routes)
    }

    pub fn http(&self) -> SocketAddr {
        SocketAddr::from((self.ip, 80))
    }

    pub fn tls(&self) -> SocketAddr {
        SocketAddr::from((self.ip, 443))
    }

    /// A TLS client trusting the lab's CA, offering h2 and http/1.1.
    pub fn client_tls(&self) -> Tls {
        Tls::new(&self.ca).alpn(&["h2", "http/1.1"])
    }
}

struct LabParts<'a> {
    admin: SocketAddr,
    ip: Ipv4Addr,
    log: String,
    secret: String,
    tls_backend: SocketAddr,
    echo_a: &'a Echo,
    echo_b: &'a Echo,
    down: Ipv4Addr,
}

impl LabParts<'_> {
    fn toml(&self, routes: LabRoutes) -> String {
        let mut t = daemon(self.admin, &self.log);
        t.push_str(&self.secret);
        t.push_str(&echo_service("echo-a", self.echo_a));
        t.push_str(&echo_service("echo-b", self.echo_b));
        t.push_str(&tls_service("tls-backend", "default", self.tls_backend));
        t.push_str(&format!(
            "\n[[Service]]\nname = \"down\"\nports = [{{ port = 8080, targetPort = 3000 }}]\nendpoints = [\"{}\"]\n",
            self.down
        ));
        t.push_str(&gateway(
            "gw",
            self.ip,
            &[
                http_listener("web", None),
                https_listener("secure", 443, Some(SECURE), "secure-cert"),
                tls_listener("pass", 443, Some(PASS)),
            ],
        ));
        t.push_str(&route(
            "a",
            "web",
            &[A],
            r#"{ name = "echo-a", port = 8080 }"#,
        ));
        if routes.b {
            t.push_str(&route(
                "b",
                "web",
                &[B],
                r#"{ name = "echo-b", port = 8080 }"#,
            ));
        }
        t.push_str(&route(
            "missing",
            "web",
            &[MISSING],
            r#"{ name = "no-such-service", port = 8080 }"#,
        ));
        t.push_str(&route(
            "zero",
            "web",
            &[ZERO],
            r#"{ name = "echo-a", port = 8080, weight = 0 }"#,
        ));
        t.push_str(&route(
            "down",
            "web",
            &[DOWN],
            r#"{ name = "down", port = 8080 }"#,
        ));
        t.push_str(&route(
            "secure",
            "secure",
            &[SECURE],
            r#"{ name = "echo-a", port = 8080 }"#,
        ));
        t.push_str(&tls_route(
            "pass",
            "default",
            "gw",
            Some("pass"),
            &[PASS],
            "tls-backend",
        ));
        t
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic

/// Expects `status` from GET `path` with Host `host` over `client`.
pub async fn expect(client: &mut Client, host: &str, path: &str, status: u16) -> Resp {
    let r = client.get(host, path).await;
    assert_eq!(
        r.status.as_u16(),
        status,
        "GET {path} Host {host}: {:?}",
        String::from_utf8_lossy(&r.body)
    );
    r
}

/// The bytes of one passthrough connection, as the client counted them.
#[derive(Debug)]
pub struct PassthroughBytes {
    /// What the client wrote (its TLS records, ClientHello first, close_notify last).
    pub written: usize,
    /// What the client read (the backend's TLS records).
    pub read: usize,
    /// The backend's JSON report.
    pub report: Value,
}

/// One passthrough connection: handshake with the backend through the gateway, read its
/// report to its close_notify, close.
pub async fn passthrough(tls: &Tls, addr: SocketAddr, sni: &str) -> PassthroughBytes {
    let tap = Tap::new(tcp(addr).await.expect("connect"), false);
    let (written, read) = (tap.written.clone(), tap.read.clone());
    let mut s = tls
        .handshake(tap, sni)
        .await
        .expect("passthrough handshake");
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("the backend's report within the deadline")
        .expect("read the backend's report");
    let _ = s.shutdown().await;
    drop(s);
    let report = serde_json::from_slice(&out).expect("the backend's JSON report");
    let written = written.lock().unwrap().len();
    let read = read.lock().unwrap().len();
    PassthroughBytes {
        written,
        read,
        report,
    }
}

/// Traffic of every kind through the lab: HTTP/1.1 and h2c (200), a 404, a 500 (missing
/// backend), a 503 (weight 0), a 503 (the endpoint refuses connections), HTTPS over HTTP/1.1 and HTTP/2, a failed TLS handshake (a
/// client that does not trust the certificate), a passthrough connection, an SNI nothing
/// takes, a reload that succeeds and one that is rejected. Waits until the metrics show each.
pub async fn every_kind_of_traffic(lab: &Lab) {
    let mut h1 = Client::http1(lab.http());
    expect(&mut h1, A, "/h1", 200).await;
    expect(&mut h1, B, "/h1", 200).await;
    expect(&mut h1, NOWHERE, "/", 404).await;
    expect(&mut h1, MISSING, "/", 500).await;
    let mut h1 = Client::http1(lab.http());
    expect(&mut h1, ZERO, "/", 503).await;
    let mut h1 = Client::http1(lab.http());
    expect(&mut h1, DOWN, "/", 503).await;
    let mut h2c = Client::h2c(lab.http());
    expect(&mut h2c, A, "/h2c", 200).await;

    for alpn in ["http/1.1", "h2"] {
        let tls = Tls::new(&lab.ca).alpn(&[alpn]);
        let mut https = Https::open(&tls, lab.tls(), SECURE)
            .await
            .expect("HTTPS connection");
        let r = https.get(SECURE, "/https").await.expect("HTTPS request");
        assert_eq!(r.status, 200, "HTTPS over {alpn}: {r:?}");
    }

    let stranger = Ca::new("a CA nobody trusts");
    let untrusting = Tls::new(&stranger);
    assert!(
        untrusting.connect(lab.tls(), SECURE).await.is_err(),
        "a client that does not trust the test CA completed the handshake"
    );

    let p = passthrough(&lab.client_tls(), lab.tls(), PASS).await;
    assert_eq!(p.report["name"], "tls-backend", "{:?}", p.report);

    if let Err(e) = expect_rejected(&lab.client_tls(), lab.tls(), "nothing.example.org").await {
        panic!("an SNI no listener takes: {e}");
    }

    reload_ok(&lab.gw, &lab.toml(LabRoutes { b: true })).await;
    reload_rejected(&lab.gw, "this is = not [valid TOML\n").await;
    let samples = wait_metrics(&lab.gw, |s| {
        !series(s, "gatehouse_tls_handshakes_total", &[("result", "failed")]).is_empty()
            && !series(s, "gatehouse_tls_passthrough_connections_total", &[]).is_empty()
            && !series(
                s,
                "gatehouse_sni_unmatched_total",
                &[("reason", "no_listener")],
            )
            .is_empty()
            && series(s, "gatehouse_http_requests_total", &[])
                .iter()
                .map(|x| x.value)
                .sum::<f64>()
                >= 9.0
    })
    .await;
    for (name, labels) in [
        ("gatehouse_http_requests_total", vec![("code", "200")]),
        ("gatehouse_http_requests_total", vec![("code", "404")]),
        ("gatehouse_http_requests_total", vec![("code", "500")]),
        ("gatehouse_http_requests_total", vec![("code", "503")]),
        ("gatehouse_upstream_connect_errors_total", vec![]),
        ("gatehouse_tls_handshakes_total", vec![("result", "ok")]),
        ("gatehouse_tls_handshakes_total", vec![("result", "failed")]),
        ("gatehouse_tls_passthrough_connections_total", vec![]),
        ("gatehouse_sni_unmatched_total", vec![]),
        (
            "gatehouse_config_reloads_total",
            vec![("result", "failure")],
        ),
    ] {
        assert!(
            !series(&samples, name, &labels).is_empty(),
            "no {name} {labels:?} after traffic of every kind:\n{samples:#?}"
        );
    }
}
