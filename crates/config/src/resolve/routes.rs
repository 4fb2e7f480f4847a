//! Route attachment and backend resolution.
//!
//! A route attaches to a Gateway through each parentRef: the ref selects listeners (all, or
//! by sectionName and/or port), the listeners' allowedRoutes must admit the route's kind and
//! namespace, and the route's hostnames must intersect the listener's. The first step that
//! leaves no listener names the reason: `NoMatchingParent`, `NotAllowedByListeners`,
//! `NoMatchingListenerHostname`. A TCP listener serves one route (it has nothing to tell
//! connections apart by): a TCPRoute whose listeners all serve an older one is
//! `NotAllowedByListeners`. Backend references resolve independently of attachment and
//! give the route's `ResolvedRefs` condition.

use super::Problem;
use super::backend_tls::{Claim, Policies};
use super::gateways::{ResolvedGateway, ResolvedListener};
use super::grants::{self, permitted};
use crate::raw::{BackendObjectRef, Document, FromNamespaces, ParentRef};
use gatehouse_model::Kind;
use gatehouse_model::backend::{AppProtocol, BackendTarget, Unresolved};
use gatehouse_model::hostname::{Hostname, effective_hostnames};
use gatehouse_model::resource::{CORE_GROUP, GATEWAY_GROUP};
use gatehouse_model::status::{self, reason};
use std::collections::BTreeMap;

/// A route's view of attachment: its kind, namespace and hostnames.
pub(crate) struct RouteInfo<'a> {
    pub kind: Kind,
    pub namespace: &'a str,
    pub hostnames: &'a [Hostname],
    /// A listener serves at most one route of this kind (TCPRoute): the caller offers the
    /// route only listeners no other route has attached to ([`exclusive_attachments`]).
    pub exclusive: bool,
}

/// A listener a route attached to, with the hostnames it serves there (`None`: all).
#[derive(Clone, Debug)]
pub(crate) struct Attachment {
    pub listener: usize,
    pub hostnames: Option<Vec<Hostname>>,
}

/// The labels of a namespace: those declared by a `[[Namespace]]`, plus the
/// `kubernetes.io/metadata.name` label every namespace has.
fn namespace_labels(doc: &Document, ns: &str) -> BTreeMap<String, String> {
    let mut labels = doc
        .namespaces
        .iter()
        .find(|n| n.meta.name == ns)
        .map(|n| n.meta.labels.clone())
        .unwrap_or_default();
    labels.insert("kubernetes.io/metadata.name".into(), ns.into());
    labels
}

fn namespace_allowed(
    doc: &Document,
    from: &FromNamespaces,
    gateway_ns: &str,
    route_ns: &str,
) -> bool {
    match from {
        FromNamespaces::Same => gateway_ns == route_ns,
        FromNamespaces::All => true,
        FromNamespaces::Selector(sel) => sel.matches(&namespace_labels(doc, route_ns)),
    }
}

pub(crate) fn status_parent_ref(r: &ParentRef, route_ns: &str) -> status::ParentRef {
    status::ParentRef {
        group: r.group.clone(),
        kind: r.kind.clone(),
        namespace: r.namespace.clone().unwrap_or_else(|| route_ns.to_string()),
        name: r.name.clone(),
        section_name: r.section_name.clone(),
        port: r.port,
    }
}

/// Attaches a route through one parentRef.
pub(crate) fn attach(
    doc: &Document,
    gateways: &[ResolvedGateway],
    listeners: &[ResolvedListener],
    route: &RouteInfo<'_>,
    parent: &ParentRef,
) -> Result<Vec<Attachment>, Problem> {
    if parent.group != GATEWAY_GROUP || parent.kind != "Gateway" {
        return Err(Problem::new(
            reason::NO_MATCHING_PARENT,
            format!(
                "parentRef kind {}/{} is not supported; use a Gateway",
                parent.group, parent.kind
            ),
        ));
    }
    let ns = parent.namespace.as_deref().unwrap_or(route.namespace);
    let Some(gi) = doc
        .gateways
        .iter()
        .position(|g| g.meta.namespace == ns && g.meta.name == parent.name)
    else {
        return Err(Problem::new(
            reason::NO_MATCHING_PARENT,
            format!("Gateway \"{ns}/{}\" does not exist", parent.name),
        ));
    };
    if let Err(p) = &gateways[gi].accepted {
        return Err(Problem::new(
            reason::NO_MATCHING_PARENT,
            format!(
                "Gateway \"{ns}/{}\" is not accepted: {}",
                parent.name, p.message
            ),
        ));
    }
    let gw = &doc.gateways[gi];
    let selected: Vec<usize> = listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.gateway == gi)
        .filter(|(_, l)| {
            let raw = &gw.listeners[l.index];
            parent.section_name.as_ref().is_none_or(|s| *s == raw.name)
                && parent.port.is_none_or(|p| p == raw.port)
        })
        .map(|(i, _)| i)
        .collect();
    if selected.is_empty() {
        let what = match (&parent.section_name, parent.port) {
            (Some(s), Some(p)) => format!("no listener named \"{s}\" on port {p}"),
            (Some(s), None) => format!("no listener named \"{s}\""),
            (None, Some(p)) => format!("no listener on port {p}"),
            (None, None) => "no listeners".to_string(),
        };
        return Err(Problem::new(
            reason::NO_MATCHING_PARENT,
            format!("Gateway \"{ns}/{}\" has {what}", parent.name),
        ));
    }
    let allowed: Vec<usize> = selected
        .into_iter()
        .filter(|&i| {
            let l = &listeners[i];
            let raw = &gw.listeners[l.index];
            l.allows_kind(route.kind)
                && namespace_allowed(
                    doc,
                    &raw.allowed_routes.namespaces,
                    &gw.meta.namespace,
                    route.namespace,
                )
        })
        .collect();
    if allowed.is_empty() {
        return Err(Problem::new(
            reason::NOT_ALLOWED_BY_LISTENERS,
            format!(
                "no listener of Gateway \"{ns}/{}\" allows a {} from namespace \"{}\"",
                parent.name, route.kind, route.namespace
            ),
        ));
    }
    let attachments: Vec<Attachment> = allowed
        .into_iter()
        .filter_map(|i| {
            let raw = &gw.listeners[listeners[i].index];
            match effective_hostnames(raw.hostname.as_ref(), route.hostnames) {
                Some(names) if names.is_empty() => None,
                hostnames => Some(Attachment {
                    listener: i,
                    hostnames,
                }),
            }
        })
        .collect();
    if attachments.is_empty() {
        return Err(Problem::new(
            reason::NO_MATCHING_LISTENER_HOSTNAME,
            format!(
                "no hostname of the route intersects a listener hostname of Gateway \"{ns}/{}\"",
                parent.name
            ),
        ));
    }
    Ok(attachments)
}

/// For a route that needs a listener to itself: the attachments to listeners that no other
/// route took (`mine` lists those this route already took through another parentRef), or
/// `NotAllowedByListeners` when every listener is taken.
pub(crate) fn exclusive_attachments(
    doc: &Document,
    listeners: &[ResolvedListener],
    route: &RouteInfo<'_>,
    attachments: Vec<Attachment>,
    mine: &[usize],
) -> Result<Vec<Attachment>, Problem> {
    let Some(first) = attachments.first() else {
        return Ok(attachments);
    };
    let raw = |i: usize| {
        let l = &listeners[i];
        (
            &doc.gateways[l.gateway],
            &doc.gateways[l.gateway].listeners[l.index],
        )
    };
    let (gw, first_raw) = raw(first.listener);
    let protocol = first_raw.protocol.clone();
    let taken: Vec<String> = attachments
        .iter()
        .map(|a| format!("\"{}\"", raw(a.listener).1.name))
        .collect();
    let free: Vec<Attachment> = attachments
        .into_iter()
        .filter(|a| listeners[a.listener].attached_routes == 0 || mine.contains(&a.listener))
        .collect();
    if free.is_empty() {
        return Err(Problem::new(
            reason::NOT_ALLOWED_BY_LISTENERS,
            format!(
                "listener {} of {} already serves an older {}; a {protocol} listener serves one route",
                taken.join(", "),
                gw.meta.key(),
                route.kind,
            ),
        ));
    }
    Ok(free)
}

/// Resolves a backendRef of a route of `kind` in `namespace`. A backendRef to a Service port
/// a BackendTLSPolicy claims gets its TLS (or, when the policy has no valid CA certificate,
/// fails: 500 for HTTP, a closed connection at layer 4; the route's own references are
/// still resolved).
pub(crate) fn resolve_backend(
    doc: &Document,
    policies: &Policies,
    kind: Kind,
    namespace: &str,
    r: &BackendObjectRef,
) -> (BackendTarget, Option<Problem>) {
    let o = &r.object;
    let ns = o.namespace.as_deref().unwrap_or(namespace);
    let name = format!("{ns}/{}", o.name);
    let fail = |why: Unresolved, reason: &'static str, message: String| {
        (
            BackendTarget::Unresolved(why),
            Some(Problem::new(reason, message)),
        )
    };
    if o.group != CORE_GROUP || o.kind != "Service" {
        let gk = if o.group.is_empty() {
            o.kind.clone()
        } else {
            format!("{}/{}", o.group, o.kind)
        };
        return fail(
            Unresolved::InvalidKind,
            reason::INVALID_KIND,
            format!("backendRef {name}: kind {gk} is not supported; use a Service"),
        );
    }
    let from = grants::From {
        group: GATEWAY_GROUP,
        kind: kind.as_str(),
        namespace,
    };
    let to = grants::To {
        group: CORE_GROUP,
        kind: "Service",
        namespace: ns,
        name: &o.name,
    };
    if !permitted(&doc.reference_grants, from, to) {
        return fail(
            Unresolved::NotPermitted,
            reason::REF_NOT_PERMITTED,
            format!(
                "backendRef {name}: no ReferenceGrant in namespace \"{ns}\" allows this {kind} to use it"
            ),
        );
    }
    let Some(si) = doc
        .services
        .iter()
        .position(|s| s.meta.namespace == ns && s.meta.name == o.name)
    else {
        return fail(
            Unresolved::NotFound,
            reason::BACKEND_NOT_FOUND,
            format!("backendRef {name}: Service not found"),
        );
    };
    let svc = &doc.services[si];
    let Some(port) = r
        .port
        .and_then(|p| svc.ports.iter().find(|sp| sp.port == p))
    else {
        return fail(
            Unresolved::NotFound,
            reason::BACKEND_NOT_FOUND,
            format!(
                "backendRef {name}: Service has no port {}",
                r.port.map_or("(none)".into(), |p| p.to_string())
            ),
        );
    };
    let protocol = if kind == Kind::HTTPRoute {
        match AppProtocol::from_app_protocol(port.app_protocol.as_deref()) {
            Some(p) => p,
            None => {
                return fail(
                    Unresolved::UnsupportedProtocol,
                    reason::UNSUPPORTED_PROTOCOL,
                    format!(
                        "backendRef {name}: appProtocol \"{}\" is not supported (http, kubernetes.io/h2c, kubernetes.io/ws)",
                        port.app_protocol.as_deref().unwrap_or("")
                    ),
                );
            }
        }
    } else {
        AppProtocol::Http1
    };
    // Every route kind that reaches this originates the connection itself (HTTPRoute,
    // TCPRoute, TLSRoute on a terminating listener); TLS passthrough resolves its backends
    // without policies (see `resolve`).
    let tls = match policies.claim(si, port.port) {
        Some(Claim::Tls(id)) => Some(id),
        Some(Claim::Invalid) => {
            return (
                BackendTarget::Unresolved(Unresolved::InvalidBackendTls),
                None,
            );
        }
        None => None,
    };
    (
        BackendTarget::Service {
            service: si,
            port: port.port,
            target_port: port.target_port,
            protocol,
            tls,
        },
        None,
    )
}
