//! The reload soak: client tasks of every kind busy for the whole run (HTTP/1.1 keep-alive,
//! HTTP/1.1 a connection per request, HTTPS a connection per request, HTTPS keep-alive, TLS
//! passthrough to `openssl s_server -www`) while a driver applies 60 changes, waiting for
//! each to show in the log (applied or rejected) and checking its effect before the next.
//!
//! The clients' routes stay valid throughout: the churn touches the weights between two
//! healthy backends of their route (200 either way), other routes, an extra listener port
//! nobody but the driver uses, the HTTPS certificate (old and new signed by the CA the
//! clients trust) and a broken file fixed on the next step. No client request may fail or
//! get anything but 200 from one of the two backends.

use super::{
    H1, Leaf, Pki, echo_name, eventually, generation, get_once, https_once, log_tail, rejections,
    rename_over, s_server_once, serial_of, tls_connect, wait_answer, wait_applied_after,
    wait_rejected_after, write_in_place,
};
use crate::process::DEADLINE;
use crate::{ConfigDir, Echo, Gateway, unique_ip};
use rustls::pki_types::CertificateDer;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const APP_HOST: &str = "app.soak.test";
const SECURE_HOST: &str = "secure.soak.test";
const PASS_HOST: &str = "pass.soak.test";
const FIXED_HOST: &str = "fixed.soak.test";
const STEPS: usize = 60;

/// What one client kind saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    unexpected: AtomicU64,
    backend_a: AtomicU64,
    backend_b: AtomicU64,
    connections: AtomicU64,
    notes: Mutex<Vec<String>>,
}

/// Shared by the clients: the stop flag, the step the driver is at, the clock.
struct Run {
    stop: AtomicBool,
    step: AtomicUsize,
    started: Instant,
}

impl Tally {
    fn note(&self, run: &Run, what: String) {
        let mut notes = self.notes.lock().unwrap();
        if notes.len() < 20 {
            notes.push(format!(
                "t={}ms step={}: {what}",
                run.started.elapsed().as_millis(),
                run.step.load(Ordering::Relaxed)
            ));
        }
    }

    fn failed(&self, run: &Run, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.note(run, format!("failed: {what}"));
    }

    /// Records an HTTP answer: 200 from svc-a or svc-b is the only expected one.
    fn answer(&self, run: &Run, status: u16, body: &[u8]) {
        match (status, echo_name(body).as_deref()) {
            (200, Some("svc-a")) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                self.backend_a.fetch_add(1, Ordering::Relaxed);
            }
            (200, Some("svc-b")) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                self.backend_b.fetch_add(1, Ordering::Relaxed);
            }
            (s, name) => {
                self.unexpected.fetch_add(1, Ordering::Relaxed);
                self.note(
                    run,
                    format!(
                        "unexpected: {s} from {name:?}: {:?}",
                        String::from_utf8_lossy(body)
                            .chars()
                            .take(100)
                            .collect::<String>()
                    ),
                );
            }
        }
    }

    fn total(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
            + self.unexpected.load(Ordering::Relaxed)
    }
}

/// The client kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    HttpKeepAlive,
    HttpNewConnection,
    HttpsNewConnection,
    HttpsKeepAlive,
    Passthrough,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::HttpKeepAlive => "HTTP/1.1 keep-alive",
            Kind::HttpNewConnection => "HTTP/1.1 new connection",
            Kind::HttpsNewConnection => "HTTPS new connection",
            Kind::HttpsKeepAlive => "HTTPS keep-alive",
            Kind::Passthrough => "TLS passthrough (s_server)",
        }
    }
}

/// Where the clients go.
#[derive(Clone)]
struct Target {
    http: SocketAddr,
    tls: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    /// The passthrough backend's own certificate: the one a passthrough client must see.
    backend_cert: CertificateDer<'static>,
}

async fn client(kind: Kind, target: Target, run: Arc<Run>, tally: Arc<Tally>) {
    let mut kept: Option<H1> = None;
    let mut n = 0u64;
    while !run.stop.load(Ordering::Relaxed) {
        n += 1;
        let path = format!("/{}/{n}", kind.label().replace([' ', '/', '(', ')'], "-"));
        match kind {
            Kind::HttpKeepAlive | Kind::HttpsKeepAlive => {
                if kept.as_ref().is_none_or(H1::is_closed) {
                    if kept.is_some() {
                        tally.note(&run, "the gateway closed the keep-alive connection".into());
                    }
                    let conn = if kind == Kind::HttpKeepAlive {
                        H1::plain(target.http).await
                    } else {
                        match tls_connect(target.tls, SECURE_HOST, &target.config).await {
                            Ok((s, _)) => H1::handshake(s).await,
                            Err(e) => Err(e),
                        }
                    };
                    match conn {
                        Ok(c) => {
                            tally.connections.fetch_add(1, Ordering::Relaxed);
                            kept = Some(c);
                        }
                        Err(e) => {
                            tally.failed(&run, format!("connect: {e}"));
                            continue;
                        }
                    }
                }
                let host = if kind == Kind::HttpKeepAlive {
                    APP_HOST
                } else {
                    SECURE_HOST
                };
                let conn = kept.as_mut().expect("connected");
                match conn.get(host, &path).await {
                    Ok((status, body)) => tally.answer(&run, status.as_u16(), &body),
                    Err(e) => {
                        tally.failed(&run, format!("GET {path} on a kept connection: {e}"));
                        kept = None;
                    }
                }
            }
            Kind::HttpNewConnection => {
                tally.connections.fetch_add(1, Ordering::Relaxed);
                match get_once(target.http, APP_HOST, &path).await {
                    Ok(r) => tally.answer(&run, r.status.as_u16(), &r.body),
                    Err(e) => tally.failed(&run, format!("GET {path}: {e}")),
                }
            }
            Kind::HttpsNewConnection => {
                tally.connections.fetch_add(1, Ordering::Relaxed);
                match https_once(target.tls, SECURE_HOST, SECURE_HOST, &path, &target.config).await
                {
                    Ok((status, body, _)) => tally.answer(&run, status.as_u16(), &body),
                    Err(e) => tally.failed(&run, format!("GET https {path}: {e}")),
                }
            }
            Kind::Passthrough => {
                tally.connections.fetch_add(1, Ordering::Relaxed);
                match s_server_once(target.tls, PASS_HOST, &target.config).await {
                    Ok((line, cert)) if line.starts_with("HTTP/1.0 200") => {
                        if cert == target.backend_cert {
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            tally.unexpected.fetch_add(1, Ordering::Relaxed);
                            tally.note(
                                &run,
                                format!(
                                    "unexpected: certificate serial {:?} instead of the backend's",
                                    serial_of(&cert)
                                ),
                            );
                        }
                    }
                    Ok((line, _)) => {
                        tally.unexpected.fetch_add(1, Ordering::Relaxed);
                        tally.note(&run, format!("unexpected: status line {line:?}"));
                    }
                    Err(e) => tally.failed(&run, format!("passthrough: {e}")),
                }
            }
        }
        tokio::task::yield_now().await;
    }
}

/// `openssl s_server -www` on `addr` with `leaf`, killed when dropped.
struct SServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl SServer {
    fn start(addr: SocketAddr, leaf: &Leaf) -> Result<SServer, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &leaf.cert_pem).map_err(|e| e.to_string())?;
        std::fs::write(&key, &leaf.key_pem).map_err(|e| e.to_string())?;
        let mut child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(addr.to_string())
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run openssl: {e}"))?;
        let deadline = Instant::now() + DEADLINE;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("openssl s_server exited with {status}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("openssl s_server never listened".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(SServer { child, _dir: dir })
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the configuration says now.
struct State {
    ip: Ipv4Addr,
    /// The admin listener, on an address of its own.
    admin: SocketAddr,
    a: SocketAddr,
    b: SocketAddr,
    /// The passthrough backend, when openssl is there.
    pass: Option<SocketAddr>,
    cert: PathBuf,
    key: PathBuf,
    weights: (u32, u32),
    extra_listener: bool,
    churn: BTreeSet<String>,
    fixed_route: bool,
}

const EXTRA_PORT: u16 = 8081;

impl State {
    fn main_toml(&self) -> String {
        let extra = if self.extra_listener {
            format!("  {{ name = \"extra\", protocol = \"HTTP\", port = {EXTRA_PORT} }},\n")
        } else {
            String::new()
        };
        let pass = match self.pass {
            Some(addr) => format!(
                r#"
[[TLSRoute]]
name = "pass"
parentRefs = [{{ name = "soak", sectionName = "pass" }}]
hostnames = ["{PASS_HOST}"]
rules = [{{ backendRefs = [{{ name = "pass-backend", port = 443 }}] }}]

[[Service]]
name = "pass-backend"
ports = [{{ port = 443 }}]
endpoints = ["{addr}"]
"#
            ),
            None => String::new(),
        };
        // The extra listener goes first, so the others' positions shift when it comes and
        // goes.
        format!(
            r#"
[log]
accessLog = false

[admin]
listen = "{admin}"

[[Secret]]
name = "soak-cert"
certFile = '{cert}'
keyFile = '{key}'

[[Gateway]]
name = "soak"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [
{extra}  {{ name = "http", protocol = "HTTP", port = 8080 }},
  {{ name = "https", protocol = "HTTPS", port = 8443, hostname = "{SECURE_HOST}", tls = {{ certificateRefs = [{{ name = "soak-cert" }}] }} }},
  {{ name = "pass", protocol = "TLS", port = 8443, hostname = "{PASS_HOST}", tls = {{ mode = "Passthrough" }} }},
]

[[Service]]
name = "svc-a"
ports = [{{ port = 80 }}]
endpoints = ["{a}"]

[[Service]]
name = "svc-b"
ports = [{{ port = 80 }}]
endpoints = ["{b}"]
{pass}"#,
            cert = self.cert.display(),
            key = self.key.display(),
            ip = self.ip,
            admin = self.admin,
            a = self.a,
            b = self.b,
        )
    }

    /// The clients' route: both backends, with the current weights.
    fn clients_toml(&self) -> String {
        let (wa, wb) = self.weights;
        format!(
            r#"
[[HTTPRoute]]
name = "clients"
parentRefs = [{{ name = "soak", sectionName = "http" }}, {{ name = "soak", sectionName = "https" }}, {{ name = "soak", sectionName = "extra" }}]
hostnames = ["{APP_HOST}", "{SECURE_HOST}"]
rules = [{{ backendRefs = [{{ name = "svc-a", port = 80, weight = {wa} }}, {{ name = "svc-b", port = 80, weight = {wb} }}] }}]
"#
        )
    }
}

/// A route nobody but the driver uses, for `host`.
fn other_route(name: &str, host: &str) -> String {
    format!(
        r#"
[[HTTPRoute]]
name = "{name}"
parentRefs = [{{ name = "soak", sectionName = "http" }}]
hostnames = ["{host}"]
rules = [{{ backendRefs = [{{ name = "svc-a", port = 80 }}] }}]
"#
    )
}

/// The file that is broken on one step and fixed on the next: line 3, column 1 is wrong.
fn broken_toml(broken: bool) -> String {
    let key = if broken { "hostnamez" } else { "hostnames" };
    format!(
        "[[HTTPRoute]]\nname = \"fixed\"\n{key} = [\"{FIXED_HOST}\"]\nparentRefs = [{{ name = \"soak\", sectionName = \"http\" }}]\nrules = [{{ backendRefs = [{{ name = \"svc-b\", port = 80 }}] }}]\n"
    )
}

/// Requests over new connections until `host` on `addr` has been answered by each backend
/// with a nonzero weight and by no other.
async fn check_weights(gw: &Gateway, addr: SocketAddr, weights: (u32, u32)) {
    eventually(gw, &format!("weights {weights:?} observed"), || async {
        let mut seen = BTreeSet::new();
        for _ in 0..16 {
            let r = get_once(addr, APP_HOST, "/weights")
                .await
                .map_err(|e| e.to_string())?;
            if r.status != 200 {
                return Err(format!("status {}", r.status));
            }
            seen.insert(r.backend().unwrap_or_default());
        }
        let want: BTreeSet<String> = [("svc-a", weights.0), ("svc-b", weights.1)]
            .into_iter()
            .filter(|(_, w)| *w > 0)
            .map(|(n, _)| n.to_string())
            .collect();
        if seen == want {
            Ok(())
        } else {
            Err(format!("seen {seen:?}"))
        }
    })
    .await;
}

/// One step of the churn: what it changes, and how it is checked once applied or rejected.
async fn step(i: usize, state: &mut State, gw: &Gateway, pki: &Pki, leaves: &mut Vec<Leaf>) {
    let dir = gw.dir.path().to_path_buf();
    let http = SocketAddr::from((state.ip, 8080));
    let tls = SocketAddr::from((state.ip, 8443));
    let extra = SocketAddr::from((state.ip, EXTRA_PORT));
    let cycle = i / 12;
    let generation_before = generation(gw);
    let rejected_before = rejections(gw);
    let write_main = |s: &State| rename_over(&dir.join("gatehouse.toml"), &s.main_toml());
    let applied = match i % 12 {
        0 => {
            state.weights = (1, 0);
            write_in_place(&dir.join("conf.d/clients.toml"), &state.clients_toml());
            true
        }
        1 => {
            let name = format!("churn-{cycle}-a");
            write_in_place(
                &dir.join(format!("conf.d/churn/{name}.toml")),
                &other_route(&name, &format!("{name}.soak.test")),
            );
            state.churn.insert(name);
            true
        }
        2 => {
            state.extra_listener = true;
            write_main(state);
            true
        }
        3 => {
            state.weights = (0, 1);
            rename_over(&dir.join("conf.d/clients.toml"), &state.clients_toml());
            true
        }
        4 => {
            let leaf = pki.issue(&[SECURE_HOST], 100 + i as u64);
            leaf.install(&state.cert, &state.key);
            leaves.push(leaf);
            true
        }
        5 => {
            rename_over(&dir.join("conf.d/fixed.toml"), &broken_toml(true));
            false
        }
        6 => {
            rename_over(&dir.join("conf.d/fixed.toml"), &broken_toml(false));
            state.fixed_route = true;
            true
        }
        7 => {
            let name = format!("churn-{cycle}-b");
            write_in_place(
                &dir.join(format!("conf.d/churn/cycle-{cycle}/{name}.toml")),
                &other_route(&name, &format!("{name}.soak.test")),
            );
            state.churn.insert(name);
            true
        }
        8 => {
            state.extra_listener = false;
            write_main(state);
            true
        }
        9 => {
            state.weights = (1, 1);
            write_in_place(&dir.join("conf.d/clients.toml"), &state.clients_toml());
            true
        }
        10 => {
            let name = format!("churn-{cycle}-a");
            std::fs::remove_file(dir.join(format!("conf.d/churn/{name}.toml")))
                .expect("remove a churn route");
            state.churn.remove(&name);
            true
        }
        _ => {
            gw.reload();
            true
        }
    };
    if applied {
        wait_applied_after(gw, generation_before).await;
    } else {
        wait_rejected_after(gw, rejected_before, generation_before).await;
    }
    // The effect of the step, checked by the driver (not counted with the clients).
    match i % 12 {
        0 | 3 | 9 => check_weights(gw, http, state.weights).await,
        1 | 7 | 10 => {
            for n in 0..=cycle {
                for letter in ["a", "b"] {
                    let name = format!("churn-{n}-{letter}");
                    let want = state.churn.contains(&name).then_some("svc-a");
                    wait_answer(gw, http, &format!("{name}.soak.test"), want).await;
                }
            }
        }
        2 => wait_answer(gw, extra, APP_HOST, Some("svc-a")).await,
        8 => {
            eventually(gw, "the extra port stops accepting", || async {
                match tokio::net::TcpStream::connect(extra).await {
                    Err(_) => Ok(()),
                    Ok(_) => Err("still accepting".to_string()),
                }
            })
            .await;
        }
        4 => {
            let want = leaves.last().expect("a new certificate");
            let config = pki.client_config();
            eventually(gw, "new handshakes present the new certificate", || {
                let config = config.clone();
                async move {
                    let (status, _, shown) =
                        https_once(tls, SECURE_HOST, SECURE_HOST, "/cert", &config)
                            .await
                            .map_err(|e| e.to_string())?;
                    if status == 200 && shown == want.der {
                        Ok(())
                    } else {
                        Err(format!("{status}, serial {:?}", serial_of(&shown)))
                    }
                }
            })
            .await;
        }
        5 | 6 => {
            if i % 12 == 5 {
                let log = gw.log();
                assert!(
                    log.contains("conf.d/fixed.toml:3:1")
                        || (log.contains("file=conf.d/fixed.toml")
                            && log.contains("line=3 column=1")),
                    "step {i}: the rejection names conf.d/fixed.toml:3:1:\n{}",
                    log_tail(gw, 20)
                );
            }
            let want = state.fixed_route.then_some("svc-b");
            wait_answer(gw, http, FIXED_HOST, want).await;
        }
        _ => {}
    }
}

pub async fn run() {
    let pki = Pki::new();
    let config = pki.client_config();
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (certs.path().join("soak.crt"), certs.path().join("soak.key"));
    let mut leaves = vec![pki.issue(&[SECURE_HOST], 100)];
    leaves[0].install(&cert, &key);

    let ip = unique_ip();
    let (a, b) = (Echo::start("svc-a"), Echo::start("svc-b"));
    let pass_leaf = pki.issue(&[PASS_HOST], 7);
    let pass_addr = SocketAddr::from((unique_ip(), 4433));
    let s_server = match Command::new("openssl").arg("version").output() {
        Ok(o) if o.status.success() => match SServer::start(pass_addr, &pass_leaf) {
            Ok(s) => Some(s),
            Err(e) => panic!("openssl is installed but s_server did not start: {e}"),
        },
        _ => {
            println!("SKIPPED the TLS passthrough client: openssl is not installed");
            None
        }
    };
    let mut state = State {
        ip,
        admin: SocketAddr::from((unique_ip(), 9542)),
        a: a.addr,
        b: b.addr,
        pass: s_server.as_ref().map(|_| pass_addr),
        cert,
        key,
        weights: (1, 1),
        extra_listener: false,
        churn: BTreeSet::new(),
        fixed_route: false,
    };
    let dir = ConfigDir::with_main(&state.main_toml());
    dir.write("conf.d/clients.toml", &state.clients_toml());
    let http = SocketAddr::from((ip, 8080));
    let tls = SocketAddr::from((ip, 8443));
    let gw = Gateway::start(dir, &[http, tls]);
    wait_answer(&gw, http, APP_HOST, Some("svc-a")).await;

    let target = Target {
        http,
        tls,
        config,
        backend_cert: pass_leaf.der.clone(),
    };
    let run = Arc::new(Run {
        stop: AtomicBool::new(false),
        step: AtomicUsize::new(0),
        started: Instant::now(),
    });
    let mut kinds = vec![
        Kind::HttpKeepAlive,
        Kind::HttpNewConnection,
        Kind::HttpsNewConnection,
        Kind::HttpsKeepAlive,
    ];
    if s_server.is_some() {
        kinds.push(Kind::Passthrough);
    }
    let tallies: Vec<(Kind, Arc<Tally>)> = kinds
        .iter()
        .map(|k| (*k, Arc::new(Tally::default())))
        .collect();
    let tasks: Vec<_> = tallies
        .iter()
        .map(|(k, t)| tokio::spawn(client(*k, target.clone(), run.clone(), t.clone())))
        .collect();

    // Every client is under way before the first change.
    eventually(&gw, "every client kind has had an answer", || async {
        let idle: Vec<&str> = tallies
            .iter()
            .filter(|(_, t)| t.total() == 0)
            .map(|(k, _)| k.label())
            .collect();
        if idle.is_empty() {
            Ok(())
        } else {
            Err(format!("no answer yet for {idle:?}"))
        }
    })
    .await;

    for i in 0..STEPS {
        run.step.store(i, Ordering::Relaxed);
        step(i, &mut state, &gw, &pki, &mut leaves).await;
    }
    run.step.store(STEPS, Ordering::Relaxed);
    run.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }

    let applied = generation(&gw) - 1;
    let rejected = rejections(&gw);
    let mut report = format!(
        "soak: {STEPS} steps in {:.1}s, {applied} reloads applied, {rejected} rejected\n",
        run.started.elapsed().as_secs_f64()
    );
    let mut problems = String::new();
    for (k, t) in &tallies {
        let split = match (
            t.backend_a.load(Ordering::Relaxed),
            t.backend_b.load(Ordering::Relaxed),
        ) {
            (0, 0) => String::new(),
            (a, b) => format!(" ({a} svc-a, {b} svc-b)"),
        };
        let _ = writeln!(
            report,
            "  {:<28} {:>6} requests: {:>6} ok{split}, {} failed, {} unexpected, {} connections",
            k.label(),
            t.total(),
            t.ok.load(Ordering::Relaxed),
            t.failed.load(Ordering::Relaxed),
            t.unexpected.load(Ordering::Relaxed),
            t.connections.load(Ordering::Relaxed),
        );
        for n in t.notes.lock().unwrap().iter() {
            let _ = writeln!(problems, "  {}: {n}", k.label());
        }
    }
    println!("{report}");
    if !problems.is_empty() {
        println!("notes:\n{problems}");
    }
    let bad: u64 = tallies
        .iter()
        .map(|(_, t)| t.failed.load(Ordering::Relaxed) + t.unexpected.load(Ordering::Relaxed))
        .sum();
    assert!(
        bad == 0,
        "{bad} request(s) failed or got an unexpected answer\n{report}{problems}\n--- gateway log (end) ---\n{}",
        log_tail(&gw, 40)
    );
    assert!(applied >= 50, "only {applied} reloads applied\n{report}");
    for (k, t) in &tallies {
        assert!(
            t.total() >= STEPS as u64,
            "{} made only {} requests over {STEPS} steps",
            k.label(),
            t.total()
        );
    }
    drop(s_server);
}
