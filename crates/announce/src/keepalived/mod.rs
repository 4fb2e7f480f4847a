//! `[announce] mode = "keepalived"`: keepalived owns the Gateways' addresses (VRRP between
//! the boxes of a pair) and gatehouse only tells it which. On every applied configuration
//! [`Keepalived::apply`] finds each VIP's interface, writes the include file ([`render`])
//! when its text changed and then sends keepalived SIGHUP; it never adds, removes or
//! announces an address. The listeners bind the VIPs with `IP_FREEBIND`, so a backup box
//! serves an address the moment keepalived moves it here.
//!
//! Each VIP's state is read from the interfaces: on one of this box's interfaces it is
//! [`VipState::Active`] (keepalived MASTER here), elsewhere [`VipState::Standby`] (BACKUP
//! here, or no box holds it), with the state keepalived last reported for its instance
//! (the generated `notify` line runs [`record_state`]: `<stateDir>/keepalived/<instance>`),
//! so a box whose keepalived is in FAULT says so. [`Keepalived::roles`] reads them again once
//! a second.

pub mod render;

use crate::manager::{VipState, all_unusable, choose};
use crate::netlink::{Address, Link, Netlink, is_link_local};
use gatehouse_model::Snapshot;
use gatehouse_model::settings::Ha;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The first line of every file gatehouse writes: a file without it is never overwritten.
const MARK: &str = "# Written by gatehouse";
/// What the first line says the file was written from.
const ORIGIN: &str = "the Gateway addresses and [ha] of its configuration";

/// What became of the include file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// The file already had this text: keepalived was not disturbed.
    Unchanged,
    /// Written, and keepalived (this pid) was sent SIGHUP.
    Reloaded(i32),
    /// Written; keepalived is not running (it reads the file when it starts).
    NotRunning(String),
}

/// Writes keepalived's include file and reads back which VIPs this box holds.
#[derive(Debug)]
pub struct Keepalived {
    netlink: Netlink,
    exe: PathBuf,
    /// The VIPs of the applied configuration and their interfaces (None: local).
    vips: BTreeMap<IpAddr, Option<String>>,
    /// States that are not read from the interfaces (unusable VIPs).
    fixed: BTreeMap<IpAddr, VipState>,
    /// The VRRP instance of each VIP, and where keepalived's notify records its states.
    instance_of: BTreeMap<IpAddr, String>,
    state_dir: PathBuf,
}

impl Keepalived {
    /// `exe` is the gatehouse executable keepalived runs for the readiness check.
    pub fn new(netlink: Netlink, exe: PathBuf) -> Keepalived {
        Keepalived {
            netlink,
            exe,
            vips: BTreeMap::new(),
            fixed: BTreeMap::new(),
            instance_of: BTreeMap::new(),
            state_dir: PathBuf::new(),
        }
    }

    pub fn netlink(&self) -> &Netlink {
        &self.netlink
    }

    /// Writes the include file for `snapshot`'s VIPs (reloading keepalived when it changed)
    /// and returns each VIP's state.
    pub async fn apply(&mut self, snapshot: &Snapshot) -> BTreeMap<IpAddr, VipState> {
        self.vips.clear();
        self.fixed.clear();
        let (links, addrs) = match (self.netlink.links().await, self.netlink.addresses().await) {
            (Ok(l), Ok(a)) => (l, a),
            (Err(e), _) | (_, Err(e)) => {
                let why = e.to_string();
                return self.all_unusable(snapshot, &why);
            }
        };
        let ha = &snapshot.settings.ha;
        let composed = compose(snapshot, &self.exe, &links, &addrs);
        for w in &composed.warnings {
            tracing::warn!("{w}");
        }
        self.state_dir
            .clone_from(&snapshot.settings.runtime.state_dir);
        self.instance_of = composed.instance_of;
        for (ip, interface) in &composed.placed {
            self.vips.insert(*ip, Some(interface.clone()));
        }
        for ip in composed.local {
            self.vips.insert(ip, None);
        }
        for (vip, why) in composed.unusable {
            let state = VipState::NotUsable {
                interface: vip.interface.clone(),
                why,
            };
            self.fixed.insert(vip.address, state);
        }
        let text = composed.text;
        let written = text.and_then(|text| write(ha, &text));
        match written {
            Ok(Written::Unchanged) => {}
            Ok(Written::Reloaded(pid)) => tracing::info!(
                file = %ha.keepalived_config.display(),
                pid,
                "keepalived configuration written; keepalived reloaded"
            ),
            Ok(Written::NotRunning(why)) => tracing::warn!(
                file = %ha.keepalived_config.display(),
                "keepalived configuration written, but keepalived was not reloaded: {why}"
            ),
            Err(why) => {
                tracing::error!("{why}");
                return self.all_unusable(snapshot, &why);
            }
        }
        self.read_roles(&addrs)
    }

    /// Each VIP's state as the interfaces show it now.
    pub async fn roles(&mut self) -> Option<BTreeMap<IpAddr, VipState>> {
        let addrs = self.netlink.addresses().await.ok()?;
        Some(self.read_roles(&addrs))
    }

    fn read_roles(&self, addrs: &[Address]) -> BTreeMap<IpAddr, VipState> {
        let mut states = self.fixed.clone();
        for (ip, interface) in &self.vips {
            let state = match interface {
                None => VipState::Local,
                Some(interface) if addrs.iter().any(|a| a.ip == *ip) => VipState::Active {
                    interface: interface.clone(),
                },
                Some(interface) => VipState::Standby {
                    interface: interface.clone(),
                    keepalived: self
                        .instance_of
                        .get(ip)
                        .and_then(|i| recorded_state(&self.state_dir, i)),
                },
            };
            states.insert(*ip, state);
        }
        states
    }

    fn all_unusable(&mut self, snapshot: &Snapshot, why: &str) -> BTreeMap<IpAddr, VipState> {
        self.vips.clear();
        self.fixed = all_unusable(&snapshot.vips, why);
        self.fixed.clone()
    }
}

/// The include file for a configuration, and where each VIP goes.
struct Composed<'a> {
    /// VIPs for keepalived, with their interfaces.
    placed: Vec<(IpAddr, String)>,
    /// VIPs in the loopback's subnet.
    local: Vec<IpAddr>,
    /// VIPs without an interface, and why.
    unusable: Vec<(&'a gatehouse_model::snapshot::Vip, String)>,
    /// The instance of each placed VIP.
    instance_of: BTreeMap<IpAddr, String>,
    /// What works, but not as well as it should (a sysctl).
    warnings: Vec<String>,
    text: Result<String, String>,
}

fn compose<'a>(
    snapshot: &'a Snapshot,
    exe: &Path,
    links: &[Link],
    addrs: &[Address],
) -> Composed<'a> {
    let ha = &snapshot.settings.ha;
    let mut composed = Composed {
        placed: Vec::new(),
        local: Vec::new(),
        unusable: Vec::new(),
        instance_of: BTreeMap::new(),
        warnings: Vec::new(),
        text: Ok(String::new()),
    };
    for vip in &snapshot.vips {
        match interface_for(vip, ha, links, addrs) {
            Ok(Some(interface)) => composed.placed.push((vip.address, interface)),
            Ok(None) => composed.local.push(vip.address),
            Err(why) => composed.unusable.push((vip, why)),
        }
    }
    let settings = &snapshot.settings;
    let commands = render::commands(exe, settings.admin.listen, &settings.runtime.state_dir);
    composed.text = commands.and_then(|commands| {
        let mut instances = render::plan(&composed.placed, ha)?;
        for i in &mut instances {
            for ip in &i.vips {
                composed.instance_of.insert(*ip, i.name.clone());
            }
            if ha.peers.is_empty() {
                continue;
            }
            i.source = Some(source_address(i, ha, links, addrs)?);
            if i.ipv6 && !keeps_addresses_when_down(&i.interface) {
                composed.warnings.push(format!(
                    "net.ipv6.conf.{0}.keep_addr_on_down is 0: when {0} goes down it loses {1}, the address VRRP is sent from, and once it is back keepalived may hold the IPv6 VIPs on both boxes; set it to 1 (sysctl -w net.ipv6.conf.{0}.keep_addr_on_down=1, and in /etc/sysctl.d)",
                    i.interface,
                    i.source.map(|s| s.to_string()).unwrap_or_default()
                ));
            }
        }
        Ok(render::render(
            &instances,
            ha,
            &settings.announce,
            &commands,
            ORIGIN,
        ))
    });
    composed
}

/// What `gatehouse check` shows: the include file gatehouse would write for `snapshot` on
/// this host (its interfaces decide where each VIP goes) with warnings, or every reason it
/// cannot be written.
pub async fn preview(
    snapshot: &Snapshot,
    exe: &Path,
) -> Result<(String, Vec<String>), Vec<String>> {
    let netlink = Netlink::connect().map_err(|e| vec![e.to_string()])?;
    let (links, addrs) = match (netlink.links().await, netlink.addresses().await) {
        (Ok(l), Ok(a)) => (l, a),
        (Err(e), _) | (_, Err(e)) => return Err(vec![format!("cannot read the interfaces: {e}")]),
    };
    let composed = compose(snapshot, exe, &links, &addrs);
    let mut errors: Vec<String> = composed
        .unusable
        .iter()
        .map(|(vip, why)| {
            format!(
                "VIP {} of Gateway {}: {why}",
                vip.address,
                vip.gateway.namespaced_name()
            )
        })
        .collect();
    match composed.text {
        Ok(text) if errors.is_empty() => Ok((text, composed.warnings)),
        Ok(_) => Err(errors),
        Err(e) => {
            errors.push(e);
            Err(errors)
        }
    }
}

/// The address `instance`'s unicast adverts go out from: this box's own address of the
/// family on the interface (not a VIP, not a /32 or /128, not link-local), preferring one
/// whose subnet holds a peer.
fn source_address(
    instance: &render::Instance,
    ha: &Ha,
    links: &[Link],
    addrs: &[Address],
) -> Result<IpAddr, String> {
    let family = if instance.ipv6 { "IPv6" } else { "IPv4" };
    let own: Vec<&Address> = links
        .iter()
        .filter(|l| l.name == instance.interface)
        .flat_map(|l| addrs.iter().filter(move |a| a.index == l.index))
        .filter(|a| a.ip.is_ipv6() == instance.ipv6 && !a.is_host() && !is_link_local(a.ip))
        .collect();
    let peers: Vec<&IpAddr> = ha
        .peers
        .iter()
        .filter(|p| p.is_ipv6() == instance.ipv6)
        .collect();
    own.iter()
        .find(|a| peers.iter().any(|p| a.covers(**p)))
        .or_else(|| own.first())
        .map(|a| a.ip)
        .ok_or_else(|| {
            format!(
                "{} has no {family} address of its own (a subnet address, not a /32 or /128 or link-local) to send unicast VRRP from to [ha] peers",
                instance.interface
            )
        })
}

/// `net.ipv6.conf.<interface>.keep_addr_on_down`: whether the interface keeps its IPv6
/// addresses while down (assumed when the file cannot be read).
fn keeps_addresses_when_down(interface: &str) -> bool {
    let path = format!("/proc/sys/net/ipv6/conf/{interface}/keep_addr_on_down");
    std::fs::read_to_string(path).map_or(true, |v| v.trim() != "0")
}

/// The interface a VIP's instance goes on: the one its Gateway address names, else
/// `[ha] interface`, else the one whose subnet holds it. `None` for a loopback address
/// (local, nothing for keepalived to do).
fn interface_for(
    vip: &gatehouse_model::snapshot::Vip,
    ha: &Ha,
    links: &[Link],
    addrs: &[Address],
) -> Result<Option<String>, String> {
    let mut vip = vip.clone();
    if vip.interface.is_none() {
        vip.interface.clone_from(&ha.interface);
    }
    Ok(choose(&vip, links, addrs)?.map(|l| l.name.clone()))
}

/// Writes `text` to `[ha] keepalivedConfig` when it differs from what is there, then
/// reloads keepalived. Refuses to overwrite a file gatehouse did not write.
fn write(ha: &Ha, text: &str) -> Result<Written, String> {
    let path = &ha.keepalived_config;
    match std::fs::read_to_string(path) {
        Ok(old) if old == text => return Ok(Written::Unchanged),
        Ok(old) if !old.is_empty() && !old.starts_with(MARK) => {
            return Err(format!(
                "{} exists and was not written by gatehouse: move it away, or point [ha] keepalivedConfig at another file",
                path.display()
            ));
        }
        _ => {}
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        return Err(format!(
            "cannot write {}: the folder {} does not exist (is keepalived installed? create it with `install -d {}`)",
            path.display(),
            dir.display(),
            dir.display()
        ));
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write {}: {e}", path.display())
        })?;
    Ok(reload(&ha.keepalived_pid_file))
}

/// Sends SIGHUP to the keepalived whose pid `pid_file` holds.
fn reload(pid_file: &Path) -> Written {
    let text = match std::fs::read_to_string(pid_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Written::NotRunning(format!(
                "{} does not exist (keepalived is not running; it reads the file when it starts)",
                pid_file.display()
            ));
        }
        Err(e) => return Written::NotRunning(format!("cannot read {}: {e}", pid_file.display())),
    };
    let Some(pid) = text.trim().parse::<i32>().ok().filter(|p| *p > 1) else {
        return Written::NotRunning(format!("{} holds no process id", pid_file.display()));
    };
    // Where /proc shows the process (not always: the unit hides other users' processes),
    // a pid file left by a keepalived that died must not signal whatever has its pid now.
    if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        && comm.trim() != "keepalived"
    {
        return Written::NotRunning(format!(
            "{} names process {pid}, which is {}, not keepalived (a stale pid file)",
            pid_file.display(),
            comm.trim()
        ));
    }
    use nix::sys::signal::{Signal, kill};
    match kill(nix::unistd::Pid::from_raw(pid), Signal::SIGHUP) {
        Ok(()) => Written::Reloaded(pid),
        Err(nix::errno::Errno::ESRCH) => Written::NotRunning(format!(
            "process {pid} from {} is gone (keepalived is not running)",
            pid_file.display()
        )),
        Err(e) => Written::NotRunning(format!(
            "cannot signal keepalived (pid {pid}): {e}; gatehouse needs CAP_KILL to reload a keepalived that runs as root"
        )),
    }
}

/// Where `keepalived-notify` records the states of the instances.
fn states_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("keepalived")
}

/// An instance name gatehouse writes: `gatehouse_<interface>_ipv4|ipv6`, letters, digits and
/// `_` only, so it is a safe file name.
fn instance_name(name: &str) -> bool {
    name.starts_with("gatehouse_")
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `gatehouse keepalived-notify`: keepalived's `notify` ran with `INSTANCE <name> <state>
/// <priority>`; records the state for the daemon's status. Other kinds (GROUP) and names
/// gatehouse did not write are refused.
pub fn record_state(state_dir: &Path, kind: &str, name: &str, state: &str) -> Result<(), String> {
    if kind != "INSTANCE" || !instance_name(name) {
        return Err(format!(
            "not one of gatehouse's VRRP instances: {kind} {name}"
        ));
    }
    if !matches!(state, "MASTER" | "BACKUP" | "FAULT" | "STOP" | "DELETED") {
        return Err(format!("not a VRRP state: {state}"));
    }
    use std::os::unix::fs::PermissionsExt as _;
    let dir = states_dir(state_dir);
    // keepalived runs scripts with umask 0177: without explicit modes the folder could not
    // be entered, nor the files read by the daemon.
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Another user's folder (made by an earlier script user) keeps its mode.
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, format!("{state}\n"))
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)))
        .and_then(|()| std::fs::rename(&tmp, dir.join(name)))
        .map_err(|e| format!("cannot record {name} {state} in {}: {e}", dir.display()))
}

/// The state keepalived last reported for instance `name`.
fn recorded_state(state_dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(states_dir(state_dir).join(name)).ok()?;
    let state = text.trim();
    (!state.is_empty()).then(|| state.to_string())
}

/// In `[announce] mode = "self"`: a file gatehouse wrote earlier (in keepalived mode) loses
/// its instances, so keepalived stops claiming the addresses gatehouse now adds itself.
pub fn retire(ha: &Ha) {
    let path = &ha.keepalived_config;
    let Ok(old) = std::fs::read_to_string(path) else {
        return;
    };
    if !old.starts_with(MARK) || !old.contains("vrrp_instance") {
        return;
    }
    let text = format!(
        "{MARK} while it was in [announce] mode = \"keepalived\". It is now in mode \"self\" and puts its addresses on the interfaces itself: no VRRP instances.\n"
    );
    match write(ha, &text) {
        Ok(_) => {
            tracing::info!(file = %path.display(), "[announce] mode is \"self\": the keepalived instances gatehouse wrote were removed")
        }
        Err(e) => tracing::error!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ha_in(dir: &Path) -> Ha {
        Ha {
            keepalived_config: dir.join("gatehouse.conf"),
            keepalived_pid_file: dir.join("keepalived.pid"),
            ..Ha::default()
        }
    }

    #[test]
    fn the_file_is_written_only_when_its_text_changes() {
        let dir = tempfile::tempdir().unwrap();
        let ha = ha_in(dir.path());
        let text = format!("{MARK} for a test\n");
        assert!(matches!(write(&ha, &text), Ok(Written::NotRunning(_))));
        assert_eq!(write(&ha, &text), Ok(Written::Unchanged));
        assert_eq!(
            std::fs::read_to_string(&ha.keepalived_config).unwrap(),
            text
        );
    }

    #[test]
    fn a_file_gatehouse_did_not_write_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let ha = ha_in(dir.path());
        std::fs::write(&ha.keepalived_config, "vrrp_instance mine {}\n").unwrap();
        let err = write(&ha, &format!("{MARK}\n")).unwrap_err();
        assert!(err.contains("was not written by gatehouse"), "{err}");
    }

    #[test]
    fn a_missing_folder_says_to_install_keepalived() {
        let dir = tempfile::tempdir().unwrap();
        let ha = ha_in(&dir.path().join("conf.d"));
        let err = write(&ha, &format!("{MARK}\n")).unwrap_err();
        assert!(
            err.contains("does not exist (is keepalived installed?"),
            "{err}"
        );
    }

    #[test]
    fn a_stale_pid_file_does_not_signal_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("keepalived.pid");
        // This test process is not keepalived.
        std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
        let Written::NotRunning(why) = reload(&pid_file) else {
            panic!("signalled a process that is not keepalived");
        };
        assert!(why.contains("stale pid file"), "{why}");
        std::fs::write(&pid_file, "garbage").unwrap();
        assert!(matches!(reload(&pid_file), Written::NotRunning(w) if w.contains("no process id")));
    }

    #[test]
    fn keepalived_notify_records_only_gatehouses_instances_and_states() {
        let dir = tempfile::tempdir().unwrap();
        record_state(dir.path(), "INSTANCE", "gatehouse_eth0_ipv4", "FAULT").unwrap();
        assert_eq!(
            recorded_state(dir.path(), "gatehouse_eth0_ipv4").as_deref(),
            Some("FAULT")
        );
        record_state(dir.path(), "INSTANCE", "gatehouse_eth0_ipv4", "BACKUP").unwrap();
        assert_eq!(
            recorded_state(dir.path(), "gatehouse_eth0_ipv4").as_deref(),
            Some("BACKUP")
        );
        assert!(record_state(dir.path(), "INSTANCE", "../../etc/passwd", "FAULT").is_err());
        assert!(record_state(dir.path(), "INSTANCE", "operators_own", "FAULT").is_err());
        assert!(record_state(dir.path(), "GROUP", "gatehouse_g", "FAULT").is_err());
        assert!(record_state(dir.path(), "INSTANCE", "gatehouse_eth0_ipv6", "rm -rf").is_err());
        assert_eq!(recorded_state(dir.path(), "gatehouse_eth0_ipv6"), None);
    }

    #[test]
    fn switching_to_self_mode_removes_the_instances_gatehouse_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let ha = ha_in(dir.path());
        std::fs::write(
            &ha.keepalived_config,
            format!("{MARK}\nvrrp_instance gatehouse_eth0_ipv4 {{}}\n"),
        )
        .unwrap();
        retire(&ha);
        let now = std::fs::read_to_string(&ha.keepalived_config).unwrap();
        assert!(
            now.starts_with(MARK) && !now.contains("vrrp_instance"),
            "{now}"
        );
    }
}
