//! Applying compiled HTTPRoute filters to pingora request and response headers.

use gatehouse_model::filter::{HeaderModifier, PathModifier, UrlRewrite};
use http::uri::{PathAndQuery, Uri};
use pingora_http::{RequestHeader, ResponseHeader};

/// The header operations both request and response headers support.
pub trait HeaderMut {
    fn set(&mut self, name: &str, value: &str);
    fn add(&mut self, name: &str, value: &str);
    fn remove(&mut self, name: &str);
}

/// Request and response headers share the same header operations.
macro_rules! header_mut {
    ($($t:ty),*) => {$(
        impl HeaderMut for $t {
            fn set(&mut self, name: &str, value: &str) {
                let _ = self.insert_header(name.to_string(), value);
            }
            fn add(&mut self, name: &str, value: &str) {
                let _ = self.append_header(name.to_string(), value);
            }
            fn remove(&mut self, name: &str) {
                self.remove_header(name);
            }
        }
    )*};
}

header_mut!(RequestHeader, ResponseHeader);

/// RequestHeaderModifier / ResponseHeaderModifier: set replaces every value, add appends a
/// value, remove drops every value; names are case-insensitive.
pub fn modify_headers(h: &mut impl HeaderMut, m: &HeaderModifier) {
    for (name, value) in &m.set {
        h.set(name, value);
    }
    for (name, value) in &m.add {
        h.add(name, value);
    }
    for name in &m.remove {
        h.remove(name);
    }
}

/// URLRewrite: the Host (and, for HTTP/2, the authority) and the path; the query is kept.
pub fn rewrite(req: &mut RequestHeader, rw: &UrlRewrite, matched_prefix: Option<&str>) {
    if let Some(host) = &rw.hostname {
        let _ = req.insert_header(http::header::HOST, host.as_str());
        if req.uri.authority().is_some() {
            let mut parts = req.uri.clone().into_parts();
            if let Ok(a) = host.parse() {
                parts.authority = Some(a);
                if let Ok(uri) = Uri::from_parts(parts) {
                    req.set_uri(uri);
                }
            }
        }
    }
    if let Some(m) = &rw.path {
        modify_path(req, m, matched_prefix);
    }
}

fn modify_path(req: &mut RequestHeader, m: &PathModifier, matched_prefix: Option<&str>) {
    let path = m.apply(req.uri.path(), matched_prefix);
    set_path(req, &path);
}

/// Replaces the request's path, keeping its query.
pub fn set_path(req: &mut RequestHeader, path: &str) {
    let pq = match req.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = req.uri.clone().into_parts();
    match PathAndQuery::try_from(pq) {
        Ok(pq) => parts.path_and_query = Some(pq),
        Err(_) => return,
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        req.set_uri(uri);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_modifier_sets_adds_and_removes() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("x-header-set", "some-other-value")
            .unwrap();
        req.insert_header("x-header-add", "some-other-value")
            .unwrap();
        req.insert_header("X-Header-Remove", "x").unwrap();
        modify_headers(
            &mut req,
            &HeaderModifier {
                set: vec![("X-Header-Set".into(), "set-overwrites-values".into())],
                add: vec![("X-Header-Add".into(), "add-appends-values".into())],
                remove: vec!["x-header-remove".into()],
            },
        );
        let values = |n: &str| {
            req.headers
                .get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(values("x-header-set"), ["set-overwrites-values"]);
        assert_eq!(
            values("x-header-add"),
            ["some-other-value", "add-appends-values"]
        );
        assert!(values("x-header-remove").is_empty());
    }

    #[test]
    fn rewrite_keeps_the_query_and_replaces_the_prefix() {
        let mut req = RequestHeader::build("GET", b"/prefix/one/two?a=b", None).unwrap();
        rewrite(
            &mut req,
            &UrlRewrite {
                hostname: Some("one.example.org".into()),
                path: Some(PathModifier::ReplacePrefixMatch("/one".into())),
            },
            Some("/prefix/one"),
        );
        assert_eq!(req.uri.to_string(), "/one/two?a=b");
        assert_eq!(req.headers.get("host").unwrap(), "one.example.org");
    }
}
