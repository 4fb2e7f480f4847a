//! The PROXY protocol with real peers on loopback:
//!
//! - in: HAProxy in front of gatehouse sends `send-proxy-v2` and `send-proxy` (v1); the
//!   client's own address (curl bound to an address of its own) is what the backend sees in
//!   `X-Forwarded-For`, not HAProxy's. A peer outside `trustedSources`, and a connection
//!   without a header, are closed and counted;
//! - out: a TCPRoute to nginx listening with `proxy_protocol`, through a Service with
//!   `proxyProtocol = "v1"` or `"v2"`: nginx's `$proxy_protocol_addr` is the client's address.
//!
//! Needs haproxy, nginx and curl (`scripts/install-prerequisites`); without them each test
//! prints "skipped: <reason>" and passes, unless `CI` is set.

use gatehouse_tests::peers::Peer;
use gatehouse_tests::raw::metric;
use gatehouse_tests::{ConfigDir, Echo, Gateway, unique_ip};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

/// `curl` from `source` to `url`: the body, or why it failed.
fn curl_from(source: Ipv4Addr, url: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--interface"])
        .arg(source.to_string())
        .arg(url)
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn gateway_toml(ip: Ipv4Addr, trusted: &str, echo: &Echo) -> String {
    format!(
        r#"
[proxyProtocol]
ports = [8080]
trustedSources = ["{trusted}"]

[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [{{ name = "http", protocol = "HTTP", port = 8080 }}]

[[HTTPRoute]]
name = "app"
parentRefs = [{{ name = "gw" }}]
rules = [{{ backendRefs = [{{ name = "app", port = 80 }}] }}]

[[Service]]
name = "app"
ports = [{{ port = 80 }}]
endpoints = ["{}"]
"#,
        echo.addr
    )
}

/// An echo backend behind gatehouse (PROXY headers read on its port from `trusted`), and
/// HAProxy in front with a `send-proxy-v2` frontend (`v2`) and a `send-proxy` one (`v1`);
/// `None` when HAProxy is not installed (the test skips).
struct Lab {
    echo: Echo,
    gw: Gateway,
    addr: SocketAddr,
    v2: SocketAddr,
    v1: SocketAddr,
    _haproxy: Peer,
}

fn behind_haproxy(trusted: &str) -> Option<Lab> {
    let echo = Echo::start("app");
    let ip = unique_ip();
    let addr = SocketAddr::from((ip, 8080));
    let gw = Gateway::start(
        ConfigDir::with_main(&gateway_toml(ip, trusted, &echo)),
        &[addr],
    );
    let (v2, v1) = (
        SocketAddr::from((unique_ip(), 9000)),
        SocketAddr::from((unique_ip(), 9001)),
    );
    let config = format!(
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend v2\n  bind {v2}\n  default_backend v2\n\
         backend v2\n  server gatehouse {addr} send-proxy-v2\n\
         frontend v1\n  bind {v1}\n  default_backend v1\n\
         backend v1\n  server gatehouse {addr} send-proxy\n"
    );
    let haproxy = Peer::start("haproxy", &config, &[v2, v1])?;
    Some(Lab {
        echo,
        gw,
        addr,
        v2,
        v1,
        _haproxy: haproxy,
    })
}

fn rejected(gw: &Gateway, reason: &str) -> f64 {
    metric(
        gw.admin,
        &format!("gatehouse_downstream_connections_rejected_total{{reason=\"{reason}\"}}"),
    )
}

#[test]
fn behind_haproxy_the_backend_sees_the_clients_address_from_v1_and_v2_headers() {
    // The whole lab stays bound: its HAProxy and echo live until the end of the test.
    let Some(lab) = behind_haproxy("127.0.0.0/8") else {
        return;
    };
    let (gw, addr, v2, v1) = (&lab.gw, lab.addr, lab.v2, lab.v1);
    for front in [v2, v1] {
        let client = unique_ip();
        let body = curl_from(client, &format!("http://{front}/who")).expect("through HAProxy");
        let echo: serde_json::Value = serde_json::from_str(&body).expect("the echo's JSON");
        assert_eq!(
            echo["headers"]["X-Forwarded-For"][0],
            client.to_string(),
            "the backend should see the client {client} (via {front}): {body}"
        );
    }
    assert!(
        gw.log().contains("client=127.") && !gw.log().contains("client=127.0.0.1 "),
        "the access log names the clients, not HAProxy: {}",
        gw.log()
    );

    // Straight to gatehouse, without a header: closed, counted as malformed.
    let before = rejected(gw, "proxy_protocol_malformed");
    let direct = curl_from(unique_ip(), &format!("http://{addr}/"));
    assert!(
        direct.is_err(),
        "a connection without a PROXY header was served: {direct:?}"
    );
    assert_eq!(rejected(gw, "proxy_protocol_malformed"), before + 1.0);
}

#[test]
fn a_load_balancer_outside_trusted_sources_is_closed_and_counted() {
    let Some(lab) = behind_haproxy("192.0.2.0/24") else {
        return;
    };
    let (echo, gw, v2) = (&lab.echo, &lab.gw, lab.v2);
    let got = curl_from(unique_ip(), &format!("http://{v2}/"));
    assert!(got.is_err() || got.as_deref() == Ok(""), "served: {got:?}");
    assert!(rejected(gw, "proxy_protocol_untrusted") >= 1.0);
    assert_eq!(echo.requests_seen("/"), 0, "nothing reached the backend");
}

#[test]
fn tcp_backends_with_proxy_protocol_learn_the_clients_address_v1_and_v2() {
    let ip = unique_ip();
    let (nginx1, nginx2) = (
        SocketAddr::from((unique_ip(), 9100)),
        SocketAddr::from((unique_ip(), 9101)),
    );
    let nginx_conf = format!(
        "master_process off;\npid {{dir}}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {{dir}};\n  proxy_temp_path {{dir}};\n  fastcgi_temp_path {{dir}};\n  uwsgi_temp_path {{dir}};\n  scgi_temp_path {{dir}};\n  server {{ listen {nginx1} proxy_protocol; return 200 \"v1 $proxy_protocol_addr\\n\"; }}\n  server {{ listen {nginx2} proxy_protocol; return 200 \"v2 $proxy_protocol_addr\\n\"; }}\n}}\n"
    );
    let Some(_nginx) = Peer::start("nginx", &nginx_conf, &[nginx1, nginx2]) else {
        return;
    };
    let toml = format!(
        r#"
[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [
  {{ name = "v1", protocol = "TCP", port = 7001 }},
  {{ name = "v2", protocol = "TCP", port = 7002 }},
]

[[TCPRoute]]
name = "v1"
parentRefs = [{{ name = "gw", sectionName = "v1" }}]
rules = [{{ backendRefs = [{{ name = "nginx-v1", port = 80 }}] }}]

[[TCPRoute]]
name = "v2"
parentRefs = [{{ name = "gw", sectionName = "v2" }}]
rules = [{{ backendRefs = [{{ name = "nginx-v2", port = 80 }}] }}]

[[Service]]
name = "nginx-v1"
proxyProtocol = "v1"
ports = [{{ port = 80, targetPort = {p1} }}]
endpoints = ["{h1}"]

[[Service]]
name = "nginx-v2"
proxyProtocol = "v2"
ports = [{{ port = 80, targetPort = {p2} }}]
endpoints = ["{h2}"]
"#,
        p1 = nginx1.port(),
        h1 = nginx1.ip(),
        p2 = nginx2.port(),
        h2 = nginx2.ip(),
    );
    let (a1, a2) = (SocketAddr::from((ip, 7001)), SocketAddr::from((ip, 7002)));
    let _gw = Gateway::start(ConfigDir::with_main(&toml), &[a1, a2]);
    for (addr, version) in [(a1, "v1"), (a2, "v2")] {
        let client = unique_ip();
        let body = curl_from(client, &format!("http://{addr}/")).expect("through gatehouse");
        assert_eq!(body, format!("{version} {client}\n"));
    }
}
