//! `[[HTTPRoute]]` and `[[TLSRoute]]`: parentRefs, hostnames, rules, matches, filters and
//! backendRefs, with the Gateway API's schema (CEL) rules enforced as load errors.

use super::{duration, one_of};
use crate::decode::{Cx, Table, Value};
use crate::raw::{
    BackendObjectRef, BackendRef, Document, HttpRoute, HttpRule, Meta, Mirror, ParentRef,
    RawFilters, RouteTimeouts, TlsRoute, TlsRule,
};
use crate::validate;
use gatehouse_model::filter::{
    Cors, HeaderModifier, OriginPattern, PathModifier, Redirect, Scheme, UrlRewrite,
};
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
            let Some(mut r) = item.table(cx) else {
                continue;
            };
            let name = rule_name(cx, &mut r);
            let mut backend_refs = Vec::new();
            if let Some(b) = r.req(cx, "backendRefs") {
                let items = b.array_max(cx, 16).unwrap_or_default();
                if items.is_empty() && b.v.get_ref().is_array() {
                    b.error(cx, "a TLSRoute rule needs at least one backendRef");
                }
                for item in items {
                    if let Some(br) = backend_ref(cx, &item, false) {
                        backend_refs.push(br);
                    }
                }
            }
            r.finish(cx);
            rules.push(TlsRule { name, backend_refs });
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

fn backend_object_ref(
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

const FILTER_TYPES: [(&str, &str); 7] = [
    ("RequestHeaderModifier", "requestHeaderModifier"),
    ("ResponseHeaderModifier", "responseHeaderModifier"),
    ("RequestRedirect", "requestRedirect"),
    ("URLRewrite", "urlRewrite"),
    ("RequestMirror", "requestMirror"),
    ("CORS", "cors"),
    ("ExtensionRef", "extensionRef"),
];

fn filters(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<RawFilters> {
    let items = v.array_max(cx, 16)?;
    let mut out = RawFilters::default();
    let mut ok = true;
    let mut seen: Vec<String> = Vec::new();
    // The filter that made RequestRedirect and URLRewrite meet, if they do.
    let mut incompatible: Option<Value<'_, '_>> = None;
    for item in items {
        let Some(mut t) = item.table(cx) else {
            ok = false;
            continue;
        };
        let type_names: Vec<&str> = FILTER_TYPES.iter().map(|(t, _)| *t).collect();
        let kind = t.req(cx, "type").and_then(|k| one_of(cx, &k, &type_names));
        // Every config key is asked for, so a misplaced one is reported precisely below.
        let configs: Vec<(&str, Option<Value<'_, '_>>)> = FILTER_TYPES
            .iter()
            .map(|(ty, key)| (*ty, t.get(key)))
            .collect();
        t.finish(cx);
        let Some(kind) = kind else {
            ok = false;
            continue;
        };
        for (ty, config) in &configs {
            if *ty != kind
                && let Some(c) = config
            {
                c.error(
                    cx,
                    format!("only allowed when type is \"{ty}\" (this filter is \"{kind}\")"),
                );
                ok = false;
            }
        }
        if kind != "RequestMirror" && kind != "ExtensionRef" && seen.contains(&kind) {
            item.error(
                cx,
                format!("a {kind} filter may appear only once in a filter list"),
            );
            ok = false;
            continue;
        }
        let pair = if kind == "RequestRedirect" {
            "URLRewrite"
        } else {
            "RequestRedirect"
        };
        if (kind == "RequestRedirect" || kind == "URLRewrite") && seen.iter().any(|s| s == pair) {
            incompatible = Some(item.clone());
        }
        seen.push(kind.clone());
        let key = FILTER_TYPES
            .iter()
            .find(|(ty, _)| *ty == kind)
            .map(|(_, k)| *k)
            .unwrap_or("");
        let Some(config) = configs
            .into_iter()
            .find(|(ty, _)| *ty == kind)
            .and_then(|(_, c)| c)
        else {
            item.error(cx, format!("a {kind} filter needs `{key}`"));
            ok = false;
            continue;
        };
        let f = &mut out.filters;
        let parsed = match kind.as_str() {
            "RequestHeaderModifier" => {
                header_modifier(cx, &config).map(|m| f.request_headers = Some(m))
            }
            "ResponseHeaderModifier" => {
                header_modifier(cx, &config).map(|m| f.response_headers = Some(m))
            }
            "RequestRedirect" => redirect(cx, &config).map(|r| f.redirect = Some(r)),
            "URLRewrite" => url_rewrite(cx, &config).map(|r| f.rewrite = Some(r)),
            "RequestMirror" => mirror(cx, &config).map(|m| out.mirrors.push(m)),
            "CORS" => cors(cx, &config).map(|c| f.cors = Some(c)),
            _ => {
                let mut e = config.table(cx);
                let r = e.as_mut().and_then(|e| {
                    let group = e.req_str(cx, "group");
                    let kind = e.req_str(cx, "kind");
                    let name = e.req_str(cx, "name");
                    Some(crate::raw::ObjectRef {
                        group: group?,
                        kind: kind?,
                        name: name?,
                        namespace: None,
                    })
                });
                if let Some(e) = e {
                    e.finish(cx);
                }
                r.map(|r| out.extension_refs.push(r))
            }
        };
        ok &= parsed.is_some();
    }
    if let Some(second) =
        incompatible.filter(|_| out.filters.redirect.is_some() && out.filters.rewrite.is_some())
    {
        second.error(
            cx,
            "RequestRedirect and URLRewrite filters cannot be combined",
        );
        ok = false;
    }
    ok.then_some(out)
}

fn header_modifier(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<HeaderModifier> {
    let mut t = v.table(cx)?;
    let mut ok = true;
    let mut seen: Vec<String> = Vec::new();
    let mut pairs =
        |cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &'static str, seen: &mut Vec<String>| {
            let mut out = Vec::new();
            for item in t
                .get(key)
                .and_then(|l| l.array_max(cx, 16))
                .unwrap_or_default()
            {
                let Some(mut p) = item.table(cx) else {
                    ok = false;
                    continue;
                };
                let name_v = p.req(cx, "name");
                let name = name_v.as_ref().and_then(|n| {
                    let s = n.string(cx)?;
                    validate::header_name(&s).map_err(|e| n.error(cx, e)).ok()?;
                    Some(s)
                });
                let value_v = p.req(cx, "value");
                let value = value_v.as_ref().and_then(|x| {
                    let s = x.string(cx)?;
                    validate::header_value(&s)
                        .map_err(|e| x.error(cx, e))
                        .ok()?;
                    Some(s)
                });
                p.finish(cx);
                let (Some(name), Some(value)) = (name, value) else {
                    ok = false;
                    continue;
                };
                if seen.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
                    item.error(
                        cx,
                        format!("header \"{name}\" appears more than once in this filter"),
                    );
                    ok = false;
                    continue;
                }
                seen.push(name.clone());
                out.push((name, value));
            }
            out
        };
    let set = pairs(cx, &mut t, "set", &mut seen);
    let add = pairs(cx, &mut t, "add", &mut seen);
    let mut remove = Vec::new();
    for (name, item) in t
        .get("remove")
        .and_then(|r| r.strings(cx))
        .unwrap_or_default()
    {
        if let Err(e) = validate::header_name(&name) {
            item.error(cx, e);
            ok = false;
        } else if seen.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
            item.error(
                cx,
                format!("header \"{name}\" appears more than once in this filter"),
            );
            ok = false;
        } else {
            seen.push(name.clone());
            remove.push(name);
        }
    }
    t.finish(cx);
    ok.then_some(HeaderModifier { set, add, remove })
}

fn precise_hostname(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> Result<Option<String>, ()> {
    let Some(v) = t.get("hostname") else {
        return Ok(None);
    };
    let s = v.string(cx).ok_or(())?;
    match Hostname::parse(&s) {
        Ok(h) if !h.is_wildcard() => Ok(Some(s)),
        Ok(_) => {
            v.error(cx, "must be a precise hostname, without a wildcard");
            Err(())
        }
        Err(e) => {
            v.error(cx, format!("\"{s}\": {e}"));
            Err(())
        }
    }
}

fn path_modifier(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> Result<Option<PathModifier>, ()> {
    let Some(v) = t.get("path") else {
        return Ok(None);
    };
    let mut p = v.table(cx).ok_or(())?;
    let kind = p
        .req(cx, "type")
        .and_then(|k| one_of(cx, &k, &["ReplaceFullPath", "ReplacePrefixMatch"]));
    let full = p.get("replaceFullPath");
    let prefix = p.get("replacePrefixMatch");
    p.finish(cx);
    let kind = kind.ok_or(())?;
    let (wanted, other, other_key, key) = if kind == "ReplaceFullPath" {
        (full, prefix, "replacePrefixMatch", "replaceFullPath")
    } else {
        (prefix, full, "replaceFullPath", "replacePrefixMatch")
    };
    if let Some(o) = other {
        o.error(
            cx,
            format!("`{other_key}` is not allowed when type is \"{kind}\""),
        );
        return Err(());
    }
    let Some(w) = wanted else {
        v.error(cx, format!("type \"{kind}\" needs `{key}`"));
        return Err(());
    };
    let s = w.string(cx).ok_or(())?;
    let empty_ok = kind == "ReplacePrefixMatch" && s.is_empty();
    if !empty_ok {
        validate::path_value(&s).map_err(|e| w.error(cx, e))?;
    }
    Ok(Some(if kind == "ReplaceFullPath" {
        PathModifier::ReplaceFullPath(s)
    } else {
        PathModifier::ReplacePrefixMatch(s)
    }))
}

fn redirect(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<Redirect> {
    let mut t = v.table(cx)?;
    let scheme = match t.get("scheme") {
        Some(s) => match one_of(cx, &s, &["http", "https"]).as_deref() {
            Some("http") => Ok(Some(Scheme::Http)),
            Some(_) => Ok(Some(Scheme::Https)),
            None => Err(()),
        },
        None => Ok(None),
    };
    let hostname = precise_hostname(cx, &mut t);
    let path = path_modifier(cx, &mut t);
    let port = match t.get("port") {
        Some(p) => p.port(cx).map(Some).ok_or(()),
        None => Ok(None),
    };
    let status_code = match t.get("statusCode") {
        Some(s) => {
            let n = s.int(cx);
            match n {
                Some(c @ (301 | 302 | 303 | 307 | 308)) => Ok(c as u16),
                Some(c) => {
                    s.error(
                        cx,
                        format!("status code {c} is not one of 301, 302, 303, 307, 308"),
                    );
                    Err(())
                }
                None => Err(()),
            }
        }
        None => Ok(302),
    };
    t.finish(cx);
    Some(Redirect {
        scheme: scheme.ok()?,
        hostname: hostname.ok()?,
        port: port.ok()?,
        path: path.ok()?,
        status_code: status_code.ok()?,
    })
}

fn url_rewrite(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<UrlRewrite> {
    let mut t = v.table(cx)?;
    let hostname = precise_hostname(cx, &mut t);
    let path = path_modifier(cx, &mut t);
    t.finish(cx);
    Some(UrlRewrite {
        hostname: hostname.ok()?,
        path: path.ok()?,
    })
}

fn mirror(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<Mirror> {
    let mut t = v.table(cx)?;
    let backend = t.req(cx, "backendRef").and_then(|b| {
        let mut bt = b.table(cx)?;
        let r = backend_object_ref(cx, &mut bt, &b);
        bt.finish(cx);
        r
    });
    let percent_v = t.get("percent");
    let fraction_v = t.get("fraction");
    let mut sample = Some((100u32, 100u32));
    if let Some(p) = &percent_v {
        sample = p.int_in(cx, 0, 100).map(|n| (n as u32, 100));
    }
    if let Some(f) = &fraction_v {
        sample = f.table(cx).and_then(|mut ft| {
            let num = ft
                .req(cx, "numerator")
                .and_then(|n| n.int_in(cx, 0, i64::from(i32::MAX)));
            let den = match ft.get("denominator") {
                Some(d) => d.int_in(cx, 1, i64::from(i32::MAX)),
                None => Some(100),
            };
            ft.finish(cx);
            let (num, den) = (num?, den?);
            if num > den {
                f.error(cx, "numerator must not be greater than denominator");
                return None;
            }
            Some((num as u32, den as u32))
        });
    }
    t.finish(cx);
    if percent_v.is_some() && fraction_v.is_some() {
        v.error(cx, "set either `percent` or `fraction`, not both");
        return None;
    }
    let (numerator, denominator) = sample?;
    Some(Mirror {
        backend: backend?,
        numerator,
        denominator,
    })
}

fn cors(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<Cors> {
    let mut t = v.table(cx)?;
    let mut ok = true;
    let origins = cors_list(cx, &mut t, "allowOrigins", 64, &mut ok);
    let methods = cors_list(cx, &mut t, "allowMethods", 9, &mut ok);
    let headers = cors_list(cx, &mut t, "allowHeaders", 64, &mut ok);
    let expose = cors_list(cx, &mut t, "exposeHeaders", 64, &mut ok);
    let allow_credentials = t.opt_bool(cx, "allowCredentials").unwrap_or(false);
    let max_age = match t.get("maxAge") {
        Some(m) => m.int_in(cx, 1, i64::from(i32::MAX)).map(|n| n as u32),
        None => Some(5),
    };
    t.finish(cx);
    let mut allow_origins = Vec::new();
    for (s, item) in &origins {
        match OriginPattern::parse(s) {
            Some(p) => allow_origins.push(p),
            None => {
                item.error(cx, format!("\"{s}\" is not an origin such as \"https://www.example.com\" or \"https://*.example.com\""));
                ok = false;
            }
        }
    }
    for (s, item) in &methods {
        if s != "*" && !validate::METHODS.contains(&s.as_str()) {
            item.error(
                cx,
                format!(
                    "\"{s}\" is not an HTTP method ({})",
                    validate::METHODS.join(", ")
                ),
            );
            ok = false;
        }
    }
    for (s, item) in headers.iter().chain(expose.iter()) {
        if s != "*"
            && let Err(e) = validate::header_name(s)
        {
            item.error(cx, e);
            ok = false;
        }
    }
    let strings = |l: Vec<(String, Value<'_, '_>)>| l.into_iter().map(|(s, _)| s).collect();
    ok.then_some(Cors {
        allow_origins,
        allow_methods: strings(methods),
        allow_headers: strings(headers),
        expose_headers: strings(expose),
        allow_credentials,
        max_age: max_age?,
    })
}

/// A CORS list: at most `max` strings, `*` only alone.
fn cors_list<'a, 'i>(
    cx: &mut Cx<'_>,
    t: &mut Table<'a, 'i>,
    key: &'static str,
    max: usize,
    ok: &mut bool,
) -> Vec<(String, Value<'a, 'i>)> {
    let Some(lv) = t.get(key) else {
        return Vec::new();
    };
    let items = lv.strings(cx).unwrap_or_default();
    if items.len() > max {
        lv.error(cx, format!("must have at most {max} entries"));
        *ok = false;
    }
    if items.len() > 1 && items.iter().any(|(s, _)| s == "*") {
        lv.error(cx, "\"*\" must be the only entry when it is used");
        *ok = false;
    }
    items
}
