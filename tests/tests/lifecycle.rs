//! The daemon's life under a service manager: the sd_notify protocol (READY, STATUS,
//! RELOADING with MONOTONIC_USEC, WATCHDOG, STOPPING) spoken to a real notify socket, and
//! SIGTERM draining in-flight requests and idle keep-alive connections, then exiting 0.

use gatehouse_tests::{Client, ConfigDir, Echo, Gateway, gatehouse_bin, unique_ip};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

fn gateway_toml(ip: std::net::Ipv4Addr, echo: &Echo) -> String {
    format!(
        r#"
[admin]
listen = "{ip}:9542"

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

/// Reads notify datagrams until one contains every `wanted` line.
fn expect_notify(sock: &UnixDatagram, wanted: &[&str], seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no notify message with {wanted:?}; got {seen:#?}"
        );
        sock.set_read_timeout(Some(left)).unwrap();
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        seen.push(msg.clone());
        if wanted.iter().all(|w| msg.lines().any(|l| l.starts_with(w))) {
            return msg;
        }
    }
}

fn signal(pid: u32, sig: &str) {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
}

#[test]
fn sd_notify_reports_ready_reloading_status_watchdog_and_stopping() {
    let echo = Echo::start("app");
    let ip = unique_ip();
    let dir = ConfigDir::with_main(&gateway_toml(ip, &echo));
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let mut child = Command::new(gatehouse_bin())
        .args(["run", "--config"])
        .arg(dir.path())
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    expect_notify(
        &sock,
        &["READY=1", "STATUS=serving generation 1"],
        &mut seen,
    );
    // The socket is bound before READY.
    assert!(std::net::TcpStream::connect(SocketAddr::from((ip, 8080))).is_ok());
    expect_notify(&sock, &["WATCHDOG=1"], &mut seen);

    signal(child.id(), "HUP");
    let reloading = expect_notify(&sock, &["RELOADING=1"], &mut seen);
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading}"
    );
    expect_notify(
        &sock,
        &["READY=1", "STATUS=serving generation 2"],
        &mut seen,
    );

    signal(child.id(), "TERM");
    expect_notify(&sock, &["STOPPING=1"], &mut seen);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let echo = Echo::start("app");
    let ip = unique_ip();
    let addr = SocketAddr::from((ip, 8080));
    let mut gw = Gateway::start(ConfigDir::with_main(&gateway_toml(ip, &echo)), &[addr]);

    // A request the backend answers after 1.5 s, in flight when SIGTERM arrives.
    let slow = tokio::spawn(async move {
        let mut c = Client::http1(addr);
        c.get("app.test", "/slow?delay=1500ms").await
    });
    let seen = tokio::task::spawn_blocking({
        let echo_lines = echo;
        move || {
            let ok = echo_lines.wait_for_requests("/slow", 1, DEADLINE);
            (ok, echo_lines)
        }
    })
    .await
    .unwrap();
    assert!(seen.0, "the slow request never reached the backend");
    let stopped = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let s = gw.stop();
        (s, gw)
    });
    let resp = slow.await.unwrap();
    assert_eq!(resp.status, 200, "the in-flight request was cut");
    let (status, gw) = status.await.unwrap();
    assert!(status.success(), "exit {status}: {}", gw.log());
    // It exits once drained, long before the 30 s grace.
    assert!(
        stopped.elapsed() < DEADLINE,
        "drain took {:?}",
        stopped.elapsed()
    );
    // No longer accepting.
    assert!(std::net::TcpStream::connect(addr).is_err());
    drop(seen.1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_idle_keep_alive_connections_instead_of_waiting_for_them() {
    let echo = Echo::start("app");
    let ip = unique_ip();
    let addr = SocketAddr::from((ip, 8080));
    let mut gw = Gateway::start(ConfigDir::with_main(&gateway_toml(ip, &echo)), &[addr]);
    // A keep-alive connection, idle after one request (its idle timeout is 60 s).
    let mut c = Client::http1(addr);
    assert_eq!(c.get("app.test", "/").await.status, 200);
    let stopped = Instant::now();
    let status = tokio::task::spawn_blocking(move || gw.stop())
        .await
        .unwrap();
    assert!(status.success());
    assert!(
        stopped.elapsed() < DEADLINE,
        "shutdown waited {:?} for an idle connection",
        stopped.elapsed()
    );
    drop(c);
}

/// A port no socket of this host uses now (bound on every address, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("[::]:0")
        .or_else(|_| std::net::TcpListener::bind("0.0.0.0:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_log(gw: &Gateway, needle: &str) {
    let deadline = Instant::now() + DEADLINE;
    while !gw.log().contains(needle) {
        assert!(Instant::now() < deadline, "no {needle:?} in:\n{}", gw.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_port_moves_between_one_address_and_every_address_on_reload() {
    let echo = Echo::start("app");
    let ip = unique_ip();
    let port = free_port();
    let config = |addresses: &str| {
        format!(
            r#"
[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
{addresses}
listeners = [{{ name = "http", protocol = "HTTP", port = {port} }}]
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
    };
    let on_ip = config(&format!("addresses = [{{ value = \"{ip}\" }}]"));
    let vip = SocketAddr::from((ip, port));
    let gw = Gateway::start(ConfigDir::with_main(&on_ip), &[vip]);
    let admin = std::fs::read_to_string(gw.dir.path().join("gatehouse.toml")).unwrap();
    let admin_table = &admin[admin.find("[admin]").unwrap()..];
    assert_eq!(Client::http1(vip).get("app.test", "/").await.status, 200);

    // To every address: the specific socket must give way to the wildcard one.
    gw.dir
        .write("gatehouse.toml", &format!("{}\n{admin_table}", config("")));
    wait_for_log(&gw, "generation=2");
    let everywhere = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(
        Client::http1(everywhere).get("app.test", "/").await.status,
        200,
        "{}",
        gw.log()
    );
    assert_eq!(Client::http1(vip).get("app.test", "/").await.status, 200);

    // And back.
    gw.dir
        .write("gatehouse.toml", &format!("{on_ip}\n{admin_table}"));
    wait_for_log(&gw, "generation=3");
    assert_eq!(
        Client::http1(vip).get("app.test", "/").await.status,
        200,
        "{}",
        gw.log()
    );
    assert!(!gw.log().contains("cannot listen"), "{}", gw.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn active_health_checks_take_failing_endpoints_out_of_rotation() {
    let echo = Echo::start("app");
    let ip = unique_ip();
    let addr = SocketAddr::from((ip, 8080));
    // Two Services on the same backend: one checked on a path that answers 200, one on a
    // path that answers 503 (an unhealthy endpoint).
    let toml = format!(
        r#"
[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [{{ name = "http", protocol = "HTTP", port = 8080 }}]
[[HTTPRoute]]
name = "app"
parentRefs = [{{ name = "gw" }}]
[[HTTPRoute.rules]]
matches = [{{ path = {{ value = "/healthy" }} }}]
backendRefs = [{{ name = "healthy", port = 80 }}]
[[HTTPRoute.rules]]
matches = [{{ path = {{ value = "/unhealthy" }} }}]
backendRefs = [{{ name = "unhealthy", port = 80 }}]
[[Service]]
name = "healthy"
ports = [{{ port = 80 }}]
endpoints = ["{e}"]
healthCheck = {{ type = "HTTP", path = "/health", interval = "100ms", timeout = "1s", unhealthyThreshold = 2, healthyThreshold = 1 }}
[[Service]]
name = "unhealthy"
ports = [{{ port = 80 }}]
endpoints = ["{e}"]
healthCheck = {{ type = "HTTP", path = "/status/503", interval = "100ms", timeout = "1s", unhealthyThreshold = 2, healthyThreshold = 1 }}
"#,
        e = echo.addr
    );
    let gw = Gateway::start(ConfigDir::with_main(&toml), &[addr]);
    let mut c = Client::http1(addr);
    // Once two checks failed, the endpoint is out: 503 without trying it.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = c.get("app.test", "/unhealthy").await;
        if r.status == 503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failing endpoint stayed in rotation: {}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..5 {
        assert_eq!(c.get("app.test", "/unhealthy").await.status, 503);
        assert_eq!(c.get("app.test", "/healthy").await.status, 200);
    }
    assert!(gw.log().contains("endpoint health changed"), "{}", gw.log());
}

#[test]
fn a_port_switching_from_plaintext_to_tls_never_refuses_a_connection() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI must have curl");
        eprintln!("skipped: curl is not installed");
        return;
    }
    let echo = Echo::start("app");
    let ip = unique_ip();
    let addr = SocketAddr::from((ip, 8443));
    let dir = ConfigDir::with_main(&gateway_toml(ip, &echo).replace("port = 8080", "port = 8443"));
    let gw = Gateway::start(dir, &[addr]);
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--resolve",
                &format!("app.test:8443:{ip}"),
            ])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl(&["http://app.test:8443/"]), "200");

    // Connect continuously while the port turns into an HTTPS one.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut refused) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match std::net::TcpStream::connect(addr) {
                    Ok(_) => ok += 1,
                    Err(_) => refused += 1,
                }
            }
            (ok, refused)
        })
    };
    let cert = rcgen::generate_simple_self_signed(vec!["app.test".to_string()]).unwrap();
    gw.dir.write("certs/cert.pem", &cert.cert.pem());
    gw.dir
        .write("certs/key.pem", &cert.signing_key.serialize_pem());
    gw.dir.write(
        "conf.d/tls.toml",
        r#"
[[Secret]]
name = "app"
certFile = "../certs/cert.pem"
keyFile = "../certs/key.pem"
"#,
    );
    let main = std::fs::read_to_string(gw.dir.path().join("gatehouse.toml")).unwrap();
    let https = main.replace(
        r#"{ name = "http", protocol = "HTTP", port = 8443 }"#,
        r#"{ name = "https", protocol = "HTTPS", port = 8443, tls = { certificateRefs = [{ name = "app" }] } }"#,
    );
    assert_ne!(main, https);
    gw.dir.write("gatehouse.toml", &https);
    let deadline = Instant::now() + DEADLINE;
    while curl(&["-k", "https://app.test:8443/"]) != "200" {
        assert!(
            Instant::now() < deadline,
            "HTTPS never answered: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, refused) = probe.join().unwrap();
    assert!(ok > 0);
    assert_eq!(
        refused, 0,
        "{refused} connections refused during the switch ({ok} accepted)"
    );
}

#[test]
fn under_journald_log_lines_have_no_timestamps_and_no_colours() {
    let echo = Echo::start("app");
    let ip = unique_ip();
    let dir = ConfigDir::with_main(&gateway_toml(ip, &echo));
    let child = Command::new(gatehouse_bin())
        .args(["run", "--config"])
        .arg(dir.path())
        .env("JOURNAL_STREAM", "8:12345")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from((ip, 8080));
    let deadline = Instant::now() + DEADLINE;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "gatehouse never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("gatehouse serving"), "{text}");
    for line in text.lines() {
        assert!(!line.contains('\u{1b}'), "ANSI escape in {line:?}");
        assert!(!line.starts_with("20"), "timestamp in {line:?}");
        assert!(
            line.starts_with(" INFO")
                || line.starts_with(" WARN")
                || line.starts_with("ERROR")
                || line.starts_with("DEBUG"),
            "{line:?}"
        );
    }
}

/// keepalived's readiness check (`gatehouse status --ready --hold`, [announce] mode =
/// "keepalived") answers "not ready" the moment a drain starts, not when its hold runs out:
/// keepalived then moves the addresses to the other box while this one finishes its
/// in-flight requests.
#[tokio::test(flavor = "multi_thread")]
async fn a_held_readiness_check_fails_as_soon_as_the_drain_starts() {
    let echo = Echo::start("app");
    let ip = unique_ip();
    let addr = SocketAddr::from((ip, 8080));
    let mut gw = Gateway::start(ConfigDir::with_main(&gateway_toml(ip, &echo)), &[addr]);
    let admin = gw.admin.to_string();
    let ready = |hold: &str| {
        let mut cmd = Command::new(gatehouse_bin());
        cmd.args(["status", "--ready", "--admin", &admin]);
        if !hold.is_empty() {
            cmd.args(["--hold", hold]);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    };
    let now = ready("").output().unwrap();
    assert!(now.status.success(), "{now:?}");
    assert_eq!(String::from_utf8_lossy(&now.stdout), "ready\n");

    // A request in flight for 4 s keeps the drain going longer than the 3 s hold.
    let slow = tokio::spawn(async move {
        let mut c = Client::http1(addr);
        c.get("app.test", "/slow?delay=4000ms").await
    });
    let echo = tokio::task::spawn_blocking(move || {
        assert!(
            echo.wait_for_requests("/slow", 1, DEADLINE),
            "the slow request never arrived"
        );
        echo
    })
    .await
    .unwrap();
    let held = ready("3s").spawn().unwrap();
    // Let the check be held before the drain starts. Should it arrive later, the answer is
    // 503 all the same (a drain that has begun answers at once), so this wait only makes
    // the held path the likely one; it decides nothing.
    std::thread::sleep(Duration::from_millis(300));
    let stopping = tokio::task::spawn_blocking(move || {
        let s = gw.stop();
        (s, gw)
    });
    let out = tokio::task::spawn_blocking(move || held.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not ready (503"),
        "the drain must answer the held check with 503, not the process exit: {stderr}"
    );
    assert_eq!(
        slow.await.unwrap().status,
        200,
        "the in-flight request was cut"
    );
    let (status, gw) = stopping.await.unwrap();
    assert!(status.success(), "exit {status}: {}", gw.log());
    drop(echo);

    // Nobody listening: not ready, at once.
    let gone = ready("3s").output().unwrap();
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("cannot reach the admin listener"));
}
