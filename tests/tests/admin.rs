//! The admin listener is hardened like the data plane, against the real binary: a slow
//! request head is cut off, connections beyond the cap are closed at once, `/status` names
//! files rather than their paths unless `?verbose`, and a listener reachable from the
//! network without `allowRemote` is a warning in `/status` and `gatehouse check`.

use gatehouse_tests::raw::{End, connect, exchange, metric, read_until_close};
use gatehouse_tests::{ConfigDir, Gateway, text, unique_ip};
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn get(addr: SocketAddr, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    exchange(addr, req.as_bytes(), Duration::from_secs(5)).0
}

fn http_gateway() -> (String, SocketAddr) {
    let ip = unique_ip();
    let toml = format!(
        "[[Gateway]]\nname = \"gw\"\ngatewayClassName = \"gatehouse\"\naddresses = [{{ value = \"{ip}\" }}]\nlisteners = [{{ name = \"http\", protocol = \"HTTP\", port = 8080 }}]\n"
    );
    (toml, SocketAddr::from((ip, 8080)))
}

#[test]
fn a_request_head_not_finished_within_the_header_timeout_is_closed() {
    let (toml, addr) = http_gateway();
    let gw = Gateway::start(ConfigDir::with_main(&toml), &[addr]);
    let mut s = connect(gw.admin);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: adm").unwrap();
    let started = Instant::now();
    let (_, end) = read_until_close(&mut s, Duration::from_secs(30));
    eprintln!("closed after {:?}", started.elapsed());
    assert_ne!(end, End::Open, "the half head is still being waited for");
}

#[test]
fn connections_beyond_the_cap_are_closed_and_the_listener_recovers() {
    let (toml, addr) = http_gateway();
    let gw = Gateway::start(ConfigDir::with_main(&toml), &[addr]);
    // 64 idle connections hold every slot (each one is served: it answers a request).
    let mut held = Vec::new();
    for _ in 0..64 {
        let mut s = connect(gw.admin);
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
            .unwrap();
        held.push(s);
    }
    let mut one = connect(gw.admin);
    let _ = one.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n");
    let (got, end) = read_until_close(&mut one, Duration::from_secs(5));
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert_ne!(
        end,
        End::Open,
        "the connection over the cap is closed at once"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(gw.admin, "/healthz").contains("200 OK") {
        assert!(
            Instant::now() < deadline,
            "the admin listener never recovered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(metric(gw.admin, "gatehouse_admin_connections_rejected_total") >= 1.0);
}

#[test]
fn status_names_files_not_their_paths_unless_verbose() {
    let (toml, addr) = http_gateway();
    let dir = ConfigDir::with_main(&format!(
        "{toml}[[Secret]]\nname = \"site\"\ncertFile = \"certs/missing.pem\"\nkeyFile = \"certs/missing.key\"\n[[Gateway]]\nname = \"tls\"\ngatewayClassName = \"gatehouse\"\nlisteners = [{{ name = \"https\", protocol = \"HTTPS\", port = 8443, tls = {{ certificateRefs = [{{ name = \"site\" }}] }} }}]\n"
    ));
    let path = dir.path().display().to_string();
    let gw = Gateway::start(dir, &[addr]);
    let plain = get(gw.admin, "/status");
    assert!(plain.contains("cannot read missing.pem:"), "{plain}");
    assert!(!plain.contains(&path), "{plain}");
    let verbose = get(gw.admin, "/status?verbose");
    assert!(
        verbose.contains(&format!("{path}/certs/missing.pem")),
        "{verbose}"
    );
}

#[test]
fn an_admin_listener_open_to_the_network_is_a_warning_unless_allowed() {
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (toml, addr) = http_gateway();
    let open = format!("[admin]\nlisten = \"0.0.0.0:{port}\"\n{toml}");
    let dir = ConfigDir::with_main(&open);
    let out = dir.check(&[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: the admin listener 0.0.0.0"),
        "{stderr}"
    );
    assert_eq!(dir.check(&["--strict"]).status.code(), Some(1));
    let gw = Gateway::start(dir, &[addr]);
    let status = get(gw.admin, "/status");
    assert!(status.contains("not on a loopback address"), "{status}");
    drop(gw);

    let allowed = open.replace("[admin]\n", "[admin]\nallowRemote = true\n");
    let dir = ConfigDir::with_main(&allowed);
    let (_, stderr) = text(&dir.check(&[]));
    assert!(!stderr.contains("loopback"), "{stderr}");
}
