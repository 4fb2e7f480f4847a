//! Resolution and compilation: references, attachment and conditions, then the Snapshot.
//!
//! The steps, in order:
//! 1. GatewayClasses, then Gateways: is each gatehouse's, with usable addresses?
//! 2. Listeners: protocol, route kinds, certificates ([`gateways`]); then conflicts between
//!    listeners sharing a port.
//! 3. Routes: attachment through each parentRef and backend resolution ([`routes`]); every
//!    accepted attachment counts in its listener's `attachedRoutes`.
//! 4. Status for every resource, and the Snapshot: programmed listeners with their route
//!    tables in precedence order.

pub(crate) mod backend_tls;
mod client_cert;
mod compile;
pub(crate) mod gateways;
pub(crate) mod grants;
pub(crate) mod routes;

use crate::raw::{self, Document};
use compile::{
    CompiledRoute, compile_http_route, compile_single_rule_route, compile_tls_route,
    insert_http_route,
};
use gatehouse_model::backend::Service;
use gatehouse_model::backend_tls::BackendClientCertificate;
use gatehouse_model::hostname::intersect;
use gatehouse_model::http::HttpRouteTable;
use gatehouse_model::listener::{Listener, ListenerKind, Protocol};
use gatehouse_model::snapshot::{IpPool, PortGroup, Vip};
use gatehouse_model::status::{
    CONTROLLER_NAME, Condition, GatewayStatus, ListenerStatus, RouteParentStatus, RouteStatus,
    Status, condition, reason,
};
use gatehouse_model::tls::{SniTable, TlsRule};
use gatehouse_model::{Kind, Snapshot};
use gateways::{CertificateCache, ResolvedGateway, ResolvedListener};
use routes::{Attachment, RouteInfo};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Reads the certificate and key files that Secrets name.
pub trait FileReader {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
}

impl<F: Fn(&Path) -> io::Result<Vec<u8>>> FileReader for F {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self(path)
    }
}

/// A condition reason and the message explaining it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub reason: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            reason,
            message: message.into(),
        }
    }
}

/// Several problems as one condition: the first one's reason, every message.
fn merge(problems: &[Problem]) -> Option<Problem> {
    let first = problems.first()?;
    let mut messages: Vec<&str> = Vec::new();
    for p in problems {
        if !messages.contains(&p.message.as_str()) {
            messages.push(&p.message);
        }
    }
    Some(Problem::new(first.reason, messages.join("; ")))
}

pub(crate) fn cond(kind: &str, r: &Result<(), Problem>, ok_reason: &str) -> Condition {
    match r {
        Ok(()) => Condition::new(kind, true, ok_reason, ""),
        Err(p) => Condition::new(kind, false, p.reason, p.message.clone()),
    }
}

/// What resolving a document gives.
pub(crate) struct Resolved {
    pub snapshot: Snapshot,
    pub status: Status,
    pub allocations: crate::pools::Allocations,
    pub certificates: crate::Certificates,
    pub ca_bundles: crate::CaBundles,
    pub stale_certificates: Vec<(gatehouse_model::ResourceKey, String)>,
}

/// Resolves and compiles a whole document.
pub(crate) fn resolve(
    doc: &Document,
    reader: &dyn FileReader,
    generation: u64,
    previous: &crate::Previous,
) -> Resolved {
    let mut status = Status {
        gateway_classes: gateways::gateway_class_status(&doc.gateway_classes),
        ..Status::default()
    };

    // 1-2. Gateways and listeners.
    let mut resolved_gateways: Vec<ResolvedGateway> = doc
        .gateways
        .iter()
        .map(|g| gateways::resolve_gateway(doc, g))
        .collect();
    let allocations = crate::pools::allocate(doc, &mut resolved_gateways, &previous.allocations);
    let mut certs = CertificateCache::new(reader, &previous.certificates);
    let mut listeners: Vec<ResolvedListener> = Vec::new();
    for (gi, gw) in doc.gateways.iter().enumerate() {
        for li in 0..gw.listeners.len() {
            listeners.push(gateways::resolve_listener(doc, &mut certs, gi, li));
        }
    }
    let client_certs: Vec<client_cert::ClientCertificate> = doc
        .gateways
        .iter()
        .map(|g| client_cert::resolve(doc, g, &mut certs))
        .collect();
    let (certificates, mut stale_certificates) = certs.finish();
    gateways::mark_conflicts(doc, &resolved_gateways, &mut listeners);

    // 3. BackendTLSPolicies, then routes.
    let policies = backend_tls::Policies::resolve(doc, reader, &previous.ca_bundles);
    let (ca_bundles, stale_ca_bundles) = policies.ca_bundles();
    stale_certificates.extend(stale_ca_bundles);
    let (http_attachments, http_compiled) = attach_routes(
        doc,
        &resolved_gateways,
        &mut listeners,
        &mut status,
        &doc.http_routes,
        |r| compile_http_route(doc, &policies, r),
    );
    let (tls_attachments, tls_compiled) = attach_routes(
        doc,
        &resolved_gateways,
        &mut listeners,
        &mut status,
        &doc.tls_routes,
        |r| compile_tls_route(doc, &policies, r),
    );
    let (tcp_attachments, tcp_compiled) = attach_routes(
        doc,
        &resolved_gateways,
        &mut listeners,
        &mut status,
        &doc.tcp_routes,
        |r| compile_single_rule_route(doc, &policies, r),
    );
    let (udp_attachments, udp_compiled) = attach_routes(
        doc,
        &resolved_gateways,
        &mut listeners,
        &mut status,
        &doc.udp_routes,
        // UDP has no TLS to originate (no DTLS): a UDPRoute's backends ignore the policies
        // and its Gateways are not their ancestors.
        |r| compile_single_rule_route(doc, &backend_tls::Policies::default(), r),
    );
    // TLS passthrough carries the client's TLS end to end: gatehouse originates no TLS of
    // its own there, so a passthrough listener's TLSRoutes resolve without the policies.
    let tls_passthrough: Vec<Vec<Arc<TlsRule>>> = doc
        .tls_routes
        .iter()
        .map(|r| compile_tls_route(doc, &backend_tls::Policies::default(), r).rules)
        .collect();
    let mut used = used_ports(&listeners, &http_compiled, &http_attachments);
    used.extend(used_ports(&listeners, &tls_compiled, &tls_attachments));
    used.extend(used_ports(&listeners, &tcp_compiled, &tcp_attachments));
    status.backend_tls_policies = policies.status(doc, &used);

    // 4. Status and snapshot.
    status.gateways = gateway_status(doc, &resolved_gateways, &listeners, &client_certs);
    let mut snapshot = Snapshot {
        generation,
        settings: doc.settings.clone(),
        services: doc
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let first_port = s.ports.first().map(|p| p.port);
                service(s, first_port.and_then(|p| policies.claimant(doc, i, p)))
            })
            .collect(),
        backend_tls: policies.compiled,
        backend_client_certificates: doc
            .gateways
            .iter()
            .zip(&client_certs)
            .filter_map(|(g, c)| {
                Some(BackendClientCertificate {
                    gateway: g.meta.key(),
                    certificate: c.certificate.clone()?,
                })
            })
            .collect(),
        pools: doc
            .pools
            .iter()
            .map(|p| IpPool {
                name: p.meta.name.clone(),
                blocks: p.blocks.clone(),
            })
            .collect(),
        ..Snapshot::default()
    };
    for (li, l) in listeners.iter().enumerate() {
        let gw = &doc.gateways[l.gateway];
        let rg = &resolved_gateways[l.gateway];
        if rg.accepted.is_err() || rg.unassigned || l.programmed().is_err() {
            continue;
        }
        let (Some(protocol), raw) = (l.protocol, &gw.listeners[l.index]) else {
            continue;
        };
        let kind = match protocol {
            Protocol::HTTP | Protocol::HTTPS => {
                let mut table = HttpRouteTable::default();
                for (ri, a) in http_attachments.iter().filter(|(_, a)| a.listener == li) {
                    insert_http_route(&mut table, &doc.http_routes[*ri], &http_compiled[*ri], a);
                }
                table.finish();
                if protocol == Protocol::HTTP {
                    ListenerKind::Http { routes: table }
                } else {
                    ListenerKind::Https {
                        routes: table,
                        certificates: l.certificates.clone(),
                    }
                }
            }
            Protocol::TCP => {
                // Attachment let one route at most onto a TCP listener.
                let rule = tcp_attachments
                    .iter()
                    .find(|(_, a)| a.listener == li)
                    .and_then(|(ri, _)| tcp_compiled[*ri].rules.first().cloned());
                ListenerKind::Tcp { rule }
            }
            Protocol::UDP => {
                // As for TCP: one route at most, and its first rule.
                let rule = udp_attachments
                    .iter()
                    .find(|(_, a)| a.listener == li)
                    .and_then(|(ri, _)| {
                        let rule = udp_compiled[*ri].rules.first()?;
                        let raw = doc.udp_routes[*ri].rules.first()?;
                        Some((rule.clone(), raw.idle_timeout))
                    });
                ListenerKind::Udp {
                    idle_timeout: rule
                        .as_ref()
                        .and_then(|(_, t)| *t)
                        .unwrap_or(doc.settings.limits.udp_idle_timeout),
                    rule: rule.map(|(r, _)| r),
                }
            }
            Protocol::TLS => {
                let mut routes = SniTable::default();
                let mut attached: Vec<&(usize, Attachment)> = tls_attachments
                    .iter()
                    .filter(|(_, a)| a.listener == li)
                    .collect();
                attached.sort_by_key(|(ri, _)| doc.tls_routes[*ri].meta.order);
                for (ri, a) in attached {
                    let names = a.hostnames.as_deref().unwrap_or(&[]);
                    let rules = if l.terminates {
                        &tls_compiled[*ri].rules
                    } else {
                        &tls_passthrough[*ri]
                    };
                    for rule in rules {
                        routes.insert(names, rule.clone());
                    }
                }
                if l.terminates {
                    ListenerKind::TlsTerminate {
                        routes,
                        certificates: l.certificates.clone(),
                    }
                } else {
                    ListenerKind::TlsPassthrough { routes }
                }
            }
        };
        snapshot.listeners.push(Listener {
            gateway: gw.meta.key(),
            name: raw.name.clone(),
            hostname: raw.hostname.clone(),
            port: raw.port,
            protocol,
            addresses: rg.addresses.clone(),
            kind,
        });
    }
    snapshot.ports = port_groups(&snapshot.listeners, false);
    snapshot.udp_ports = port_groups(&snapshot.listeners, true);
    for (gw, rg) in doc.gateways.iter().zip(&resolved_gateways) {
        if rg.accepted.is_err() {
            continue;
        }
        if rg.addresses.is_empty() && !rg.unassigned {
            snapshot.gateways_without_addresses.push(gw.meta.key());
        }
        if let Some(address) = rg.pool_address {
            snapshot.vips.push(Vip {
                gateway: gw.meta.key(),
                address,
                interface: None,
            });
        }
        for a in gw.addresses.iter().filter(|a| a.kind == "IPAddress") {
            if let Ok(address) = a.value.parse() {
                snapshot.vips.push(Vip {
                    gateway: gw.meta.key(),
                    address,
                    interface: a.interface.clone(),
                });
            }
        }
    }
    status.set_generation(generation);
    Resolved {
        snapshot,
        status,
        allocations,
        certificates,
        ca_bundles,
        stale_certificates,
    }
}

/// What attachment needs of a route, whatever its kind.
trait RouteSpec {
    fn kind(&self) -> Kind;
    fn meta(&self) -> &raw::Meta;
    fn parent_refs(&self) -> &[raw::ParentRef];
    fn hostnames(&self) -> &[gatehouse_model::hostname::Hostname];
}

impl RouteSpec for raw::HttpRoute {
    fn kind(&self) -> Kind {
        Kind::HTTPRoute
    }
    fn meta(&self) -> &raw::Meta {
        &self.meta
    }
    fn parent_refs(&self) -> &[raw::ParentRef] {
        &self.parent_refs
    }
    fn hostnames(&self) -> &[gatehouse_model::hostname::Hostname] {
        &self.hostnames
    }
}

impl RouteSpec for raw::L4Route {
    fn kind(&self) -> Kind {
        self.kind
    }
    fn meta(&self) -> &raw::Meta {
        &self.meta
    }
    fn parent_refs(&self) -> &[raw::ParentRef] {
        &self.parent_refs
    }
    fn hostnames(&self) -> &[gatehouse_model::hostname::Hostname] {
        &[]
    }
}

impl RouteSpec for raw::TlsRoute {
    fn kind(&self) -> Kind {
        Kind::TLSRoute
    }
    fn meta(&self) -> &raw::Meta {
        &self.meta
    }
    fn parent_refs(&self) -> &[raw::ParentRef] {
        &self.parent_refs
    }
    fn hostnames(&self) -> &[gatehouse_model::hostname::Hostname] {
        &self.hostnames
    }
}

type Attached = Vec<(usize, Attachment)>;

/// (Gateway, Service, port) for each Service port an attached route originates connections
/// to: a BackendTLSPolicy's ancestors. A passthrough listener originates none.
fn used_ports<C>(
    listeners: &[ResolvedListener],
    compiled: &[CompiledRoute<C>],
    attachments: &Attached,
) -> Vec<(usize, usize, u16)> {
    attachments
        .iter()
        .filter(|(_, a)| {
            let l = &listeners[a.listener];
            l.protocol != Some(Protocol::TLS) || l.terminates
        })
        .flat_map(|(ri, a)| {
            let gateway = listeners[a.listener].gateway;
            compiled[*ri]
                .service_ports
                .iter()
                .map(move |&(s, p)| (gateway, s, p))
        })
        .collect()
}

/// Compiles and attaches every route of one kind, recording each one's status; returns the
/// attachments (route index, listener) and the compiled routes.
fn attach_routes<R: RouteSpec, C>(
    doc: &Document,
    gateways: &[ResolvedGateway],
    listeners: &mut [ResolvedListener],
    status: &mut Status,
    routes: &[R],
    compile: impl Fn(&R) -> CompiledRoute<C>,
) -> (Attached, Vec<CompiledRoute<C>>) {
    let mut attached = Vec::new();
    let mut compiled_routes = Vec::new();
    for (ri, route) in routes.iter().enumerate() {
        let compiled = compile(route);
        let info = RouteInfo {
            kind: route.kind(),
            namespace: &route.meta().namespace,
            hostnames: route.hostnames(),
            // A TCP or UDP listener cannot tell one route's traffic from another's.
            exclusive: matches!(route.kind(), Kind::TCPRoute | Kind::UDPRoute),
        };
        let parents = attach_route(
            doc,
            gateways,
            listeners,
            &info,
            route.parent_refs(),
            &compiled,
            |a| attached.push((ri, a)),
        );
        status.routes.push(RouteStatus {
            key: route.meta().key(),
            parents,
        });
        compiled_routes.push(compiled);
    }
    (attached, compiled_routes)
}

/// Attaches a route through each of its parentRefs and returns its parent statuses.
fn attach_route<C>(
    doc: &Document,
    gateways: &[ResolvedGateway],
    listeners: &mut [ResolvedListener],
    info: &RouteInfo<'_>,
    parent_refs: &[raw::ParentRef],
    compiled: &CompiledRoute<C>,
    mut record: impl FnMut(Attachment),
) -> Vec<RouteParentStatus> {
    let dropped = compiled.dropped.as_ref();
    let resolved_refs = match merge(&compiled.problems) {
        Some(p) => Err(p),
        None => Ok(()),
    };
    let mut counted: Vec<usize> = Vec::new();
    let mut parents = Vec::new();
    for parent in parent_refs {
        let attached = routes::attach(doc, gateways, listeners, info, parent).and_then(|a| {
            if info.exclusive {
                routes::exclusive_attachments(doc, listeners, info, a, &counted)
            } else {
                Ok(a)
            }
        });
        let accepted = match attached {
            Ok(attachments) => {
                for a in attachments {
                    if !counted.contains(&a.listener) {
                        counted.push(a.listener);
                        listeners[a.listener].attached_routes += 1;
                        record(a);
                    }
                }
                Ok(())
            }
            Err(p) => Err(p),
        };
        let mut conditions = vec![
            cond(condition::ACCEPTED, &accepted, reason::ACCEPTED),
            cond(
                condition::RESOLVED_REFS,
                &resolved_refs,
                reason::RESOLVED_REFS,
            ),
        ];
        // PartiallyInvalid is set only on an accepted route, and only when True.
        if let (Ok(()), Some(d)) = (&accepted, dropped) {
            conditions.push(Condition::new(
                condition::PARTIALLY_INVALID,
                true,
                d.reason,
                d.message.clone(),
            ));
        }
        parents.push(RouteParentStatus {
            parent_ref: routes::status_parent_ref(parent, info.namespace),
            controller_name: CONTROLLER_NAME.to_string(),
            conditions,
        });
    }
    parents
}

fn service(s: &raw::Service, health_check_tls: Option<gatehouse_model::ResourceKey>) -> Service {
    Service {
        health_check_tls,
        key: s.meta.key(),
        ports: s.ports.clone(),
        endpoints: s.endpoints.clone(),
        health_check: s.health_check.clone(),
        outlier_detection: s.outlier_detection.clone(),
        proxy_protocol: s.proxy_protocol,
    }
}

/// The TCP ports (`udp` false) or the UDP ports the listeners need, each with the listeners
/// on it and the addresses to bind.
pub(crate) fn port_groups(listeners: &[Listener], udp: bool) -> Vec<PortGroup> {
    let mut groups: Vec<PortGroup> = Vec::new();
    for (i, l) in listeners.iter().enumerate() {
        if l.protocol.is_udp() != udp {
            continue;
        }
        match groups.iter_mut().find(|g| g.port == l.port) {
            Some(g) => {
                g.listeners.push(i);
                if g.addresses.is_empty() || l.addresses.is_empty() {
                    g.addresses.clear();
                } else {
                    for a in &l.addresses {
                        if !g.addresses.contains(a) {
                            g.addresses.push(*a);
                        }
                    }
                }
            }
            None => groups.push(PortGroup {
                port: l.port,
                tls: l.protocol.is_tls(),
                tcp: false,
                listeners: vec![i],
                addresses: l.addresses.clone(),
            }),
        }
    }
    for g in &mut groups {
        g.tcp = g
            .listeners
            .iter()
            .any(|&i| listeners[i].protocol == Protocol::TCP);
    }
    groups.sort_by_key(|g| g.port);
    groups
}

/// Whether two TLS listeners on one port could both be chosen for some SNI.
fn overlapping(
    a: Option<&gatehouse_model::hostname::Hostname>,
    b: Option<&gatehouse_model::hostname::Hostname>,
) -> bool {
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => intersect(Some(a), b).is_some(),
    }
}

fn gateway_status(
    doc: &Document,
    gateways: &[ResolvedGateway],
    listeners: &[ResolvedListener],
    client_certs: &[client_cert::ClientCertificate],
) -> Vec<GatewayStatus> {
    doc.gateways
        .iter()
        .enumerate()
        .map(|(gi, gw)| {
            let rg = &gateways[gi];
            let mine: Vec<&ResolvedListener> =
                listeners.iter().filter(|l| l.gateway == gi).collect();
            let mut valid = 0;
            let mut programmed = 0;
            let listener_status = mine
                .iter()
                .map(|l| {
                    let raw = &gw.listeners[l.index];
                    let accepted = match (&l.conflict, &l.accepted) {
                        (Some(c), _) => Err(c.clone()),
                        (None, a) => a.clone(),
                    };
                    let prog = match &rg.accepted {
                        Err(p) => Err(Problem::new(
                            reason::INVALID,
                            format!("the Gateway is not accepted: {}", p.message),
                        )),
                        Ok(()) if rg.unassigned => Err(Problem::new(
                            reason::INVALID,
                            "the Gateway has no address: no LoadBalancerIPPool has a free one",
                        )),
                        Ok(()) => l.programmed(),
                    };
                    valid += usize::from(accepted.is_ok());
                    programmed += usize::from(prog.is_ok());
                    let mut conditions = vec![
                        cond(condition::ACCEPTED, &accepted, reason::ACCEPTED),
                        cond(
                            condition::RESOLVED_REFS,
                            &l.resolved_refs,
                            reason::RESOLVED_REFS,
                        ),
                        cond(condition::PROGRAMMED, &prog, reason::PROGRAMMED),
                        match &l.conflict {
                            Some(c) => Condition::new(
                                condition::CONFLICTED,
                                true,
                                c.reason,
                                c.message.clone(),
                            ),
                            None => Condition::new(
                                condition::CONFLICTED,
                                false,
                                reason::NO_CONFLICTS,
                                "",
                            ),
                        },
                    ];
                    if let Some(other) = overlapping_tls(doc, gateways, listeners, l) {
                        conditions.push(Condition::new(
                            condition::OVERLAPPING_TLS_CONFIG,
                            true,
                            reason::OVERLAPPING_HOSTNAMES,
                            other,
                        ));
                    }
                    ListenerStatus {
                        name: raw.name.clone(),
                        supported_kinds: l.supported_kinds.clone(),
                        attached_routes: l.attached_routes,
                        conditions,
                    }
                })
                .collect();
            let accepted = match &rg.accepted {
                Err(p) => Condition::new(condition::ACCEPTED, false, p.reason, p.message.clone()),
                Ok(()) if valid == mine.len() => {
                    Condition::new(condition::ACCEPTED, true, reason::ACCEPTED, "")
                }
                Ok(()) => Condition::new(
                    condition::ACCEPTED,
                    valid > 0,
                    reason::LISTENERS_NOT_VALID,
                    format!(
                        "{} of {} listeners are not valid",
                        mine.len() - valid,
                        mine.len()
                    ),
                ),
            };
            let programmed_cond = if rg.unassigned {
                Condition::new(
                    condition::PROGRAMMED,
                    false,
                    reason::ADDRESS_NOT_ASSIGNED,
                    "no LoadBalancerIPPool has a free address",
                )
            } else if rg.accepted.is_ok() && programmed > 0 {
                Condition::new(condition::PROGRAMMED, true, reason::PROGRAMMED, "")
            } else {
                Condition::new(
                    condition::PROGRAMMED,
                    false,
                    reason::INVALID,
                    "no listener of this Gateway is programmed",
                )
            };
            GatewayStatus {
                key: gw.meta.key(),
                gateway_class_name: gw.class_name.clone(),
                addresses: gateways::status_addresses(gw, rg.pool_address),
                conditions: vec![
                    accepted,
                    programmed_cond,
                    client_cert::resolved_refs(
                        &client_certs[gi],
                        mine.iter().all(|l| l.resolved_refs.is_ok()),
                    ),
                ],
                listeners: listener_status,
                vips: Vec::new(),
            }
        })
        .collect()
}

fn overlapping_tls(
    doc: &Document,
    gateways: &[ResolvedGateway],
    listeners: &[ResolvedListener],
    l: &ResolvedListener,
) -> Option<String> {
    if !l.protocol.is_some_and(Protocol::is_tls) || l.conflict.is_some() {
        return None;
    }
    let me = &doc.gateways[l.gateway].listeners[l.index];
    let mine = &gateways[l.gateway].addresses;
    listeners.iter().find_map(|o| {
        if std::ptr::eq(o, l) || !o.protocol.is_some_and(Protocol::is_tls) || o.conflict.is_some() {
            return None;
        }
        let other = &doc.gateways[o.gateway].listeners[o.index];
        let theirs = &gateways[o.gateway].addresses;
        let same_addr = gateways::share_addresses(mine, theirs);
        (other.port == me.port
            && same_addr
            && overlapping(me.hostname.as_ref(), other.hostname.as_ref()))
        .then(|| {
            format!(
                "hostnames overlap with listener \"{}\" of {} on port {}",
                other.name,
                doc.gateways[o.gateway].meta.key(),
                me.port
            )
        })
    })
}
