//! TCPRoute and TLSRoute (mode Terminate) against the real binary, with real TCP backends
//! (`gatehouse_tests::TcpBackend`: greets with its name, echoes, says `bye` after the
//! client's EOF): weighted choice per connection, half-close passed on, a reload that changes
//! the route while a connection is open, status and metrics, and TLS terminated with the
//! certificate the SNI selects and spliced as plaintext to a TCP backend (a close_notify
//! half-closes it), with rustls and with `openssl s_client` as clients.

use gatehouse_tests::process::DEADLINE;
use gatehouse_tests::raw::{exchange, metric};
use gatehouse_tests::tls::{Ca, KeyKind, Tls, expect_rejected, peer_leaf};
use gatehouse_tests::{ConfigDir, Gateway, TcpBackend, unique_ip};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

const PORT: u16 = 9000;

/// A Service `name` (port 3000) in front of `backend`.
fn service(name: &str, backend: &TcpBackend) -> String {
    format!(
        r#"
[[Service]]
name = "{name}"
ports = [{{ port = 3000 }}]
endpoints = ["{}"]
"#,
        backend.addr
    )
}

/// A Gateway `g` on `ip` with one TCP listener `tcp` on [`PORT`].
fn tcp_gateway(ip: Ipv4Addr) -> String {
    format!(
        r#"
[[Gateway]]
name = "g"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [{{ name = "tcp", protocol = "TCP", port = {PORT} }}]
"#
    )
}

/// A TCPRoute `r` on `g`'s listener with `backends` (`(service, weight)`).
fn tcp_route(backends: &[(&str, u32)]) -> String {
    let refs = backends
        .iter()
        .map(|(s, w)| format!("{{ name = \"{s}\", port = 3000, weight = {w} }}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[[TCPRoute]]
name = "r"
parentRefs = [{{ name = "g", sectionName = "tcp" }}]
rules = [{{ backendRefs = [{refs}] }}]
"#
    )
}

/// A connection through the gateway, with the backend's greeting read.
struct Conn {
    reader: BufReader<TcpStream>,
    backend: String,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, DEADLINE)?;
        s.set_read_timeout(Some(DEADLINE))?;
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.is_empty() {
            return Err(std::io::Error::other("closed without a greeting"));
        }
        Ok(Conn {
            reader,
            backend: line.trim_end().to_string(),
        })
    }

    /// Writes `text` and reads its echo.
    fn echo(&mut self, text: &str) -> std::io::Result<String> {
        self.reader.get_mut().write_all(text.as_bytes())?;
        let mut back = vec![0; text.len()];
        self.reader.read_exact(&mut back)?;
        Ok(String::from_utf8_lossy(&back).into_owned())
    }

    /// Half-closes, then reads everything until the backend closes.
    fn finish(mut self) -> std::io::Result<String> {
        self.reader.get_mut().shutdown(Shutdown::Write)?;
        let mut rest = String::new();
        self.reader.read_to_string(&mut rest)?;
        Ok(rest)
    }
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

#[test]
fn tcp_route_weights_three_to_one_split_a_thousand_connections() {
    let (a, b) = (TcpBackend::start("tcp-a"), TcpBackend::start("tcp-b"));
    let ip = unique_ip();
    let dir = ConfigDir::with_main(&format!(
        "{}{}{}{}",
        service("a", &a),
        service("b", &b),
        tcp_gateway(ip),
        tcp_route(&[("a", 3), ("b", 1)])
    ));
    let addr = SocketAddr::from((ip, PORT));
    let gw = Gateway::start(dir, &[addr]);
    let series =
        r#"gatehouse_tcp_connections_total{gateway="default/g",listener="tcp",route="default/r"}"#;
    let bytes_out = r#"gatehouse_tcp_bytes_total{direction="out",gateway="default/g",listener="tcp",route="default/r"}"#;
    // Gateway::start's one successful readiness probe was spliced too: let it finish
    // before counting.
    wait_for("the readiness probe counted", &gw, || {
        let seen = metric(gw.admin, series);
        seen >= 1.0 && seen == (a.accepted() + b.accepted()) as f64
    });
    let (before, before_accepted) = (metric(gw.admin, series), a.accepted() + b.accepted());
    let bytes_before = metric(gw.admin, bytes_out);
    const N: usize = 1000;
    let mut to_a = 0usize;
    for i in 0..N {
        let c = Conn::open(addr).unwrap_or_else(|e| panic!("connection {i}: {e}\n{}", gw.log()));
        match c.backend.as_str() {
            "tcp-a" => to_a += 1,
            "tcp-b" => {}
            other => panic!("connection {i} reached {other:?}"),
        }
        assert_eq!(c.finish().unwrap(), "bye\n");
    }
    // Binomial(1000, 3/4): mean 750, sigma 13.7; six sigma (82) cannot flake.
    let sigma = (N as f64 * 0.75 * 0.25).sqrt();
    let off = (to_a as f64 - 750.0).abs();
    assert!(
        off <= 6.0 * sigma,
        "{to_a} of {N} connections went to weight 3 (want 750 ± {:.0})",
        6.0 * sigma
    );
    assert_eq!(a.accepted() + b.accepted() - before_accepted, N);
    wait_for("every connection counted", &gw, || {
        metric(gw.admin, series) == before + N as f64
    });
    // Each backend sent its 6-byte name line and `bye\n`.
    assert_eq!(metric(gw.admin, bytes_out) - bytes_before, (N * 10) as f64);
}

#[test]
fn half_close_passes_through_both_ways() {
    let a = TcpBackend::start("tcp-a");
    let ip = unique_ip();
    let dir = ConfigDir::with_main(&format!(
        "{}{}{}",
        service("a", &a),
        tcp_gateway(ip),
        tcp_route(&[("a", 1)])
    ));
    let addr = SocketAddr::from((ip, PORT));
    let gw = Gateway::start(dir, &[addr]);
    let mut c = Conn::open(addr).unwrap();
    assert_eq!(c.echo("hello\n").unwrap(), "hello\n");
    c.reader.get_mut().write_all(b"last words").unwrap();
    // The client's FIN reaches the backend, which answers after it: the direction back to
    // the client stays open until the backend closes it.
    let rest = c.finish().unwrap();
    assert_eq!(rest, "last wordsbye\n", "{}", gw.log());
}

#[test]
fn reload_that_changes_the_tcp_route_keeps_an_open_connection() {
    let (a, b) = (TcpBackend::start("tcp-a"), TcpBackend::start("tcp-b"));
    let ip = unique_ip();
    let dir = ConfigDir::with_main(&format!(
        "{}{}{}",
        service("a", &a),
        service("b", &b),
        tcp_gateway(ip)
    ));
    dir.write("conf.d/route.toml", &tcp_route(&[("a", 1)]));
    let addr = SocketAddr::from((ip, PORT));
    let gw = Gateway::start(dir, &[addr]);
    let mut open = Conn::open(addr).unwrap();
    assert_eq!(open.backend, "tcp-a");
    assert_eq!(open.echo("before\n").unwrap(), "before\n");

    gw.dir.write("conf.d/route.toml", &tcp_route(&[("b", 1)]));
    gw.reload();
    wait_for("new connections reach tcp-b after the reload", &gw, || {
        Conn::open(addr).is_ok_and(|c| c.backend == "tcp-b")
    });
    // The connection opened before the reload still reaches tcp-a, both ways.
    assert_eq!(open.echo("after\n").unwrap(), "after\n");
    assert_eq!(open.finish().unwrap(), "bye\n");
}

#[test]
fn unresolved_tcp_backend_closes_connections_and_shows_in_status() {
    let ip = unique_ip();
    let dir = ConfigDir::with_main(&format!(
        "{}{}",
        tcp_gateway(ip),
        tcp_route(&[("nonexistent", 1)])
    ));
    let addr = SocketAddr::from((ip, PORT));
    let gw = Gateway::start(dir, &[addr]);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty(), "got {got:?}");
    let (text, _) = exchange(
        gw.admin,
        b"GET /status HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    let body = &text[text.find("\r\n\r\n").map_or(0, |i| i + 4)..];
    let status: serde_json::Value = serde_json::from_str(body).expect("status JSON");
    let route = status["status"]["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["key"]["kind"] == "TCPRoute")
        .expect("TCPRoute in /status");
    let conds = route["parents"][0]["conditions"].as_array().unwrap();
    let reason = |t: &str| {
        conds
            .iter()
            .find(|c| c["type"] == t)
            .map(|c| c["reason"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(reason("Accepted").as_deref(), Some("Accepted"));
    assert_eq!(reason("ResolvedRefs").as_deref(), Some("BackendNotFound"));
    let series = r#"gatehouse_tcp_unrouted_total{port="9000",reason="unresolved_backend"}"#;
    wait_for("the refused connection counted", &gw, || {
        metric(gw.admin, series) >= 1.0
    });
}

/// Two TLS listeners with mode Terminate on one port (one per hostname and certificate),
/// each with a TLSRoute to its own TCP backend.
#[tokio::test(flavor = "multi_thread")]
async fn tls_terminate_splices_plaintext_to_tcp_backends_with_sni_choosing_the_certificate() {
    let ca = Ca::new("tcp-routes test CA");
    let leaf_a = ca.leaf(&["a.example.com"], KeyKind::EcdsaP256Pkcs8);
    let leaf_b = ca.leaf(&["b.example.com"], KeyKind::EcdsaP256Pkcs8);
    let (a, b) = (TcpBackend::start("tcp-a"), TcpBackend::start("tcp-b"));
    let ip = unique_ip();
    let dir = ConfigDir::new();
    let toml = format!(
        r#"{}{}{}{}
[[Gateway]]
name = "g"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [
  {{ name = "a", protocol = "TLS", port = 8443, hostname = "a.example.com", tls = {{ mode = "Terminate", certificateRefs = [{{ name = "cert-a" }}] }} }},
  {{ name = "b", protocol = "TLS", port = 8443, hostname = "b.example.com", tls = {{ mode = "Terminate", certificateRefs = [{{ name = "cert-b" }}] }} }},
]
[[TLSRoute]]
name = "to-a"
parentRefs = [{{ name = "g", sectionName = "a" }}]
hostnames = ["a.example.com"]
rules = [{{ backendRefs = [{{ name = "a", port = 3000 }}] }}]
[[TLSRoute]]
name = "to-b"
parentRefs = [{{ name = "g", sectionName = "b" }}]
hostnames = ["b.example.com"]
rules = [{{ backendRefs = [{{ name = "b", port = 3000 }}] }}]
"#,
        leaf_a.secret(&dir, "cert-a", "default"),
        leaf_b.secret(&dir, "cert-b", "default"),
        service("a", &a),
        service("b", &b),
    );
    let addr = SocketAddr::from((ip, 8443));
    let gw = tokio::task::spawn_blocking(move || {
        dir.write("gatehouse.toml", &toml);
        Gateway::start(dir, &[addr])
    })
    .await
    .unwrap();
    let tls = Tls::new(&ca);
    for (sni, leaf, backend) in [
        ("a.example.com", &leaf_a, "tcp-a"),
        ("b.example.com", &leaf_b, "tcp-b"),
    ] {
        let s = tls
            .connect(addr, sni)
            .await
            .unwrap_or_else(|e| panic!("{sni}: {e}\n{}", gw.log()));
        assert!(peer_leaf(&s) == leaf.der, "{sni}: not its certificate");
        let mut s = tokio::io::BufReader::new(s);
        let mut line = String::new();
        s.read_line(&mut line).await.unwrap();
        assert_eq!(line, format!("{backend}\n"), "{sni}: {}", gw.log());
        s.get_mut().write_all(b"ping\n").await.unwrap();
        let mut echo = [0u8; 5];
        s.read_exact(&mut echo).await.unwrap();
        assert_eq!(
            &echo, b"ping\n",
            "{sni}: the backend got plaintext and echoed it"
        );
        // Half-close through TLS: the client's close_notify reaches the backend as a
        // FIN, and the backend's last words still come back, then its close.
        s.get_mut().shutdown().await.unwrap();
        let mut rest = String::new();
        s.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "bye\n", "{sni}: {}", gw.log());
    }
    // The same with openssl s_client as the client.
    let through_openssl = tokio::task::spawn_blocking(move || s_client(addr, "b.example.com"))
        .await
        .unwrap();
    if let Some(out) = through_openssl {
        assert!(out.starts_with("tcp-b\nping\n"), "s_client got {out:?}");
    }
    // A name no listener takes: closed without a TLS alert.
    if let Err(e) = expect_rejected(&tls, addr, "c.example.com").await {
        panic!("c.example.com: {e}\n{}", gw.log());
    }
    let series = r#"gatehouse_tls_handshakes_total{gateway="default/g",listener="a",result="ok",tls_version="TLSv1.3"}"#;
    let admin = gw.admin;
    let n = tokio::task::spawn_blocking(move || metric(admin, series))
        .await
        .unwrap();
    assert_eq!(n, 1.0);
    drop(gw);
}

/// What `openssl s_client -servername sni` reads back after sending `ping`: the backend's
/// greeting and the echo (`None`, with the reason printed, without openssl outside CI).
fn s_client(addr: SocketAddr, sni: &str) -> Option<String> {
    use std::process::{Command, Stdio};
    let child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &addr.to_string(),
            "-servername",
            sni,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but openssl: {e}"
            );
            eprintln!("s_client part skipped: {e}");
            return None;
        }
    };
    child.stdin.take()?.write_all(b"ping\n").ok()?;
    let mut out = child.stdout.take()?;
    let mut got = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 64];
    // -quiet keeps the session open after stdin ends: read the greeting and the echo.
    while !String::from_utf8_lossy(&got).contains("ping\n") && Instant::now() < deadline {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Some(String::from_utf8_lossy(&got).into_owned())
}
