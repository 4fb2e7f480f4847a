//! CORS: the headers answering a preflight and decorating a response, from a route's
//! compiled [`Cors`] filter (Gateway API `HTTPCORSFilter`).

use crate::filter::{Cors, OriginPattern};

/// What a request asks of CORS.
#[derive(Debug)]
pub struct CorsRequest<'a> {
    pub origin: &'a str,
    pub request_method: Option<&'a str>,
    pub request_headers: Option<&'a str>,
}

/// The headers answering a preflight from an allowed origin.
pub fn preflight_headers(cors: &Cors, req: &CorsRequest<'_>) -> Vec<(&'static str, String)> {
    let mut out = vec![(
        "access-control-allow-origin",
        allow_origin(cors, req.origin),
    )];
    let wildcard = |l: &[String]| l.len() == 1 && l[0] == "*";
    if let Some(method) = req.request_method {
        let methods = if wildcard(&cors.allow_methods) {
            if cors.allow_credentials {
                method.to_string()
            } else {
                "*".to_string()
            }
        } else {
            cors.allow_methods.join(", ")
        };
        if !methods.is_empty() {
            out.push(("access-control-allow-methods", methods));
        }
    }
    if wildcard(&cors.allow_headers) {
        match (cors.allow_credentials, req.request_headers) {
            (true, Some(h)) => out.push(("access-control-allow-headers", h.to_string())),
            (false, _) => out.push(("access-control-allow-headers", "*".to_string())),
            (true, None) => {}
        }
    } else if !cors.allow_headers.is_empty() {
        out.push((
            "access-control-allow-headers",
            cors.allow_headers.join(", "),
        ));
    }
    out.extend(expose_headers(cors));
    out.push(("access-control-max-age", cors.max_age.to_string()));
    if cors.allow_credentials {
        out.push(("access-control-allow-credentials", "true".to_string()));
    }
    out
}

/// The headers added to an actual response to an allowed origin.
pub fn response_headers(cors: &Cors, origin: &str) -> Vec<(&'static str, String)> {
    let mut out = vec![("access-control-allow-origin", allow_origin(cors, origin))];
    out.extend(expose_headers(cors));
    if cors.allow_credentials {
        out.push(("access-control-allow-credentials", "true".to_string()));
    }
    if !out[0].1.eq("*") {
        out.push(("vary", "Origin".to_string()));
    }
    out
}

fn allow_origin(cors: &Cors, origin: &str) -> String {
    let any = cors.allow_origins.contains(&OriginPattern::Any);
    if any && !cors.allow_credentials {
        "*".to_string()
    } else {
        origin.to_string()
    }
}

fn expose_headers(cors: &Cors) -> Option<(&'static str, String)> {
    (!cors.expose_headers.is_empty()).then(|| {
        (
            "access-control-expose-headers",
            cors.expose_headers.join(", "),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], methods: &[&str], headers: &[&str], credentials: bool) -> Cors {
        Cors {
            allow_origins: origins
                .iter()
                .map(|o| OriginPattern::parse(o).unwrap())
                .collect(),
            allow_methods: methods.iter().map(|s| s.to_string()).collect(),
            allow_headers: headers.iter().map(|s| s.to_string()).collect(),
            expose_headers: vec!["x-header-3".into(), "x-header-4".into()],
            allow_credentials: credentials,
            max_age: 3600,
        }
    }

    fn get<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn preflight_with_credentials_echoes_origin_and_lists_configuration() {
        let c = cors(
            &["https://www.foo.com", "https://*.bar.com"],
            &["GET", "OPTIONS"],
            &["x-header-1", "x-header-2"],
            true,
        );
        let h = preflight_headers(
            &c,
            &CorsRequest {
                origin: "https://xpto.www.bar.com",
                request_method: Some("GET"),
                request_headers: Some("x-header-1"),
            },
        );
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("https://xpto.www.bar.com")
        );
        assert_eq!(
            get(&h, "access-control-allow-methods"),
            Some("GET, OPTIONS")
        );
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            Some("x-header-1, x-header-2")
        );
        assert_eq!(
            get(&h, "access-control-expose-headers"),
            Some("x-header-3, x-header-4")
        );
        assert_eq!(get(&h, "access-control-max-age"), Some("3600"));
        assert_eq!(get(&h, "access-control-allow-credentials"), Some("true"));
    }

    #[test]
    fn wildcards_with_credentials_echo_the_request() {
        let c = cors(&["*"], &["*"], &["*"], true);
        let h = preflight_headers(
            &c,
            &CorsRequest {
                origin: "https://other.foo.com",
                request_method: Some("PUT"),
                request_headers: Some("x-header-1, x-header-2"),
            },
        );
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("https://other.foo.com")
        );
        assert_eq!(get(&h, "access-control-allow-methods"), Some("PUT"));
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            Some("x-header-1, x-header-2")
        );
    }

    #[test]
    fn wildcards_without_credentials_answer_star_and_no_credentials_header() {
        let c = cors(&["*"], &["*"], &["*"], false);
        let h = preflight_headers(
            &c,
            &CorsRequest {
                origin: "https://foobar.com:12345",
                request_method: Some("PUT"),
                request_headers: None,
            },
        );
        assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&h, "access-control-allow-methods"), Some("*"));
        assert_eq!(get(&h, "access-control-allow-credentials"), None);
    }
}
