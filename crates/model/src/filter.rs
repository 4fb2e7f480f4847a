//! Compiled HTTPRoute filters and the pure parts of their semantics: path modifiers, the
//! redirect Location, and CORS origin matching.
//!
//! A rule (and each of its backendRefs) carries one [`Filters`] value; the data plane applies
//! it in the Gateway API order: CORS preflight, redirect, request header modifier, URL
//! rewrite, mirrors; then the response header modifier on the way back.

use crate::backend::BackendTarget;
use serde::Serialize;

/// All filters of one rule or one backendRef. Each kind may appear at most once, except
/// RequestMirror.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Filters {
    pub request_headers: Option<HeaderModifier>,
    pub response_headers: Option<HeaderModifier>,
    pub redirect: Option<Redirect>,
    pub rewrite: Option<UrlRewrite>,
    pub mirrors: Vec<Mirror>,
    pub cors: Option<Cors>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self == &Filters::default()
    }
}

/// RequestHeaderModifier / ResponseHeaderModifier: `set` replaces every value, `add` appends,
/// `remove` drops; names compare case-insensitively.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeaderModifier {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

/// How a redirect or rewrite changes the path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum PathModifier {
    ReplaceFullPath(String),
    /// Replaces the part of the path the rule's PathPrefix matched, element by element.
    ReplacePrefixMatch(String),
}

impl PathModifier {
    /// The new path for `path`, given the PathPrefix value the request matched (needed by
    /// ReplacePrefixMatch; the configuration guarantees there is one).
    pub fn apply(&self, path: &str, matched_prefix: Option<&str>) -> String {
        match self {
            PathModifier::ReplaceFullPath(full) => full.clone(),
            PathModifier::ReplacePrefixMatch(replacement) => {
                let prefix = matched_prefix.unwrap_or("/").trim_end_matches('/');
                let remainder = path.get(prefix.len()..).unwrap_or("");
                let mut out = replacement.trim_end_matches('/').to_string();
                out.push_str(remainder);
                if !out.starts_with('/') {
                    out.insert(0, '/');
                }
                out
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn well_known_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// RequestRedirect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Redirect {
    pub scheme: Option<Scheme>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<PathModifier>,
    /// 301, 302 (the default), 303, 307 or 308.
    pub status_code: u16,
}

/// What a redirect needs to know about the request it answers.
#[derive(Clone, Copy, Debug)]
pub struct RedirectRequest<'a> {
    pub scheme: Scheme,
    /// The Host header without its port.
    pub host: &'a str,
    /// The port of the listener that received the request.
    pub listener_port: u16,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The PathPrefix value the request matched, if any.
    pub matched_prefix: Option<&'a str>,
}

impl Redirect {
    /// The Location header: unset fields keep the request's values; the port is the filter's,
    /// else the well-known port of a scheme the filter sets, else the listener's; it is left
    /// out for http:80 and https:443. The query string is kept.
    pub fn location(&self, req: &RedirectRequest<'_>) -> String {
        let scheme = self.scheme.unwrap_or(req.scheme);
        let host = self.hostname.as_deref().unwrap_or(req.host);
        let port = match (self.port, self.scheme) {
            (Some(port), _) => port,
            (None, Some(s)) => s.well_known_port(),
            (None, None) => req.listener_port,
        };
        let path = match &self.path {
            Some(m) => m.apply(req.path, req.matched_prefix),
            None => req.path.to_string(),
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let mut out = format!("{}://{}", scheme.as_str(), host);
        if port != scheme.well_known_port() {
            out.push_str(&format!(":{port}"));
        }
        out.push_str(&path);
        if let Some(q) = req.query {
            out.push('?');
            out.push_str(q);
        }
        out
    }
}

/// URLRewrite.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UrlRewrite {
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
}

/// RequestMirror: a copy of the request to another backend, sampled by a fraction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mirror {
    pub name: String,
    pub target: BackendTarget,
    pub numerator: u32,
    pub denominator: u32,
}

impl Mirror {
    /// Whether the request with this uniformly distributed `random` is mirrored.
    pub fn sampled(&self, random: u64) -> bool {
        self.denominator > 0 && random % u64::from(self.denominator) < u64::from(self.numerator)
    }
}

/// An allowed origin of a CORS filter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum OriginPattern {
    /// `*`: every origin.
    Any,
    /// `scheme://host[:port]`, where the host may start with `*` (any labels to its left).
    Pattern {
        scheme: String,
        host: String,
        port: u16,
    },
}

fn split_origin(origin: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => 0,
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => match p.parse::<u16>() {
            Ok(port) => (h, port),
            Err(_) => (rest, default),
        },
        _ => (rest, default),
    };
    Some((scheme, host.to_ascii_lowercase(), port))
}

impl OriginPattern {
    /// Parses a configured origin (`*`, `https://www.foo.com`, `https://*.bar.com:8443`).
    pub fn parse(s: &str) -> Option<OriginPattern> {
        if s == "*" {
            return Some(OriginPattern::Any);
        }
        let (scheme, host, port) = split_origin(s)?;
        if host.is_empty() || (scheme != "http" && scheme != "https") {
            return None;
        }
        Some(OriginPattern::Pattern { scheme, host, port })
    }

    /// Whether a request's `Origin` header value is allowed.
    pub fn matches(&self, origin: &str) -> bool {
        let OriginPattern::Pattern { scheme, host, port } = self else {
            return true;
        };
        let Some((o_scheme, o_host, o_port)) = split_origin(origin) else {
            return false;
        };
        if &o_scheme != scheme || o_port != *port {
            return false;
        }
        match host.strip_prefix('*') {
            Some(suffix) => o_host.len() > suffix.len() && o_host.ends_with(suffix),
            None => &o_host == host,
        }
    }
}

/// CORS: the gateway answers preflights and decorates responses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cors {
    pub allow_origins: Vec<OriginPattern>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    /// Seconds; the Gateway API default is 5.
    pub max_age: u32,
}

impl Cors {
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|p| p.matches(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(repl: &str) -> PathModifier {
        PathModifier::ReplacePrefixMatch(repl.into())
    }

    #[test]
    fn replace_prefix_match_follows_the_normative_table() {
        for (path, matched, repl, want) in [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
        ] {
            assert_eq!(
                prefix(repl).apply(path, Some(matched)),
                want,
                "{path} {matched} {repl}"
            );
        }
    }

    #[test]
    fn rewrite_path_conformance_cases() {
        assert_eq!(
            prefix("/one").apply("/prefix/one/two", Some("/prefix/one")),
            "/one/two"
        );
        assert_eq!(
            prefix("/").apply("/strip-prefix/three", Some("/strip-prefix")),
            "/three"
        );
        assert_eq!(
            prefix("/").apply("/strip-prefix", Some("/strip-prefix")),
            "/"
        );
        assert_eq!(
            PathModifier::ReplaceFullPath("/one".into()).apply("/full/one/two", Some("/full")),
            "/one"
        );
    }

    fn redirect(scheme: Option<Scheme>, port: Option<u16>) -> Redirect {
        Redirect {
            scheme,
            hostname: Some("example.org".into()),
            port,
            path: None,
            status_code: 302,
        }
    }

    fn req(scheme: Scheme, listener_port: u16) -> RedirectRequest<'static> {
        RedirectRequest {
            scheme,
            host: "gw",
            listener_port,
            path: "/",
            query: None,
            matched_prefix: Some("/"),
        }
    }

    #[test]
    fn redirect_port_defaults_follow_the_scheme_then_the_listener() {
        use Scheme::*;
        let from80 = req(Http, 80);
        assert_eq!(
            redirect(None, None).location(&from80),
            "http://example.org/"
        );
        assert_eq!(
            redirect(None, Some(80)).location(&from80),
            "http://example.org/"
        );
        assert_eq!(
            redirect(None, Some(8080)).location(&from80),
            "http://example.org:8080/"
        );
        assert_eq!(
            redirect(Some(Https), None).location(&from80),
            "https://example.org/"
        );
        assert_eq!(
            redirect(Some(Https), Some(443)).location(&from80),
            "https://example.org/"
        );
        assert_eq!(
            redirect(Some(Https), Some(8443)).location(&from80),
            "https://example.org:8443/"
        );
        let from8080 = req(Http, 8080);
        assert_eq!(
            redirect(None, None).location(&from8080),
            "http://example.org:8080/"
        );
        assert_eq!(
            redirect(None, Some(80)).location(&from8080),
            "http://example.org/"
        );
        assert_eq!(
            redirect(Some(Https), None).location(&from8080),
            "https://example.org/"
        );
        let from443 = req(Https, 443);
        assert_eq!(
            redirect(None, None).location(&from443),
            "https://example.org/"
        );
        assert_eq!(
            redirect(None, Some(8443)).location(&from443),
            "https://example.org:8443/"
        );
        assert_eq!(
            redirect(Some(Http), None).location(&from443),
            "http://example.org/"
        );
        assert_eq!(
            redirect(Some(Http), Some(8080)).location(&from443),
            "http://example.org:8080/"
        );
    }

    #[test]
    fn redirect_keeps_path_and_query_when_unset() {
        let r = Redirect {
            scheme: None,
            hostname: None,
            port: None,
            path: None,
            status_code: 302,
        };
        let q = RedirectRequest {
            query: Some("a=b"),
            path: "/x/y",
            ..req(Scheme::Http, 80)
        };
        assert_eq!(r.location(&q), "http://gw/x/y?a=b");
    }

    #[test]
    fn cors_origin_wildcard_matches_any_labels_to_its_left() {
        let p = OriginPattern::parse("https://*.bar.com").unwrap();
        assert!(p.matches("https://www.bar.com"));
        assert!(p.matches("https://xpto.www.bar.com"));
        assert!(!p.matches("https://bar.com"));
        assert!(!p.matches("http://www.bar.com"));
        let exact = OriginPattern::parse("https://www.foo.com").unwrap();
        assert!(exact.matches("https://www.foo.com:443"));
        assert!(!exact.matches("https://www.foo.com:8443"));
        assert!(
            OriginPattern::parse("*")
                .unwrap()
                .matches("https://foobar.com:12345")
        );
    }

    #[test]
    fn mirror_fraction_samples_its_share() {
        let m = Mirror {
            name: "m".into(),
            target: BackendTarget::Unresolved(crate::backend::Unresolved::NotFound),
            numerator: 25,
            denominator: 50,
        };
        assert_eq!((0..1000).filter(|r| m.sampled(*r)).count(), 500);
    }
}
