//! BackendTLSPolicy and the ConfigMap stand-in its CA certificates come from.
//!
//! The schema rules are the Gateway API's (v1): targetRefs 1 to 16, distinct, with the two
//! sectionName CEL rules; `validation.hostname` a precise hostname; exactly one of
//! `caCertificateRefs` (at most 8) and `wellKnownCACertificates` ("System"); up to 5
//! subjectAltNames, each with exactly the field its `type` names; up to 16 `options`.

use super::{one_of, string_map};
use crate::decode::{Cx, Table, Value};
use crate::raw::{
    BackendTlsPolicy, BackendTlsValidation, CaSource, ConfigMap, Document, Meta, ObjectRef,
    PolicyTargetRef,
};
use crate::validate;
use gatehouse_model::backend_tls::SubjectAltName;
use gatehouse_model::hostname::Hostname;
use std::path::PathBuf;

/// An optional file path, resolved against the folder of the file being decoded.
pub(super) fn path_value(
    cx: &mut Cx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
) -> Option<PathBuf> {
    let v = t.get(key)?;
    let s = v.string(cx)?;
    if s.is_empty() {
        v.error(cx, "must not be empty");
        return None;
    }
    let base = cx
        .src
        .path
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    Some(base.join(s))
}

pub(super) fn config_map(cx: &mut Cx<'_>, mut t: Table<'_, '_>, meta: Meta, doc: &mut Document) {
    let ca_file = path_value(cx, &mut t, "caFile");
    let data_v = t.get("data");
    let data = data_v.as_ref().map(|v| string_map(cx, v, false));
    t.finish(cx);
    let inline = data.and_then(|mut d| d.remove("ca.crt"));
    let ca = match (ca_file, inline) {
        (Some(_), Some(_)) => {
            if let Some(v) = &data_v {
                v.error(
                    cx,
                    "`caFile` and `data.\"ca.crt\"` are two sources for one key: give one",
                );
            }
            None
        }
        (Some(f), None) => Some(CaSource::File(f)),
        (None, Some(text)) => Some(CaSource::Inline(text)),
        (None, None) => None,
    };
    doc.config_maps.push(ConfigMap { meta, ca });
}

pub(super) fn backend_tls_policy(
    cx: &mut Cx<'_>,
    mut t: Table<'_, '_>,
    meta: Meta,
    doc: &mut Document,
) {
    let target_refs = t
        .req(cx, "targetRefs")
        .and_then(|v| target_refs(cx, &v))
        .unwrap_or_default();
    let validation = t.req(cx, "validation").and_then(|v| validation(cx, &v));
    let options = match t.get("options") {
        Some(v) => {
            let m = string_map(cx, &v, false);
            if m.len() > 16 {
                v.error(
                    cx,
                    format!("must have at most 16 entries, found {}", m.len()),
                );
            }
            m
        }
        None => Default::default(),
    };
    t.finish(cx);
    if let Some(validation) = validation {
        doc.backend_tls_policies.push(BackendTlsPolicy {
            meta,
            target_refs,
            validation,
            options,
        });
    }
}

fn target_refs(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<Vec<PolicyTargetRef>> {
    let items = v.array_max(cx, 16)?;
    if items.is_empty() {
        v.error(cx, "must have at least one entry");
    }
    let mut refs: Vec<PolicyTargetRef> = Vec::new();
    for item in items {
        let Some(mut r) = item.table(cx) else {
            continue;
        };
        let group = r.req_str(cx, "group");
        let kind = r.req_str(cx, "kind");
        let name = r.req(cx, "name").and_then(|v| {
            let s = v.string(cx)?;
            validate::object_name(&s).map_err(|e| v.error(cx, e)).ok()?;
            Some(s)
        });
        let section_name = r.get("sectionName").and_then(|v| {
            let s = v.string(cx)?;
            validate::section_name(&s)
                .map_err(|e| v.error(cx, e))
                .ok()?;
            Some(s)
        });
        r.finish(cx);
        let (Some(group), Some(kind), Some(name)) = (group, kind, name) else {
            continue;
        };
        let same_target =
            |o: &&PolicyTargetRef| o.group == group && o.kind == kind && o.name == name;
        if let Some(other) = refs.iter().find(same_target) {
            if other.section_name.is_none() != section_name.is_none() {
                item.error(
                    cx,
                    "sectionName must be specified when targetRefs includes 2 or more references to the same target",
                );
                continue;
            }
            if refs
                .iter()
                .filter(same_target)
                .any(|o| o.section_name == section_name)
            {
                item.error(
                    cx,
                    "sectionName must be unique when targetRefs includes 2 or more references to the same target",
                );
                continue;
            }
        }
        refs.push(PolicyTargetRef {
            group,
            kind,
            name,
            section_name,
        });
    }
    Some(refs)
}

fn validation(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<BackendTlsValidation> {
    let mut t = v.table(cx)?;
    let mut ca_certificate_refs = Vec::new();
    if let Some(list) = t.get("caCertificateRefs").and_then(|v| v.array_max(cx, 8)) {
        for item in list {
            let Some(mut r) = item.table(cx) else {
                continue;
            };
            let group = r.req_str(cx, "group");
            let kind = r.req_str(cx, "kind");
            let name = r.req_str(cx, "name");
            r.finish(cx);
            if let (Some(group), Some(kind), Some(name)) = (group, kind, name) {
                ca_certificate_refs.push(ObjectRef {
                    group,
                    kind,
                    name,
                    namespace: None,
                });
            }
        }
    }
    let well_known = t
        .get("wellKnownCACertificates")
        .and_then(|v| one_of(cx, &v, &["System"]));
    let hostname = t.req(cx, "hostname").and_then(|v| {
        let s = v.string(cx)?;
        match Hostname::parse(&s) {
            Ok(h) if !h.is_wildcard() => Some(s),
            Ok(_) => {
                v.error(cx, "must be a precise hostname: no wildcard");
                None
            }
            Err(e) => {
                v.error(cx, e.to_string());
                None
            }
        }
    });
    let mut subject_alt_names = Vec::new();
    if let Some(list) = t.get("subjectAltNames").and_then(|v| v.array_max(cx, 5)) {
        for item in list {
            if let Some(san) = subject_alt_name(cx, &item) {
                subject_alt_names.push(san);
            }
        }
    }
    // The Gateway API's two CEL rules: one source of trust, never both, never neither.
    let has_refs = t.has("caCertificateRefs") && !ca_certificate_refs.is_empty();
    let has_well_known = well_known.is_some();
    if has_refs && has_well_known {
        cx.error(
            &t.span(),
            &t.path,
            "must not contain both CACertificateRefs and WellKnownCACertificates",
        );
    } else if !has_refs && !has_well_known && !t.has("wellKnownCACertificates") {
        cx.error(
            &t.span(),
            &t.path,
            "must specify either CACertificateRefs or WellKnownCACertificates",
        );
    }
    t.finish(cx);
    Some(BackendTlsValidation {
        ca_certificate_refs,
        well_known_ca_certificates: well_known,
        hostname: hostname?,
        subject_alt_names,
    })
}

fn subject_alt_name(cx: &mut Cx<'_>, v: &Value<'_, '_>) -> Option<SubjectAltName> {
    let mut t = v.table(cx)?;
    let kind = t
        .req(cx, "type")
        .and_then(|v| one_of(cx, &v, &["Hostname", "URI"]));
    let hostname_v = t.get("hostname");
    let uri_v = t.get("uri");
    t.finish(cx);
    let kind = kind?;
    let hostname = hostname_v
        .as_ref()
        .and_then(|v| v.string(cx))
        .filter(|s| !s.is_empty());
    let uri = uri_v
        .as_ref()
        .and_then(|v| v.string(cx))
        .filter(|s| !s.is_empty());
    match (kind.as_str(), hostname, uri) {
        ("Hostname", None, _) => {
            v.error(
                cx,
                "SubjectAltName element must contain Hostname, if Type is set to Hostname",
            );
            None
        }
        ("URI", None, None) => {
            v.error(
                cx,
                "SubjectAltName element must contain URI, if Type is set to URI",
            );
            None
        }
        ("Hostname", Some(_), Some(_)) => {
            v.error(
                cx,
                "SubjectAltName element must not contain URI, if Type is not set to URI",
            );
            None
        }
        ("URI", Some(_), _) => {
            v.error(
                cx,
                "SubjectAltName element must not contain Hostname, if Type is not set to Hostname",
            );
            None
        }
        ("Hostname", Some(h), None) => match Hostname::parse(&h) {
            Ok(_) => Some(SubjectAltName::Hostname(h)),
            Err(e) => {
                if let Some(hv) = &hostname_v {
                    hv.error(cx, e.to_string());
                }
                None
            }
        },
        (_, None, Some(u)) => {
            if absolute_uri(&u) {
                Some(SubjectAltName::Uri(u))
            } else {
                if let Some(uv) = &uri_v {
                    uv.error(
                        cx,
                        format!("\"{u}\" is not an absolute URI (scheme:rest, e.g. spiffe://trust.domain/workload)"),
                    );
                }
                None
            }
        }
        _ => None,
    }
}

/// RFC 3986 absolute URI, as far as the Gateway API's `AbsoluteURI` pattern checks it: a
/// scheme (a letter, then letters, digits, `+`, `-`, `.`), a colon, and something after it.
fn absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::absolute_uri;

    #[test]
    fn subject_alt_name_uris_must_be_absolute() {
        assert!(absolute_uri("spiffe://cluster.local/ns/a/sa/b"));
        assert!(absolute_uri("urn:example:x"));
        assert!(!absolute_uri("cluster.local/ns/a"));
        assert!(!absolute_uri("1x://y"));
        assert!(!absolute_uri("spiffe:"));
        assert!(!absolute_uri("spiffe://a b"));
    }
}
