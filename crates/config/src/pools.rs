//! LoadBalancerIPPool: addresses for Gateways that name none.
//!
//! A Gateway without addresses gets one from the first pool (in declaration order) with a
//! free address. With `[announce] mode = "self"` the allocation is sticky: the caller passes
//! the allocations it kept (the daemon keeps them under its state directory) and a Gateway
//! keeps its address as long as a pool still holds it. With `mode = "keepalived"` every box
//! of a pair must give a Gateway the same address, so the allocation is deterministic: the
//! Gateways in declaration order (files in name order, then their order in the file), each
//! taking the first free address; what this box kept is ignored, and
//! [`sticky_differences`] says where it differs. When no pool has a free address the Gateway is
//! `Programmed=False/AddressNotAssigned` and its listeners are not served. Without any pool,
//! Gateways without addresses are bound to every address of the host.

use crate::raw::Document;
use crate::resolve::gateways::ResolvedGateway;
use gatehouse_model::settings::AnnounceMode;
use gatehouse_model::snapshot::IpBlock;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Gateway (`namespace/name`) to the address it was given.
pub type Allocations = BTreeMap<String, IpAddr>;

/// The addresses of a block, in order; a CIDR skips its network and broadcast addresses
/// (IPv4, prefixes shorter than /31).
fn addresses(block: &IpBlock) -> Box<dyn Iterator<Item = IpAddr> + '_> {
    match block {
        // hosts() already leaves out the network and broadcast addresses of IPv4 prefixes
        // shorter than /31; IPv6 has no broadcast address.
        IpBlock::Cidr(net) => Box::new(net.hosts()),
        IpBlock::Range { start, stop } => match (start, stop) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                Box::new((u32::from(*a)..=u32::from(*b)).map(|n| IpAddr::V4(n.into())))
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                Box::new((u128::from(*a)..=u128::from(*b)).map(|n| IpAddr::V6(n.into())))
            }
            _ => Box::new(std::iter::empty()),
        },
    }
}

/// Gives every accepted Gateway without addresses one from the pools (when there are
/// pools), keeping `previous` allocations where they are still valid; returns the
/// allocations now in force. Runs before listener conflicts are judged, so Gateways given
/// distinct addresses do not conflict.
pub(crate) fn allocate(
    doc: &Document,
    gateways: &mut [ResolvedGateway],
    previous: &Allocations,
) -> Allocations {
    let mut now = Allocations::new();
    if doc.pools.is_empty() {
        return now;
    }
    let previous = match doc.settings.announce.mode {
        AnnounceMode::SelfManaged => previous,
        AnnounceMode::Keepalived => &Allocations::new(),
    };
    let wants: Vec<usize> = gateways
        .iter()
        .enumerate()
        .filter(|(i, g)| g.accepted.is_ok() && doc.gateways[*i].addresses.is_empty())
        .map(|(i, _)| i)
        .collect();
    let in_pool = |ip: &IpAddr| {
        doc.pools
            .iter()
            .any(|p| p.blocks.iter().any(|b| b.contains(*ip)))
    };
    let mut used: BTreeSet<IpAddr> = gateways
        .iter()
        .flat_map(|g| g.addresses.iter().copied())
        .collect();
    // Sticky ones first, so a new Gateway never takes an address another one had.
    for &i in &wants {
        let key = doc.gateways[i].meta.key().namespaced_name();
        if let Some(ip) = previous
            .get(&key)
            .filter(|ip| in_pool(ip) && !used.contains(ip))
        {
            used.insert(*ip);
            now.insert(key, *ip);
        }
    }
    for &i in &wants {
        let key = doc.gateways[i].meta.key().namespaced_name();
        let ip = match now.get(&key) {
            Some(ip) => Some(*ip),
            None => {
                let free = doc
                    .pools
                    .iter()
                    .flat_map(|p| p.blocks.iter())
                    .flat_map(addresses)
                    .take(1 << 20)
                    .find(|ip| !used.contains(ip));
                if let Some(ip) = free {
                    used.insert(ip);
                    now.insert(key, ip);
                }
                free
            }
        };
        match ip {
            Some(ip) => {
                gateways[i].addresses = vec![ip];
                gateways[i].pool_address = Some(ip);
            }
            None => gateways[i].unassigned = true,
        }
    }
    now
}

/// Where the allocations this box kept (`sticky`, from `<stateDir>/allocations.json`) differ
/// from the deterministic ones of keepalived mode (`deterministic`): one sentence per
/// Gateway that moves, for `gatehouse check` and the log.
pub fn sticky_differences(deterministic: &Allocations, sticky: &Allocations) -> Vec<String> {
    deterministic
        .iter()
        .filter_map(|(gateway, ip)| {
            let kept = sticky.get(gateway).filter(|kept| *kept != ip)?;
            Some(format!(
                "Gateway {gateway} had {kept} from a LoadBalancerIPPool on this box; with [announce] mode = \"keepalived\" every box allocates by declaration order, which gives it {ip}: it moves there (give it addresses = [{{ value = \"{kept}\" }}] to keep {kept})"
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Loaded, SourceFile, load_with};
    use gatehouse_model::status::{condition, reason};

    fn loaded_with(toml: &str, previous: &Allocations) -> Loaded {
        let src = SourceFile::new("gatehouse.toml", "/etc/gatehouse/gatehouse.toml", toml);
        load_with(
            &[src],
            &|_: &std::path::Path| Err(std::io::ErrorKind::NotFound.into()),
            1,
            &crate::Previous {
                allocations: previous.clone(),
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn loaded(toml: &str) -> Loaded {
        loaded_with(toml, &Allocations::new())
    }

    const POOL: &str = r#"
[[LoadBalancerIPPool]]
name = "lan-pool"
blocks = [{ start = "192.0.2.100", stop = "192.0.2.101" }]
"#;

    /// A Gateway without addresses, all on port 80: with pool addresses they do not
    /// conflict.
    fn gateway(name: &str) -> String {
        let port = 80;
        format!(
            "[[Gateway]]\nname = \"{name}\"\ngatewayClassName = \"gatehouse\"\nlisteners = [{{ name = \"web\", protocol = \"HTTP\", port = {port} }}]\n"
        )
    }

    #[test]
    fn a_gateway_without_addresses_gets_one_from_the_pool() {
        let l = loaded(&format!("{POOL}{}", gateway("a")));
        let alloc = &l.allocations;
        assert_eq!(
            alloc.get("default/a"),
            Some(&"192.0.2.100".parse().unwrap())
        );
        assert_eq!(
            l.snapshot.listeners[0].addresses,
            vec!["192.0.2.100".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(l.snapshot.vips.len(), 1);
        assert_eq!(l.status.gateways[0].addresses[0].value, "192.0.2.100");
        assert_eq!(
            l.snapshot.ports[0].addresses,
            l.snapshot.listeners[0].addresses
        );
    }

    #[test]
    fn allocation_is_sticky_across_reloads() {
        let first = loaded(&format!("{POOL}{}{}", gateway("a"), gateway("b")));
        assert_eq!(
            first.allocations.get("default/b"),
            Some(&"192.0.2.101".parse().unwrap())
        );
        // "a" goes away; "c" arrives before "b" in the file: "b" keeps its address.
        let second = loaded_with(
            &format!("{POOL}{}{}", gateway("c"), gateway("b")),
            &first.allocations,
        );
        let alloc = &second.allocations;
        assert_eq!(
            alloc.get("default/b"),
            Some(&"192.0.2.101".parse().unwrap())
        );
        assert_eq!(
            alloc.get("default/c"),
            Some(&"192.0.2.100".parse().unwrap())
        );
    }

    #[test]
    fn in_keepalived_mode_allocation_is_by_declaration_order_on_every_box() {
        let ha = "[announce]\nmode = \"keepalived\"\n";
        // This box once gave "b" the first address (say "a" was added later).
        let kept: Allocations = [("default/b".to_string(), "192.0.2.100".parse().unwrap())].into();
        let l = loaded_with(
            &format!("{ha}{POOL}{}{}", gateway("a"), gateway("b")),
            &kept,
        );
        assert_eq!(
            l.allocations.get("default/a"),
            Some(&"192.0.2.100".parse().unwrap())
        );
        assert_eq!(
            l.allocations.get("default/b"),
            Some(&"192.0.2.101".parse().unwrap())
        );
        // Another box with nothing kept agrees.
        let fresh = loaded(&format!("{ha}{POOL}{}{}", gateway("a"), gateway("b")));
        assert_eq!(fresh.allocations, l.allocations);
        let differences = sticky_differences(&l.allocations, &kept);
        assert_eq!(differences.len(), 1, "{differences:?}");
        assert!(
            differences[0].starts_with("Gateway default/b had 192.0.2.100"),
            "{differences:?}"
        );
        assert!(
            differences[0].contains("gives it 192.0.2.101"),
            "{differences:?}"
        );
        assert!(sticky_differences(&l.allocations, &l.allocations).is_empty());
    }

    #[test]
    fn an_exhausted_pool_is_address_not_assigned() {
        let l = loaded(&format!(
            "{POOL}{}{}{}",
            gateway("a"),
            gateway("b"),
            gateway("c")
        ));
        let c = l.status.gateway("default", "c").unwrap();
        let programmed =
            gatehouse_model::status::find(&c.conditions, condition::PROGRAMMED).unwrap();
        assert_eq!(programmed.reason, reason::ADDRESS_NOT_ASSIGNED);
        assert!(l.snapshot.listeners.iter().all(|x| x.gateway.name != "c"));
        assert_eq!(
            l.snapshot.listeners.len(),
            2,
            "a and b on their own addresses do not conflict"
        );
    }

    #[test]
    fn without_pools_gateways_bind_everywhere() {
        let l = loaded(&gateway("a"));
        assert!(l.allocations.is_empty());
        assert!(l.snapshot.listeners[0].addresses.is_empty());
    }

    #[test]
    fn cidr_blocks_skip_network_and_broadcast() {
        let block = IpBlock::Cidr("192.0.2.64/30".parse().unwrap());
        let all: Vec<IpAddr> = addresses(&block).collect();
        assert_eq!(
            all,
            [
                "192.0.2.65".parse::<IpAddr>().unwrap(),
                "192.0.2.66".parse().unwrap()
            ]
        );
    }
}
