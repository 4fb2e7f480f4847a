//! `[[HTTPRoute]]`, `[[TLSRoute]]`, `[[TCPRoute]]` and `[[UDPRoute]]`: parentRefs, hostnames, rules, matches and
//! backendRefs, with the Gateway API's schema (CEL) rules enforced as load errors. Filters
//! are in the sibling `filter` module.

use super::filter::filters;
use super::{duration, one_of};
use crate::decode::{Cx, Table, Value};
use crate::raw::{
    BackendObjectRef, BackendRef, Document, HttpRoute, HttpRule, L4Route, Meta, ParentRef,
    RawFilters, RouteTimeouts, TlsRoute, TlsRule,
};
use crate::validate;
use gatehouse_model::Kind;
use gatehouse_model::filter::PathModifier;
use gatehouse_model::hostname::Hostname;
use gatehouse_model::http::{HttpMatch, PathMatch, ValueMatch};
use gatehouse_model::resource::GATEWAY_GROUP;
use regex::Regex;

pub(super) fn http_route(cx: &mut Cx<'_>, mut t: Table<'_, '_>, meta: Meta, doc: &mut Document) {
    let parent_refs = parent_refs(cx, &mut t);
    let hostnames = hostnames(cx, &mut t, false);
    let mut rules = Vec::new();
    match t.get("rules") {
        Some(v) => {
            let mut names: Vec<String> = Vec::new();
            let items = v.array_max(cx, 16).unwrap_or_default();
            let total_matches: usize = items
                .iter()
                .filter_map(|i| {
                    i.v.get_ref()
                        .as_table()?
                        .get("matches")?
                        .get_ref()
                        .as_array()
                        .map(|a| a.len())
                })
                .sum();
            if total_matches > 128 {
                v.error(cx, format!("a route may have at most 128 matches across its rules, found {total_matches}"));
            }
            for item in items {
                if let Some(rule) = http_rule(cx, &item) {
                    if let Some(name) = &rule.name {
                        if names.contains(name) {
                            item.error(
                                cx,
                                format!("rule name \"{name}\" is used twice in this route"),
                            );
                            continue;
                        }
                        names.push(name.clone());
                    }
                    rules.push(rule);
                }
            }
        }
        // The Gateway API default: one rule matching every path, with no backends.
        None => rules.push(HttpRule {
            name: None,
            matches: vec![HttpMatch::default()],
            filters: RawFilters::default(),
            backend_refs: Vec::new(),
            timeouts: RouteTimeouts::default(),
        }),
    }
    t.finish(cx);
    doc.http_routes.push(HttpRoute {
        meta,
        parent_refs,
        hostnames,
        rules,
    });
}

pub(super) fn tls_route(cx: &mut Cx<'_>, mut t: Table<'_, '_>, meta: Meta, doc: &mut Document) {
    let parent_refs = parent_refs(cx, &mut t);
    let hostnames = hostnames(cx, &mut t, true);
    let mut rules = Vec::new();
    if let Some(v) = t.req(cx, "rules") {
        let items = v.array(cx).unwrap_or_default();
        if items.len() != 1 && v.v.get_ref().is_array() {
            let at = items.get(1).unwrap_or(&v);
            at.error(
                cx,
                format!("a TLSRoute has exactly one rule, found {}", items.len()),
            );
        }
        for item in items.into_iter().take(1) {
            if let Some(rule) = l4_rule(cx, &item, Kind::TLSRoute) {
                rules.push(rule);
            }
        }
    }
    t.finish(cx);
    doc.tls_routes.push(TlsRoute {
        meta,
        parent_refs,
        hostnames,
        rules,
    });
}

/// A TCPRoute or UDPRoute (`kind`): parentRefs and 1 to 16 rules (v1alpha2), each with 1 to
/// 16 backendRefs and a name unique in the route. It has no hostnames: TCP and UDP listeners
/// have none to match.
pub(super) fn l4_route(
    cx: &mut Cx<'_>,
    mut t: Table<'_, '_>,
    kind: Kind,
    meta: Meta,
    doc: &mut Document,
) {
    let parent_refs = parent_refs(cx, &mut t);
    let mut rules: Vec<TlsRule> = Vec::new();
    if let Some(v) = t.req(cx, "rules") {
        let items = v.array_max(cx, 16).unwrap_or_default();
        if items.is_empty() && v.v.get_ref().is_array() {
            v.error(cx, format!("a {kind} needs at least one rule"));
        }
        for item in items {
            let Some(rule) = l4_rule(cx, &item, kind) else {
                continue;
            };
            if let Some(name) = &rule.name
                && rules.iter().any(|r| r.name.as_ref() == Some(name))
            {
                item.error(
                    cx,
                    format!("rule name \"{name}\" is used twice in this route"),
                );
                continue;
            }
            rules.push(rule);
        }
    }
    t.finish(cx);
    let route = L4Route {
        kind,
        meta,
        parent_refs,
        rules,
    };
    if kind == Kind::UDPRoute {
        doc.udp_routes.push(route);
    } else {
        doc.tcp_routes.push(route);
    }
}

/// A TLSRoute, TCPRoute or UDPRoute rule: an optional name and 1 to 16 backendRefs (no
/// filters). A UDPRoute rule may also set `timeouts = { idle = "5s" }` (a gatehouse
/// extension: how long a client flow may stay silent).
fn l4_rule(cx: &mut Cx<'_>, item: &Value<'_, '_>, kind: Kind) -> Option<TlsRule> {
    let mut r = item.table(cx)?;
    let name = rule_name(cx, &mut r);
    let mut backend_refs = Vec::new();
    if let Some(b) = r.req(cx, "backendRefs") {
        let items = b.array_max(cx, 16).unwrap_or_default();
        if items.is_empty() && b.v.get_ref().is_array() {
            b.error(cx, format!("a {kind} rule needs at least one backendRef"));
        }
        for item in items {
            if let Some(br) = backend_ref(cx, &item, false) {
                backend_refs.push(br);
            }
        }
    }
    let idle_timeout = if kind == Kind::UDPRoute {
        r.get("timeouts").and_then(|v| idle_timeout(cx, &v))
    } else {
        None
    };
    r.finish(cx);
    Some(TlsRule {
        name,
        backend_refs,
        idle_timeout,
    })
}

/// A UDPRoute rule's `timeouts = { idle = "..." }`: a positive duration.
fn idle_timeout(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<std::time::Duration> {
    let mut t = v.table(cx)?;
    let idle_v = t.get("idle");
    t.finish(cx);
    let idle_v = idle_v?;
    let d = duration(cx, &idle_v)?;
    if d.is_zero() {
        idle_v.error(
            cx,
            "idle must be longer than \"0s\": a flow needs time for its reply",
        );
        return None;
    }
    Some(d)
}

fn rule_name(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> Option<String> {
    let v = t.get("name")?;
    let s = v.string(cx)?;
    validate::section_name(&s)
        .map_err(|e| v.error(cx, e))
        .ok()?;
    Some(s)
}

fn parent_refs(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> Vec<ParentRef> {
    let mut refs: Vec<ParentRef> = Vec::new();
    for item in t
        .get("parentRefs")
        .and_then(|v| v.array_max(cx, 32))
        .unwrap_or_default()
    {
        let Some(mut p) = item.table(cx) else {
            continue;
        };
        let group = p
            .opt_str(cx, "group")
            .unwrap_or_else(|| GATEWAY_GROUP.to_string());
        let kind = p
            .opt_str(cx, "kind")
            .unwrap_or_else(|| "Gateway".to_string());
        let namespace = super::opt_namespace(cx, &mut p);
        let name = p.req_str(cx, "name");
        let section_name = rule_name_key(cx, &mut p, "sectionName");
        let port = p.get("port").and_then(|v| v.port(cx));
        p.finish(cx);
        let Some(name) = name else { continue };
        let r = ParentRef {
            group,
            kind,
            namespace,
            name,
            section_name,
            port,
        };
        let same_parent = refs.iter().find(|o| {
            o.group == r.group && o.kind == r.kind && o.namespace == r.namespace && o.name == r.name
        });
        if let Some(o) = same_parent {
            let unspecific = |x: &ParentRef| x.section_name.is_none() && x.port.is_none();
            if unspecific(o) || unspecific(&r) {
                item.error(cx, format!("parentRefs name Gateway \"{}\" more than once: each must set a distinct sectionName or port", r.name));
                continue;
            }
            if o.section_name == r.section_name && o.port == r.port {
                item.error(
                    cx,
                    format!("parentRef to Gateway \"{}\" is listed twice", r.name),
                );
                continue;
            }
        }
        refs.push(r);
    }
    refs
}

fn rule_name_key(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &'static str) -> Option<String> {
    let v = t.get(key)?;
    let s = v.string(cx)?;
    validate::section_name(&s)
        .map_err(|e| v.error(cx, e))
        .ok()?;
    Some(s)
}

/// Route hostnames: at most 16 on an HTTPRoute; 1 to 1024, required, on a TLSRoute.
fn hostnames(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, required: bool) -> Vec<Hostname> {
    let max = if required { 1024 } else { 16 };
    let v = if required {
        t.req(cx, "hostnames")
    } else {
        t.get("hostnames")
    };
    let Some(v) = v else { return Vec::new() };
    let mut out: Vec<Hostname> = Vec::new();
    let items = v.strings(cx).unwrap_or_default();
    if items.len() > max {
        v.error(
            cx,
            format!("must have at most {max} entries, found {}", items.len()),
        );
    }
    if required && items.is_empty() && v.v.get_ref().is_array() {
        v.error(cx, "a TLSRoute needs at least one hostname");
    }
    for (s, item) in items {
        match Hostname::parse(&s) {
            Ok(h) if !out.contains(&h) => out.push(h),
            Ok(_) => item.error(cx, format!("hostname \"{s}\" is listed twice")),
            Err(e) => item.error(cx, format!("\"{s}\": {e}")),
        }
    }
    out
}

fn http_rule(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<HttpRule> {
    let mut t = v.table(cx)?;
    let name = rule_name(cx, &mut t);
    let mut matches = Vec::new();
    let mut ok = true;
    for item in t
        .get("matches")
        .and_then(|m| m.array_max(cx, 64))
        .unwrap_or_default()
    {
        match http_match(cx, &item) {
            Some(m) => matches.push(m),
            None => ok = false,
        }
    }
    if matches.is_empty() {
        matches.push(HttpMatch::default());
    }
    let filters_v = t.get("filters");
    let filters = filters_v
        .as_ref()
        .map(|f| filters(cx, f))
        .unwrap_or(Some(RawFilters::default()));
    let backends_v = t.get("backendRefs");
    let mut backend_refs = Vec::new();
    for item in backends_v
        .as_ref()
        .and_then(|b| b.array_max(cx, 16))
        .unwrap_or_default()
    {
        match backend_ref(cx, &item, true) {
            Some(b) => backend_refs.push(b),
            None => ok = false,
        }
    }
    let timeouts = match t.get("timeouts") {
        Some(tv) => timeouts(cx, &tv),
        None => Some(RouteTimeouts::default()),
    };
    t.finish(cx);
    let filters = filters?;
    if filters.filters.redirect.is_some()
        && let Some(b) = backends_v.as_ref().filter(|_| !backend_refs.is_empty())
    {
        b.error(
            cx,
            "a rule with a RequestRedirect filter must not have backendRefs",
        );
        ok = false;
    }
    // ReplacePrefixMatch needs exactly one PathPrefix match to know what it replaces.
    let uses_prefix_replacement = |f: &RawFilters| {
        let r = f.filters.redirect.as_ref().and_then(|r| r.path.as_ref());
        let w = f.filters.rewrite.as_ref().and_then(|r| r.path.as_ref());
        [r, w]
            .into_iter()
            .flatten()
            .any(|p| matches!(p, PathModifier::ReplacePrefixMatch(_)))
    };
    let prefix_rule_ok = matches.len() == 1 && matches!(matches[0].path, PathMatch::Prefix(_));
    let needs_prefix = uses_prefix_replacement(&filters)
        || backend_refs
            .iter()
            .any(|b| uses_prefix_replacement(&b.filters));
    if needs_prefix && !prefix_rule_ok {
        let at = filters_v.as_ref().or(backends_v.as_ref()).unwrap_or(v);
        at.error(
            cx,
            "ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix",
        );
        ok = false;
    }
    (ok).then_some(())?;
    Some(HttpRule {
        name,
        matches,
        filters,
        backend_refs,
        timeouts: timeouts?,
    })
}

/// Compiles a match pattern so it must match the whole value.
fn anchored_regex(cx: &mut Cx<'_>, v: &Value<'_, '_>, pattern: &str) -> Option<Regex> {
    match Regex::new(&format!("^(?:{pattern})$")) {
        Ok(re) => Some(re),
        Err(e) => {
            let detail = e.to_string();
            let last = detail.lines().last().unwrap_or("invalid").trim();
            let last = last.strip_prefix("error: ").unwrap_or(last).to_string();
            v.error(
                cx,
                format!("invalid regular expression \"{pattern}\": {last}"),
            );
            None
        }
    }
}

fn http_match(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<HttpMatch> {
    let mut t = v.table(cx)?;
    let mut ok = true;
    let path = match t.get("path") {
        None => Some(PathMatch::Prefix(String::new())),
        Some(pv) => path_match(cx, &pv),
    };
    let mut headers: Vec<(String, ValueMatch)> = Vec::new();
    for item in t
        .get("headers")
        .and_then(|h| h.array_max(cx, 16))
        .unwrap_or_default()
    {
        match name_value_match(cx, &item, true) {
            Some((name, m)) => {
                let name = name.to_ascii_lowercase();
                // Only the first entry for a name counts.
                if !headers.iter().any(|(n, _)| *n == name) {
                    headers.push((name, m));
                }
            }
            None => ok = false,
        }
    }
    let mut query_params: Vec<(String, ValueMatch)> = Vec::new();
    for item in t
        .get("queryParams")
        .and_then(|q| q.array_max(cx, 16))
        .unwrap_or_default()
    {
        match name_value_match(cx, &item, false) {
            Some((name, m)) => {
                if !query_params.iter().any(|(n, _)| *n == name) {
                    query_params.push((name, m));
                }
            }
            None => ok = false,
        }
    }
    let method = t
        .get("method")
        .and_then(|m| one_of(cx, &m, &validate::METHODS));
    let method_bad = t.has("method") && method.is_none();
    t.finish(cx);
    if !ok || method_bad {
        return None;
    }
    Some(HttpMatch {
        path: path?,
        method,
        headers,
        query_params,
    })
}

fn path_match(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<PathMatch> {
    let mut t = v.table(cx)?;
    let kind = match t.get("type") {
        Some(k) => one_of(cx, &k, &["Exact", "PathPrefix", "RegularExpression"]),
        None => Some("PathPrefix".to_string()),
    };
    let value_v = t.get("value");
    let value = match &value_v {
        Some(x) => x.string(cx),
        None => Some("/".to_string()),
    };
    t.finish(cx);
    let (kind, value) = (kind?, value?);
    let at = value_v.as_ref().unwrap_or(v);
    match kind.as_str() {
        "RegularExpression" => anchored_regex(cx, at, &value).map(PathMatch::RegularExpression),
        _ => {
            if let Err(e) = validate::path_value(&value) {
                at.error(cx, e);
                return None;
            }
            Some(if kind == "Exact" {
                PathMatch::Exact(value)
            } else {
                PathMatch::prefix(&value)
            })
        }
    }
}

fn name_value_match(
    cx: &mut Cx<'_>,
    v: &Value<'_, '_>,
    header: bool,
) -> Option<(String, ValueMatch)> {
    let mut t = v.table(cx)?;
    let kind = match t.get("type") {
        Some(k) => one_of(cx, &k, &["Exact", "RegularExpression"]),
        None => Some("Exact".to_string()),
    };
    let name_v = t.req(cx, "name");
    let name = name_v.as_ref().and_then(|n| {
        let s = n.string(cx)?;
        let check = if header {
            validate::header_name(&s)
        } else if s.is_empty() || s.len() > 256 {
            Err("query parameter names must be 1 to 256 characters".to_string())
        } else {
            Ok(())
        };
        check.map_err(|e| n.error(cx, e)).ok()?;
        Some(s)
    });
    let value_v = t.req(cx, "value");
    let value = value_v.as_ref().and_then(|x| x.string(cx));
    t.finish(cx);
    let (kind, name, value, value_v) = (kind?, name?, value?, value_v?);
    let m = if kind == "RegularExpression" {
        ValueMatch::RegularExpression(anchored_regex(cx, &value_v, &value)?)
    } else {
        if value.len() > 4096 {
            value_v.error(cx, "must be at most 4096 characters");
            return None;
        }
        ValueMatch::Exact(value)
    };
    Some((name, m))
}

fn timeouts(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<RouteTimeouts> {
    let mut t = v.table(cx)?;
    let request_v = t.get("request");
    let request = request_v.as_ref().map(|r| duration(cx, r));
    let backend_v = t.get("backendRequest");
    let backend = backend_v.as_ref().map(|r| duration(cx, r));
    t.finish(cx);
    let request = match request {
        Some(d) => Some(d?),
        None => None,
    };
    let backend_request = match backend {
        Some(d) => Some(d?),
        None => None,
    };
    if let (Some(r), Some(b), Some(bv)) = (request, backend_request, &backend_v)
        && !r.is_zero()
        && b > r
    {
        bv.error(
            cx,
            "backendRequest must not be longer than request (unless request is \"0s\")",
        );
        return None;
    }
    Some(RouteTimeouts {
        request,
        backend_request,
    })
}

pub(super) fn backend_object_ref(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    at: &Value<'_, '_>,
) -> Option<BackendObjectRef> {
    let group = t.opt_str(cx, "group").unwrap_or_default();
    let kind = t
        .opt_str(cx, "kind")
        .unwrap_or_else(|| "Service".to_string());
    let name = t.req_str(cx, "name");
    let namespace = super::opt_namespace(cx, t);
    let port = t.get("port").and_then(|p| p.port(cx));
    if group.is_empty() && kind == "Service" && port.is_none() && !t.has("port") {
        at.error(cx, "`port` is required when the backend is a Service");
        return None;
    }
    Some(BackendObjectRef {
        object: crate::raw::ObjectRef {
            group,
            kind,
            name: name?,
            namespace,
        },
        port,
    })
}

fn backend_ref(cx: &mut Cx<'_>, v: &Value<'_, '_>, http: bool) -> Option<BackendRef> {
    let mut t = v.table(cx)?;
    let backend = backend_object_ref(cx, &mut t, v);
    let weight = match t.get("weight") {
        Some(w) => w.int_in(cx, 0, 1_000_000).map(|n| n as u32),
        None => Some(1),
    };
    let filters = if http {
        t.get("filters")
            .map(|f| filters(cx, &f))
            .unwrap_or(Some(RawFilters::default()))
    } else {
        Some(RawFilters::default())
    };
    t.finish(cx);
    let filters = filters?;
    if filters.filters.redirect.is_some() && filters.filters.rewrite.is_some() {
        v.error(
            cx,
            "RequestRedirect and URLRewrite filters cannot be combined",
        );
        return None;
    }
    Some(BackendRef {
        backend: backend?,
        weight: weight?,
        filters,
    })
}
