//! GatewayClass, Gateway, ReferenceGrant and BackendTLSPolicy: their specs copy across key
//! for key, so each is a [`Shape`] in the order docs/configuration.md lists the keys.

use super::tree::{Node, Obj, Resource, Shape, copy_keys};
use super::{Cx, Meta};
use crate::resolve::gateways::BUILTIN_CLASS;

use Shape::{List, Object, Scalar, StringMap};

/// `{ group, kind, name, namespace }`: certificateRefs, parametersRef.
pub(super) const OBJECT_REF: Shape = Object(&[
    ("group", Scalar),
    ("kind", Scalar),
    ("name", Scalar),
    ("namespace", Scalar),
]);

/// `{ group, kind, name }`: local references.
const LOCAL_REF: Shape = Object(&[("group", Scalar), ("kind", Scalar), ("name", Scalar)]);

const LABEL_SELECTOR: Shape = Object(&[
    ("matchLabels", StringMap),
    (
        "matchExpressions",
        List(&Object(&[
            ("key", Scalar),
            ("operator", Scalar),
            ("values", List(&Scalar)),
        ])),
    ),
]);

const LISTENER: Shape = Object(&[
    ("name", Scalar),
    ("protocol", Scalar),
    ("port", Scalar),
    ("hostname", Scalar),
    (
        "tls",
        Object(&[("mode", Scalar), ("certificateRefs", List(&OBJECT_REF))]),
    ),
    (
        "allowedRoutes",
        Object(&[
            (
                "namespaces",
                Object(&[("from", Scalar), ("selector", LABEL_SELECTOR)]),
            ),
            (
                "kinds",
                List(&Object(&[("group", Scalar), ("kind", Scalar)])),
            ),
        ]),
    ),
]);

const GATEWAY_SPEC: &[(&str, Shape)] = &[
    ("gatewayClassName", Scalar),
    ("listeners", List(&LISTENER)),
    (
        "addresses",
        List(&Object(&[("type", Scalar), ("value", Scalar)])),
    ),
    (
        "infrastructure",
        Object(&[
            ("labels", StringMap),
            ("annotations", StringMap),
            ("parametersRef", LOCAL_REF),
        ]),
    ),
    (
        "tls",
        Object(&[("backend", Object(&[("clientCertificateRef", OBJECT_REF)]))]),
    ),
];

const GATEWAY_CLASS_SPEC: &[(&str, Shape)] = &[
    ("controllerName", Scalar),
    ("description", Scalar),
    ("parametersRef", OBJECT_REF),
];

const REFERENCE_GRANT_SPEC: &[(&str, Shape)] = &[
    (
        "from",
        List(&Object(&[
            ("group", Scalar),
            ("kind", Scalar),
            ("namespace", Scalar),
        ])),
    ),
    ("to", List(&LOCAL_REF)),
];

const BACKEND_TLS_POLICY_SPEC: &[(&str, Shape)] = &[
    (
        "targetRefs",
        List(&Object(&[
            ("group", Scalar),
            ("kind", Scalar),
            ("name", Scalar),
            ("sectionName", Scalar),
        ])),
    ),
    (
        "validation",
        Object(&[
            ("caCertificateRefs", List(&LOCAL_REF)),
            ("wellKnownCACertificates", Scalar),
            ("hostname", Scalar),
            (
                "subjectAltNames",
                List(&Object(&[
                    ("type", Scalar),
                    ("hostname", Scalar),
                    ("uri", Scalar),
                ])),
            ),
        ]),
    ),
    ("options", StringMap),
];

/// Takes `spec` (reporting a missing one as empty) for the caller to read.
pub(super) fn take_spec(cx: &mut Cx, obj: &mut Obj) -> Option<Obj> {
    let v = obj.take("spec").unwrap_or(serde_yaml_ng::Value::Null);
    Obj::new(cx, v, "spec")
}

/// Copies `spec` by `keys` into `r`; the keys in `sections` become `[[Kind.key]]` tables.
pub(super) fn copy_spec(
    cx: &mut Cx,
    obj: &mut Obj,
    keys: &[(&'static str, Shape)],
    sections: &[&str],
    r: &mut Resource,
) {
    let Some(mut spec) = take_spec(cx, obj) else {
        return;
    };
    push_all(r, copy_keys(cx, &mut spec, keys), sections);
    spec.finish(cx);
}

pub(super) fn push_all(r: &mut Resource, fields: Vec<(String, Node)>, sections: &[&str]) {
    for (k, v) in fields {
        if sections.contains(&k.as_str()) {
            r.push_section(&k, v);
        } else {
            r.push(&k, v);
        }
    }
}

pub(super) fn gateway_class(cx: &mut Cx, obj: &mut Obj, meta: &Meta, r: &mut Resource) -> bool {
    if meta.name == BUILTIN_CLASS {
        obj.drop_silently("spec");
        cx.warn(
            "",
            "the GatewayClass \"gatehouse\" is built into gatehouse and cannot be redeclared; left out",
        );
        return false;
    }
    copy_spec(cx, obj, GATEWAY_CLASS_SPEC, &[], r);
    true
}

pub(super) fn gateway(cx: &mut Cx, obj: &mut Obj, _: &Meta, r: &mut Resource) -> bool {
    copy_spec(cx, obj, GATEWAY_SPEC, &["listeners"], r);
    true
}

pub(super) fn reference_grant(cx: &mut Cx, obj: &mut Obj, _: &Meta, r: &mut Resource) -> bool {
    copy_spec(cx, obj, REFERENCE_GRANT_SPEC, &[], r);
    true
}

pub(super) fn backend_tls_policy(cx: &mut Cx, obj: &mut Obj, _: &Meta, r: &mut Resource) -> bool {
    copy_spec(cx, obj, BACKEND_TLS_POLICY_SPEC, &[], r);
    true
}
