//! ReferenceGrant: whether an object in one namespace may refer to an object in another.
//!
//! The grant lives in the target's namespace; `from` entries and `to` entries are each ORed,
//! every field of an entry must match, and a `to` entry without a name allows every object
//! of its kind. References within one namespace need no grant.

use crate::raw::ReferenceGrant;

/// The referring side of a reference.
#[derive(Clone, Copy, Debug)]
pub struct From<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// The referenced side.
#[derive(Clone, Copy, Debug)]
pub struct To<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Whether `from` may refer to `to` under `grants`.
pub fn permitted(grants: &[ReferenceGrant], from: From<'_>, to: To<'_>) -> bool {
    if from.namespace == to.namespace {
        return true;
    }
    grants.iter().any(|g| {
        g.meta.namespace == to.namespace
            && g.from.iter().any(|f| {
                f.group == from.group && f.kind == from.kind && f.namespace == from.namespace
            })
            && g.to.iter().any(|t| {
                t.group == to.group
                    && t.kind == to.kind
                    && t.name.as_deref().is_none_or(|n| n == to.name)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::{GrantFrom, GrantTo, Meta};
    use gatehouse_model::Kind;

    fn grant(ns: &str, from: (&str, &str, &str), to: (&str, &str, Option<&str>)) -> ReferenceGrant {
        ReferenceGrant {
            meta: Meta {
                kind: Kind::ReferenceGrant,
                name: "g".into(),
                namespace: ns.into(),
                labels: Default::default(),
                file: 0,
                offset: 0,
                order: 0,
            },
            from: vec![GrantFrom {
                group: from.0.into(),
                kind: from.1.into(),
                namespace: from.2.into(),
            }],
            to: vec![GrantTo {
                group: to.0.into(),
                kind: to.1.into(),
                name: to.2.map(Into::into),
            }],
        }
    }

    const ROUTE: From<'static> = From {
        group: "gateway.networking.k8s.io",
        kind: "HTTPRoute",
        namespace: "infra",
    };
    const SVC: To<'static> = To {
        group: "",
        kind: "Service",
        namespace: "web",
        name: "web-backend",
    };

    #[test]
    fn same_namespace_needs_no_grant() {
        assert!(permitted(
            &[],
            ROUTE,
            To {
                namespace: "infra",
                ..SVC
            }
        ));
    }

    #[test]
    fn cross_namespace_reference_needs_a_grant_in_the_target_namespace() {
        assert!(!permitted(&[], ROUTE, SVC));
        let ok = grant(
            "web",
            ("gateway.networking.k8s.io", "HTTPRoute", "infra"),
            ("", "Service", Some("web-backend")),
        );
        assert!(permitted(std::slice::from_ref(&ok), ROUTE, SVC));
    }

    #[test]
    fn grant_without_name_allows_every_object_of_the_kind() {
        let all = grant(
            "web",
            ("gateway.networking.k8s.io", "HTTPRoute", "infra"),
            ("", "Service", None),
        );
        assert!(permitted(&[all], ROUTE, SVC));
    }

    #[test]
    fn grant_wrong_in_any_single_field_does_not_permit() {
        let g = "gateway.networking.k8s.io";
        for bad in [
            grant(
                "other",
                (g, "HTTPRoute", "infra"),
                ("", "Service", Some("web-backend")),
            ),
            grant(
                "web",
                ("wrong.group", "HTTPRoute", "infra"),
                ("", "Service", Some("web-backend")),
            ),
            grant(
                "web",
                (g, "Gateway", "infra"),
                ("", "Service", Some("web-backend")),
            ),
            grant(
                "web",
                (g, "HTTPRoute", "other"),
                ("", "Service", Some("web-backend")),
            ),
            grant(
                "web",
                (g, "HTTPRoute", "infra"),
                ("wrong.group", "Service", Some("web-backend")),
            ),
            grant(
                "web",
                (g, "HTTPRoute", "infra"),
                ("", "Secret", Some("web-backend")),
            ),
            grant(
                "web",
                (g, "HTTPRoute", "infra"),
                ("", "Service", Some("other")),
            ),
        ] {
            assert!(
                !permitted(std::slice::from_ref(&bad), ROUTE, SVC),
                "{bad:?}"
            );
        }
    }
}
