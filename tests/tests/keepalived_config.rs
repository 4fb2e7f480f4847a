//! `[announce] mode = "keepalived"`: keepalived's own config test (`keepalived -t`) accepts
//! every include file gatehouse writes — IPv4, IPv6 and mixed Gateways, pool allocations,
//! unicast (sent from the box's own address of each family) and multicast, VRRPv2 with
//! authentication, preemption, a second interface — and
//! the file the daemon writes is the one `gatehouse check --keepalived` shows.
//!
//! Runs in a network namespace (keepalived checks that each instance's interface exists), so
//! it needs root, `ip` and keepalived (Debian's package); without them it prints "skipped:
//! <reason>" and passes, unless `CI` is set.

use gatehouse_tests::gatehouse_bin;
use gatehouse_tests::vips::{Net, Proc, ip, skip_without, wait_until};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn skipped() -> bool {
    skip_without(&[("keepalived", "keepalived")])
}

/// A configuration folder whose gatehouse.toml is `settings` plus `resources`, with the
/// include file and pid file inside it.
fn config(dir: &Path, settings: &str, resources: &str) {
    let toml = format!(
        r#"[admin]
listen = "127.0.0.1:9542"

[runtime]
stateDir = "{state}"

[announce]
mode = "keepalived"

[ha]
keepalivedConfig = "{ka}/gatehouse.conf"
keepalivedPidFile = "{ka}/keepalived.pid"
scriptUser = "root"
{settings}

{resources}
"#,
        state = dir.join("state").display(),
        ka = dir.join("keepalived").display(),
    );
    std::fs::create_dir_all(dir.join("etc/conf.d")).unwrap();
    std::fs::create_dir_all(dir.join("keepalived")).unwrap();
    std::fs::write(dir.join("etc/gatehouse.toml"), toml).unwrap();
}

fn gateway(name: &str, addresses: &[&str]) -> String {
    let addresses: Vec<String> = addresses
        .iter()
        .map(|a| format!("{{ value = \"{a}\" }}"))
        .collect();
    let addresses = if addresses.is_empty() {
        String::new()
    } else {
        format!("addresses = [{}]\n", addresses.join(", "))
    };
    format!(
        "[[Gateway]]\nname = \"{name}\"\ngatewayClassName = \"gatehouse\"\n{addresses}listeners = [{{ name = \"http\", protocol = \"HTTP\", port = 8080 }}]\n"
    )
}

const POOL: &str = "[[LoadBalancerIPPool]]\nname = \"pool\"\nblocks = [{ cidr = \"192.0.2.64/30\" }, { cidr = \"2001:db8::40/126\" }]\n";

/// `gatehouse check --keepalived` in `ns`: the include file for that namespace's interfaces.
fn preview(ns: &str, dir: &Path) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(gatehouse_bin())
        .args(["check", "--keepalived", "--config"])
        .arg(dir.join("etc"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gatehouse check --keepalived: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// keepalived's config test on `include` of `file`, in `ns`: must pass without complaint.
fn keepalived_accepts(ns: &str, dir: &Path, file: &Path) {
    let main = dir.join("keepalived.conf");
    std::fs::write(
        &main,
        format!(
            "global_defs {{\n    enable_script_security\n}}\ninclude {}\n",
            file.display()
        ),
    )
    .unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "keepalived",
            "--config-test",
            "--log-console",
            "-f",
        ])
        .arg(&main)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "keepalived -t refused {}:\n{said}\n{}",
        file.display(),
        std::fs::read_to_string(file).unwrap_or_default()
    );
    let complaints: Vec<&str> = said
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            ["unknown", "invalid", "error", "warning", "ignoring"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    assert!(
        complaints.is_empty(),
        "keepalived -t complained: {complaints:#?}"
    );
}

#[test]
fn keepalived_accepts_every_file_gatehouse_writes() {
    if skipped() {
        return;
    }
    let net = Net::new(&["a"]);
    let a = net.host("a");
    // A second interface: 192.0.2.128/25 and 2001:db8:1::/64 are longer prefixes there.
    let second = "eth1";
    ip(&[
        "-n", &a.ns, "link", "add", second, "type", "veth", "peer", "name", "eth1p",
    ]);
    ip(&["-n", &a.ns, "link", "set", second, "up"]);
    ip(&["-n", &a.ns, "link", "set", "eth1p", "up"]);
    ip(&["-n", &a.ns, "addr", "add", "192.0.2.129/25", "dev", second]);
    ip(&[
        "-n",
        &a.ns,
        "addr",
        "add",
        "2001:db8:1::1/64",
        "dev",
        second,
        "nodad",
    ]);

    let peers = "peers = [\"192.0.2.2\", \"2001:db8::2\", \"2001:db8:1::2\"]";
    let cases: Vec<(&str, String, String, &[&str])> = vec![
        (
            "ipv4",
            peers.into(),
            gateway("web", &["192.0.2.10", "192.0.2.11"]),
            &["vrrp_instance gatehouse_veth_a_ipv4"],
        ),
        (
            "ipv6",
            peers.into(),
            gateway("web", &["2001:db8::10"]),
            &["vrrp_instance gatehouse_veth_a_ipv6", "2001:db8::10/128"],
        ),
        (
            "mixed, with pools",
            peers.into(),
            format!(
                "{POOL}{}{}{}",
                gateway("web", &["192.0.2.10", "2001:db8::10"]),
                gateway("pooled", &[]),
                gateway("pooled-too", &[])
            ),
            &[
                "192.0.2.65/32",
                "192.0.2.66/32",
                "virtual_router_id 52",
                "unicast_src_ip 192.0.2.1\n",
                "unicast_src_ip 2001:db8::1\n",
            ],
        ),
        (
            "two interfaces",
            peers.into(),
            gateway("web", &["192.0.2.10", "192.0.2.130", "2001:db8:1::10"]),
            &[
                "gatehouse_eth1_ipv4",
                "gatehouse_eth1_ipv6",
                "gatehouse_veth_a_ipv4",
                "unicast_src_ip 192.0.2.129\n",
                "unicast_src_ip 2001:db8:1::1\n",
            ],
        ),
        (
            "multicast, preemption, other timers",
            "priority = 200\npreempt = true\nadvertInterval = \"250ms\"\nrouterIdBase = 200".into(),
            gateway("web", &["192.0.2.10", "2001:db8::10"]),
            &["advert_int 0.25", "virtual_router_id 200"],
        ),
        (
            "VRRPv2 with authentication",
            format!("{peers}\nvrrpVersion = 2\nadvertInterval = \"1s\"\nauthPass = \"s3cret\""),
            gateway("web", &["192.0.2.10", "2001:db8::10"]),
            &["auth_pass s3cret", "version 2"],
        ),
    ];
    let scratch = tempfile::tempdir().unwrap();
    for (i, (name, settings, resources, expect)) in cases.iter().enumerate() {
        let dir = scratch.path().join(i.to_string());
        config(&dir, settings, resources);
        let text = preview(&a.ns, &dir);
        for e in *expect {
            assert!(text.contains(e), "{name}: no {e:?} in\n{text}");
        }
        let file = dir.join("preview.conf");
        std::fs::write(&file, &text).unwrap();
        keepalived_accepts(&a.ns, &dir, &file);
        eprintln!("{name}: keepalived -t accepts the file");
    }

    // The daemon writes what check showed (the mixed case), and rewrites nothing when the
    // text is the same.
    let dir = scratch.path().join("2");
    let shown = std::fs::read_to_string(dir.join("preview.conf")).unwrap();
    let written = dir.join("keepalived/gatehouse.conf");
    let mut daemon = Proc::spawn(
        &a.ns,
        &gatehouse_bin(),
        ["run", "--config", dir.join("etc").to_str().unwrap()],
        &[],
    );
    assert!(
        wait_until(Duration::from_secs(20), || written.exists()),
        "the daemon never wrote {}: {}",
        written.display(),
        daemon.log()
    );
    assert_eq!(std::fs::read_to_string(&written).unwrap(), shown);
    keepalived_accepts(&a.ns, &dir, &written);
    daemon.stop();
}
