//! `[[Gateway]]`: listeners, addresses and the Gateway API's schema rules for them.

use super::{object_ref, one_of, string_map};
use crate::decode::{Cx, Table, Value};
use crate::raw::{
    Address, AllowedRoutes, Document, FromNamespaces, Gateway, LabelOp, LabelSelector, Listener,
    ListenerTls, Meta, ObjectRef, TlsMode,
};
use crate::validate;
use gatehouse_model::hostname::Hostname;
use gatehouse_model::resource::GATEWAY_GROUP;
use std::net::IpAddr;

pub(super) fn gateway(cx: &mut Cx<'_>, mut t: Table<'_, '_>, meta: Meta, doc: &mut Document) {
    let class_name = t.req_str(cx, "gatewayClassName");
    let mut listeners: Vec<Listener> = Vec::new();
    if let Some(v) = t.req(cx, "listeners") {
        let items = v.array_max(cx, 64).unwrap_or_default();
        if items.is_empty() && v.v.get_ref().is_array() {
            v.error(cx, "a Gateway needs at least one listener");
        }
        for item in items {
            let Some(l) = listener(cx, &item) else {
                continue;
            };
            if listeners.iter().any(|o| o.name == l.name) {
                item.error(cx, format!("listener name \"{}\" is used twice; listener names must be unique within a Gateway", l.name));
                continue;
            }
            if let Some(o) = listeners
                .iter()
                .find(|o| o.port == l.port && o.protocol == l.protocol && o.hostname == l.hostname)
            {
                item.error(
                    cx,
                    format!(
                        "listener \"{}\" has the same port, protocol and hostname as listener \"{}\"; the combination must be unique within a Gateway",
                        l.name, o.name
                    ),
                );
                continue;
            }
            listeners.push(l);
        }
    }
    let mut addresses: Vec<Address> = Vec::new();
    for item in t
        .get("addresses")
        .and_then(|v| v.array_max(cx, 16))
        .unwrap_or_default()
    {
        let Some(a) = address(cx, &item) else {
            continue;
        };
        if addresses
            .iter()
            .any(|o| o.kind == a.kind && o.value == a.value)
        {
            item.error(cx, format!("address \"{}\" is listed twice", a.value));
            continue;
        }
        addresses.push(a);
    }
    let mut has_infrastructure_parameters_ref = false;
    if let Some(v) = t.get("infrastructure")
        && let Some(mut inf) = v.table(cx)
    {
        if let Some(l) = inf.get("labels") {
            string_map(cx, &l, true);
        }
        if let Some(a) = inf.get("annotations") {
            string_map(cx, &a, false);
        }
        has_infrastructure_parameters_ref = inf
            .get("parametersRef")
            .and_then(|p| object_ref(cx, &p, "", false))
            .is_some();
        inf.finish(cx);
    }
    let backend_client_certificate_ref = t.get("tls").and_then(|v| gateway_tls(cx, &v));
    t.finish(cx);
    if let Some(class_name) = class_name {
        doc.gateways.push(Gateway {
            meta,
            class_name,
            listeners,
            addresses,
            has_infrastructure_parameters_ref,
            backend_client_certificate_ref,
        });
    }
}

/// `tls = { backend = { clientCertificateRef = { name, namespace } } }` (a Secret by default).
fn gateway_tls(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<ObjectRef> {
    let mut t = v.table(cx)?;
    let backend = t.get("backend").and_then(|b| {
        let mut bt = b.table(cx)?;
        let r = bt
            .get("clientCertificateRef")
            .and_then(|r| object_ref(cx, &r, "Secret", true));
        bt.finish(cx);
        r
    });
    t.finish(cx);
    backend
}

fn listener(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<Listener> {
    let mut t = v.table(cx)?;
    let name_v = t.req(cx, "name");
    let name = name_v.as_ref().and_then(|n| {
        let s = n.string(cx)?;
        validate::section_name(&s)
            .map_err(|e| n.error(cx, e))
            .ok()?;
        Some(s)
    });
    let hostname_v = t.get("hostname");
    let hostname = hostname_v.as_ref().and_then(|h| {
        let s = h.str(cx)?;
        Hostname::parse(s)
            .map_err(|e| h.error(cx, format!("\"{s}\": {e}")))
            .ok()
    });
    let port = t.req(cx, "port").and_then(|p| p.port(cx));
    let protocol_v = t.req(cx, "protocol");
    let protocol = protocol_v.as_ref().and_then(|p| p.string(cx));
    let tls_v = t.get("tls");
    let tls = tls_v.as_ref().and_then(|v| listener_tls(cx, v));
    let allowed_routes = match t.get("allowedRoutes") {
        Some(a) => allowed_routes(cx, &a),
        None => Some(AllowedRoutes {
            namespaces: FromNamespaces::Same,
            kinds: None,
        }),
    };
    t.finish(cx);

    // The Gateway API's cross-field (CEL) rules.
    let protocol = protocol?;
    let at = protocol_v.as_ref().unwrap_or(v);
    match protocol.as_str() {
        "HTTPS" => match (&tls, &tls_v) {
            (None, None) => at.error(cx, "an HTTPS listener needs `tls` with certificateRefs"),
            (Some(tls), Some(tv)) if tls.mode == TlsMode::Passthrough => {
                tv.error(cx, "an HTTPS listener terminates TLS: tls.mode must be \"Terminate\" (use protocol \"TLS\" for passthrough)")
            }
            _ => {}
        },
        "TLS" => {
            if let Some(tv) = &tls_v {
                if tv.v.get_ref().as_table().is_some_and(|t| t.get("mode").is_none()) {
                    tv.error(cx, "a TLS listener must set tls.mode (\"Passthrough\" or \"Terminate\")");
                }
            } else {
                at.error(cx, "a TLS listener needs `tls` with a mode (\"Passthrough\" or \"Terminate\")");
            }
        }
        "HTTP" | "TCP" | "UDP" => {
            if let Some(tv) = &tls_v {
                tv.error(cx, format!("`tls` is not allowed on {} listener", validate::with_article(&protocol)));
            }
        }
        _ => {}
    }
    if matches!(protocol.as_str(), "TCP" | "UDP")
        && let Some(h) = &hostname_v
    {
        h.error(
            cx,
            format!(
                "`hostname` is not allowed on {} listener",
                validate::with_article(&protocol)
            ),
        );
    }
    if let (Some(tls), Some(tv)) = (&tls, &tls_v)
        && tls.mode == TlsMode::Terminate
        && tls.certificate_refs.is_empty()
    {
        tv.error(
            cx,
            "tls.mode \"Terminate\" needs at least one entry in certificateRefs",
        );
    }
    Some(Listener {
        name: name?,
        hostname,
        port: port?,
        protocol,
        tls: if tls_v.is_some() { Some(tls?) } else { None },
        allowed_routes: allowed_routes?,
    })
}

fn listener_tls(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<ListenerTls> {
    let mut t = v.table(cx)?;
    let mode = match t.get("mode") {
        Some(m) => match one_of(cx, &m, &["Terminate", "Passthrough"])?.as_str() {
            "Passthrough" => TlsMode::Passthrough,
            _ => TlsMode::Terminate,
        },
        None => TlsMode::Terminate,
    };
    let mut certificate_refs = Vec::new();
    for item in t
        .get("certificateRefs")
        .and_then(|r| r.array_max(cx, 64))
        .unwrap_or_default()
    {
        if let Some(r) = object_ref(cx, &item, "Secret", true) {
            certificate_refs.push(r);
        }
    }
    t.finish(cx);
    Some(ListenerTls {
        mode,
        certificate_refs,
    })
}

fn allowed_routes(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<AllowedRoutes> {
    let mut t = v.table(cx)?;
    let mut namespaces = Some(FromNamespaces::Same);
    if let Some(nv) = t.get("namespaces") {
        namespaces = None;
        if let Some(mut n) = nv.table(cx) {
            let from = match n.get("from") {
                Some(f) => one_of(cx, &f, &["Same", "All", "Selector"]),
                None => Some("Same".to_string()),
            };
            let selector = n.get("selector").and_then(|s| label_selector(cx, &s));
            let has_selector = n.has("selector");
            n.finish(cx);
            namespaces = match from.as_deref() {
                Some("All") => Some(FromNamespaces::All),
                Some("Same") => Some(FromNamespaces::Same),
                Some("Selector") => match selector {
                    Some(s) => Some(FromNamespaces::Selector(s)),
                    None => {
                        if !has_selector {
                            nv.error(cx, "from = \"Selector\" needs a `selector`");
                        }
                        None
                    }
                },
                _ => None,
            };
        }
    }
    let kinds = t.get("kinds").and_then(|kv| {
        let items = kv.array_max(cx, 8)?;
        let mut out = Vec::new();
        for item in items {
            let mut k = item.table(cx)?;
            let group = k
                .opt_str(cx, "group")
                .unwrap_or_else(|| GATEWAY_GROUP.to_string());
            let kind = k.req_str(cx, "kind");
            k.finish(cx);
            out.push((group, kind?));
        }
        Some(out)
    });
    let had_kinds = t.has("kinds");
    t.finish(cx);
    if had_kinds && kinds.is_none() {
        return None;
    }
    Some(AllowedRoutes {
        namespaces: namespaces?,
        kinds,
    })
}

fn label_selector(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<LabelSelector> {
    let mut t = v.table(cx)?;
    let match_labels = t
        .get("matchLabels")
        .map(|m| string_map(cx, &m, true))
        .unwrap_or_default();
    let mut match_expressions = Vec::new();
    for item in t
        .get("matchExpressions")
        .and_then(|m| m.array(cx))
        .unwrap_or_default()
    {
        let Some(mut e) = item.table(cx) else {
            continue;
        };
        let key = e.req_str(cx, "key");
        let op = e
            .req(cx, "operator")
            .and_then(|o| one_of(cx, &o, &["In", "NotIn", "Exists", "DoesNotExist"]));
        let values: Vec<String> = e
            .get("values")
            .and_then(|v| v.strings(cx))
            .map(|l| l.into_iter().map(|(s, _)| s).collect())
            .unwrap_or_default();
        e.finish(cx);
        let op = match op.as_deref() {
            Some("In") => LabelOp::In,
            Some("NotIn") => LabelOp::NotIn,
            Some("Exists") => LabelOp::Exists,
            Some("DoesNotExist") => LabelOp::DoesNotExist,
            _ => continue,
        };
        let needs_values = matches!(op, LabelOp::In | LabelOp::NotIn);
        if needs_values == values.is_empty() {
            item.error(
                cx,
                "In and NotIn need `values`; Exists and DoesNotExist take none",
            );
            continue;
        }
        if let Some(key) = key {
            match_expressions.push((key, op, values));
        }
    }
    t.finish(cx);
    Some(LabelSelector {
        match_labels,
        match_expressions,
    })
}

fn address(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<Address> {
    let mut t = v.table(cx)?;
    let kind = t
        .opt_str(cx, "type")
        .unwrap_or_else(|| "IPAddress".to_string());
    let value_v = t.get("value");
    let value = value_v.as_ref().and_then(|x| x.string(cx));
    let interface = t.get("interface").and_then(|i| {
        let s = i.string(cx)?;
        let ok = !s.is_empty() && s.len() <= 15 && !s.contains(['/', ' ']);
        if !ok {
            i.error(cx, format!("\"{s}\" is not an interface name"));
        }
        ok.then_some(s)
    });
    t.finish(cx);
    if kind == "Hostname"
        && let (Some(s), Some(vv)) = (&value, &value_v)
        && let Err(e) = Hostname::parse(s).and_then(|h| {
            if h.is_wildcard() {
                Err(gatehouse_model::hostname::HostnameError::BadWildcard)
            } else {
                Ok(h)
            }
        })
    {
        vv.error(cx, format!("\"{s}\": {e}"));
        return None;
    }
    if kind == "IPAddress" {
        match (&value, &value_v) {
            (Some(s), Some(vv)) if s.parse::<IpAddr>().is_err() => {
                vv.error(cx, format!("\"{s}\" is not an IP address"));
                return None;
            }
            (None, None) => {
                v.error(cx, "an IPAddress entry needs a `value`");
                return None;
            }
            _ => {}
        }
    }
    Some(Address {
        kind,
        value: value.unwrap_or_default(),
        interface,
    })
}
