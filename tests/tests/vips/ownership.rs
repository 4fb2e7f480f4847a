//! VIP ownership across crashes and duplicate address detection (issue 12), with the real
//! binary in network namespaces as the rest of `vips.rs`:
//!
//! - a `SIGKILL`ed gatehouse leaves its VIPs on the interface; the next one adopts those
//!   still configured (announced, served, removed on `SIGTERM`) and removes the others,
//!   through `<stateDir>/vips.json` and, with that file gone, through the address tag alone;
//!   the operator's address is never removed;
//! - a reload that names another interface for one of gatehouse's VIPs moves the address
//!   there (and `vips.json` follows);
//! - a VIP whose interface vanishes is `AddressNotUsable` until the interface comes back;
//!   an operator's address removed while still configured is claimed as gatehouse's;
//! - a VIP another namespace on the bridge already answers for is not claimed: `/status`
//!   shows `Programmed=False`, `AddressNotUsable`, naming that namespace's MAC; once it lets
//!   go of the address, gatehouse claims it within `conflictRetry` (plus a probe).

use super::{assert_announced, assert_host_address, assert_served, finish};
use gatehouse_tests::vips::{
    self, CONFLICT_RETRY_SECONDS, Capture, DEADLINE, Gatehouse, Net, PRE_EXISTING, VIP4, VIP6,
    addresses, echo_service, gateway, gateway_condition, has_addr, learn_from_announcements, skip,
    start_echo, wait_until,
};
use std::time::{Duration, Instant};

/// In the first configuration only: removed by the next gatehouse after a crash.
const DROPPED4: &str = "192.0.2.104";
const DROPPED6: &str = "2001:db8::104";

fn ownership_file(gh: &Gatehouse) -> String {
    std::fs::read_to_string(gh.state_dir().join("vips.json")).unwrap_or_default()
}

#[test]
fn after_a_sigkill_the_next_gatehouse_adopts_kept_vips_and_removes_dropped_ones() {
    if skip() {
        return;
    }
    let net = Net::new(&["a", "c"]);
    let (gw, client) = (net.host("a").clone(), net.host("c").clone());
    learn_from_announcements(&client);
    let pre = format!("{PRE_EXISTING}/32");
    vips::ip(&["-n", &gw.ns, "addr", "add", &pre, "dev", &gw.iface]);
    let echo = start_echo(&gw.ns, "echo-a");
    let capture = Capture::start(&client);

    let mut gh = Gatehouse::new(&gw.ns);
    let first = [
        (VIP4, None),
        (VIP6, None),
        (DROPPED4, None),
        (DROPPED6, None),
        (PRE_EXISTING, None),
    ];
    gh.write(&gh.config(&(gateway("gw", &first) + &echo_service())));
    gh.start();
    for vip in [VIP4, VIP6, DROPPED4, DROPPED6] {
        assert_host_address(&gw, vip, &gw.iface);
    }
    let listed = ownership_file(&gh);
    for vip in [VIP4, VIP6, DROPPED4, DROPPED6] {
        assert!(
            listed.contains(&format!("\"{vip}\"")),
            "vips.json: {listed}"
        );
    }
    assert!(
        !listed.contains(PRE_EXISTING),
        "the operator's address is not gatehouse's: {listed}"
    );

    // A crash: the addresses stay.
    gh.kill();
    for vip in [VIP4, VIP6, DROPPED4, DROPPED6, PRE_EXISTING] {
        assert!(has_addr(&gw.ns, vip), "{vip} gone after SIGKILL");
    }

    // The next start keeps VIP4 and VIP6 only.
    let second = [(VIP4, None), (VIP6, None)];
    gh.write(&gh.config(&(gateway("gw", &second) + &echo_service())));
    let restarted = Instant::now();
    gh.start();
    let dropped = wait_until(DEADLINE, || {
        !has_addr(&gw.ns, DROPPED4) && !has_addr(&gw.ns, DROPPED6)
    });
    assert!(
        dropped,
        "addresses the crashed gatehouse added and the configuration dropped are still there:\n{}\n{}",
        addresses(&gw.ns),
        gh.log()
    );
    assert_host_address(&gw, VIP4, &gw.iface);
    assert_host_address(&gw, VIP6, &gw.iface);
    assert!(
        gh.log().matches("adopted an address").count() == 2,
        "VIP4 and VIP6 should be adopted, not added again:\n{}",
        gh.log()
    );
    assert!(
        has_addr(&gw.ns, PRE_EXISTING),
        "the operator's {PRE_EXISTING} was removed after it left the configuration:\n{}",
        addresses(&gw.ns)
    );
    assert_announced(&capture, &gw.mac, &[VIP4], &[VIP6], restarted);
    assert_served(&client, VIP4, "echo-a");
    assert_served(&client, VIP6, "echo-a");
    let listed = ownership_file(&gh);
    assert!(
        !listed.contains(DROPPED4) && !listed.contains(DROPPED6) && listed.contains(VIP4),
        "vips.json after the restart: {listed}"
    );

    // Another crash, and the state file is lost too: the address tag alone says VIP6 is
    // gatehouse's, so it goes when the configuration drops it.
    gh.kill();
    std::fs::remove_file(gh.state_dir().join("vips.json")).expect("remove vips.json");
    gh.write(&gh.config(&(gateway("gw", &[(VIP4, None)]) + &echo_service())));
    gh.start();
    let removed = wait_until(DEADLINE, || !has_addr(&gw.ns, VIP6));
    assert!(
        removed,
        "{VIP6}, tagged by gatehouse, was not removed without vips.json:\n{}\n{}",
        addresses(&gw.ns),
        gh.log()
    );
    assert_host_address(&gw, VIP4, &gw.iface);
    assert_served(&client, VIP4, "echo-a");
    let listed = ownership_file(&gh);
    assert!(
        listed.contains(&format!("\"{VIP4}\"")),
        "{VIP4}, adopted by its tag, is listed again: {listed}"
    );

    // A clean stop leaves none of gatehouse's addresses behind, and the operator's.
    let status = gh.stop();
    assert!(status.success(), "SIGTERM: exit {status}\n{}", gh.log());
    for vip in [VIP4, VIP6, DROPPED4, DROPPED6] {
        assert!(
            !has_addr(&gw.ns, vip),
            "{vip} left behind after SIGTERM:\n{}\n{}",
            addresses(&gw.ns),
            gh.log()
        );
    }
    assert!(has_addr(&gw.ns, PRE_EXISTING));
    let listed = ownership_file(&gh);
    assert!(
        !listed.contains(VIP4) && !listed.contains(VIP6),
        "vips.json after SIGTERM: {listed}"
    );

    drop((capture, echo));
    finish(net);
}

#[test]
fn a_vip_another_host_answers_for_is_not_claimed_until_that_host_lets_go() {
    if skip() {
        return;
    }
    let net = Net::new(&["a", "b", "c"]);
    let (gw, other, client) = (
        net.host("a").clone(),
        net.host("b").clone(),
        net.host("c").clone(),
    );
    // The other host holds both VIPs (and answers ARP / neighbour solicitations for them).
    let v4 = format!("{VIP4}/32");
    let v6 = format!("{VIP6}/128");
    vips::ip(&["-n", &other.ns, "addr", "add", &v4, "dev", &other.iface]);
    vips::ip(&[
        "-n",
        &other.ns,
        "addr",
        "add",
        &v6,
        "dev",
        &other.iface,
        "nodad",
    ]);
    let echo = start_echo(&gw.ns, "echo-a");

    let mut gh = Gatehouse::new(&gw.ns);
    gh.write(&gh.config(&(gateway("gw", &[(VIP4, None), (VIP6, None)]) + &echo_service())));
    gh.start();

    let status = gh.status();
    let programmed = gateway_condition(&status, "gw", "Programmed")
        .unwrap_or_else(|| panic!("no Programmed condition for gw: {status:#}"));
    assert_eq!(programmed["status"], "False", "{programmed:#}");
    assert_eq!(programmed["reason"], "AddressNotUsable", "{programmed:#}");
    let message = programmed["message"].as_str().unwrap_or_default();
    for vip in [VIP4, VIP6] {
        let want = format!("{vip} is already in use by {} on {}", other.mac, gw.iface);
        assert!(
            message.contains(&want),
            "message {message:?} lacks {want:?}"
        );
        assert!(
            !has_addr(&gw.ns, vip),
            "{vip} was claimed although {} has it:\n{}",
            other.ns,
            addresses(&gw.ns)
        );
    }
    eprintln!("Programmed=False: {message}");

    // The other host lets go; gatehouse claims them at its next retry.
    vips::ip(&["-n", &other.ns, "addr", "del", &v4, "dev", &other.iface]);
    vips::ip(&["-n", &other.ns, "addr", "del", &v6, "dev", &other.iface]);
    let released = Instant::now();
    let within = Duration::from_secs(CONFLICT_RETRY_SECONDS + 3);
    let claimed = wait_until(within, || has_addr(&gw.ns, VIP4) && has_addr(&gw.ns, VIP6));
    assert!(
        claimed,
        "the VIPs were not claimed within {within:?} of their release:\n{}\n{}",
        addresses(&gw.ns),
        gh.log()
    );
    eprintln!(
        "claimed {:?} after the other host released them",
        released.elapsed()
    );
    assert_host_address(&gw, VIP4, &gw.iface);
    assert_host_address(&gw, VIP6, &gw.iface);
    let programmed_again = wait_until(DEADLINE, || {
        gateway_condition(&gh.status(), "gw", "Programmed").is_some_and(|c| c["status"] == "True")
    });
    assert!(
        programmed_again,
        "gw is still not Programmed after its VIPs were claimed: {:#}",
        gh.status()
    );
    assert_served(&client, VIP4, "echo-a");
    assert_served(&client, VIP6, "echo-a");

    let status = gh.stop();
    assert!(status.success(), "SIGTERM: exit {status}\n{}", gh.log());
    assert!(!has_addr(&gw.ns, VIP4) && !has_addr(&gw.ns, VIP6));

    drop(echo);
    finish(net);
}

#[test]
fn a_reload_that_names_another_interface_moves_gatehouses_address_there() {
    if skip() {
        return;
    }
    let net = Net::new(&["a"]);
    let gw = net.host("a").clone();
    let other = second_interface(&gw.ns);
    let echo = start_echo(&gw.ns, "echo-a");

    let mut gh = Gatehouse::new(&gw.ns);
    let first = [(VIP4, None), (VIP6, None)];
    gh.write(&gh.config(&(gateway("gw", &first) + &echo_service())));
    gh.start();
    assert_host_address(&gw, VIP4, &gw.iface);
    assert_host_address(&gw, VIP6, &gw.iface);

    let moved = [(VIP4, Some(other)), (VIP6, None)];
    gh.reconfigure(&gh.config(&(gateway("gw", &moved) + &echo_service())));
    let on_other = wait_until(DEADLINE, || {
        vips::addr_line(&gw.ns, VIP4).is_some_and(|l| l.split_whitespace().nth(1) == Some(other))
    });
    assert!(
        on_other,
        "{VIP4} did not move to {other}:\n{}\n{}",
        addresses(&gw.ns),
        gh.log()
    );
    assert_host_address(&gw, VIP4, other);
    assert_host_address(&gw, VIP6, &gw.iface);
    let listed = ownership_file(&gh);
    assert!(
        listed.contains(&format!("\"{other}\"")),
        "vips.json after the move: {listed}"
    );

    for line in gh.log().lines().filter(|l| l.contains("address added")) {
        eprintln!("{line}");
    }

    let status = gh.stop();
    assert!(status.success(), "SIGTERM: exit {status}\n{}", gh.log());
    assert!(
        !has_addr(&gw.ns, VIP4) && !has_addr(&gw.ns, VIP6),
        "left behind after SIGTERM:\n{}",
        addresses(&gw.ns)
    );
    drop(echo);
    finish(net);
}

/// A veth pair `gh-move0`/`gh-move1` in `ns`, both up: a second interface on which nothing
/// answers probes.
fn second_interface(ns: &str) -> &'static str {
    vips::ip(&[
        "-n", ns, "link", "add", "gh-move0", "type", "veth", "peer", "name", "gh-move1",
    ]);
    vips::ip(&["-n", ns, "link", "set", "gh-move1", "up"]);
    vips::ip(&["-n", ns, "link", "set", "gh-move0", "up"]);
    "gh-move0"
}

#[test]
fn a_vip_whose_interface_vanishes_is_not_usable_until_the_interface_returns() {
    if skip() {
        return;
    }
    let net = Net::new(&["a"]);
    let gw = net.host("a").clone();
    let other = second_interface(&gw.ns);
    let echo = start_echo(&gw.ns, "echo-a");

    let mut gh = Gatehouse::new(&gw.ns);
    gh.write(&gh.config(&(gateway("gw", &[(VIP4, Some(other))]) + &echo_service())));
    gh.start();
    assert_host_address(&gw, VIP4, other);

    // Deleting one end of the pair deletes both, and the address with them.
    vips::ip(&["-n", &gw.ns, "link", "del", other]);
    let not_usable = wait_until(DEADLINE, || {
        gateway_condition(&gh.status(), "gw", "Programmed")
            .is_some_and(|c| c["status"] == "False" && c["reason"] == "AddressNotUsable")
    });
    assert!(
        not_usable,
        "gw is still Programmed after {other} went away: {:#}\n{}",
        gh.status(),
        gh.log()
    );
    let message = gateway_condition(&gh.status(), "gw", "Programmed").unwrap()["message"].clone();
    eprintln!("after the interface went away: {message}");
    // Logged once, not at every tick.
    assert_eq!(gh.log().matches("cannot put").count(), 1, "{}", gh.log());

    second_interface(&gw.ns);
    let within = Duration::from_secs(CONFLICT_RETRY_SECONDS + 3);
    let back = wait_until(within, || {
        vips::addr_line(&gw.ns, VIP4).is_some_and(|l| l.split_whitespace().nth(1) == Some(other))
    });
    assert!(
        back,
        "{VIP4} not back on {other} within {within:?}:\n{}\n{}",
        addresses(&gw.ns),
        gh.log()
    );
    let programmed = wait_until(DEADLINE, || {
        gateway_condition(&gh.status(), "gw", "Programmed").is_some_and(|c| c["status"] == "True")
    });
    assert!(programmed, "gw not Programmed again: {:#}", gh.status());

    let status = gh.stop();
    assert!(status.success(), "SIGTERM: exit {status}\n{}", gh.log());
    assert!(!has_addr(&gw.ns, VIP4), "{}", addresses(&gw.ns));
    drop(echo);
    finish(net);
}

#[test]
fn an_operators_address_removed_while_configured_is_claimed_as_gatehouses() {
    if skip() {
        return;
    }
    let net = Net::new(&["a", "c"]);
    let (gw, client) = (net.host("a").clone(), net.host("c").clone());
    let pre = format!("{PRE_EXISTING}/32");
    vips::ip(&["-n", &gw.ns, "addr", "add", &pre, "dev", &gw.iface]);
    let echo = start_echo(&gw.ns, "echo-a");

    let mut gh = Gatehouse::new(&gw.ns);
    gh.write(&gh.config(&(gateway("gw", &[(PRE_EXISTING, None)]) + &echo_service())));
    gh.start();
    assert_served(&client, PRE_EXISTING, "echo-a");
    assert!(!ownership_file(&gh).contains(PRE_EXISTING));

    vips::ip(&["-n", &gw.ns, "addr", "del", &pre, "dev", &gw.iface]);
    let claimed = wait_until(DEADLINE, || ownership_file(&gh).contains(PRE_EXISTING));
    assert!(
        claimed,
        "{PRE_EXISTING} was not claimed after the operator removed it:\n{}\n{}",
        addresses(&gw.ns),
        gh.log()
    );
    assert_host_address(&gw, PRE_EXISTING, &gw.iface);
    assert_served(&client, PRE_EXISTING, "echo-a");

    // Now it is gatehouse's: a clean stop takes it off.
    let status = gh.stop();
    assert!(status.success(), "SIGTERM: exit {status}\n{}", gh.log());
    assert!(!has_addr(&gw.ns, PRE_EXISTING), "{}", addresses(&gw.ns));
    drop(echo);
    finish(net);
}
