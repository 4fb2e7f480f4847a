//! `[ha]`: the keepalived (VRRP) settings of `gatehouse.toml`, read whatever `[announce]
//! mode` is and used when it is `"keepalived"`. Each rule keepalived would enforce when it
//! loads the file gatehouse writes is checked here first, so `gatehouse check` reports it at
//! its key and a reload never hands keepalived a file it refuses.

use super::duration;
use crate::decode::{Cx, Table, Value};
use gatehouse_model::settings::Ha;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub(super) fn parse(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, ha: &mut Ha) {
    if let Some(v) = t.get("peers")
        && let Some(items) = v.array(cx)
    {
        for item in items {
            let Some(text) = item.str(cx) else { continue };
            match text.parse::<IpAddr>() {
                Ok(ip) if ha.peers.contains(&ip) => item.error(cx, format!("{ip} is listed twice")),
                Ok(ip) if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() => {
                    item.error(cx, format!("{ip} cannot be a VRRP peer: name the other box's address on the shared link"));
                }
                Ok(ip) => ha.peers.push(ip),
                Err(_) => item.error(
                    cx,
                    format!(
                        "\"{text}\" is not an IP address, e.g. \"192.0.2.2\" or \"2001:db8::2\""
                    ),
                ),
            }
        }
    }
    if let Some(v) = t.get("priority")
        && let Some(n) = v.int_in(cx, 1, 254)
    {
        ha.priority = n as u8;
    }
    if let Some(v) = t.get("routerIdBase")
        && let Some(n) = v.int_in(cx, 1, 255)
    {
        ha.router_id_base = n as u8;
    }
    if let Some(v) = t.get("interface")
        && let Some(name) = v.str(cx)
    {
        if valid_interface_name(name) {
            ha.interface = Some(name.to_string());
        } else {
            v.error(
                cx,
                format!(
                    "\"{name}\" is not an interface name (1 to 15 characters, no spaces or '/')"
                ),
            );
        }
    }
    if let Some(b) = t.opt_bool(cx, "preempt") {
        ha.preempt = b;
    }
    let version = t.get("vrrpVersion");
    if let Some(v) = &version
        && let Some(n) = v.int_in(cx, 2, 3)
    {
        ha.vrrp_version = n as u8;
    }
    if let Some(v) = t.get("advertInterval")
        && let Some(d) = duration(cx, &v)
    {
        if let Err(e) = advert_interval(d, ha.vrrp_version) {
            v.error(cx, e);
        } else {
            ha.advert_interval = d;
        }
    } else if let Err(e) = advert_interval(ha.advert_interval, ha.vrrp_version)
        && let Some(v) = &version
    {
        v.error(
            cx,
            format!("the default advertInterval does not fit: {e}; set advertInterval"),
        );
    }
    if let Some(v) = t.get("authPass")
        && let Some(pass) = v.str(cx)
    {
        if ha.vrrp_version != 2 {
            v.error(cx, "VRRPv3 has no authentication (RFC 5798); set vrrpVersion = 2 (whole-second adverts), or keep the VRRP link trusted and use unicast peers");
        } else if pass.is_empty() || pass.len() > 8 || !pass.chars().all(|c| c.is_ascii_graphic()) {
            v.error(
                cx,
                "must be 1 to 8 printable ASCII characters without spaces (VRRPv2 simple password)",
            );
        } else {
            ha.auth_pass = Some(pass.to_string());
        }
    }
    if let Some(p) = absolute_path(cx, t.get("keepalivedConfig")) {
        ha.keepalived_config = p;
    }
    if let Some(p) = absolute_path(cx, t.get("keepalivedPidFile")) {
        ha.keepalived_pid_file = p;
    }
    if let Some(v) = t.get("scriptUser")
        && let Some(user) = v.str(cx)
    {
        let ok = !user.is_empty()
            && user.len() <= 32
            && user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok {
            ha.script_user = user.to_string();
        } else {
            v.error(cx, format!("\"{user}\" is not a user name"));
        }
    }
}

/// keepalived's bounds on `advert_int`: VRRPv3 counts centiseconds in 12 bits, VRRPv2 whole
/// seconds in 8.
fn advert_interval(d: Duration, version: u8) -> Result<(), String> {
    if version == 2 {
        if d.subsec_nanos() != 0 || d < Duration::from_secs(1) || d > Duration::from_secs(255) {
            return Err("VRRPv2 adverts are whole seconds from 1s to 255s; sub-second adverts need vrrpVersion = 3".into());
        }
        return Ok(());
    }
    if d < Ha::MIN_ADVERT_INTERVAL || d > Ha::MAX_ADVERT_INTERVAL_V3 {
        return Err("must be from 10ms to 40950ms (VRRPv3 counts centiseconds)".into());
    }
    if !d.as_millis().is_multiple_of(10) {
        return Err(
            "must be a whole number of centiseconds (10ms steps), as VRRPv3 sends it".into(),
        );
    }
    Ok(())
}

fn absolute_path(cx: &mut Cx<'_>, v: Option<Value<'_, '_>>) -> Option<PathBuf> {
    let v = v?;
    let text = v.str(cx)?;
    if text.starts_with('/') {
        Some(PathBuf::from(text))
    } else {
        v.error(cx, "must be an absolute path");
        None
    }
}

/// What the kernel accepts as a link name (IFNAMSIZ - 1 bytes, no '/', no whitespace).
fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use crate::SourceFile;
    use gatehouse_model::settings::{AnnounceMode, Ha};
    use std::time::Duration;

    fn parse(toml: &str) -> Result<crate::Document, String> {
        let src = SourceFile::new("gatehouse.toml", "/etc/gatehouse/gatehouse.toml", toml);
        crate::parse(&[src]).map_err(|d| d.to_string())
    }

    fn error(toml: &str) -> String {
        parse(toml).expect_err(toml)
    }

    #[test]
    fn announce_mode_is_self_unless_keepalived_is_named() {
        let doc = parse("").unwrap();
        assert_eq!(doc.settings.announce.mode, AnnounceMode::SelfManaged);
        assert_eq!(doc.settings.ha, Ha::default());
        let doc = parse("[announce]\nmode = \"keepalived\"\n").unwrap();
        assert_eq!(doc.settings.announce.mode, AnnounceMode::Keepalived);
        let err = error("[announce]\nmode = \"vrrp\"\n");
        assert!(
            err.contains("gatehouse.toml:2:8") && err.contains("\"self\", \"keepalived\""),
            "{err}"
        );
    }

    #[test]
    fn ha_defaults_are_sub_second_vrrpv3_without_preemption() {
        let ha = Ha::default();
        assert_eq!(ha.vrrp_version, 3);
        assert_eq!(ha.advert_interval, Duration::from_millis(100));
        assert!(!ha.preempt);
        assert_eq!(ha.priority, 100);
        assert!(ha.peers.is_empty(), "multicast unless peers are named");
    }

    #[test]
    fn every_ha_key_is_read() {
        let doc = parse(
            r#"
[ha]
peers = ["192.0.2.2", "2001:db8::2"]
priority = 150
routerIdBase = 60
interface = "eth1"
advertInterval = "250ms"
preempt = true
keepalivedConfig = "/run/k/gatehouse.conf"
keepalivedPidFile = "/run/k/keepalived.pid"
scriptUser = "root"
"#,
        )
        .unwrap();
        let ha = doc.settings.ha;
        assert_eq!(
            ha.peers,
            [
                "192.0.2.2".parse::<std::net::IpAddr>().unwrap(),
                "2001:db8::2".parse().unwrap()
            ]
        );
        assert_eq!((ha.priority, ha.router_id_base), (150, 60));
        assert_eq!(ha.interface.as_deref(), Some("eth1"));
        assert_eq!(ha.advert_interval, Duration::from_millis(250));
        assert!(ha.preempt);
        assert_eq!(
            ha.keepalived_config,
            std::path::Path::new("/run/k/gatehouse.conf")
        );
        assert_eq!(
            ha.keepalived_pid_file,
            std::path::Path::new("/run/k/keepalived.pid")
        );
        assert_eq!(ha.script_user, "root");
    }

    #[test]
    fn priority_is_1_to_254_as_vrrp_reserves_0_and_255() {
        assert!(error("[ha]\npriority = 255\n").contains("gatehouse.toml:2:12"));
        assert!(error("[ha]\npriority = 0\n").contains("gatehouse.toml:2:12"));
    }

    #[test]
    fn a_peer_must_be_another_boxs_unicast_address() {
        let err = error("[ha]\npeers = [\"192.0.2.2\", \"127.0.0.1\", \"eth0\", \"192.0.2.2\"]\n");
        assert!(err.contains("127.0.0.1 cannot be a VRRP peer"), "{err}");
        assert!(err.contains("\"eth0\" is not an IP address"), "{err}");
        assert!(err.contains("192.0.2.2 is listed twice"), "{err}");
    }

    #[test]
    fn vrrpv3_adverts_are_whole_centiseconds_from_10ms() {
        assert!(error("[ha]\nadvertInterval = \"5ms\"\n").contains("from 10ms"));
        assert!(error("[ha]\nadvertInterval = \"15ms\"\n").contains("centiseconds"));
        assert!(error("[ha]\nadvertInterval = \"41s\"\n").contains("40950ms"));
        parse("[ha]\nadvertInterval = \"20ms\"\n").unwrap();
    }

    #[test]
    fn vrrpv2_adverts_are_whole_seconds_and_the_default_must_be_changed() {
        let err = error("[ha]\nvrrpVersion = 2\n");
        assert!(
            err.contains("gatehouse.toml:2:15") && err.contains("set advertInterval"),
            "{err}"
        );
        let err = error("[ha]\nvrrpVersion = 2\nadvertInterval = \"500ms\"\n");
        assert!(err.contains("whole seconds"), "{err}");
        let doc = parse("[ha]\nvrrpVersion = 2\nadvertInterval = \"1s\"\n").unwrap();
        assert_eq!(doc.settings.ha.vrrp_version, 2);
    }

    #[test]
    fn authentication_needs_vrrpv2_and_stays_out_of_status() {
        let err = error("[ha]\nauthPass = \"secret\"\n");
        assert!(err.contains("VRRPv3 has no authentication"), "{err}");
        let doc = parse("[ha]\nvrrpVersion = 2\nadvertInterval = \"1s\"\nauthPass = \"secret\"\n")
            .unwrap();
        assert_eq!(doc.settings.ha.auth_pass.as_deref(), Some("secret"));
        let json = serde_json::to_string(&doc.settings).unwrap();
        assert!(!json.contains("secret"), "{json}");
        let err =
            error("[ha]\nvrrpVersion = 2\nadvertInterval = \"1s\"\nauthPass = \"toolongpass\"\n");
        assert!(err.contains("1 to 8"), "{err}");
    }

    #[test]
    fn paths_are_absolute_and_names_are_checked() {
        assert!(error("[ha]\nkeepalivedConfig = \"gatehouse.conf\"\n").contains("absolute path"));
        assert!(error("[ha]\ninterface = \"eth 0\"\n").contains("not an interface name"));
        assert!(error("[ha]\nscriptUser = \"a b\"\n").contains("not a user name"));
        assert!(error("[ha]\npriorty = 1\n").contains("did you mean `priority`"));
    }
}
