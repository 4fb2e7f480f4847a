//! HTTPRoute filters, on rules and on backendRefs: each `{ type, <config> }` entry decoded
//! into its compiled form, with the Gateway API's rules (one config key matching the type,
//! each type at most once except RequestMirror, RequestRedirect never with URLRewrite).

use super::one_of;
use super::route::backend_object_ref;
use crate::decode::{Cx, Table, Value};
use crate::raw::{Mirror, RawFilters};
use crate::validate;
use gatehouse_model::filter::{
    Cors, HeaderModifier, OriginPattern, PathModifier, Redirect, Scheme, UrlRewrite,
};
use gatehouse_model::hostname::Hostname;

const FILTER_TYPES: [(&str, &str); 7] = [
    ("RequestHeaderModifier", "requestHeaderModifier"),
    ("ResponseHeaderModifier", "responseHeaderModifier"),
    ("RequestRedirect", "requestRedirect"),
    ("URLRewrite", "urlRewrite"),
    ("RequestMirror", "requestMirror"),
    ("CORS", "cors"),
    ("ExtensionRef", "extensionRef"),
];

pub(super) fn filters(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<RawFilters> {
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
