//! HTTPRoute, TLSRoute, TCPRoute and UDPRoute copy across key for key ([`Shape`]s in the
//! order docs/configuration.md lists them); `rules` become `[[Kind.rules]]` tables. gatehouse
//! has no GRPCRoute: one is reported whole and left out.

use super::gateway::{OBJECT_REF, copy_spec};
use super::tree::{Obj, Resource, Shape};
use super::{Cx, Meta};
use serde_yaml_ng::Value;

use Shape::{List, Object, Scalar};

/// docs/configuration.md lists `namespace` before `name`; the name comes first here, as in
/// every example and in backendRefs.
const PARENT_REF: Shape = Object(&[
    ("group", Scalar),
    ("kind", Scalar),
    ("name", Scalar),
    ("namespace", Scalar),
    ("sectionName", Scalar),
    ("port", Scalar),
]);

const BACKEND_OBJECT_REF: Shape = Object(&[
    ("group", Scalar),
    ("kind", Scalar),
    ("name", Scalar),
    ("namespace", Scalar),
    ("port", Scalar),
]);

/// A TLSRoute, TCPRoute or UDPRoute backendRef: no filters.
const BACKEND_REF: Shape = Object(&[
    ("group", Scalar),
    ("kind", Scalar),
    ("name", Scalar),
    ("namespace", Scalar),
    ("port", Scalar),
    ("weight", Scalar),
]);

const HTTP_BACKEND_REF: Shape = Object(&[
    ("group", Scalar),
    ("kind", Scalar),
    ("name", Scalar),
    ("namespace", Scalar),
    ("port", Scalar),
    ("weight", Scalar),
    ("filters", List(&FILTER)),
]);

const NAME_VALUE: Shape = Object(&[("name", Scalar), ("value", Scalar)]);

const HEADER_MODIFIER: Shape = Object(&[
    ("set", List(&NAME_VALUE)),
    ("add", List(&NAME_VALUE)),
    ("remove", List(&Scalar)),
]);

const PATH_MODIFIER: Shape = Object(&[
    ("type", Scalar),
    ("replaceFullPath", Scalar),
    ("replacePrefixMatch", Scalar),
]);

const FILTER: Shape = Object(&[
    ("type", Scalar),
    ("requestHeaderModifier", HEADER_MODIFIER),
    ("responseHeaderModifier", HEADER_MODIFIER),
    (
        "requestRedirect",
        Object(&[
            ("scheme", Scalar),
            ("hostname", Scalar),
            ("port", Scalar),
            ("path", PATH_MODIFIER),
            ("statusCode", Scalar),
        ]),
    ),
    (
        "urlRewrite",
        Object(&[("hostname", Scalar), ("path", PATH_MODIFIER)]),
    ),
    (
        "requestMirror",
        Object(&[
            ("backendRef", BACKEND_OBJECT_REF),
            ("percent", Scalar),
            (
                "fraction",
                Object(&[("numerator", Scalar), ("denominator", Scalar)]),
            ),
        ]),
    ),
    (
        "cors",
        Object(&[
            ("allowOrigins", List(&Scalar)),
            ("allowMethods", List(&Scalar)),
            ("allowHeaders", List(&Scalar)),
            ("exposeHeaders", List(&Scalar)),
            ("allowCredentials", Scalar),
            ("maxAge", Scalar),
        ]),
    ),
    ("extensionRef", OBJECT_REF),
]);

const TYPE_NAME_VALUE: Shape = Object(&[("type", Scalar), ("name", Scalar), ("value", Scalar)]);

const HTTP_MATCH: Shape = Object(&[
    ("path", Object(&[("type", Scalar), ("value", Scalar)])),
    ("headers", List(&TYPE_NAME_VALUE)),
    ("queryParams", List(&TYPE_NAME_VALUE)),
    ("method", Scalar),
]);

const HTTP_RULE: Shape = Object(&[
    ("name", Scalar),
    ("matches", List(&HTTP_MATCH)),
    ("filters", List(&FILTER)),
    ("backendRefs", List(&HTTP_BACKEND_REF)),
    (
        "timeouts",
        Object(&[("request", Scalar), ("backendRequest", Scalar)]),
    ),
]);

const L4_RULE: Shape = Object(&[("name", Scalar), ("backendRefs", List(&BACKEND_REF))]);

const HTTP_ROUTE_SPEC: &[(&str, Shape)] = &[
    ("parentRefs", List(&PARENT_REF)),
    ("hostnames", List(&Scalar)),
    ("rules", List(&HTTP_RULE)),
];

const TLS_ROUTE_SPEC: &[(&str, Shape)] = &[
    ("parentRefs", List(&PARENT_REF)),
    ("hostnames", List(&Scalar)),
    ("rules", List(&L4_RULE)),
];

const L4_ROUTE_SPEC: &[(&str, Shape)] =
    &[("parentRefs", List(&PARENT_REF)), ("rules", List(&L4_RULE))];

pub(super) fn http_route(cx: &mut Cx, obj: &mut Obj, _: &Meta, r: &mut Resource) -> bool {
    if let Some(spec) = obj.peek("spec") {
        let refs = extension_refs(spec);
        for path in refs {
            cx.warn(
                &path,
                "not supported by gatehouse (it implements no extension): kept, and the rule answers 500",
            );
        }
    }
    copy_spec(cx, obj, HTTP_ROUTE_SPEC, &["rules"], r);
    true
}

/// The paths of the ExtensionRef filters of an HTTPRoute spec, on rules and backendRefs.
fn extension_refs(spec: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let filters = |v: &Value, at: &str, found: &mut Vec<String>| {
        let Some(list) = v.get("filters").and_then(Value::as_sequence) else {
            return;
        };
        for (j, f) in list.iter().enumerate() {
            if f.get("type").and_then(Value::as_str) == Some("ExtensionRef") {
                found.push(format!("{at}.filters[{j}].extensionRef"));
            }
        }
    };
    let rules = spec.get("rules").and_then(Value::as_sequence);
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let at = format!("spec.rules[{i}]");
        filters(rule, &at, &mut found);
        let backends = rule.get("backendRefs").and_then(Value::as_sequence);
        for (k, b) in backends.into_iter().flatten().enumerate() {
            filters(b, &format!("{at}.backendRefs[{k}]"), &mut found);
        }
    }
    found
}

pub(super) fn grpc_route(cx: &mut Cx, obj: &mut Obj, _: &Meta, _: &mut Resource) -> bool {
    obj.drop_silently("spec");
    cx.warn(
        "",
        "gatehouse has no GRPCRoute (an HTTPRoute matching POST /package.Service/Method on an \
         HTTPS listener, to a Service port with appProtocol kubernetes.io/h2c, comes closest); left out",
    );
    false
}

pub(super) fn tls_route(cx: &mut Cx, obj: &mut Obj, _: &Meta, r: &mut Resource) -> bool {
    copy_spec(cx, obj, TLS_ROUTE_SPEC, &["rules"], r);
    true
}

pub(super) fn tcp_route(cx: &mut Cx, obj: &mut Obj, _: &Meta, r: &mut Resource) -> bool {
    copy_spec(cx, obj, L4_ROUTE_SPEC, &["rules"], r);
    true
}

/// As TCPRoute: the Gateway API's UDPRoute has no timeouts, so gatehouse's `timeouts.idle`
/// extension is never written.
pub(super) fn udp_route(cx: &mut Cx, obj: &mut Obj, meta: &Meta, r: &mut Resource) -> bool {
    tcp_route(cx, obj, meta, r)
}
