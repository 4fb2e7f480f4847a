//! Real third-party peers for the tests, each a child process with a configuration of its own
//! in a temporary folder, stopped on drop: HAProxy in front of gatehouse (a load balancer that
//! sends PROXY headers), nginx behind it (a backend that reads them), and dnsmasq behind a
//! UDPRoute (a DNS server).
//!
//! Each is found on PATH; without it [`Peer::start`] returns `None` after printing why, and the
//! test skips, unless `CI` is set, where that is a failure (`scripts/install-prerequisites`
//! installs them).

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running HAProxy or nginx.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Peer {
    /// Starts `program` (`haproxy`, `nginx` or `dnsmasq`) in the foreground with `config`
    /// written to a temporary folder (`{dir}` in it names that folder), and waits until every
    /// address of `ready` accepts TCP connections (dnsmasq serves DNS over TCP too).
    pub fn start(program: &str, config: &str, ready: &[SocketAddr]) -> Option<Peer> {
        let Some(path) = find(program) else {
            let package = if program == "dnsmasq" {
                "dnsmasq-base"
            } else {
                program
            };
            let why = format!("needs {program} (the Debian package {package})");
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set, but the test {why}"
            );
            eprintln!("skipped: {why}");
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary folder");
        let file = dir.path().join(format!("{program}.conf"));
        let config = config.replace("{dir}", &dir.path().display().to_string());
        std::fs::write(&file, config).expect("write the configuration");
        let mut command = Command::new(path);
        match program {
            // -db: foreground, no daemon.
            "haproxy" => command.arg("-db").arg("-f").arg(&file),
            // -k: foreground; -C: this file only.
            "dnsmasq" => command.arg("-k").arg("-C").arg(&file),
            _ => command
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&file)
                .args(["-g", "daemon off;"]),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let mut peer = Peer { child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        for addr in ready {
            while TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_err() {
                if let Ok(Some(status)) = peer.child.try_wait() {
                    panic!("{program} exited with {status}");
                }
                assert!(
                    Instant::now() < deadline,
                    "{program} never listened on {addr}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(peer)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| Path::new(p).is_file())
}
