//! The kinds gatehouse stands in for: Service, Secret, ConfigMap, Namespace, and Cilium's
//! CiliumLoadBalancerIPPool. These do not copy across key for key:
//!
//! - a Service's `selector` names pods, and there are none: the Service gets an empty
//!   `endpoints` with a comment saying what to fill in (an `ExternalName` Service gets its
//!   name as the endpoint);
//! - a Secret's certificate, key and CA bundle become PEM files ([`SecretFile`]) that
//!   `certFile`, `keyFile` and `caFile` name;
//! - a pool's deprecated `cidrs` join its `blocks`.

use super::gateway::take_spec;
use super::tree::{Node, Obj, Resource, Shape, copy, join};
use super::{Cx, Meta, SecretFile};
use base64::Engine as _;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// Service fields the API server fills in: never the user's intent.
const SERVICE_SERVER_FIELDS: [&str; 4] =
    ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"];

/// Service fields whose default value is what gatehouse does anyway.
const SERVICE_DEFAULTS: [(&str, &str); 4] = [
    ("type", "ClusterIP"),
    ("sessionAffinity", "None"),
    ("internalTrafficPolicy", "Cluster"),
    ("publishNotReadyAddresses", "false"),
];

pub(super) fn service(cx: &mut Cx, obj: &mut Obj, _: &Meta, r: &mut Resource) -> bool {
    let Some(mut spec) = take_spec(cx, obj) else {
        return true;
    };
    if let Some(Value::Sequence(ports)) = spec.take("ports") {
        let mut list: Vec<Node> = Vec::new();
        for (i, p) in ports.into_iter().enumerate() {
            let path = format!("spec.ports[{i}]");
            let Some(port) = service_port(cx, p, &path) else {
                continue;
            };
            // DNS Services list 53 twice, for TCP and UDP: one entry serves both here.
            if list
                .iter()
                .any(|q| field(q, "port") == field(&port, "port"))
            {
                cx.warn(
                    &path,
                    "the same port again (for another protocol): gatehouse Service ports carry \
                     no protocol, so the first entry serves both; left out",
                );
                continue;
            }
            list.push(port);
        }
        r.push("ports", Node::Array(list));
    }
    let selector = spec.take("selector");
    let kind = spec
        .peek("type")
        .and_then(Value::as_str)
        .map(str::to_string);
    let external_name = spec.take_str(cx, "externalName");
    let (endpoints, comment) = match (kind.as_deref(), external_name, selector) {
        (Some("ExternalName"), Some(name), _) => {
            spec.drop_silently("type");
            (vec![Node::Str(name)], None)
        }
        (_, _, Some(Value::Mapping(selector))) => {
            let pairs: Vec<String> = selector
                .iter()
                .map(|(k, v)| format!("{}={}", plain(k), plain(v)))
                .collect();
            let comment = format!(
                "selector {}: gatehouse runs no pods. List the addresses of the backends this \
                 Service stands for (IP or DNS name, optionally \":port\").",
                pairs.join(",")
            );
            (Vec::new(), Some(comment))
        }
        _ => (
            Vec::new(),
            Some(
                "no selector: this Service's Endpoints or EndpointSlices were not converted. \
                 List the addresses of its backends."
                    .to_string(),
            ),
        ),
    };
    r.push("endpoints", Node::Array(endpoints));
    if let (Some(c), Some(f)) = (comment, r.fields.last_mut()) {
        f.comments.push(c);
    }
    if let Some(kind) = kind.filter(|k| k != "ClusterIP" && k != "ExternalName") {
        spec.drop_silently("type");
        cx.warn(
            "spec.type",
            &format!(
                "\"{kind}\" is not supported by gatehouse: its Services are backends only (a \
                 Gateway's `addresses` are what it serves on); left out"
            ),
        );
    }
    for key in SERVICE_SERVER_FIELDS {
        spec.drop_silently(key);
    }
    for (key, default) in SERVICE_DEFAULTS {
        if spec.peek(key).map(plain).as_deref() == Some(default) {
            spec.drop_silently(key);
        }
    }
    spec.finish(cx);
    true
}

/// `{ name, port, targetPort, appProtocol }`; `protocol = "TCP"` is the only one the TOML
/// has, so it is left out.
fn service_port(cx: &mut Cx, value: Value, path: &str) -> Option<Node> {
    let mut p = Obj::new(cx, value, path)?;
    let mut out = Vec::new();
    if let Some(n) = p
        .take("name")
        .and_then(|v| copy(cx, v, &p.child("name"), &Shape::Scalar))
    {
        out.push(("name".to_string(), n));
    }
    if let Some(n) = p
        .take("port")
        .and_then(|v| copy(cx, v, &p.child("port"), &Shape::Scalar))
    {
        out.push(("port".to_string(), n));
    }
    match p.take("targetPort") {
        Some(Value::Number(n)) if n.as_i64().is_some() => {
            out.push((
                "targetPort".into(),
                Node::Int(n.as_i64().unwrap_or_default()),
            ));
        }
        Some(v) => cx.warn(
            &p.child("targetPort"),
            &format!(
                "a named port ({}) is the pods' container port, and there are no pods; left \
                 out, so the endpoints are reached on `port` unless you add `targetPort`",
                plain(&v)
            ),
        ),
        None => {}
    }
    if let Some(n) = p
        .take("appProtocol")
        .and_then(|v| copy(cx, v, &p.child("appProtocol"), &Shape::Scalar))
    {
        out.push(("appProtocol".to_string(), n));
    }
    match p.take("protocol").as_ref().map(plain).as_deref() {
        None | Some("TCP") => {}
        Some("UDP") => {} // a UDPRoute sends datagrams to the port whatever its protocol
        Some(other) => cx.warn(
            &p.child("protocol"),
            &format!("\"{other}\" is not supported by gatehouse; left out"),
        ),
    }
    p.finish(cx);
    Some(Node::Table(out))
}

/// The value of `key` in a table node.
fn field<'a>(table: &'a Node, key: &str) -> Option<&'a Node> {
    match table {
        Node::Table(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

/// A scalar as text, for messages and comparisons.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// The data keys of a Secret and the file each becomes.
const SECRET_KEYS: [(&str, &str, &str); 3] = [
    ("tls.crt", "certFile", "crt"),
    ("tls.key", "keyFile", "key"),
    ("ca.crt", "caFile", "ca.crt"),
];

pub(super) fn secret(cx: &mut Cx, obj: &mut Obj, meta: &Meta, r: &mut Resource) -> bool {
    let secret_type = obj
        .take_str(cx, "type")
        .unwrap_or_else(|| "Opaque".to_string());
    let data = secret_data(cx, obj);
    if secret_type != "kubernetes.io/tls" && secret_type != "Opaque" {
        cx.warn(
            "type",
            &format!("a Secret of type \"{secret_type}\" is not supported by gatehouse; left out"),
        );
        return false;
    }
    if secret_type == "kubernetes.io/tls"
        && !(data.contains_key("tls.crt") && data.contains_key("tls.key"))
    {
        cx.warn(
            "data",
            "a kubernetes.io/tls Secret without tls.crt and tls.key; left out",
        );
        return false;
    }
    if !SECRET_KEYS.iter().any(|(k, ..)| data.contains_key(*k)) {
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        cx.warn(
            "data",
            &format!(
                "no tls.crt, tls.key or ca.crt (keys: {}): nothing gatehouse reads; left out",
                keys.join(", ")
            ),
        );
        return false;
    }
    r.push("type", Node::Str(secret_type));
    for (key, toml_key, ext) in SECRET_KEYS {
        let Some(contents) = data.get(key) else {
            continue;
        };
        let path = format!("certs/{}-{}.{ext}", meta.namespace, meta.name);
        cx.secret_files.push(SecretFile {
            path: path.clone().into(),
            contents: contents.clone(),
        });
        r.push(toml_key, Node::Str(path));
    }
    for key in data.keys() {
        if !SECRET_KEYS.iter().any(|(k, ..)| k == key) {
            cx.warn(&join("data", key), "not supported by gatehouse; left out");
        }
    }
    true
}

/// `data` (base64) and `stringData` (text, which wins), by key. Values are never reported:
/// they are secret.
fn secret_data(cx: &mut Cx, obj: &mut Obj) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (field, base64) in [("data", true), ("stringData", false)] {
        let Some(v) = obj.take(field) else { continue };
        let Value::Mapping(map) = v else {
            cx.warn(field, "expected a map; left out");
            continue;
        };
        for (k, v) in map {
            let (Value::String(k), Value::String(v)) = (k, v) else {
                cx.warn(field, "a key or value that is not a string; left out");
                continue;
            };
            let bytes = if base64 {
                let compact: String = v.split_whitespace().collect();
                match base64::engine::general_purpose::STANDARD.decode(compact) {
                    Ok(b) => b,
                    Err(e) => {
                        cx.error(format!("{}: not base64: {e}", join(field, &k)));
                        continue;
                    }
                }
            } else {
                v.into_bytes()
            };
            out.insert(k, bytes);
        }
    }
    out
}

pub(super) fn config_map(cx: &mut Cx, obj: &mut Obj, _: &Meta, r: &mut Resource) -> bool {
    if let Some(n) = obj
        .take("data")
        .and_then(|v| copy(cx, v, "data", &Shape::StringMap))
    {
        r.push("data", n);
    }
    true
}

pub(super) fn namespace(cx: &mut Cx, obj: &mut Obj, _: &Meta, _: &mut Resource) -> bool {
    if let Some(mut spec) = take_spec(cx, obj) {
        spec.drop_silently("finalizers"); // `kubernetes`, set by the API server
        spec.finish(cx);
    }
    true
}

pub(super) fn ip_pool(cx: &mut Cx, obj: &mut Obj, _: &Meta, r: &mut Resource) -> bool {
    const BLOCK: Shape = Shape::Object(&[
        ("cidr", Shape::Scalar),
        ("start", Shape::Scalar),
        ("stop", Shape::Scalar),
    ]);
    let Some(mut spec) = take_spec(cx, obj) else {
        return true;
    };
    let mut blocks = Vec::new();
    for key in ["blocks", "cidrs"] {
        if let Some(Node::Array(list)) = spec
            .take(key)
            .and_then(|v| copy(cx, v, &join("spec", key), &Shape::List(&BLOCK)))
        {
            blocks.extend(list);
        }
    }
    r.push("blocks", Node::Array(blocks));
    if spec.peek("disabled") == Some(&Value::Bool(false)) {
        spec.drop_silently("disabled");
    }
    if spec.take("serviceSelector").is_some() {
        cx.warn(
            "spec.serviceSelector",
            "gatehouse pools give addresses to Gateways, not Services; left out",
        );
    }
    spec.finish(cx);
    true
}
