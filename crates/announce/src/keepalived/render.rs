//! The keepalived include file gatehouse writes in `[announce] mode = "keepalived"`: pure
//! functions from the configuration's VIPs (each with its interface) and `[ha]` to text.
//!
//! The rules, each with a test below:
//! - One `vrrp_instance` per interface and address family, named
//!   `gatehouse_<interface>_ipv4|ipv6`, numbered from `[ha] routerIdBase` in the order of
//!   interface names, IPv4 before IPv6. Both boxes of a pair compute the same numbers from
//!   the same configuration and interface names.
//! - Every instance starts `state BACKUP`; the priority decides. `nopreempt` unless
//!   `[ha] preempt = true`.
//! - VRRPv3 with `advert_int` from `[ha] advertInterval` (fractions of a second); IPv6
//!   instances are always VRRPv3 (keepalived's rule); VRRPv2 with `authPass` gets
//!   `authentication { auth_type PASS }` on IPv4 instances.
//! - Unicast peers of the instance's family when `[ha] peers` is set (a family without a
//!   peer is an error), sent from this box's own address on the interface
//!   (`unicast_src_ip`: keepalived would send IPv6 from the link-local address, which the
//!   peers' adverts to the global address never reach: both boxes would become MASTER);
//!   multicast otherwise.
//! - `garp_master_repeat` = `[announce] garpCount`, `garp_master_refresh` =
//!   `refreshInterval` (whole seconds, 0 = none). `garpInterval` is not carried over:
//!   keepalived's `garp_interval` spaces every frame on an interface, all VIPs together, so
//!   the last VIP's first frame would wait count × VIPs × interval after a takeover. Each
//!   burst goes out at once, and keepalived repeats it 5 s later (its default).
//! - `track_script` on `gatehouse_ready`: `gatehouse status --ready --hold 800ms`, run every
//!   second as `[ha] scriptUser`. It holds its request and fails at once when gatehouse dies
//!   or stops being ready, so the box leaves MASTER within a fraction of a second.
//! - `notify`: `gatehouse keepalived-notify`, which records each state keepalived enters
//!   (MASTER, BACKUP, FAULT, STOP) under `<stateDir>/keepalived/`, for the status.

use gatehouse_model::settings::{Announce, Ha};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// The name of the generated `vrrp_script`.
pub const SCRIPT_NAME: &str = "gatehouse_ready";

/// One VRRP instance: the VIPs of one address family on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub interface: String,
    pub ipv6: bool,
    pub router_id: u8,
    pub vips: Vec<IpAddr>,
    /// `unicast_src_ip`: this box's own address of the family on the interface, which the
    /// peers' unicast adverts reach (left to keepalived when None; for IPv6 it would pick
    /// the link-local address, which the peers do not send to).
    pub source: Option<IpAddr>,
}

/// Groups `vips` (address, interface) into instances and numbers them. Errors when the
/// numbers run past 255 or `[ha] peers` has no address of an instance's family.
pub fn plan(vips: &[(IpAddr, String)], ha: &Ha) -> Result<Vec<Instance>, String> {
    let mut groups: BTreeMap<(&str, bool), Vec<IpAddr>> = BTreeMap::new();
    for (ip, interface) in vips {
        groups
            .entry((interface.as_str(), ip.is_ipv6()))
            .or_default()
            .push(*ip);
    }
    let mut instances = Vec::with_capacity(groups.len());
    for (i, ((interface, ipv6), mut ips)) in groups.into_iter().enumerate() {
        let router_id = u8::try_from(usize::from(ha.router_id_base) + i).map_err(|_| {
            format!(
                "[ha] routerIdBase = {} leaves room for {} VRRP instance(s), and the Gateways' addresses need one per interface and address family ({} so far): lower routerIdBase",
                ha.router_id_base,
                256 - usize::from(ha.router_id_base),
                i + 1
            )
        })?;
        if !ha.peers.is_empty() && !ha.peers.iter().any(|p| p.is_ipv6() == ipv6) {
            let family = if ipv6 { "IPv6" } else { "IPv4" };
            return Err(format!(
                "[ha] peers has no {family} address, and {family} VIPs on {interface} ({}) need a peer of their family: add the other box's {family} address",
                list(&ips)
            ));
        }
        ips.sort();
        ips.dedup();
        instances.push(Instance {
            name: format!(
                "gatehouse_{}_{}",
                interface.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
                if ipv6 { "ipv6" } else { "ipv4" }
            ),
            interface: interface.to_string(),
            ipv6,
            router_id,
            vips: ips,
            source: None,
        });
    }
    Ok(instances)
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The commands keepalived runs: the readiness check and the state recorder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commands {
    /// This executable's `status --ready`, holding its request for [`Ha::READY_HOLD`],
    /// against the admin listener (a wildcard listen is asked on the loopback).
    pub check: String,
    /// This executable's `keepalived-notify --state-dir DIR`; keepalived appends the
    /// instance and its new state.
    pub notify: String,
}

/// A path keepalived's script lines can hold: no spaces, quotes or backslashes.
fn plain(path: &Path, what: &str) -> Result<String, String> {
    path.to_str()
        .filter(|s| {
            !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
        })
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "{what} ({}) has spaces or quotes, which keepalived's script lines cannot hold",
                path.display()
            )
        })
}

/// The commands for `exe`, the admin listener `admin` and the state directory `state_dir`.
pub fn commands(exe: &Path, admin: SocketAddr, state_dir: &Path) -> Result<Commands, String> {
    let exe = plain(exe, "the gatehouse executable's path")?;
    let state_dir = plain(state_dir, "[runtime] stateDir")?;
    let ip = match admin.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(Commands {
        check: format!(
            "{exe} status --ready --hold {}ms --admin {}",
            Ha::READY_HOLD.as_millis(),
            SocketAddr::new(ip, admin.port())
        ),
        notify: format!("{exe} keepalived-notify --state-dir {state_dir}"),
    })
}

/// Seconds as keepalived writes decimals: "0.1", "1", "2.25".
fn seconds(d: Duration) -> String {
    let s = format!("{:.6}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The whole include file. `origin` names the configuration it came from (a comment).
pub fn render(
    instances: &[Instance],
    ha: &Ha,
    announce: &Announce,
    commands: &Commands,
    origin: &str,
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let mut line = |text: &str| {
        out.push_str(text);
        out.push('\n');
    };
    line(&format!(
        "# Written by gatehouse from {origin}; it is rewritten on every applied reload: edit [ha] in gatehouse.toml instead."
    ));
    line("# keepalived reads it through `include` in /etc/keepalived/keepalived.conf.");
    line("");
    line(&format!("vrrp_script {SCRIPT_NAME} {{"));
    line(&format!("    script \"{}\"", commands.check));
    line("    interval 1");
    line("    timeout 2");
    line("    fall 1");
    line("    rise 1");
    line(&format!("    user {}", ha.script_user));
    line("}");
    let refresh = announce.refresh_interval.as_secs()
        + u64::from(announce.refresh_interval.subsec_nanos() > 0);
    for i in instances {
        let version = if i.ipv6 { 3 } else { ha.vrrp_version };
        let mut block = String::new();
        let _ = writeln!(block, "\nvrrp_instance {} {{", i.name);
        let _ = writeln!(block, "    state BACKUP");
        let _ = writeln!(block, "    interface {}", i.interface);
        let _ = writeln!(block, "    virtual_router_id {}", i.router_id);
        let _ = writeln!(block, "    priority {}", ha.priority);
        let _ = writeln!(block, "    advert_int {}", seconds(ha.advert_interval));
        let _ = writeln!(block, "    version {version}");
        if !ha.preempt {
            let _ = writeln!(block, "    nopreempt");
        }
        let _ = writeln!(block, "    garp_master_repeat {}", announce.garp_count);
        let _ = writeln!(block, "    garp_master_refresh {refresh}");
        if version == 2
            && let Some(pass) = &ha.auth_pass
        {
            let _ = writeln!(
                block,
                "    authentication {{\n        auth_type PASS\n        auth_pass {pass}\n    }}"
            );
        }
        let peers: Vec<&IpAddr> = ha.peers.iter().filter(|p| p.is_ipv6() == i.ipv6).collect();
        if !peers.is_empty() {
            if let Some(source) = i.source {
                let _ = writeln!(block, "    unicast_src_ip {source}");
            }
            let _ = writeln!(block, "    unicast_peer {{");
            for p in peers {
                let _ = writeln!(block, "        {p}");
            }
            let _ = writeln!(block, "    }}");
        }
        let _ = writeln!(block, "    virtual_ipaddress {{");
        for ip in &i.vips {
            let prefix = if ip.is_ipv6() { 128 } else { 32 };
            let _ = writeln!(block, "        {ip}/{prefix}");
        }
        let _ = writeln!(block, "    }}");
        let _ = writeln!(block, "    track_script {{\n        {SCRIPT_NAME}\n    }}");
        let _ = writeln!(
            block,
            "    notify \"{}\" {}",
            commands.notify, ha.script_user
        );
        let _ = write!(block, "}}");
        line(&block);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(ip: &str, interface: &str) -> (IpAddr, String) {
        (ip.parse().unwrap(), interface.to_string())
    }

    fn ha() -> Ha {
        Ha::default()
    }

    fn cmds() -> Commands {
        Commands {
            check: "/bin/true".into(),
            notify: "/bin/true notify".into(),
        }
    }

    #[test]
    fn one_instance_per_interface_and_family_numbered_from_the_base() {
        let vips = [
            vip("2001:db8::10", "eth0"),
            vip("192.0.2.11", "eth1"),
            vip("192.0.2.10", "eth0"),
            vip("192.0.2.12", "eth0"),
        ];
        let plan = plan(&vips, &ha()).unwrap();
        let names: Vec<(&str, u8)> = plan
            .iter()
            .map(|i| (i.name.as_str(), i.router_id))
            .collect();
        assert_eq!(
            names,
            [
                ("gatehouse_eth0_ipv4", 51),
                ("gatehouse_eth0_ipv6", 52),
                ("gatehouse_eth1_ipv4", 53)
            ]
        );
        assert_eq!(
            plan[0].vips,
            [
                "192.0.2.10".parse::<IpAddr>().unwrap(),
                "192.0.2.12".parse().unwrap()
            ]
        );
    }

    #[test]
    fn router_ids_past_255_are_an_error_naming_routeridbase() {
        let ha = Ha {
            router_id_base: 255,
            ..Ha::default()
        };
        plan(&[vip("192.0.2.10", "eth0")], &ha).unwrap();
        let err = plan(
            &[vip("192.0.2.10", "eth0"), vip("2001:db8::10", "eth0")],
            &ha,
        )
        .unwrap_err();
        assert!(err.contains("lower routerIdBase"), "{err}");
    }

    #[test]
    fn unicast_peers_are_per_family_and_a_family_without_one_is_an_error() {
        let ha = Ha {
            peers: vec!["192.0.2.2".parse().unwrap()],
            ..Ha::default()
        };
        let instances = plan(&[vip("192.0.2.10", "eth0")], &ha).unwrap();
        let text = render(&instances, &ha, &Announce::default(), &cmds(), "test");
        assert!(
            text.contains("    unicast_peer {\n        192.0.2.2\n    }"),
            "{text}"
        );
        let err = plan(&[vip("2001:db8::10", "eth0")], &ha).unwrap_err();
        assert!(err.contains("no IPv6 address"), "{err}");
    }

    #[test]
    fn instances_start_as_backup_without_preemption_by_default() {
        let instances = plan(&[vip("192.0.2.10", "eth0")], &ha()).unwrap();
        let text = render(&instances, &ha(), &Announce::default(), &cmds(), "test");
        assert!(text.contains("    state BACKUP\n"), "{text}");
        assert!(text.contains("    nopreempt\n"), "{text}");
        assert!(
            text.contains("    advert_int 0.1\n    version 3\n"),
            "{text}"
        );
        assert!(
            !text.contains("unicast_peer"),
            "multicast without peers: {text}"
        );
        let preempt = Ha {
            preempt: true,
            ..Ha::default()
        };
        let text = render(&instances, &preempt, &Announce::default(), &cmds(), "test");
        assert!(!text.contains("nopreempt"), "{text}");
    }

    #[test]
    fn garp_settings_follow_announce() {
        let announce = Announce {
            garp_count: 5,
            garp_interval: Duration::from_millis(250),
            refresh_interval: Duration::from_millis(30_500),
            ..Announce::default()
        };
        let instances = plan(&[vip("192.0.2.10", "eth0")], &ha()).unwrap();
        let text = render(&instances, &ha(), &announce, &cmds(), "test");
        assert!(text.contains("    garp_master_repeat 5\n"), "{text}");
        assert!(text.contains("    garp_master_refresh 31\n"), "{text}");
        assert!(
            !text.contains("garp_interval"),
            "no per-interface spacing: {text}"
        );
    }

    #[test]
    fn vrrpv2_authentication_goes_on_ipv4_instances_and_ipv6_stays_vrrpv3() {
        let ha = Ha {
            vrrp_version: 2,
            advert_interval: Duration::from_secs(1),
            auth_pass: Some("s3cret".into()),
            ..Ha::default()
        };
        let instances = plan(
            &[vip("192.0.2.10", "eth0"), vip("2001:db8::10", "eth0")],
            &ha,
        )
        .unwrap();
        let text = render(&instances, &ha, &Announce::default(), &cmds(), "test");
        let (v4, v6) = text.split_once("gatehouse_eth0_ipv6").unwrap();
        assert!(
            v4.contains("    version 2\n") && v4.contains("auth_pass s3cret"),
            "{text}"
        );
        assert!(
            v6.contains("    version 3\n") && !v6.contains("auth_pass"),
            "{text}"
        );
        assert!(v4.contains("    advert_int 1\n"), "{text}");
    }

    #[test]
    fn the_readiness_check_asks_the_admin_listener_on_loopback_when_it_listens_everywhere() {
        let exe = Path::new("/usr/bin/gatehouse");
        let state = Path::new("/var/lib/gatehouse");
        let c = commands(exe, "0.0.0.0:9542".parse().unwrap(), state).unwrap();
        assert_eq!(
            c.check,
            "/usr/bin/gatehouse status --ready --hold 800ms --admin 127.0.0.1:9542"
        );
        assert_eq!(
            c.notify,
            "/usr/bin/gatehouse keepalived-notify --state-dir /var/lib/gatehouse"
        );
        let c = commands(exe, "[::]:9000".parse().unwrap(), state).unwrap();
        assert!(c.check.ends_with("--admin [::1]:9000"), "{c:?}");
        let admin = "127.0.0.1:9542".parse().unwrap();
        let err = commands(Path::new("/opt/my gatehouse"), admin, state).unwrap_err();
        assert!(err.contains("spaces or quotes"), "{err}");
        let err = commands(exe, admin, Path::new("/var/lib/my state")).unwrap_err();
        assert!(err.contains("stateDir"), "{err}");
    }

    #[test]
    fn every_instance_tracks_gatehouses_readiness_and_reports_its_states() {
        let instances = plan(
            &[vip("192.0.2.10", "eth0"), vip("2001:db8::10", "eth0")],
            &ha(),
        )
        .unwrap();
        let c = Commands {
            check: "/usr/bin/gatehouse status --ready".into(),
            notify: "/usr/bin/gatehouse keepalived-notify --state-dir /s".into(),
        };
        let text = render(&instances, &ha(), &Announce::default(), &c, "test");
        assert_eq!(
            text.matches("track_script {\n        gatehouse_ready\n    }")
                .count(),
            2,
            "{text}"
        );
        assert!(
            text.contains("    script \"/usr/bin/gatehouse status --ready\"\n    interval 1\n"),
            "{text}"
        );
        assert!(text.contains("    user gatehouse\n"), "{text}");
        assert_eq!(
            text.matches(
                "    notify \"/usr/bin/gatehouse keepalived-notify --state-dir /s\" gatehouse\n"
            )
            .count(),
            2,
            "{text}"
        );
    }
}
