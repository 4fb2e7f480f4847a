//! The real binary as a gateway (`gatehouse run`) and as echo backends (`gatehouse echo`),
//! each on loopback addresses no other test uses, stopped with SIGTERM when dropped.

use crate::{ConfigDir, gatehouse_bin};
use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long anything in these tests may take to become ready.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A loopback address (in 127.0.0.0/8) no other call in this process returns; the second
/// octet comes from the process id so concurrently running test binaries differ too.
pub fn unique_ip() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let b = (std::process::id() % 200) as u8 + 20;
    Ipv4Addr::new(127, b, (n / 250) as u8, (n % 250) as u8 + 2)
}

fn sigterm(child: &Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
}

/// Collects a child's output lines.
fn collect(
    reader: impl std::io::Read + Send + 'static,
    sink: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if let Some(tx) = &tx {
                let _ = tx.send(line.clone());
            }
            sink.lock().unwrap().push(line);
        }
    });
}

/// A running `gatehouse echo` backend.
#[derive(Debug)]
pub struct Echo {
    child: Child,
    pub addr: SocketAddr,
    pub name: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Echo {
    /// Starts an echo backend named `name` (namespace `default`) on a fresh loopback address
    /// and port 3000.
    pub fn start(name: &str) -> Echo {
        Echo::start_at(SocketAddr::from((unique_ip(), 3000)), name, "default")
    }

    pub fn start_at(listen: SocketAddr, name: &str, namespace: &str) -> Echo {
        let mut child = Command::new(gatehouse_bin())
            .args([
                "echo",
                "--listen",
                &listen.to_string(),
                "--name",
                name,
                "--namespace",
                namespace,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gatehouse echo");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        collect(
            child.stdout.take().expect("stdout"),
            lines.clone(),
            Some(tx),
        );
        collect(child.stderr.take().expect("stderr"), lines.clone(), None);
        let prefix = format!("echo {name} listening on ");
        let deadline = Instant::now() + DEADLINE;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with(&prefix) => {
                    break line[prefix.len()..].parse().expect("address");
                }
                Ok(_) => continue,
                Err(_) => panic!("echo {name} did not start: {:?}", lines.lock().unwrap()),
            }
        };
        Echo {
            child,
            addr,
            name: name.to_string(),
            lines,
        }
    }

    /// How many requests this backend logged for a RequestURI containing `needle`.
    pub fn requests_seen(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("Echoing back request made to ") && l.contains(needle))
            .count()
    }

    /// Waits until the backend logged `count` requests containing `needle`; false at the
    /// deadline.
    pub fn wait_for_requests(&self, needle: &str, count: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.requests_seen(needle) >= count {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.requests_seen(needle) >= count
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the admin listener at `admin` answers `/readyz` with 200.
fn ready_on(admin: SocketAddr) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = TcpStream::connect_timeout(&admin, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /readyz HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// A running `gatehouse run`.
#[derive(Debug)]
pub struct Gateway {
    child: Option<Child>,
    pub dir: ConfigDir,
    lines: Arc<Mutex<Vec<String>>>,
    /// The admin listener (`/metrics`, `/status`, ...).
    pub admin: SocketAddr,
}

impl Gateway {
    /// Starts `gatehouse run --config DIR` and waits until every address in `ready` accepts
    /// connections.
    ///
    /// Unless gatehouse.toml has an `[admin]` table, the admin listener is put on a loopback
    /// address of its own, so gateways of concurrent tests do not collide on 9542.
    pub fn start(dir: ConfigDir, ready: &[SocketAddr]) -> Gateway {
        let main = dir.path().join("gatehouse.toml");
        let text = std::fs::read_to_string(&main).unwrap_or_default();
        let admin = match text.lines().find(|l| l.trim() == "[admin]") {
            Some(_) => text
                .lines()
                .skip_while(|l| l.trim() != "[admin]")
                .find_map(|l| {
                    let v = l.trim().strip_prefix("listen")?;
                    Some(
                        v.trim_start_matches([' ', '='])
                            .trim_matches('"')
                            .to_string(),
                    )
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9542))),
            None => {
                let admin = SocketAddr::from((unique_ip(), 9542));
                let text = format!("{text}\n\n[admin]\nlisten = \"{admin}\"\n");
                std::fs::write(&main, text).expect("write gatehouse.toml");
                admin
            }
        };
        let mut child = Command::new(gatehouse_bin())
            .args(["run", "--config"])
            .arg(dir.path())
            .env(
                "RUST_LOG",
                std::env::var("GATEHOUSE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gatehouse run");
        let lines = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().expect("stdout"), lines.clone(), None);
        collect(child.stderr.take().expect("stderr"), lines.clone(), None);
        let mut gw = Gateway {
            child: Some(child),
            dir,
            lines,
            admin,
        };
        let deadline = Instant::now() + DEADLINE;
        for addr in ready {
            loop {
                if TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if let Some(status) = gw.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    panic!("gatehouse run exited with {status}: {}", gw.log());
                }
                assert!(
                    Instant::now() < deadline,
                    "gatehouse run never listened on {addr}: {}",
                    gw.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The listeners accept a moment before the configuration counts as applied (VIPs,
        // status): wait for /readyz too, so tests see the applied generation.
        while !ready_on(admin) {
            if let Some(status) = gw.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("gatehouse run exited with {status}: {}", gw.log());
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse run never ready: {}",
                gw.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        gw
    }

    /// Everything the gateway printed so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Sends SIGHUP (reload).
    pub fn reload(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg("-HUP")
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("gateway still running");
        sigterm(&child);
        child.wait().expect("wait for gatehouse run")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            sigterm(&child);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
