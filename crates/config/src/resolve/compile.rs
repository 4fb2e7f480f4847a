//! Compiling routes: each rule's matches, filters and backendRefs, resolved against the
//! document (Services, ReferenceGrants, BackendTLSPolicies) into the model's rules, with the
//! problems that become the route's `ResolvedRefs` and `PartiallyInvalid` conditions.

use super::routes::{self, Attachment};
use super::{Problem, backend_tls};
use crate::raw::{self, Document, RawFilters};
use gatehouse_model::Kind;
use gatehouse_model::backend::{Backend, BackendTarget, Backends, Unresolved};
use gatehouse_model::filter::{Filters, Mirror};
use gatehouse_model::http::{HttpEntry, HttpRouteTable, HttpRule, RouteOrder, RuleRef, Timeouts};
use gatehouse_model::status::reason;
use gatehouse_model::tls::TlsRule;
use std::sync::Arc;

/// A route's compiled rules and what its references resolved to.
pub(super) struct CompiledRoute<R> {
    pub(super) rules: Vec<Arc<R>>,
    pub(super) problems: Vec<Problem>,
    /// Rules gatehouse drops while serving the rest: the route's `PartiallyInvalid`.
    pub(super) dropped: Option<Problem>,
    /// The (Service index, port) pairs its backendRefs and mirrors name.
    pub(super) service_ports: Vec<(usize, u16)>,
}

/// What compiling a route's backends needs besides the document, and what it records.
struct BackendCx<'a> {
    doc: &'a Document,
    policies: &'a backend_tls::Policies,
    kind: Kind,
    namespace: &'a str,
    problems: Vec<Problem>,
    service_ports: Vec<(usize, u16)>,
}

impl BackendCx<'_> {
    fn resolve(&mut self, r: &raw::BackendObjectRef) -> (BackendTarget, Option<Problem>) {
        // The Service port, whatever a policy makes of it, for the policy's ancestors.
        if let (BackendTarget::Service { service, port, .. }, None) = routes::resolve_backend(
            self.doc,
            &backend_tls::Policies::default(),
            self.kind,
            self.namespace,
            r,
        ) && !self.service_ports.contains(&(service, port))
        {
            self.service_ports.push((service, port));
        }
        routes::resolve_backend(self.doc, self.policies, self.kind, self.namespace, r)
    }
}

/// Compiles filters, resolving mirror backends; unresolved mirrors are left out.
fn compile_filters(cx: &mut BackendCx<'_>, raw: &RawFilters) -> Filters {
    let mut filters = raw.filters.clone();
    for m in &raw.mirrors {
        let (target, problem) = cx.resolve(&m.backend);
        match problem {
            Some(p) => cx.problems.push(Problem::new(
                p.reason,
                format!("RequestMirror {}", p.message),
            )),
            None => filters.mirrors.push(Mirror {
                name: backend_name(cx.namespace, &m.backend),
                target,
                numerator: m.numerator,
                denominator: m.denominator,
            }),
        }
    }
    for e in &raw.extension_refs {
        cx.problems.push(Problem::new(
            reason::INVALID_KIND,
            format!(
                "ExtensionRef filter {}/{} \"{}\" is not supported: requests to its rule get 500",
                e.group, e.kind, e.name
            ),
        ));
    }
    filters
}

fn backend_name(namespace: &str, r: &raw::BackendObjectRef) -> String {
    let ns = r.object.namespace.as_deref().unwrap_or(namespace);
    match r.port {
        Some(p) => format!("{ns}/{}:{p}", r.object.name),
        None => format!("{ns}/{}", r.object.name),
    }
}

fn compile_backends(cx: &mut BackendCx<'_>, refs: &[raw::BackendRef]) -> Vec<Backend> {
    refs.iter()
        .map(|b| {
            let (mut target, problem) = cx.resolve(&b.backend);
            cx.problems.extend(problem);
            let filters = compile_filters(cx, &b.filters);
            if !b.filters.extension_refs.is_empty() {
                target = BackendTarget::Unresolved(Unresolved::InvalidKind);
            }
            Backend {
                name: backend_name(cx.namespace, &b.backend),
                weight: b.weight,
                target,
                filters,
            }
        })
        .collect()
}

pub(super) fn compile_http_route(
    doc: &Document,
    policies: &backend_tls::Policies,
    route: &raw::HttpRoute,
) -> CompiledRoute<HttpRule> {
    let mut cx = BackendCx {
        doc,
        policies,
        kind: Kind::HTTPRoute,
        namespace: &route.meta.namespace,
        problems: Vec::new(),
        service_ports: Vec::new(),
    };
    let rules = route
        .rules
        .iter()
        .enumerate()
        .map(|(index, r)| {
            let filters = compile_filters(&mut cx, &r.filters);
            let mut backends = compile_backends(&mut cx, &r.backend_refs);
            if !r.filters.extension_refs.is_empty() {
                // An unresolved ExtensionRef must not be skipped: the rule answers 500.
                backends = vec![Backend {
                    name: "extensionRef".into(),
                    weight: 1,
                    target: BackendTarget::Unresolved(Unresolved::InvalidKind),
                    filters: Filters::default(),
                }];
            }
            let nonzero = |d: Option<std::time::Duration>| d.filter(|d| !d.is_zero());
            Arc::new(HttpRule {
                rule: RuleRef {
                    route: route.meta.key(),
                    index,
                    name: r.name.clone(),
                },
                filters,
                backends: Backends::new(backends),
                timeouts: Timeouts {
                    request: nonzero(r.timeouts.request),
                    backend_request: nonzero(r.timeouts.backend_request),
                },
            })
        })
        .collect();
    CompiledRoute {
        rules,
        problems: cx.problems,
        service_ports: cx.service_ports,
        dropped: None,
    }
}

pub(super) fn compile_tls_route(
    doc: &Document,
    policies: &backend_tls::Policies,
    route: &raw::TlsRoute,
) -> CompiledRoute<TlsRule> {
    compile_l4_rules(doc, policies, Kind::TLSRoute, &route.meta, &route.rules)
}

/// A TCPRoute's or UDPRoute's rules. A TCP or UDP listener has nothing to choose between
/// rules by, so only the first rule is served; the others are dropped, and the route says so
/// with `PartiallyInvalid=True/UnsupportedValue` (the Gateway API's "Drop Rule(s)" approach).
pub(super) fn compile_single_rule_route(
    doc: &Document,
    policies: &backend_tls::Policies,
    route: &raw::L4Route,
) -> CompiledRoute<TlsRule> {
    let mut compiled = compile_l4_rules(
        doc,
        policies,
        route.kind,
        &route.meta,
        &route.rules[..route.rules.len().min(1)],
    );
    if route.rules.len() > 1 {
        let (transport, what) = if route.kind == Kind::UDPRoute {
            ("UDP", "flows")
        } else {
            ("TCP", "connections")
        };
        compiled.dropped = Some(Problem::new(
            reason::UNSUPPORTED_VALUE,
            format!(
                "Dropped Rule(s) 1 to {}: a {transport} listener cannot tell {what} apart, so only the first rule of a {} is served",
                route.rules.len() - 1,
                route.kind,
            ),
        ));
    }
    compiled
}

/// TLSRoute and TCPRoute rules: backends only (with the BackendTLSPolicy of a claimed port).
fn compile_l4_rules(
    doc: &Document,
    policies: &backend_tls::Policies,
    kind: Kind,
    meta: &raw::Meta,
    rules: &[raw::TlsRule],
) -> CompiledRoute<TlsRule> {
    let mut cx = BackendCx {
        doc,
        policies,
        kind,
        namespace: &meta.namespace,
        problems: Vec::new(),
        service_ports: Vec::new(),
    };
    let rules = rules
        .iter()
        .enumerate()
        .map(|(index, r)| {
            let backends = compile_backends(&mut cx, &r.backend_refs);
            Arc::new(TlsRule {
                rule: RuleRef {
                    route: meta.key(),
                    index,
                    name: r.name.clone(),
                },
                backends: Backends::new(backends),
            })
        })
        .collect();
    CompiledRoute {
        rules,
        problems: cx.problems,
        service_ports: cx.service_ports,
        dropped: None,
    }
}

pub(super) fn insert_http_route(
    table: &mut HttpRouteTable,
    route: &raw::HttpRoute,
    compiled: &CompiledRoute<HttpRule>,
    a: &Attachment,
) {
    for (ri, (raw_rule, rule)) in route.rules.iter().zip(&compiled.rules).enumerate() {
        for (mi, m) in raw_rule.matches.iter().enumerate() {
            let order = RouteOrder {
                declared: route.meta.order,
                namespaced_name: route.meta.key().namespaced_name(),
                rule: ri,
                matched: mi,
            };
            table.insert(
                a.hostnames.as_deref(),
                HttpEntry::new(m.clone(), rule.clone(), order),
            );
        }
    }
}
