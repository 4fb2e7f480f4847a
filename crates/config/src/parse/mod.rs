//! Decoding: TOML text to the raw [`Document`], with every schema error located.
//!
//! Each file is parsed into toml's spanned tree; every top-level array is a resource kind
//! (`[[Gateway]]`, `[[HTTPRoute]]`, ...), and the daemon tables (`[admin]`, `[log]`,
//! `[runtime]`, `[announce]`, `[ha]`, ...) are read from `gatehouse.toml` only. The per-kind decoders
//! live in the sibling modules.

mod core;
mod filter;
mod gateway;
mod ha;
mod policy;
mod route;
mod settings;

use crate::decode::{Cx, Table, Value};
use crate::diag::{Diagnostic, KeyPath, SourceFile};
use crate::raw::{Document, Meta, ObjectRef};
use crate::validate;
use gatehouse_model::Kind;
use gatehouse_model::resource::DEFAULT_NAMESPACE;
use std::collections::BTreeMap;

pub(crate) const SETTINGS_TABLES: [&str; 9] = [
    "admin",
    "log",
    "runtime",
    "announce",
    "ha",
    "http",
    "limits",
    "forwarded",
    "proxyProtocol",
];

/// Decodes one file into `doc`. `is_main` marks `gatehouse.toml`, the only file that may hold
/// daemon settings. `order` counts resources across files (declaration order).
pub(crate) fn parse_file(
    file_index: usize,
    src: &SourceFile,
    is_main: bool,
    doc: &mut Document,
    order: &mut usize,
    diags: &mut Vec<Diagnostic>,
) {
    let (root, errors) = toml::de::DeTable::parse_recoverable(&src.text);
    if !errors.is_empty() {
        for e in errors {
            let offset = e.span().map_or(0, |s| s.start);
            let message = e.message().trim().to_string();
            diags.push(src.diagnostic(
                offset,
                &KeyPath::default(),
                format!("TOML syntax error: {message}"),
            ));
        }
        return;
    }
    let mut cx = Cx { src, diags };
    for (key, value) in root.get_ref().iter() {
        let name: &str = key.get_ref();
        let v = Value {
            v: value,
            path: KeyPath::root(name),
        };
        if let Some(kind) = Kind::from_name(name) {
            let Some(items) = resource_array(&mut cx, &v) else {
                continue;
            };
            for (i, item) in items.into_iter().enumerate() {
                *order += 1;
                let at = Position {
                    file: file_index,
                    order: *order,
                    index: i,
                };
                parse_resource(&mut cx, kind, item, at, doc);
            }
        } else if SETTINGS_TABLES.contains(&name) {
            if !is_main {
                cx.error(
                    &key.span(),
                    &KeyPath::root(name),
                    format!("[{name}] is a daemon setting and may appear only in gatehouse.toml"),
                );
                continue;
            }
            settings::parse(&mut cx, name, &v, &mut doc.settings);
        } else {
            let known: Vec<&str> = Kind::ALL
                .iter()
                .map(|k| k.as_str())
                .chain(SETTINGS_TABLES)
                .collect();
            let mut message = format!("unknown top-level key `{name}`");
            if let Some(near) = known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
                message.push_str(&format!(", did you mean `{near}`?"));
            } else {
                message.push_str(&format!(
                    " (resource kinds are {})",
                    Kind::ALL.map(|k| k.as_str()).join(", ")
                ));
            }
            cx.error(&key.span(), &KeyPath::root(name), message);
        }
    }
}

/// A resource array must be an array of tables (`[[Kind]]` or `Kind = [{...}]`).
fn resource_array<'a, 'i>(cx: &mut Cx<'_>, v: &Value<'a, 'i>) -> Option<Vec<Value<'a, 'i>>> {
    if v.v.get_ref().is_table() {
        let name = v.path.as_str().to_string();
        v.error(
            cx,
            format!("resources are arrays of tables: write [[{name}]], not [{name}]"),
        );
        return None;
    }
    v.array(cx)
}

struct Position {
    file: usize,
    order: usize,
    index: usize,
}

fn parse_resource(
    cx: &mut Cx<'_>,
    kind: Kind,
    item: Value<'_, '_>,
    at: Position,
    doc: &mut Document,
) {
    let Some(mut t) = item.table(cx) else {
        return;
    };
    let Some(meta) = parse_meta(cx, kind, &mut t, at) else {
        // Without a usable name the rest cannot be reported against the resource.
        return;
    };
    t.path = KeyPath::root(meta.key().to_string());
    match kind {
        Kind::GatewayClass => core::gateway_class(cx, t, meta, doc),
        Kind::Gateway => gateway::gateway(cx, t, meta, doc),
        Kind::HTTPRoute => route::http_route(cx, t, meta, doc),
        Kind::TLSRoute => route::tls_route(cx, t, meta, doc),
        Kind::TCPRoute | Kind::UDPRoute => route::l4_route(cx, t, kind, meta, doc),
        Kind::ReferenceGrant => core::reference_grant(cx, t, meta, doc),
        Kind::Service => core::service(cx, t, meta, doc),
        Kind::Secret => core::secret(cx, t, meta, doc),
        Kind::Namespace => core::namespace(cx, t, meta, doc),
        Kind::LoadBalancerIPPool => core::ip_pool(cx, t, meta, doc),
        Kind::BackendTLSPolicy => policy::backend_tls_policy(cx, t, meta, doc),
        Kind::ConfigMap => policy::config_map(cx, t, meta, doc),
    }
}

/// `name`, `namespace` and `labels`: the flattened metadata.
fn parse_meta(cx: &mut Cx<'_>, kind: Kind, t: &mut Table<'_, '_>, at: Position) -> Option<Meta> {
    t.path = KeyPath::root(format!("{kind}[{}]", at.index));
    let name_v = t.req(cx, "name");
    let name = name_v.as_ref().and_then(|v| v.string(cx));
    // A Namespace's name is a DNS label, stricter than other names.
    let check_name = |n: &str| match kind {
        Kind::Namespace => validate::namespace_name(n),
        _ => validate::object_name(n),
    };
    let name_ok = match (&name, &name_v) {
        (Some(n), Some(v)) => check_name(n).map_err(|e| v.error(cx, e)).is_ok(),
        _ => false,
    };
    let mut namespace = String::from(if kind.is_namespaced() {
        DEFAULT_NAMESPACE
    } else {
        ""
    });
    let namespace_v = if kind.is_namespaced() {
        t.get("namespace")
    } else {
        t.refuse("namespace")
    };
    if let Some(v) = namespace_v {
        if !kind.is_namespaced() {
            v.error(cx, format!("{kind} is not namespaced"));
        } else if let Some(ns) = v.string(cx) {
            match validate::namespace_name(&ns) {
                Ok(()) => namespace = ns,
                Err(e) => v.error(cx, e),
            }
        }
    }
    let labels = t
        .get("labels")
        .map(|v| string_map(cx, &v, true))
        .unwrap_or_default();
    let name = name.filter(|_| name_ok)?;
    Some(Meta {
        kind,
        name,
        namespace,
        labels,
        file: at.file,
        offset: t.span().start,
        order: at.order,
    })
}

/// A table of string values (labels, selectors).
fn string_map(cx: &mut Cx<'_>, v: &Value<'_, '_>, labels: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(toml::de::DeValue::Table(t)) = Some(v.v.get_ref()) else {
        v.error(
            cx,
            format!("expected a table, found {}", v.v.get_ref().type_str()),
        );
        return out;
    };
    for (k, val) in t.iter() {
        let key: &str = k.get_ref();
        let item = Value {
            v: val,
            path: v.path.key(key),
        };
        if let Some(s) = item.string(cx) {
            if labels && let Err(e) = validate::label(key, &s) {
                item.error(cx, e);
                continue;
            }
            out.insert(key.to_string(), s);
        }
    }
    out
}

/// An object reference with group and kind defaults (`group = ""`, `kind` as given).
fn object_ref(
    cx: &mut Cx<'_>,
    v: &Value<'_, '_>,
    default_kind: &str,
    namespaced: bool,
) -> Option<ObjectRef> {
    let mut t = v.table(cx)?;
    let group = t.opt_str(cx, "group").unwrap_or_default();
    let kind = t
        .opt_str(cx, "kind")
        .unwrap_or_else(|| default_kind.to_string());
    let name = t.req_str(cx, "name");
    let namespace = if namespaced {
        opt_namespace(cx, &mut t)
    } else {
        None
    };
    t.finish(cx);
    Some(ObjectRef {
        group,
        kind,
        name: name?,
        namespace,
    })
}

fn opt_namespace(cx: &mut Cx<'_>, t: &mut Table<'_, '_>) -> Option<String> {
    let v = t.get("namespace")?;
    let ns = v.string(cx)?;
    match validate::namespace_name(&ns) {
        Ok(()) => Some(ns),
        Err(e) => {
            v.error(cx, e);
            None
        }
    }
}

/// A string that must be one of `allowed`.
fn one_of(cx: &mut Cx<'_>, v: &Value<'_, '_>, allowed: &[&'static str]) -> Option<String> {
    #[cfg(test)]
    crate::decode::recorded::choice(allowed);
    let s = v.string(cx)?;
    if allowed.contains(&s.as_str()) {
        Some(s)
    } else {
        v.error(
            cx,
            format!(
                "\"{s}\" is not one of {}",
                allowed
                    .iter()
                    .map(|a| format!("\"{a}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        None
    }
}

/// A GEP-2257 duration value.
fn duration(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<std::time::Duration> {
    let s = v.str(cx)?;
    match validate::duration(s) {
        Ok(d) => Some(d),
        Err(e) => {
            v.error(cx, e);
            None
        }
    }
}
