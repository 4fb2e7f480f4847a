//! HTTPRoute matching: the match conditions of a rule, their precedence, and the route table
//! of one listener.
//!
//! The table is built once per snapshot. Entries are grouped by the hostname they serve
//! (exact names, wildcard suffixes, and "any host") and each group is sorted by
//! [`Precedence`]. A request walks only the groups its Host selects, most specific hostname
//! first, and stops at the first entry whose match succeeds: that is the Gateway API's
//! "hostname precedence, then match precedence, then oldest route, then rule order".

use crate::ResourceKey;
use crate::backend::Backends;
use crate::filter::Filters;
use crate::hostname::Hostname;
use regex::Regex;
use serde::Serialize;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How a request path is matched.
#[derive(Clone, Debug, Serialize)]
pub enum PathMatch {
    /// Case-sensitive, whole-path equality.
    Exact(String),
    /// Element-wise prefix; stored without its trailing `/` (`/` itself is stored as "").
    Prefix(String),
    /// Anchored Rust `regex` over the whole path.
    RegularExpression(#[serde(serialize_with = "ser_regex")] Regex),
}

fn ser_regex<S: serde::Serializer>(r: &Regex, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.as_str())
}

impl PartialEq for PathMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PathMatch::Exact(a), PathMatch::Exact(b)) => a == b,
            (PathMatch::Prefix(a), PathMatch::Prefix(b)) => a == b,
            (PathMatch::RegularExpression(a), PathMatch::RegularExpression(b)) => {
                a.as_str() == b.as_str()
            }
            _ => false,
        }
    }
}

impl PathMatch {
    /// A PathPrefix match for a configured value (`/abc/` and `/abc` are the same prefix).
    pub fn prefix(value: &str) -> PathMatch {
        PathMatch::Prefix(value.trim_end_matches('/').to_string())
    }

    /// Whether the path (without its query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => {
                path.starts_with(p.as_str())
                    && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
            }
            PathMatch::RegularExpression(re) => re.is_match(path),
        }
    }

    /// The matched prefix as configured, for ReplacePrefixMatch.
    pub fn prefix_value(&self) -> Option<&str> {
        match self {
            PathMatch::Prefix(p) if p.is_empty() => Some("/"),
            PathMatch::Prefix(p) => Some(p),
            _ => None,
        }
    }
}

/// How a header value or query parameter value is matched.
#[derive(Clone, Debug, Serialize)]
pub enum ValueMatch {
    Exact(String),
    RegularExpression(#[serde(serialize_with = "ser_regex")] Regex),
}

impl PartialEq for ValueMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ValueMatch::Exact(a), ValueMatch::Exact(b)) => a == b,
            (ValueMatch::RegularExpression(a), ValueMatch::RegularExpression(b)) => {
                a.as_str() == b.as_str()
            }
            _ => false,
        }
    }
}

impl ValueMatch {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatch::Exact(v) => v == value,
            ValueMatch::RegularExpression(re) => re.is_match(value),
        }
    }
}

/// One entry of a rule's `matches`: every condition must hold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpMatch {
    pub path: PathMatch,
    /// Upper-case method; HEAD does not match GET.
    pub method: Option<String>,
    /// Header names in lower case; only the first entry per name is kept.
    pub headers: Vec<(String, ValueMatch)>,
    /// Query parameter names exactly as configured (case-sensitive).
    pub query_params: Vec<(String, ValueMatch)>,
}

impl Default for HttpMatch {
    /// A rule without matches matches every request: `PathPrefix /`.
    fn default() -> Self {
        HttpMatch {
            path: PathMatch::Prefix(String::new()),
            method: None,
            headers: Vec::new(),
            query_params: Vec::new(),
        }
    }
}

/// What matching needs to see of a request.
pub trait RequestView {
    fn method(&self) -> &str;
    /// The path without the query string.
    fn path(&self) -> &str;
    /// The raw query string (after `?`), if any.
    fn query(&self) -> Option<&str>;
    /// The value of a header (lower-case name); repeated headers joined with `,`.
    fn header(&self, name: &str) -> Option<Cow<'_, str>>;
    /// The host the request names, as sent: the Host header (HTTP/2: else `:authority`).
    fn host(&self) -> Option<Cow<'_, str>> {
        self.header("host")
    }
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The first value of a query parameter (names case-sensitive, percent-decoded).
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// The first condition of a match that a request fails, checked in the order path, method,
/// headers, query parameters (indexes into the match's lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    Path,
    Method,
    Header(usize),
    Query(usize),
}

impl HttpMatch {
    pub fn matches(&self, req: &dyn RequestView) -> bool {
        self.check(req).is_ok()
    }

    /// Whether `req` satisfies every condition, or the first one it fails.
    pub fn check(&self, req: &dyn RequestView) -> Result<(), Mismatch> {
        if !self.path.matches(req.path()) {
            return Err(Mismatch::Path);
        }
        if let Some(m) = &self.method
            && req.method() != m
        {
            return Err(Mismatch::Method);
        }
        for (i, (name, value)) in self.headers.iter().enumerate() {
            match req.header(name) {
                Some(v) if value.matches(&v) => {}
                _ => return Err(Mismatch::Header(i)),
            }
        }
        if !self.query_params.is_empty() {
            let query = req.query().unwrap_or("");
            for (i, (name, value)) in self.query_params.iter().enumerate() {
                match query_param(query, name) {
                    Some(v) if value.matches(&v) => {}
                    _ => return Err(Mismatch::Query(i)),
                }
            }
        }
        Ok(())
    }

    /// The precedence of this match among all matches on the same hostname.
    pub fn precedence(&self) -> MatchPrecedence {
        let path = match &self.path {
            PathMatch::Exact(p) => PathRank::Exact(p.len()),
            PathMatch::Prefix(p) => PathRank::Prefix(p.len()),
            PathMatch::RegularExpression(re) => PathRank::RegularExpression(re.as_str().len()),
        };
        MatchPrecedence {
            path,
            method: self.method.is_some(),
            headers: self.headers.len(),
            query_params: self.query_params.len(),
        }
    }
}

/// Path rank: Exact over any prefix, longer prefixes over shorter ones, regular expressions
/// last (their rank among themselves is by pattern length, an implementation choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathRank {
    Exact(usize),
    Prefix(usize),
    RegularExpression(usize),
}

impl PathRank {
    fn key(self) -> (u8, usize) {
        match self {
            PathRank::Exact(n) => (2, n),
            PathRank::Prefix(n) => (1, n),
            PathRank::RegularExpression(n) => (0, n),
        }
    }
}

/// The Gateway API's match precedence: path, then method, then the number of header matches,
/// then the number of query parameter matches. Greater is more specific.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchPrecedence {
    pub path: PathRank,
    pub method: bool,
    pub headers: usize,
    pub query_params: usize,
}

impl Ord for MatchPrecedence {
    fn cmp(&self, other: &Self) -> Ordering {
        self.path
            .key()
            .cmp(&other.path.key())
            .then(self.method.cmp(&other.method))
            .then(self.headers.cmp(&other.headers))
            .then(self.query_params.cmp(&other.query_params))
    }
}

impl PartialOrd for MatchPrecedence {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Identifies a rule: its route, its index, and its optional name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub route: ResourceKey,
    pub index: usize,
    pub name: Option<String>,
}

/// Request and per-attempt backend timeouts; `None` is "no timeout" (unset or `0s`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    pub request: Option<Duration>,
    pub backend_request: Option<Duration>,
}

/// A compiled HTTPRoute rule: what happens once a request matched it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpRule {
    pub rule: RuleRef,
    pub filters: Filters,
    pub backends: Backends,
    pub timeouts: Timeouts,
}

/// The tie-breakers after match precedence: the oldest route (declaration order), then the
/// route's `namespace/name`, then rule order, then match order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteOrder {
    pub declared: usize,
    pub namespaced_name: String,
    pub rule: usize,
    pub matched: usize,
}

/// One (rule, match) pair in a route table.
#[derive(Clone, Debug)]
pub struct HttpEntry {
    pub matcher: HttpMatch,
    pub rule: Arc<HttpRule>,
    pub precedence: MatchPrecedence,
    pub order: RouteOrder,
}

impl HttpEntry {
    pub fn new(matcher: HttpMatch, rule: Arc<HttpRule>, order: RouteOrder) -> HttpEntry {
        HttpEntry {
            precedence: matcher.precedence(),
            matcher,
            rule,
            order,
        }
    }

    /// Entries sort most specific first.
    fn sort_key_cmp(&self, other: &Self) -> Ordering {
        other
            .precedence
            .cmp(&self.precedence)
            .then_with(|| self.order.cmp(&other.order))
    }
}

/// The hostname group of a route table an entry was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostGroup<'a> {
    /// Routes for exactly the request's host.
    Exact(&'a str),
    /// Routes for a wildcard, by its suffix (`.example.com` for `*.example.com`).
    Wildcard(&'a str),
    /// Routes without hostnames (or on a listener whose hostname they all take).
    Any,
}

/// One (rule, match) entry as routing meets it, and whether the request satisfies it.
#[derive(Clone, Copy, Debug)]
pub struct Walked<'a> {
    pub entry: &'a HttpEntry,
    pub group: HostGroup<'a>,
    pub result: Result<(), Mismatch>,
}

/// The result of routing one request on one listener.
#[derive(Clone, Copy, Debug)]
pub struct Routed<'a> {
    pub rule: &'a Arc<HttpRule>,
    pub matcher: &'a HttpMatch,
}

/// The HTTP routes attached to one listener, indexed by the hostname they serve.
#[derive(Clone, Debug, Default)]
pub struct HttpRouteTable {
    exact: HashMap<String, Vec<HttpEntry>>,
    /// Keyed by the suffix with its leading dot (`.example.com` for `*.example.com`).
    wildcard: HashMap<String, Vec<HttpEntry>>,
    any: Vec<HttpEntry>,
    len: usize,
}

impl HttpRouteTable {
    /// Adds an entry for the effective hostnames it serves (`None`: every host).
    pub fn insert(&mut self, hostnames: Option<&[Hostname]>, entry: HttpEntry) {
        self.len += 1;
        match hostnames {
            None => self.any.push(entry),
            Some(names) => {
                for name in names {
                    let slot = match name.wildcard_suffix() {
                        Some(suffix) => self.wildcard.entry(suffix.to_string()).or_default(),
                        None => self.exact.entry(name.as_str().to_string()).or_default(),
                    };
                    slot.push(entry.clone());
                }
            }
        }
    }

    /// Sorts every group into precedence order; call once after the last insert.
    pub fn finish(&mut self) {
        let groups = self
            .exact
            .values_mut()
            .chain(self.wildcard.values_mut())
            .chain(std::iter::once(&mut self.any));
        for group in groups {
            group.sort_by(HttpEntry::sort_key_cmp);
        }
    }

    /// Every rule in the table (a rule appears once per match and hostname it serves).
    pub fn rules(&self) -> impl Iterator<Item = &Arc<HttpRule>> {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .chain(std::iter::once(&self.any))
            .flat_map(|g| g.iter().map(|e| &e.rule))
    }

    /// The number of (rule, match) entries inserted.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The groups a normalised host selects, most specific hostname first.
    fn groups<'a, 'h>(
        &'a self,
        host: Option<&'h str>,
    ) -> impl Iterator<Item = (HostGroup<'a>, &'a [HttpEntry])> + use<'a, 'h> {
        let exact = host.and_then(|h| {
            let (key, entries) = self.exact.get_key_value(h)?;
            Some((HostGroup::Exact(key.as_str()), entries.as_slice()))
        });
        let wildcards = host.into_iter().flat_map(move |h| {
            h.char_indices()
                .filter(|(i, c)| *c == '.' && *i > 0)
                .filter_map(move |(i, _)| {
                    let (key, entries) = self.wildcard.get_key_value(&h[i..])?;
                    Some((HostGroup::Wildcard(key.as_str()), entries.as_slice()))
                })
        });
        exact
            .into_iter()
            .chain(wildcards)
            .chain(std::iter::once((HostGroup::Any, self.any.as_slice())))
    }

    /// Every entry the request's host selects, in the order routing tries them (hostname
    /// group, then precedence), each with whether the request satisfies it.
    /// [`HttpRouteTable::route`] is the first that does.
    pub fn walk<'a>(
        &'a self,
        host: Option<&'a str>,
        req: &'a dyn RequestView,
    ) -> impl Iterator<Item = Walked<'a>> + use<'a> {
        self.groups(host).flat_map(move |(group, entries)| {
            entries.iter().map(move |entry| Walked {
                entry,
                group,
                result: entry.matcher.check(req),
            })
        })
    }

    /// Routes a request: the first entry, in precedence order, whose match succeeds.
    pub fn route<'a>(&'a self, host: Option<&str>, req: &dyn RequestView) -> Option<Routed<'a>> {
        self.groups(host)
            .flat_map(|(_, g)| g.iter())
            .find(|e| e.matcher.matches(req))
            .map(|e| Routed {
                rule: &e.rule,
                matcher: &e.matcher,
            })
    }
}

#[cfg(test)]
mod tests;
