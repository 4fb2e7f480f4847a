//! Observability against the real binary: `/metrics` passes `promtool check metrics` after
//! traffic of every kind, counters move by exactly the requests sent, series of a removed
//! route vanish, `/status` (and `gatehouse status`) report the Gateway API conditions of a
//! configuration with every kind of problem, the health endpoints, the access log (JSON lines,
//! one per request or passthrough connection; none with `accessLog = false`), and the Grafana
//! dashboard under packaging/ uses only metrics the daemon exports.

/// The `/status` test, in a file of its own for length.
#[path = "observability/status.rs"]
mod status;

use gatehouse_tests::observability::*;
use gatehouse_tests::process::DEADLINE;
use gatehouse_tests::{Client, ConfigDir, Echo, Gateway, repo_root, unique_ip};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REQUESTS: &str = "gatehouse_http_requests_total";

// ---------------------------------------------------------------------------------------------
// promtool

/// Why `promtool` cannot run, if it cannot.
fn promtool_missing() -> Option<String> {
    match Command::new("promtool").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("`promtool --version` exited with {}", o.status)),
        Err(e) => Some(format!(
            "promtool is not installed ({e}); `apt-get install prometheus`"
        )),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn promtool_finds_nothing_to_lint_after_traffic_of_every_kind() {
    if let Some(why) = promtool_missing() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and {why}: scripts/install-prerequisites installs it"
        );
        println!("SKIPPED: {why}");
        return;
    }
    let lab = Lab::start("").await;
    every_kind_of_traffic(&lab).await;
    let text = metrics_text(&lab.gw).await;

    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write /metrics to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let lint = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && lint.trim().is_empty(),
        "promtool check metrics exited with {} and said:\n{lint}\n--- /metrics ---\n{text}",
        out.status
    );
}

// ---------------------------------------------------------------------------------------------
// Counters

#[tokio::test(flavor = "multi_thread")]
async fn counters_move_by_exactly_the_requests_sent() {
    let lab = Lab::start("").await;
    let mut h1 = Client::http1(lab.http());
    for i in 0..37 {
        expect(&mut h1, A, &format!("/count/a/{i}"), 200).await;
    }
    for i in 0..5 {
        expect(&mut h1, NOWHERE, &format!("/count/none/{i}"), 404).await;
    }
    let mut h2c = Client::h2c(lab.http());
    for i in 0..11 {
        expect(&mut h2c, B, &format!("/count/b/{i}"), 200).await;
    }

    let gw = ("gateway", "default/gw");
    let web = ("listener", "web");
    let a = [
        gw,
        web,
        ("route", "default/a"),
        ("backend", "default/echo-a:8080"),
        ("method", "GET"),
        ("code", "200"),
    ];
    let b = [
        gw,
        web,
        ("route", "default/b"),
        ("backend", "default/echo-b:8080"),
        ("method", "GET"),
        ("code", "200"),
    ];
    let none = [
        gw,
        web,
        ("route", ""),
        ("backend", ""),
        ("method", "GET"),
        ("code", "404"),
    ];
    let in_flight = [gw, web];
    let s = wait_metrics(&lab.gw, |s| {
        exact(s, REQUESTS, &a) >= Some(37.0)
            && exact(s, REQUESTS, &b) >= Some(11.0)
            && exact(s, REQUESTS, &none) >= Some(5.0)
            && exact(s, "gatehouse_http_requests_in_flight", &in_flight) == Some(0.0)
    })
    .await;
    let dump = || {
        s.iter()
            .filter(|x| x.name.starts_with("gatehouse_http") || x.name.starts_with("gatehouse_up"))
            .map(|x| format!("{} {:?} {}", x.name, x.labels, x.value))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut problems = Vec::new();
    let mut want = |what: &str, got: Option<f64>, want: f64| {
        if got != Some(want) {
            problems.push(format!("{what}: want {want}, got {got:?}"));
        }
    };
    want(
        "requests to route a (HTTP/1.1)",
        exact(&s, REQUESTS, &a),
        37.0,
    );
    want("requests to route b (h2c)", exact(&s, REQUESTS, &b), 11.0);
    want("404s with route=\"\"", exact(&s, REQUESTS, &none), 5.0);
    want(
        "all requests",
        Some(series(&s, REQUESTS, &[]).iter().map(|x| x.value).sum()),
        53.0,
    );
    want(
        "request duration count of route a",
        exact(
            &s,
            "gatehouse_http_request_duration_seconds_count",
            &[gw, web, ("route", "default/a"), ("code_class", "2xx")],
        ),
        37.0,
    );
    want(
        "request duration count of the 404s",
        exact(
            &s,
            "gatehouse_http_request_duration_seconds_count",
            &[gw, web, ("route", ""), ("code_class", "4xx")],
        ),
        5.0,
    );
    want(
        "upstream duration count of route a",
        exact(
            &s,
            "gatehouse_upstream_request_duration_seconds_count",
            &[("route", "default/a"), ("backend", "default/echo-a:8080")],
        ),
        37.0,
    );
    want(
        "upstream connections used for echo-a (reused or not)",
        Some(
            series(
                &s,
                "gatehouse_upstream_connections_total",
                &[("backend", "default/echo-a:8080")],
            )
            .iter()
            .map(|x| x.value)
            .sum(),
        ),
        37.0,
    );
    want(
        "requests in flight on web",
        exact(&s, "gatehouse_http_requests_in_flight", &in_flight),
        0.0,
    );
    want(
        "echo-a saw",
        Some(lab.echo_a.requests_seen("/count/a/") as f64),
        37.0,
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n--- /metrics (HTTP) ---\n{}",
        problems.len(),
        problems.join("\n  "),
        dump()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn series_of_a_removed_route_vanish_and_the_others_stay() {
    let lab = Lab::start("").await;
    let mut h1 = Client::http1(lab.http());
    for i in 0..3 {
        expect(&mut h1, A, &format!("/a/{i}"), 200).await;
    }
    for i in 0..4 {
        expect(&mut h1, B, &format!("/b/{i}"), 200).await;
    }
    expect(&mut h1, NOWHERE, "/none", 404).await;
    let a = [("route", "default/a"), ("code", "200")];
    let route_b = [("route", "default/b")];
    let before = wait_metrics(&lab.gw, |s| {
        series(s, REQUESTS, &a).first().map(|x| x.value) == Some(3.0)
            && series(s, REQUESTS, &route_b).first().map(|x| x.value) == Some(4.0)
            && !series(s, REQUESTS, &[("code", "404")]).is_empty()
    })
    .await;
    for name in [
        REQUESTS,
        "gatehouse_http_request_duration_seconds_count",
        "gatehouse_upstream_request_duration_seconds_count",
    ] {
        assert!(
            !series(&before, name, &route_b).is_empty(),
            "no {name} series of route b before the reload"
        );
    }

    let doc = reload_ok(&lab.gw, &lab.toml(LabRoutes { b: false })).await;
    assert!(
        doc["status"]["routes"]
            .as_array()
            .expect("routes")
            .iter()
            .all(|r| r["key"]["name"] != "b"),
        "route b still in /status: {doc:#}"
    );
    let after = parse_metrics(&metrics_text(&lab.gw).await);
    let left: Vec<String> = after
        .iter()
        .filter(|x| {
            x.labels.get("route").map(String::as_str) == Some("default/b")
                || x.labels.get("backend").map(String::as_str) == Some("default/echo-b:8080")
        })
        .map(|x| format!("{} {:?}", x.name, x.labels))
        .collect();
    assert!(
        left.is_empty(),
        "series of the removed route b (or its backend) are still exported:\n  {}",
        left.join("\n  ")
    );
    assert_eq!(
        series(&after, REQUESTS, &a).first().map(|x| x.value),
        Some(3.0),
        "route a's counter after the reload"
    );
    for name in [
        "gatehouse_http_request_duration_seconds_count",
        "gatehouse_upstream_request_duration_seconds_count",
    ] {
        assert_eq!(
            series(&after, name, &[("route", "default/a")])
                .first()
                .map(|x| x.value),
            Some(3.0),
            "{name} of route a after the reload"
        );
    }
    assert!(
        !series(&after, REQUESTS, &[("route", ""), ("code", "404")]).is_empty(),
        "the 404 series (route=\"\") vanished with route b"
    );
    // Route a still counts.
    expect(&mut h1, A, "/a/after", 200).await;
    let s = wait_metrics(&lab.gw, |s| {
        series(s, REQUESTS, &a).first().map(|x| x.value) >= Some(4.0)
    })
    .await;
    assert_eq!(series(&s, REQUESTS, &a).first().map(|x| x.value), Some(4.0));
}

// ---------------------------------------------------------------------------------------------
// Health endpoints

#[tokio::test(flavor = "multi_thread")]
async fn admin_answers_readyz_healthz_and_404_for_unknown_paths() {
    let ip = unique_ip();
    let admin = SocketAddr::from((unique_ip(), 9542));
    let echo = Echo::start("echo-a");
    let mut toml = daemon(admin, "");
    toml.push_str(&echo_service("echo-a", &echo));
    toml.push_str(&gateway("gw", ip, &[http_listener("web", None)]));
    toml.push_str(&route(
        "a",
        "web",
        &[A],
        r#"{ name = "echo-a", port = 8080 }"#,
    ));
    let gw = Gateway::start(ConfigDir::with_main(&toml), &[SocketAddr::from((ip, 80))]);
    assert_eq!(gw.admin, admin);

    // Ready once the configuration is applied (listeners bound, VIPs handled): the data
    // plane may accept a moment before that, so wait on a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let readyz = loop {
        let r = admin_get(admin, "/readyz").await;
        if r.status == 200 || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(readyz.status, 200, "/readyz after start: {readyz:?}");
    let healthz = admin_get(admin, "/healthz").await;
    assert_eq!(healthz.status, 200, "/healthz: {healthz:?}");
    for path in ["/nope", "/metrics/extra", "/"] {
        let r = admin_get(admin, path).await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
    let metrics = admin_get(admin, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "/metrics content type: {:?}",
        metrics.header("content-type")
    );
    let s = parse_metrics(&String::from_utf8_lossy(&metrics.body));
    assert_eq!(exact(&s, "gatehouse_config_generation", &[]), Some(1.0));
    assert_eq!(
        exact(&s, "gatehouse_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        exact(
            &s,
            "gatehouse_config_reloads_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(
        exact(
            &s,
            "gatehouse_config_reloads_total",
            &[("result", "failure")]
        ),
        Some(0.0)
    );
    assert_eq!(
        series(&s, "gatehouse_build_info", &[])
            .first()
            .map(|x| x.value),
        Some(1.0)
    );
}

// ---------------------------------------------------------------------------------------------
// Access logs

/// The gateway's access log lines, parsed (every line with target gatehouse::access must be
/// a JSON object).
fn access_lines(gw: &Gateway) -> Vec<Value> {
    gw.log()
        .lines()
        .filter(|l| l.contains("gatehouse::access"))
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("access log line is not JSON ({e}): {l}"))
        })
        .filter(|v| v["target"] == "gatehouse::access")
        .collect()
}

/// Waits until the access log has a line for which `pred` holds; returns every such line.
async fn wait_access(gw: &Gateway, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found: Vec<Value> = access_lines(gw).into_iter().filter(|v| pred(v)).collect();
        if !found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const JSON_LOG: &str = "format = \"json\"";

#[tokio::test(flavor = "multi_thread")]
async fn access_log_is_one_json_line_per_request() {
    let lab = Lab::start(JSON_LOG).await;
    let mut h1 = Client::http1(lab.http());
    expect(&mut h1, A, "/log/ok", 200).await;
    expect(&mut h1, NOWHERE, "/log/missing", 404).await;
    let mut h2c = Client::h2c(lab.http());
    expect(&mut h2c, B, "/log/h2c", 200).await;

    // (path, status, route, backend)
    let cases = [
        ("/log/ok", 200, "default/a", "default/echo-a:8080"),
        ("/log/missing", 404, "", ""),
        ("/log/h2c", 200, "default/b", "default/echo-b:8080"),
    ];
    let mut problems = Vec::new();
    for (path, status, route, backend) in cases {
        let lines = wait_access(&lab.gw, |v| v["path"] == path).await;
        if lines.len() != 1 {
            problems.push(format!(
                "{path}: want one access line, got {}: {lines:?}",
                lines.len()
            ));
            continue;
        }
        let l = &lines[0];
        for (field, want) in [
            ("message", Value::from("request")),
            ("status", Value::from(status)),
            ("listener", Value::from("default/gw/web")),
            ("route", Value::from(route)),
            ("backend", Value::from(backend)),
            ("method", Value::from("GET")),
        ] {
            if l[field] != want {
                problems.push(format!("{path}: {field} want {want}, got {}", l[field]));
            }
        }
        if !l["duration_ms"].as_f64().is_some_and(|d| d >= 0.0) {
            problems.push(format!("{path}: duration_ms is {}", l["duration_ms"]));
        }
    }
    let total = access_lines(&lab.gw)
        .iter()
        .filter(|v| v["message"] == "request")
        .count();
    if total != cases.len() {
        problems.push(format!(
            "want {} request lines in all, got {total}",
            cases.len()
        ));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n--- gateway log ---\n{}",
        problems.len(),
        problems.join("\n  "),
        lab.gw.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_is_one_json_line_per_passthrough_connection() {
    let lab = Lab::start(JSON_LOG).await;
    let p = passthrough(&lab.client_tls(), lab.tls(), PASS).await;
    assert_eq!(p.report["name"], "tls-backend", "{:?}", p.report);
    let lines = wait_access(&lab.gw, |v| v["message"] == "passthrough").await;
    assert_eq!(
        lines.len(),
        1,
        "want one passthrough line: {lines:?}\n--- gateway log ---\n{}",
        lab.gw.log()
    );
    let l = &lines[0];
    let mut problems = Vec::new();
    for (field, want) in [
        ("sni", Value::from(PASS)),
        ("listener", Value::from("default/gw/pass")),
        ("route", Value::from("default/pass")),
        ("backend", Value::from("default/tls-backend:443")),
        ("bytes_in", Value::from(p.written)),
        ("bytes_out", Value::from(p.read)),
    ] {
        if l[field] != want {
            problems.push(format!("{field}: want {want}, got {}", l[field]));
        }
    }
    if !l["duration_ms"].as_f64().is_some_and(|d| d >= 0.0) {
        problems.push(format!(
            "duration_ms: want a number, got {}",
            l["duration_ms"]
        ));
    }
    // The metrics count the same bytes.
    let route = [
        ("gateway", "default/gw"),
        ("listener", "pass"),
        ("route", "default/pass"),
    ];
    let s = wait_metrics(&lab.gw, |s| {
        exact(s, "gatehouse_tls_passthrough_connections_total", &route) == Some(1.0)
    })
    .await;
    let bytes = |dir: &'static str| {
        let mut labels = route.to_vec();
        labels.push(("direction", dir));
        exact(&s, "gatehouse_tls_passthrough_bytes_total", &labels)
    };
    if bytes("in") != Some(p.written as f64) || bytes("out") != Some(p.read as f64) {
        problems.push(format!(
            "passthrough bytes metrics: want in {} out {}, got {:?} {:?}",
            p.written,
            p.read,
            bytes("in"),
            bytes("out")
        ));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in the passthrough access line {l}:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_off_writes_no_access_lines() {
    let lab = Lab::start("format = \"json\"\naccessLog = false").await;
    let mut h1 = Client::http1(lab.http());
    expect(&mut h1, A, "/quiet", 200).await;
    expect(&mut h1, NOWHERE, "/quiet", 404).await;
    let p = passthrough(&lab.client_tls(), lab.tls(), PASS).await;
    assert_eq!(p.report["name"], "tls-backend");
    // The requests are counted (in the same step that would log them) ...
    let s = wait_metrics(&lab.gw, |s| {
        series(s, REQUESTS, &[])
            .iter()
            .map(|x| x.value)
            .sum::<f64>()
            >= 2.0
            && !series(s, "gatehouse_tls_passthrough_connections_total", &[]).is_empty()
    })
    .await;
    assert!(
        !series(&s, "gatehouse_tls_passthrough_connections_total", &[]).is_empty(),
        "the passthrough connection was not counted"
    );
    // ... and a reload logged after them marks where their lines would be.
    reload_ok(&lab.gw, &lab.toml(LabRoutes { b: true })).await;
    let deadline = Instant::now() + DEADLINE;
    while !lab.gw.log().contains("configuration applied") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = lab.gw.log();
    assert!(
        log.contains("configuration applied"),
        "no reload line: {log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with('{') && l.contains("gatehouse serving")),
        "the daemon's own lines are not JSON: {log}"
    );
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("gatehouse::access"))
        .collect();
    assert!(
        access.is_empty(),
        "accessLog = false, yet:\n{}",
        access.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The Grafana dashboard

/// Every `gatehouse_[a-z_]+` in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("gatehouse_") {
        let tail = &rest[i..];
        let end = tail
            .char_indices()
            .skip("gatehouse_".len())
            .find(|(_, c)| !(c.is_ascii_lowercase() || *c == '_'))
            .map_or(tail.len(), |(j, _)| j);
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

fn dashboard() -> (String, Value) {
    let path = repo_root().join("packaging/grafana/gatehouse-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    (text, json)
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_uses_only_metrics_the_daemon_exports() {
    let (text, json) = dashboard();
    assert!(json["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    assert!(
        json["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["name"] == "DS_PROMETHEUS"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
        "no Prometheus datasource variable DS_PROMETHEUS"
    );
    let panels: Vec<&Value> = json["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] != "row")
        .collect();
    for p in &panels {
        assert_eq!(
            p["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {} does not use the DS_PROMETHEUS variable",
            p["title"]
        );
        let targets = p["targets"].as_array().map_or(0, Vec::len);
        assert!(targets > 0, "panel {} has no queries", p["title"]);
    }
    let used = metric_names(&text);
    assert!(!used.is_empty(), "the dashboard names no gatehouse_ metric");

    let lab = Lab::start("").await;
    every_kind_of_traffic(&lab).await;
    let text = metrics_text(&lab.gw).await;
    let exported: BTreeSet<String> = parse_metrics(&text).into_iter().map(|s| s.name).collect();
    let unknown: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard uses metrics /metrics does not have: {unknown:?}\nexported: {exported:?}"
    );
    // And it shows every metric family the daemon exports.
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let unused: Vec<&&str> = families
        .iter()
        .filter(|f| {
            !["", "_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| used.contains(&format!("{f}{suffix}")))
        })
        .collect();
    assert!(
        unused.is_empty(),
        "metric families no dashboard panel shows: {unused:?}"
    );
}
