//! Helpers for `vips.rs` (also used by `ha.rs` and `keepalived_config.rs`): network
//! namespaces on a bridge of their own, the real binaries run inside them with
//! `ip netns exec`, an `AF_PACKET` capture (`capture.rs`: the test binary re-run inside the
//! client namespace), and what the tests read back: addresses, neighbour entries, HTTP
//! answers through `curl`, the admin `/status`.
//!
//! A test binary that re-runs itself this way ([`Capture`], or `ha::client::Client`) must
//! have a test named `child_process_entry_point` ([`CHILD_ARGS`]) that, when [`ROLE`] is
//! set, runs that role's child side ([`capture`] for `capture`) and otherwise returns.
//!
//! Everything created is removed by guards on every path, a failed assertion included:
//! processes are stopped first (they are declared after the [`Net`] they live in, so they are
//! dropped before it), then the namespaces (their veths and bridge go with them).

use crate::gatehouse_bin;
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod capture;
pub use capture::*;

/// How long anything may take to become ready or to be observed.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How often a wait looks again.
pub const POLL: Duration = Duration::from_millis(50);

pub const VIP4: &str = "192.0.2.100";
pub const VIP6: &str = "2001:db8::100";
/// Added by hand before gatehouse starts; listed in the configuration too.
pub const PRE_EXISTING: &str = "192.0.2.101";
/// `[announce] conflictRetry` of every configuration here, in seconds.
pub const CONFLICT_RETRY_SECONDS: u64 = 2;
/// `[announce] garpCount` of every configuration here.
pub const GARP_COUNT: usize = 3;
/// The port of the echo backend inside each gateway namespace.
pub const ECHO_PORT: u16 = 3000;

/// The environment variables that turn this test binary into a child process.
pub const ROLE: &str = "GATEHOUSE_VIPS_ROLE";
pub const IFACE: &str = "GATEHOUSE_VIPS_IFACE";
/// The arguments that make the re-run test binary run only the child entry point.
pub const CHILD_ARGS: [&str; 4] = [
    "--exact",
    "child_process_entry_point",
    "--nocapture",
    "--test-threads=1",
];
/// How long a capture child runs at most if nobody stops it.
const CAPTURE_LIFETIME: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------
// Prerequisites

/// Why these tests cannot run here, if they cannot; `extra` are more (command, Debian
/// package) pairs a test needs.
fn missing_prerequisite(extra: &[(&str, &str)]) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        return Some("needs root for network namespaces and AF_PACKET".into());
    }
    let base = [("ip", "iproute2"), ("curl", "curl"), ("sysctl", "procps")];
    for &(tool, package) in base.iter().chain(extra) {
        if !which(tool) {
            return Some(format!("needs the `{tool}` command ({package})"));
        }
    }
    None
}

/// True when the test must be skipped (it printed why). With `CI` set a missing
/// prerequisite is a failure: CI runs as root with the tools installed.
pub fn skip() -> bool {
    skip_without(&[])
}

/// [`skip`] for a test that also needs the (command, Debian package) pairs of `extra`.
pub fn skip_without(extra: &[(&str, &str)]) -> bool {
    let Some(reason) = missing_prerequisite(extra) else {
        return false;
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, so the VIP tests must run, but: {reason}"
    );
    eprintln!("skipped: {reason}");
    true
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

// ---------------------------------------------------------------------------------------
// Commands

pub fn output(mut command: Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("run {command:?}: {error}"))
}

/// Runs `ip ARGS`; panics with its stderr on failure.
pub fn ip(args: &[&str]) -> String {
    let mut command = Command::new("ip");
    command.args(args);
    let out = output(command);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sysctl -w` inside `ns`.
pub fn sysctl(ns: &str, settings: &[&str]) {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns, "sysctl", "-q", "-w"])
        .args(settings);
    let out = output(command);
    assert!(
        out.status.success(),
        "sysctl {settings:?} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `check` every [`POLL`] until it returns true or `within` is over.
pub fn wait_until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------
// Namespaces

/// One host on the bridge: a namespace with one veth.
#[derive(Clone, Debug)]
pub struct Host {
    pub ns: String,
    pub iface: String,
    pub mac: String,
    /// Its own addresses (without prefix length).
    pub v4: String,
    pub v6: String,
}

/// Hosts on a bridge that sits in a namespace of its own, as `ci-environment.md` §1 does;
/// the root namespace is not touched. Every namespace is deleted on drop.
#[derive(Debug)]
pub struct Net {
    pub hosts: Vec<Host>,
    /// Namespaces created so far, bridge first.
    created: Vec<String>,
}

impl Net {
    /// Hosts named by `roles` (`a`, `b`, `c`, ...), host number `i + 1` each:
    /// 192.0.2.N/24 and 2001:db8::N/64 on `veth-<role>`, MAC 02:47:48:00:00:0N.
    pub fn new(roles: &[&str]) -> Net {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("gh-vip-{}-{n}", std::process::id());
        let mut net = Net {
            hosts: Vec::new(),
            created: Vec::new(),
        };
        let bridge = format!("{prefix}-br");
        net.add_ns(&bridge);
        ip(&[
            "-n",
            &bridge,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &bridge, "link", "set", "br0", "up"]);
        for (i, role) in roles.iter().enumerate() {
            let number = i + 1;
            let ns = format!("{prefix}-{role}");
            net.add_ns(&ns);
            // No duplicate address detection anywhere: addresses are usable at once.
            sysctl(
                &ns,
                &[
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                ],
            );
            let host = Host {
                ns: ns.clone(),
                iface: format!("veth-{role}"),
                mac: format!("02:47:48:00:00:{number:02x}"),
                v4: format!("192.0.2.{number}"),
                v6: format!("2001:db8::{number}"),
            };
            let port = format!("br-{role}");
            ip(&[
                "link",
                "add",
                &host.iface,
                "netns",
                &ns,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &bridge,
            ]);
            ip(&["-n", &bridge, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &bridge, "link", "set", &port, "up"]);
            ip(&["-n", &ns, "link", "set", &host.iface, "address", &host.mac]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "link", "set", &host.iface, "up"]);
            let v4 = format!("{}/24", host.v4);
            let v6 = format!("{}/64", host.v6);
            ip(&["-n", &ns, "addr", "add", &v4, "dev", &host.iface]);
            ip(&["-n", &ns, "addr", "add", &v6, "dev", &host.iface, "nodad"]);
            net.hosts.push(host);
        }
        net
    }

    fn add_ns(&mut self, name: &str) {
        delete_ns(name); // a leftover of a killed run with the same pid
        ip(&["netns", "add", name]);
        self.created.push(name.to_string());
    }

    pub fn host(&self, role: &str) -> &Host {
        let iface = format!("veth-{role}");
        self.hosts
            .iter()
            .find(|h| h.iface == iface)
            .unwrap_or_else(|| panic!("no host {role}"))
    }

    /// The namespace names, to check afterwards that none was left behind.
    pub fn names(&self) -> Vec<String> {
        self.created.clone()
    }
}

fn delete_ns(name: &str) {
    // Fails harmlessly when the namespace does not exist.
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Net {
    fn drop(&mut self) {
        for name in self.created.iter().rev() {
            delete_ns(name);
        }
    }
}

/// Makes `host`'s kernel learn neighbours from unsolicited announcements, as
/// `ci-environment.md` §1 found it needs: `arp_accept` for IPv4; for a new IPv6 entry
/// `accept_untracked_na=1` and `forwarding=1` on the receiving interface.
pub fn learn_from_announcements(host: &Host) {
    let i = &host.iface;
    sysctl(
        &host.ns,
        &[
            "net.ipv4.conf.all.arp_accept=1",
            &format!("net.ipv4.conf.{i}.arp_accept=1"),
            &format!("net.ipv6.conf.{i}.accept_untracked_na=1"),
            &format!("net.ipv6.conf.{i}.forwarding=1"),
        ],
    );
}

/// Whether `ip -n ns addr` lists `addr` (any prefix length).
pub fn has_addr(ns: &str, addr: &str) -> bool {
    addresses(ns).contains(&format!(" {addr}/"))
}

/// `ip -o addr show` in `ns`.
pub fn addresses(ns: &str) -> String {
    ip(&["-n", ns, "-o", "addr", "show"])
}

/// The line of `ip -o addr show` in `ns` that holds `addr`.
pub fn addr_line(ns: &str, addr: &str) -> Option<String> {
    let needle = format!(" {addr}/");
    addresses(ns)
        .lines()
        .find(|l| l.contains(&needle))
        .map(str::to_string)
}

/// The MAC `ns`'s neighbour table has for `addr`, if it has one.
pub fn neigh_mac(ns: &str, addr: &str) -> Option<String> {
    let out = ip(&["-n", ns, "neigh", "show", "to", addr]);
    let mut words = out.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_string)
}

/// `ip neigh show to addr` in `ns`, for messages.
pub fn neigh_text(ns: &str, addr: &str) -> String {
    ip(&["-n", ns, "neigh", "show", "to", addr])
        .trim()
        .to_string()
}

/// GET `url` from inside `ns` with curl; the echo backend's name, or why there is none.
pub fn echo_name(ns: &str, url: &str) -> Result<String, String> {
    let body = curl(ns, url, Duration::from_secs(3))?;
    let json: Value =
        serde_json::from_str(&body).map_err(|e| format!("not echo JSON ({e}): {body}"))?;
    json["name"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no name in {body}"))
}

/// The body of a GET of `url` from inside `ns`, or curl's error.
pub fn curl(ns: &str, url: &str, timeout: Duration) -> Result<String, String> {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns, "curl", "-sS", "-g", "--noproxy", "*"])
        .args(["--max-time", &format!("{:.1}", timeout.as_secs_f64())])
        .args(["-o", "-", "-w", "\n%{http_code}", url]);
    let out = output(command);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "curl {url}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    if code != "200" {
        return Err(format!("GET {url}: HTTP {code}: {body}"));
    }
    Ok(body.to_string())
}

/// Retries [`echo_name`] until it answers or `within` is over.
pub fn wait_echo(ns: &str, url: &str, within: Duration) -> Result<String, String> {
    let deadline = Instant::now() + within;
    loop {
        let answer = echo_name(ns, url);
        if answer.is_ok() || Instant::now() >= deadline {
            return answer;
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------
// Processes in namespaces

/// A process started with `ip netns exec` (which execs, so the pid is the program's), its
/// output lines kept with their arrival times; SIGTERM, then SIGKILL, on drop.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
    pub what: String,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Proc {
    pub fn spawn<I, S>(ns: &str, program: &Path, args: I, envs: &[(&str, &str)]) -> Proc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("{command:?}");
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for reader in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    lines
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((Instant::now(), line));
                }
            });
        }
        Proc {
            child: Some(child),
            what,
            lines,
        }
    }

    pub fn log(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn line_count(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The lines from index `from` on, with their arrival times.
    pub fn lines_since(&self, from: usize) -> Vec<(Instant, String)> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.get(from..).unwrap_or_default().to_vec()
    }

    /// The first line from index `from` on that contains `needle`, with its arrival time.
    pub fn find_line(&self, from: usize, needle: &str) -> Option<(Instant, String)> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .skip(from)
            .find(|(_, l)| l.contains(needle))
            .cloned()
    }

    /// Waits for a line from index `from` on containing `needle`; panics at the deadline
    /// or when the process exits first.
    pub fn wait_line(&mut self, from: usize, needle: &str) -> (Instant, String) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(found) = self.find_line(from, needle) {
                return found;
            }
            if let Some(status) = self.exited() {
                // Let the reader threads catch up before reporting.
                std::thread::sleep(Duration::from_millis(100));
                if let Some(found) = self.find_line(from, needle) {
                    return found;
                }
                panic!(
                    "{} exited with {status} before printing {needle:?}:\n{}",
                    self.what,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} never printed {needle:?}:\n{}",
                self.what,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit status, if it exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL, as a crash: nothing is cleaned up. Waits for the exit.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("process still running");
        let _ = child.kill();
        child.wait().expect("wait for a killed child")
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after [`DEADLINE`]).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("process still running");
        terminate(&mut child, DEADLINE)
    }
}

fn terminate(child: &mut Child, grace: Duration) -> ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait().expect("wait for a killed child")
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(5));
        }
    }
}

/// `gatehouse echo --listen 127.0.0.1:3000 --name NAME` inside `ns`, once it listens.
pub fn start_echo(ns: &str, name: &str) -> Proc {
    let listen = format!("127.0.0.1:{ECHO_PORT}");
    let mut p = Proc::spawn(
        ns,
        &gatehouse_bin(),
        ["echo", "--listen", &listen, "--name", name],
        &[],
    );
    p.wait_line(0, &format!("echo {name} listening on "));
    p
}

// ---------------------------------------------------------------------------------------
// gatehouse run

/// One `gatehouse run` in a namespace: its configuration and state directories, and the
/// running process (absent between [`Gatehouse::stop`] and the next [`Gatehouse::start`]).
#[derive(Debug)]
pub struct Gatehouse {
    /// Declared first so it is stopped before its directories go.
    proc: Option<Proc>,
    /// The output of the last stopped process.
    stopped_log: String,
    pub ns: String,
    config: tempfile::TempDir,
    state: tempfile::TempDir,
}

/// An entry of a Gateway's `addresses`: the IP and optionally the `interface` key.
pub type Addr<'a> = (&'a str, Option<&'a str>);

impl Gatehouse {
    pub fn new(ns: &str) -> Gatehouse {
        Gatehouse {
            proc: None,
            stopped_log: String::new(),
            ns: ns.to_string(),
            config: tempfile::tempdir().expect("config tempdir"),
            state: tempfile::tempdir().expect("state tempdir"),
        }
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    pub fn config_file(&self) -> PathBuf {
        self.config.path().join("gatehouse.toml")
    }

    /// The daemon tables every configuration here starts with.
    pub fn settings(&self) -> String {
        format!(
            r#"[admin]
listen = "127.0.0.1:9542"

[runtime]
stateDir = "{}"
shutdownGrace = "2s"

[announce]
garpCount = {GARP_COUNT}
garpInterval = "200ms"
conflictRetry = "{CONFLICT_RETRY_SECONDS}s"

[log]
accessLog = false
"#,
            self.state_dir().display()
        )
    }

    /// Settings, then `body`.
    pub fn config(&self, body: &str) -> String {
        format!("{}\n{body}", self.settings())
    }

    /// Writes gatehouse.toml as an editor does (a hidden temporary file renamed over it), so
    /// the watcher never reads half a file.
    pub fn write(&self, text: &str) {
        let tmp = self.config.path().join(".gatehouse.toml.tmp");
        std::fs::write(&tmp, text).expect("write the temporary configuration");
        std::fs::rename(&tmp, self.config_file()).expect("rename the configuration over");
    }

    /// Starts `gatehouse run --config DIR` in the namespace and waits until it serves.
    pub fn start(&mut self) {
        assert!(self.proc.is_none(), "gatehouse already running");
        let config = self.config.path().to_path_buf();
        let mut p = Proc::spawn(
            &self.ns,
            &gatehouse_bin(),
            [
                OsStr::new("run"),
                OsStr::new("--config"),
                config.as_os_str(),
            ],
            &[("RUST_LOG", "info")],
        );
        p.wait_line(0, "gatehouse serving");
        self.proc = Some(p);
    }

    pub fn proc(&mut self) -> &mut Proc {
        self.proc.as_mut().expect("gatehouse is running")
    }

    pub fn log(&self) -> String {
        match &self.proc {
            Some(p) => p.log(),
            None => self.stopped_log.clone(),
        }
    }

    /// Rewrites the configuration and waits until the daemon logs that it applied a new
    /// generation; returns when that line arrived.
    pub fn reconfigure(&mut self, text: &str) -> Instant {
        let from = self.proc().line_count();
        self.write(text);
        let (at, _) = self.proc().wait_line(from, "configuration applied");
        at
    }

    /// SIGTERM; the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut p = self.proc.take().expect("gatehouse is running");
        let status = p.stop();
        // Let the reader threads take the last lines.
        std::thread::sleep(Duration::from_millis(50));
        self.stopped_log = p.log();
        status
    }

    /// SIGKILL (a crash); the exit status.
    pub fn kill(&mut self) -> ExitStatus {
        let mut p = self.proc.take().expect("gatehouse is running");
        let status = p.kill();
        std::thread::sleep(Duration::from_millis(50));
        self.stopped_log = p.log();
        status
    }

    /// The admin `/status` document, read from inside the namespace.
    pub fn status(&self) -> Value {
        let body = curl(
            &self.ns,
            "http://127.0.0.1:9542/status",
            Duration::from_secs(3),
        )
        .unwrap_or_else(|e| panic!("/status: {e}"));
        serde_json::from_str(&body).expect("/status is JSON")
    }
}

/// The `addresses` values `/status` shows for the Gateway `name`.
pub fn status_addresses(status: &Value, name: &str) -> Vec<String> {
    status["status"]["gateways"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["key"]["name"] == name)
        .flat_map(|g| g["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["value"].as_str().map(str::to_string))
        .collect()
}

/// The condition `kind` of the Gateway `name` in `/status`.
pub fn gateway_condition(status: &Value, name: &str, kind: &str) -> Option<Value> {
    status["status"]["gateways"]
        .as_array()?
        .iter()
        .find(|g| g["key"]["name"] == name)?["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
}

/// A Gateway `name` with one HTTP listener on port 80 and `addresses`, and an HTTPRoute
/// sending everything to the Service `echo`.
pub fn gateway(name: &str, addresses: &[Addr<'_>]) -> String {
    let list = addresses
        .iter()
        .map(|(ip, interface)| match interface {
            Some(i) => format!("{{ value = \"{ip}\", interface = \"{i}\" }}"),
            None => format!("{{ value = \"{ip}\" }}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let addresses = if addresses.is_empty() {
        String::new()
    } else {
        format!("addresses = [{list}]\n")
    };
    format!(
        r#"
[[Gateway]]
name = "{name}"
gatewayClassName = "gatehouse"
{addresses}listeners = [{{ name = "http", protocol = "HTTP", port = 80 }}]

[[HTTPRoute]]
name = "{name}-to-echo"
parentRefs = [{{ name = "{name}" }}]
rules = [{{ backendRefs = [{{ name = "echo", port = {ECHO_PORT} }}] }}]
"#
    )
}

/// The Service in front of the echo backend of the gateway's namespace.
pub fn echo_service() -> String {
    format!(
        r#"
[[Service]]
name = "echo"
ports = [{{ port = {ECHO_PORT} }}]
endpoints = ["127.0.0.1"]
"#
    )
}
