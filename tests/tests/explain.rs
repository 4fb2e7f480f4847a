//! `gatehouse explain` against the real daemon: for a sample of requests (path, header,
//! method and query matching, a redirect, a missing backend, a Host no listener takes), what
//! `explain --admin` says the client would get is what the daemon then does with the same
//! request, and `explain --config` on the same files selects the same rules.

use gatehouse_tests::{Client, ConfigDir, Echo, Gateway, gatehouse_bin, unique_ip};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

fn config(ip: Ipv4Addr, details: &Echo, productpage: &Echo) -> String {
    format!(
        r#"
[[Gateway]]
name = "g"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [{{ name = "web", protocol = "HTTP", port = 8080, hostname = "*.example.com" }}]

[[HTTPRoute]]
name = "app"
parentRefs = [{{ name = "g" }}]
[[HTTPRoute.rules]]
matches = [{{ path = {{ type = "PathPrefix", value = "/details" }} }}]
backendRefs = [{{ name = "details", port = 9080 }}]
[[HTTPRoute.rules]]
backendRefs = [{{ name = "productpage", port = 9080 }}]
[[HTTPRoute.rules.matches]]
path = {{ type = "PathPrefix", value = "/" }}
method = "GET"
headers = [{{ name = "magic", value = "foo" }}]
queryParams = [{{ name = "great", value = "example" }}]
[[HTTPRoute.rules]]
matches = [{{ path = {{ type = "PathPrefix", value = "/old" }} }}]
filters = [{{ type = "RequestRedirect", requestRedirect = {{ path = {{ type = "ReplacePrefixMatch", replacePrefixMatch = "/new" }}, statusCode = 301 }} }}]
[[HTTPRoute.rules]]
matches = [{{ path = {{ type = "Exact", value = "/gone" }} }}]
backendRefs = [{{ name = "nowhere", port = 9080 }}]

[[Service]]
name = "details"
ports = [{{ port = 9080 }}]
endpoints = ["{details}"]
[[Service]]
name = "productpage"
ports = [{{ port = 9080 }}]
endpoints = ["{productpage}"]
"#,
        details = details.addr,
        productpage = productpage.addr,
    )
}

/// `gatehouse explain -o json` with `source` (`--admin ADDR` or `--config DIR`).
fn explain(
    source: &[&str],
    ip: Ipv4Addr,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Value {
    let mut cmd = Command::new(gatehouse_bin());
    cmd.arg("explain")
        .args(source)
        .args(["--to", &ip.to_string(), "-o", "json", "-X", method]);
    for (n, v) in headers {
        cmd.arg("-H").arg(format!("{n}: {v}"));
    }
    let out = cmd.arg(url).output().expect("run gatehouse explain");
    assert!(
        out.status.success(),
        "explain {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("explain -o json is JSON")
}

fn selected(e: &Value) -> Vec<(String, u64, String)> {
    e["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["route"].as_str().unwrap().to_string(),
                r["rule"].as_u64().unwrap(),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Method, Host, path with query, extra headers.
type Case<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)]);

#[tokio::test(flavor = "multi_thread")]
async fn explain_says_what_the_daemon_then_does() {
    let details = Echo::start("details");
    let productpage = Echo::start("productpage");
    let ip = unique_ip();
    let addr = SocketAddr::from((ip, 8080));
    let dir = ConfigDir::with_main(&config(ip, &details, &productpage));
    let gw = Gateway::start(dir, &[addr]);
    let admin = gw.admin.to_string();
    let config_dir = gw.dir.path().display().to_string();
    let mut client = Client::http1(addr);
    let cases: &[Case] = &[
        ("GET", "www.example.com", "/details/7", &[]),
        (
            "GET",
            "www.example.com",
            "/?great=example",
            &[("magic", "foo")],
        ),
        (
            "POST",
            "www.example.com",
            "/?great=example",
            &[("magic", "foo")],
        ),
        (
            "GET",
            "www.example.com",
            "/?great=example",
            &[("magic", "bar")],
        ),
        ("GET", "www.example.com", "/old/page?x=1", &[]),
        ("GET", "www.example.com", "/gone", &[]),
        ("GET", "other.org", "/details/7", &[]),
    ];
    for (method, host, path, headers) in cases {
        let url = format!("http://{host}:8080{path}");
        let e = explain(&["--admin", &admin], ip, method, &url, headers);
        let real = client.request(method, host, path, headers).await;
        let outcome = &e["outcome"];
        match outcome["forward_to"].as_str() {
            Some(to) => {
                assert_eq!(real.status, 200, "{method} {url}: {e:#}");
                let service = to.trim_start_matches("default/").split(':').next().unwrap();
                assert_eq!(real.backend().as_deref(), Some(service), "{method} {url}");
                // The daemon knows its endpoints' health.
                let eps = &e["backends"][0]["endpoints"];
                assert_eq!(eps[0]["healthy"], true, "{e:#}");
            }
            None => {
                let status = outcome["status"]
                    .as_u64()
                    .expect("a status when not forwarded");
                assert_eq!(real.status.as_u16() as u64, status, "{method} {url}: {e:#}");
                assert_eq!(
                    real.header("location"),
                    outcome["location"].as_str().map(str::to_string),
                    "{method} {url}"
                );
            }
        }
        // From the files, the same rules are selected, lost and unmatched.
        let from_files = explain(&["--config", &config_dir], ip, method, &url, headers);
        assert_eq!(selected(&from_files), selected(&e), "{method} {url}");
    }
    // The text output names the selected rule and the reason another one failed.
    let out = Command::new(gatehouse_bin())
        .args(["explain", "--admin", &admin, "--to", &ip.to_string()])
        .args([
            "-H",
            "magic: bar",
            "http://www.example.com:8080/?great=example",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("header magic is \"bar\", not = \"foo\""),
        "{text}"
    );
    assert!(text.contains("outcome: 404"), "{text}");
}
