//! Gateway API hostnames: validation, wildcard matching, intersection and precedence.
//!
//! A [`Hostname`] is a lowercase RFC 1123 DNS name, optionally with `*.` as its whole first
//! label. A wildcard matches one or more labels in its place (`*.example.com` matches
//! `a.example.com` and `a.b.example.com`, not `example.com`). Request hosts (the Host header
//! or the TLS SNI) are normalised with [`normalize_request_host`] before they are compared.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// Why a string is not a Gateway API hostname.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostnameError {
    Empty,
    TooLong,
    IpAddress,
    Uppercase,
    BadWildcard,
    BadLabel(String),
}

impl fmt::Display for HostnameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostnameError::Empty => f.write_str("must not be empty"),
            HostnameError::TooLong => f.write_str("must be at most 253 characters"),
            HostnameError::IpAddress => f.write_str("must be a DNS name, not an IP address"),
            HostnameError::Uppercase => f.write_str("must be lowercase"),
            HostnameError::BadWildcard => f.write_str(
                "a wildcard is allowed only as the whole first label (\"*.example.com\")",
            ),
            HostnameError::BadLabel(label) => write!(
                f,
                "label \"{label}\" must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
            ),
        }
    }
}

impl std::error::Error for HostnameError {}

/// A validated Gateway API hostname (`example.com` or `*.example.com`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hostname(String);

impl TryFrom<String> for Hostname {
    type Error = HostnameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Hostname::parse(&s)
    }
}

impl From<Hostname> for String {
    fn from(h: Hostname) -> String {
        h.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn valid_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

impl Hostname {
    /// Validates `s` against the Gateway API `Hostname` rules.
    pub fn parse(s: &str) -> Result<Hostname, HostnameError> {
        if s.is_empty() {
            return Err(HostnameError::Empty);
        }
        if s.len() > 253 {
            return Err(HostnameError::TooLong);
        }
        if s.parse::<IpAddr>().is_ok() {
            return Err(HostnameError::IpAddress);
        }
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(HostnameError::Uppercase);
        }
        let rest = s.strip_prefix("*.").unwrap_or(s);
        for label in rest.split('.') {
            if label.contains('*') {
                return Err(HostnameError::BadWildcard);
            }
            if !valid_label(label) {
                return Err(HostnameError::BadLabel(label.to_string()));
            }
        }
        Ok(Hostname(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// For `*.example.com`, `.example.com`; for an exact name, the whole name.
    pub fn wildcard_suffix(&self) -> Option<&str> {
        self.is_wildcard().then(|| &self.0[1..])
    }

    /// Whether a normalised request host (see [`normalize_request_host`]) matches this hostname.
    pub fn matches(&self, host: &str) -> bool {
        match self.wildcard_suffix() {
            Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            None => self.0 == host,
        }
    }

    /// Whether every name this hostname matches is also matched by `other`.
    fn is_covered_by(&self, other: &Hostname) -> bool {
        match (self.wildcard_suffix(), other.wildcard_suffix()) {
            (_, None) => self == other,
            (None, Some(_)) => other.matches(&self.0),
            (Some(mine), Some(theirs)) => mine.ends_with(theirs),
        }
    }

    /// The number of labels to the right of the wildcard, or of the whole name: how specific
    /// the hostname is when listeners or routes compete for one host.
    pub fn specificity(&self) -> usize {
        self.0.len()
    }
}

/// The intersection of a listener hostname and a route hostname, as the Gateway API defines
/// it: the more specific of the two when one covers the other, else nothing. A listener
/// without a hostname matches every route hostname.
pub fn intersect(listener: Option<&Hostname>, route: &Hostname) -> Option<Hostname> {
    let Some(listener) = listener else {
        return Some(route.clone());
    };
    if route.is_covered_by(listener) {
        Some(route.clone())
    } else if listener.is_covered_by(route) {
        Some(listener.clone())
    } else {
        None
    }
}

/// The hostnames a route serves on a listener: the intersection of each route hostname with
/// the listener hostname. `None` means "every host the listener accepts" (a route without
/// hostnames). An empty list means no route hostname intersects: the route does not attach.
pub fn effective_hostnames(
    listener: Option<&Hostname>,
    route: &[Hostname],
) -> Option<Vec<Hostname>> {
    if route.is_empty() {
        return listener.map(|l| vec![l.clone()]);
    }
    let mut out: Vec<Hostname> = Vec::new();
    for h in route {
        if let Some(i) = intersect(listener, h)
            && !out.contains(&i)
        {
            out.push(i);
        }
    }
    Some(out)
}

/// Turns a Host header or SNI value into the form hostnames are compared with: the port
/// dropped (IPv6 literals keep their brackets' content), ASCII lowercase, a trailing dot
/// removed. Returns `None` for an empty host.
pub fn normalize_request_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // IPv6 literal: "[::1]:8080" or "[::1]".
        rest.split(']').next().unwrap_or(rest)
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        None
    } else {
        Some(host.to_ascii_lowercase())
    }
}

/// Picks, among candidate hostnames (`None` = no hostname), the one a request host selects:
/// an exact match, then the most specific matching wildcard, then the candidate without a
/// hostname. Returns the index of the winner. This is the Gateway API's listener selection
/// ("Listener Isolation") and TLSRoute's "exact beats the most specific wildcard".
pub fn select_by_host<'a, I>(host: Option<&str>, candidates: I) -> Option<usize>
where
    I: IntoIterator<Item = Option<&'a Hostname>>,
{
    let mut best: Option<(usize, usize)> = None; // (rank, index); rank: higher wins
    for (i, candidate) in candidates.into_iter().enumerate() {
        let rank = match (candidate, host) {
            (None, _) => 1,
            (Some(h), Some(host)) if h.matches(host) => {
                if h.is_wildcard() {
                    2 + h.specificity()
                } else {
                    usize::MAX
                }
            }
            _ => continue,
        };
        if best.is_none_or(|(r, _)| rank > r) {
            best = Some((rank, i));
        }
    }
    best.map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hostname {
        Hostname::parse(s).unwrap()
    }

    #[test]
    fn hostname_must_be_lowercase_dns_name() {
        assert!(Hostname::parse("example.com").is_ok());
        assert!(Hostname::parse("*.example.com").is_ok());
        assert_eq!(
            Hostname::parse("Example.com"),
            Err(HostnameError::Uppercase)
        );
        assert_eq!(Hostname::parse("192.0.2.1"), Err(HostnameError::IpAddress));
        assert_eq!(Hostname::parse("a.*.com"), Err(HostnameError::BadWildcard));
        assert_eq!(Hostname::parse("*"), Err(HostnameError::BadWildcard));
        assert!(matches!(
            Hostname::parse("-a.com"),
            Err(HostnameError::BadLabel(_))
        ));
        assert!(matches!(
            Hostname::parse("a..com"),
            Err(HostnameError::BadLabel(_))
        ));
        assert_eq!(Hostname::parse(""), Err(HostnameError::Empty));
    }

    #[test]
    fn wildcard_matches_one_or_more_labels_but_not_the_bare_suffix() {
        let w = h("*.example.com");
        assert!(w.matches("a.example.com"));
        assert!(w.matches("a.b.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("aexample.com"));
    }

    #[test]
    fn intersection_is_the_more_specific_hostname() {
        assert_eq!(
            intersect(Some(&h("*.example.com")), &h("*.com")),
            Some(h("*.example.com"))
        );
        assert_eq!(
            intersect(Some(&h("abc.foo.example.com")), &h("*.example.com")),
            Some(h("abc.foo.example.com"))
        );
        assert_eq!(
            intersect(Some(&h("*.wildcard.io")), &h("foo.wildcard.io")),
            Some(h("foo.wildcard.io"))
        );
        assert_eq!(
            intersect(Some(&h("*.wildcard.io")), &h("wildcard.io")),
            None
        );
        assert_eq!(
            intersect(Some(&h("very.specific.com")), &h("*.specific.com")),
            Some(h("very.specific.com"))
        );
        assert_eq!(intersect(None, &h("a.com")), Some(h("a.com")));
        assert_eq!(intersect(Some(&h("a.com")), &h("b.com")), None);
    }

    #[test]
    fn route_without_hostnames_takes_the_listener_hostname() {
        assert_eq!(
            effective_hostnames(Some(&h("a.com")), &[]),
            Some(vec![h("a.com")])
        );
        assert_eq!(effective_hostnames(None, &[]), None);
        assert_eq!(
            effective_hostnames(Some(&h("a.com")), &[h("b.com")]),
            Some(vec![])
        );
    }

    #[test]
    fn request_host_port_is_ignored() {
        assert_eq!(
            normalize_request_host("Very.Specific.com:1234").as_deref(),
            Some("very.specific.com")
        );
        assert_eq!(
            normalize_request_host("example.com.").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            normalize_request_host("[2001:db8::1]:80").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            normalize_request_host("2001:db8::1").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(normalize_request_host(""), None);
    }

    #[test]
    fn listener_selection_prefers_exact_then_longest_wildcard_then_no_hostname() {
        let l = [
            None,
            Some(h("*.example.com")),
            Some(h("*.foo.example.com")),
            Some(h("abc.foo.example.com")),
        ];
        let pick = |host: &str| select_by_host(Some(host), l.iter().map(|x| x.as_ref()));
        assert_eq!(pick("bar.com"), Some(0));
        assert_eq!(pick("bar.example.com"), Some(1));
        assert_eq!(pick("bar.foo.example.com"), Some(2));
        assert_eq!(pick("abc.foo.example.com"), Some(3));
        let no_catch_all = [Some(h("bar.com"))];
        assert_eq!(
            select_by_host(Some("foo.com"), no_catch_all.iter().map(|x| x.as_ref())),
            None
        );
        assert_eq!(select_by_host(None, l.iter().map(|x| x.as_ref())), Some(0));
    }
}
