//! UDPRoute against the real binary, with dnsmasq as the DNS servers behind it (each answers
//! `who.test TXT` with its own name): real queries answered from the Gateway address (also
//! when the listener is bound to every address), weights 3:1 over a thousand flows, a flow
//! that keeps its backend across a reload and ends after its idle timeout, and a bounded flow
//! table whose excess is dropped and counted.

use gatehouse_tests::dns::{self, Type};
use gatehouse_tests::peers::Peer;
use gatehouse_tests::process::DEADLINE;
use gatehouse_tests::raw::metric;
use gatehouse_tests::{ConfigDir, Gateway, unique_ip};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

const PORT: u16 = 5300;
const WAIT: Duration = Duration::from_secs(2);

/// A dnsmasq named `name` on a loopback address of its own, with a Service `name` (port 53)
/// in front of it; `None` when dnsmasq is missing outside CI.
fn dns_backend(name: &str) -> Option<(Peer, String)> {
    let addr = SocketAddr::from((unique_ip(), 5399));
    let peer = dns::dnsmasq(addr, name)?;
    let service = format!(
        r#"
[[Service]]
name = "{name}"
ports = [{{ port = 53, targetPort = {} }}]
endpoints = ["{}"]
"#,
        addr.port(),
        addr.ip()
    );
    Some((peer, service))
}

/// A Gateway `g` with a UDP listener `dns` on `port`, on `ip` (every address when `None`),
/// and a UDPRoute `r` to `backends` (`(service, weight)`) with `extra` in its rule.
fn udp_config(ip: Option<Ipv4Addr>, port: u16, backends: &[(&str, u32)], extra: &str) -> String {
    format!("{}{}", udp_gateway(ip, port), udp_route(backends, extra))
}

fn udp_gateway(ip: Option<Ipv4Addr>, port: u16) -> String {
    let addresses = ip.map_or(String::new(), |ip| {
        format!("addresses = [{{ value = \"{ip}\" }}]")
    });
    format!(
        r#"
[[Gateway]]
name = "g"
gatewayClassName = "gatehouse"
{addresses}
listeners = [{{ name = "dns", protocol = "UDP", port = {port} }}]
"#
    )
}

fn udp_route(backends: &[(&str, u32)], extra: &str) -> String {
    let refs = backends
        .iter()
        .map(|(s, w)| format!("{{ name = \"{s}\", port = 53, weight = {w} }}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[[UDPRoute]]
name = "r"
parentRefs = [{{ name = "g", sectionName = "dns" }}]
rules = [{{ backendRefs = [{refs}]{extra} }}]
"#
    )
}

fn wait_for(what: &str, gw: &Gateway, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what}\n--- gateway log ---\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Which backend answered `who.test TXT`, asked from `socket` (or a fresh one).
fn who(server: SocketAddr, socket: Option<&std::net::UdpSocket>, id: u16) -> Option<String> {
    let q = dns::query(id, "who.test", Type::Txt);
    let fresh;
    let socket = match socket {
        Some(s) => s,
        None => {
            fresh = dns::client();
            &fresh
        }
    };
    let answer = dns::exchange_on(socket, server, &q, WAIT)?;
    assert!(answer.answers(id), "not an answer: {answer:?}");
    ["dns-a", "dns-b"]
        .into_iter()
        .find(|n| answer.contains(n.as_bytes()))
        .map(str::to_string)
}

#[test]
fn dig_through_a_udp_route_gets_dnsmasqs_answer_from_the_gateway_address() {
    let Some((_a, service)) = dns_backend("dns-a") else {
        return;
    };
    let ip = unique_ip();
    let dir = ConfigDir::with_main(&format!(
        "{service}{}",
        udp_config(Some(ip), PORT, &[("dns-a", 1)], "")
    ));
    let gw = Gateway::start(dir, &[]);
    let server = SocketAddr::from((ip, PORT));
    // The real client: dig, over UDP (+notcp), no retries.
    let out = Command::new("dig")
        .args([
            &format!("@{ip}"),
            "-p",
            &PORT.to_string(),
            "www.test",
            "A",
            "+short",
            "+notcp",
            "+tries=1",
            "+time=2",
        ])
        .output();
    match out {
        Ok(out) => assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "192.0.2.10",
            "dig: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            gw.log()
        ),
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "CI is set but dig: {e}");
            eprintln!("dig skipped: {e} (the Debian package bind9-dnsutils)");
        }
    }
    let answer = dns::ask(server, 7, "www.test", Type::A, WAIT).expect("an answer");
    assert!(answer.answers(7));
    assert!(answer.contains(&[192, 0, 2, 10]));
    assert_eq!(
        answer.from, server,
        "the reply leaves from the Gateway address"
    );
    let flows =
        r#"gatehouse_udp_flows_total{gateway="default/g",listener="dns",route="default/r"}"#;
    assert!(metric(gw.admin, flows) >= 1.0, "{}", gw.log());
    let datagrams_out = r#"gatehouse_udp_datagrams_total{direction="out",gateway="default/g",listener="dns",route="default/r"}"#;
    assert!(metric(gw.admin, datagrams_out) >= 1.0);
    // Status shows the route accepted on the UDP listener.
    let status = Command::new(gatehouse_tests::gatehouse_bin())
        .args(["status", "--admin", &gw.admin.to_string()])
        .output()
        .expect("gatehouse status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("UDPRoute"), "{text}");
}

#[test]
fn a_wildcard_udp_listener_replies_from_the_address_the_client_wrote_to() {
    let Some((_a, service)) = dns_backend("dns-a") else {
        return;
    };
    // No Gateway address: one socket on every address. Two different loopback addresses
    // each get their answers from themselves, not from whatever the route table picks.
    let port = PORT + 1;
    let dir = ConfigDir::with_main(&format!(
        "{service}{}",
        udp_config(None, port, &[("dns-a", 1)], "")
    ));
    let gw = Gateway::start(dir, &[]);
    for (id, ip) in [(1u16, unique_ip()), (2, unique_ip())] {
        let server = SocketAddr::from((ip, port));
        let mut answer = None;
        wait_for("an answer on the wildcard listener", &gw, || {
            answer = dns::ask(server, id, "www.test", Type::A, Duration::from_millis(500));
            answer.is_some()
        });
        let answer = answer.unwrap();
        assert!(answer.answers(id));
        assert_eq!(answer.from.ip(), IpAddr::V4(ip));
        assert_eq!(answer.from.port(), port);
    }
}

#[test]
fn udp_route_weights_three_to_one_split_a_thousand_flows() {
    let (Some((_a, sa)), Some((_b, sb))) = (dns_backend("dns-a"), dns_backend("dns-b")) else {
        return;
    };
    let ip = unique_ip();
    let port = PORT + 2;
    // A short idle timeout keeps the thousand flows from piling up.
    let dir = ConfigDir::with_main(&format!(
        "{sa}{sb}{}",
        udp_config(
            Some(ip),
            port,
            &[("dns-a", 3), ("dns-b", 1)],
            r#", timeouts = { idle = "1s" }"#
        )
    ));
    let gw = Gateway::start(dir, &[]);
    let server = SocketAddr::from((ip, port));
    const N: usize = 1000;
    let (mut to_a, mut to_b) = (0usize, 0usize);
    // Every client socket stays open, so no source port is used twice: a thousand flows.
    let clients: Vec<std::net::UdpSocket> = (0..N).map(|_| dns::client()).collect();
    for (i, c) in clients.iter().enumerate() {
        match who(server, Some(c), i as u16).as_deref() {
            Some("dns-a") => to_a += 1,
            Some("dns-b") => to_b += 1,
            other => panic!("query {i}: {other:?}\n{}", gw.log()),
        }
    }
    // Binomial(1000, 0.75): mean 750, sigma 13.7; six sigma either way.
    assert!((668..=832).contains(&to_a), "dns-a {to_a}, dns-b {to_b}");
    assert_eq!(to_a + to_b, N);
    let flows =
        r#"gatehouse_udp_flows_total{gateway="default/g",listener="dns",route="default/r"}"#;
    assert_eq!(metric(gw.admin, flows), N as f64);
    let active =
        r#"gatehouse_udp_flows_active{gateway="default/g",listener="dns",route="default/r"}"#;
    wait_for("every flow expired", &gw, || {
        metric(gw.admin, active) == 0.0
    });
    assert!(gw.log().contains("end=\"idle\"") || gw.log().contains("end=idle"));
}

#[test]
fn a_flow_keeps_its_backend_across_a_reload_and_ends_when_idle() {
    let (Some((_a, sa)), Some((_b, sb))) = (dns_backend("dns-a"), dns_backend("dns-b")) else {
        return;
    };
    let ip = unique_ip();
    let port = PORT + 3;
    let route = |backend: &str| udp_route(&[(backend, 1)], r#", timeouts = { idle = "2s" }"#);
    let dir = ConfigDir::with_main(&format!("{sa}{sb}{}", udp_gateway(Some(ip), port)));
    dir.write("conf.d/route.toml", &route("dns-a"));
    let gw = Gateway::start(dir, &[]);
    let server = SocketAddr::from((ip, port));
    let kept = dns::client();
    assert_eq!(who(server, Some(&kept), 1).as_deref(), Some("dns-a"));
    let active =
        r#"gatehouse_udp_flows_active{gateway="default/g",listener="dns",route="default/r"}"#;
    assert_eq!(metric(gw.admin, active), 1.0);

    // The route moves to dns-b: a new flow goes there, the open one stays with dns-a.
    gw.dir.write("conf.d/route.toml", &route("dns-b"));
    let generation = r#"gatehouse_config_generation"#;
    let before = metric(gw.admin, generation);
    gw.reload();
    wait_for("the reload applied", &gw, || {
        metric(gw.admin, generation) > before
    });
    assert_eq!(who(server, None, 2).as_deref(), Some("dns-b"));
    assert_eq!(who(server, Some(&kept), 3).as_deref(), Some("dns-a"));

    // Silent for its idle timeout (2 s), the flow ends: the same client socket is then a
    // new flow, and goes to dns-b.
    let started = Instant::now();
    wait_for("the kept flow expired", &gw, || {
        metric(gw.admin, active) == 0.0
    });
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the flow ended {:?} after its last datagram",
        started.elapsed()
    );
    assert_eq!(who(server, Some(&kept), 4).as_deref(), Some("dns-b"));
}

#[test]
fn the_flow_table_is_bounded_and_the_excess_is_dropped_and_counted() {
    let Some((_a, sa)) = dns_backend("dns-a") else {
        return;
    };
    let ip = unique_ip();
    let port = PORT + 4;
    let dir = ConfigDir::with_main(&format!(
        "[limits]\nudpMaxFlows = 3\n{sa}{}",
        udp_config(
            Some(ip),
            port,
            &[("dns-a", 1)],
            r#", timeouts = { idle = "30s" }"#
        )
    ));
    let gw = Gateway::start(dir, &[]);
    let server = SocketAddr::from((ip, port));
    let clients: Vec<std::net::UdpSocket> = (0..5).map(|_| dns::client()).collect();
    let answered: Vec<bool> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let wait = if i < 3 {
                WAIT
            } else {
                Duration::from_millis(300)
            };
            let q = dns::query(i as u16, "who.test", Type::Txt);
            dns::exchange_on(c, server, &q, wait).is_some()
        })
        .collect();
    assert_eq!(answered, [true, true, true, false, false], "{}", gw.log());
    let dropped =
        format!(r#"gatehouse_udp_dropped_total{{port="{port}",reason="flow_table_full"}}"#);
    assert_eq!(metric(gw.admin, &dropped), 2.0);
    // The three flows that fit keep working.
    assert_eq!(who(server, Some(&clients[0]), 9).as_deref(), Some("dns-a"));
    assert!(gw.log().contains("udpMaxFlows reached"));
}
