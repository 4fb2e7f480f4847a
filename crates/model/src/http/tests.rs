//! Match semantics and precedence, named for the Gateway API rules they check.

use super::*;
use crate::backend::Backends;
use crate::{Kind, ResourceKey};

struct Req<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
}

impl RequestView for Req<'_> {
    fn method(&self) -> &str {
        self.method
    }
    fn path(&self) -> &str {
        self.path
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .collect();
        (!values.is_empty()).then(|| Cow::Owned(values.join(",")))
    }
}

fn get(uri: &str) -> Req<'_> {
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    Req {
        method: "GET",
        path,
        query,
        headers: vec![],
    }
}

fn with<'a>(mut r: Req<'a>, headers: &[(&'a str, &'a str)]) -> Req<'a> {
    r.headers.extend_from_slice(headers);
    r
}

/// A match described compactly: `path` ("=/x" exact, "/x" prefix, "~re" regex), method,
/// headers, query params.
fn m(
    path: &str,
    method: Option<&str>,
    headers: &[(&str, &str)],
    query: &[(&str, &str)],
) -> HttpMatch {
    let path = if let Some(p) = path.strip_prefix('=') {
        PathMatch::Exact(p.into())
    } else if let Some(re) = path.strip_prefix('~') {
        PathMatch::RegularExpression(Regex::new(&format!("^(?:{re})$")).unwrap())
    } else {
        PathMatch::prefix(path)
    };
    HttpMatch {
        path,
        method: method.map(str::to_string),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), ValueMatch::Exact(v.to_string())))
            .collect(),
        query_params: query
            .iter()
            .map(|(n, v)| (n.to_string(), ValueMatch::Exact(v.to_string())))
            .collect(),
    }
}

/// A route for [`Table::new`]: name, hostnames, and (label, matches) per rule.
type RouteSpec<'a> = (
    &'a str,
    Option<&'a [&'a str]>,
    Vec<(&'a str, Vec<HttpMatch>)>,
);

/// Builds a table from routes; each route is a list of rules, each rule a backend label and
/// its matches (OR). Returns a lookup giving the label of the winning rule.
struct Table(HttpRouteTable);

impl Table {
    fn new(routes: &[RouteSpec<'_>]) -> Table {
        let mut t = HttpRouteTable::default();
        for (declared, (name, hosts, rules)) in routes.iter().enumerate() {
            let hosts: Option<Vec<Hostname>> =
                hosts.map(|h| h.iter().map(|x| Hostname::parse(x).unwrap()).collect());
            for (index, (label, matches)) in rules.iter().enumerate() {
                let rule = Arc::new(HttpRule {
                    rule: RuleRef {
                        route: ResourceKey::new(Kind::HTTPRoute, "default", *name),
                        index,
                        name: Some(label.to_string()),
                    },
                    filters: Default::default(),
                    backends: Backends::default(),
                    timeouts: Timeouts::default(),
                });
                let matches = if matches.is_empty() {
                    vec![HttpMatch::default()]
                } else {
                    matches.clone()
                };
                for (mi, matcher) in matches.into_iter().enumerate() {
                    let order = RouteOrder {
                        declared,
                        namespaced_name: format!("default/{name}"),
                        rule: index,
                        matched: mi,
                    };
                    t.insert(
                        hosts.as_deref(),
                        HttpEntry::new(matcher, rule.clone(), order),
                    );
                }
            }
        }
        t.finish();
        Table(t)
    }

    fn route(&self, host: &str, req: &Req<'_>) -> Option<String> {
        self.0
            .route(Some(host), req)
            .map(|r| r.rule.rule.name.clone().unwrap())
    }
}

#[test]
fn path_prefix_matches_whole_segments() {
    let p = PathMatch::prefix("/abc");
    assert!(p.matches("/abc"));
    assert!(p.matches("/abc/"));
    assert!(p.matches("/abc/def"));
    assert!(!p.matches("/abcd"));
    assert!(PathMatch::prefix("/abc/").matches("/abc"));
    assert!(PathMatch::prefix("/").matches("/anything"));
}

#[test]
fn exact_path_is_case_sensitive_and_rejects_trailing_slash() {
    let p = PathMatch::Exact("/abc".into());
    assert!(p.matches("/abc"));
    assert!(!p.matches("/abc/"));
    assert!(!p.matches("/Abc"));
    assert!(!p.matches("/abcd"));
}

#[test]
fn http_route_matching_header_beats_bare_prefix() {
    // HTTPRouteMatching
    let t = Table::new(&[(
        "r",
        None,
        vec![
            (
                "v1",
                vec![
                    m("/", None, &[], &[]),
                    m("/", None, &[("version", "one")], &[]),
                ],
            ),
            (
                "v2",
                vec![
                    m("/v2", None, &[], &[]),
                    m("/", None, &[("version", "two")], &[]),
                ],
            ),
        ],
    )]);
    for (uri, hdr, want) in [
        ("/", None, "v1"),
        ("/example", None, "v1"),
        ("/", Some("one"), "v1"),
        ("/v2", None, "v2"),
        ("/v2/example", None, "v2"),
        ("/v2/", None, "v2"),
        ("/", Some("two"), "v2"),
        ("/v2example", None, "v1"),
        ("/foo/v2/example", None, "v1"),
    ] {
        let req = match hdr {
            Some(v) => with(get(uri), &[("Version", v)]),
            None => get(uri),
        };
        assert_eq!(t.route("gw", &req).as_deref(), Some(want), "{uri} {hdr:?}");
    }
}

#[test]
fn exact_path_beats_longer_prefix() {
    // HTTPRoutePathMatchOrder
    let t = Table::new(&[(
        "r",
        None,
        vec![
            ("exact-match", vec![m("=/match", None, &[], &[])]),
            (
                "exact-match-exact",
                vec![m("=/match/exact", None, &[], &[])],
            ),
            ("exact-one", vec![m("=/match/exact/one", None, &[], &[])]),
            ("prefix-match", vec![m("/match/", None, &[], &[])]),
            ("prefix-prefix", vec![m("/match/prefix/", None, &[], &[])]),
            ("prefix-one", vec![m("/match/prefix/one", None, &[], &[])]),
        ],
    )]);
    assert_eq!(
        t.route("gw", &get("/match/exact/one")).as_deref(),
        Some("exact-one")
    );
    assert_eq!(
        t.route("gw", &get("/match/exact")).as_deref(),
        Some("exact-match-exact")
    );
    assert_eq!(
        t.route("gw", &get("/match")).as_deref(),
        Some("exact-match")
    );
    assert_eq!(
        t.route("gw", &get("/match/prefix/one/any")).as_deref(),
        Some("prefix-one")
    );
    assert_eq!(
        t.route("gw", &get("/match/prefix/any")).as_deref(),
        Some("prefix-prefix")
    );
    assert_eq!(
        t.route("gw", &get("/match/any")).as_deref(),
        Some("prefix-match")
    );
}

#[test]
fn more_header_matches_win_and_ties_go_to_the_first_rule() {
    // HTTPRouteHeaderMatching
    let t = Table::new(&[(
        "r",
        None,
        vec![
            ("r1", vec![m("/", None, &[("version", "one")], &[])]),
            ("r2", vec![m("/", None, &[("version", "two")], &[])]),
            (
                "r3",
                vec![m(
                    "/",
                    None,
                    &[("version", "two"), ("color", "orange")],
                    &[],
                )],
            ),
            (
                "r4",
                vec![
                    m("/", None, &[("color", "blue")], &[]),
                    m("/", None, &[("color", "green")], &[]),
                ],
            ),
            (
                "r5",
                vec![
                    m("/", None, &[("color", "red")], &[]),
                    m("/", None, &[("color", "yellow")], &[]),
                ],
            ),
        ],
    )]);
    let r = |h: &[(&str, &str)]| t.route("gw", &with(get("/"), h));
    assert_eq!(r(&[("Version", "one")]).as_deref(), Some("r1"));
    assert_eq!(r(&[("Version", "two")]).as_deref(), Some("r2"));
    assert_eq!(
        r(&[("Version", "two"), ("Color", "orange")]).as_deref(),
        Some("r3")
    );
    assert_eq!(
        r(&[("Version", "two"), ("Color", "blue")]).as_deref(),
        Some("r2")
    );
    assert_eq!(r(&[("Color", "green")]).as_deref(), Some("r4"));
    assert_eq!(r(&[("Color", "yellow")]).as_deref(), Some("r5"));
    assert_eq!(r(&[("Color", "orange")]), None);
    assert_eq!(r(&[("Some-Other-Header", "one")]), None);
    assert_eq!(r(&[("Color", "purple")]), None);
}

#[test]
fn header_names_are_case_insensitive() {
    let t = Table::new(&[(
        "r",
        None,
        vec![("v1", vec![m("/", None, &[("Magic", "foo")], &[])])],
    )]);
    assert_eq!(
        t.route("gw", &with(get("/"), &[("mAgIc", "foo")]))
            .as_deref(),
        Some("v1")
    );
    assert_eq!(t.route("gw", &with(get("/"), &[("magic", "FOO")])), None);
}

#[test]
fn query_param_names_are_case_sensitive_and_more_params_win() {
    // HTTPRouteQueryParamMatching (subset)
    let t = Table::new(&[(
        "r",
        None,
        vec![
            ("r1", vec![m("/", None, &[], &[("animal", "whale")])]),
            ("r2", vec![m("/", None, &[], &[("animal", "dolphin")])]),
            (
                "r3",
                vec![
                    m("/", None, &[], &[("animal", "dolphin"), ("color", "blue")]),
                    m("/", None, &[], &[("ANIMAL", "Whale")]),
                ],
            ),
            ("r8", vec![m("/path5", None, &[], &[])]),
            ("r9", vec![m("/", None, &[], &[("animal", "hydra")])]),
            ("r10", vec![m("/", None, &[("version", "four")], &[])]),
        ],
    )]);
    assert_eq!(t.route("gw", &get("/?animal=whale")).as_deref(), Some("r1"));
    assert_eq!(
        t.route("gw", &get("/?animal=dolphin")).as_deref(),
        Some("r2")
    );
    assert_eq!(
        t.route("gw", &get("/?animal=dolphin&color=blue"))
            .as_deref(),
        Some("r3")
    );
    assert_eq!(t.route("gw", &get("/?ANIMAL=Whale")).as_deref(), Some("r3"));
    assert_eq!(
        t.route("gw", &get("/?animal=whale&otherparam=irrelevant"))
            .as_deref(),
        Some("r1")
    );
    assert_eq!(
        t.route("gw", &get("/?animal=dolphin&color=yellow"))
            .as_deref(),
        Some("r2")
    );
    for miss in ["/?color=blue", "/?animal=dog", "/?animal=whaledolphin", "/"] {
        assert_eq!(t.route("gw", &get(miss)), None, "{miss}");
    }
    assert_eq!(
        t.route("gw", &get("/path5?animal=hydra")).as_deref(),
        Some("r8"),
        "path prefix beats params"
    );
    assert_eq!(
        t.route("gw", &with(get("/?animal=hydra"), &[("version", "four")]))
            .as_deref(),
        Some("r10"),
        "headers beat params"
    );
}

#[test]
fn repeated_query_param_uses_the_first_value() {
    assert_eq!(query_param("a=1&a=2", "a").as_deref(), Some("1"));
    assert_eq!(query_param("a%20b=c%2Fd", "a b").as_deref(), Some("c/d"));
    assert_eq!(query_param("flag", "flag").as_deref(), Some(""));
}

#[test]
fn path_beats_method_beats_headers_and_head_does_not_match_get() {
    // HTTPRouteMethodMatching (subset)
    let t = Table::new(&[(
        "r",
        None,
        vec![
            ("r1", vec![m("/", Some("POST"), &[], &[])]),
            ("r2", vec![m("/", Some("GET"), &[], &[])]),
            ("r7", vec![m("/path5", None, &[], &[])]),
            ("r8", vec![m("/", Some("PATCH"), &[], &[])]),
            ("r9", vec![m("/", None, &[("version", "four")], &[])]),
        ],
    )]);
    let req = |method, path, h: &[(&'static str, &'static str)]| Req {
        method,
        path,
        query: None,
        headers: h.to_vec(),
    };
    assert_eq!(t.route("gw", &req("POST", "/", &[])).as_deref(), Some("r1"));
    assert_eq!(t.route("gw", &req("GET", "/", &[])).as_deref(), Some("r2"));
    assert_eq!(t.route("gw", &req("HEAD", "/", &[])), None);
    assert_eq!(
        t.route("gw", &req("PATCH", "/path5", &[])).as_deref(),
        Some("r7")
    );
    assert_eq!(
        t.route("gw", &req("PATCH", "/", &[("version", "four")]))
            .as_deref(),
        Some("r8")
    );
}

#[test]
fn oldest_route_wins_a_tie_between_routes() {
    let t = Table::new(&[
        (
            "zeta",
            None,
            vec![("first-declared", vec![m("/same", None, &[], &[])])],
        ),
        (
            "alpha",
            None,
            vec![("second-declared", vec![m("/same", None, &[], &[])])],
        ),
    ]);
    assert_eq!(
        t.route("gw", &get("/same")).as_deref(),
        Some("first-declared")
    );
}

#[test]
fn exact_hostname_routes_come_before_wildcard_and_catch_all_routes() {
    // HTTPRouteMatchingAcrossRoutes, plus hostname precedence.
    let t = Table::new(&[
        (
            "part1",
            Some(&["example.com", "example.net"][..]),
            vec![(
                "v1",
                vec![
                    m("/", None, &[], &[]),
                    m("/", None, &[("version", "one")], &[]),
                ],
            )],
        ),
        (
            "part2",
            Some(&["example.com"][..]),
            vec![(
                "v2",
                vec![
                    m("/v2", None, &[], &[]),
                    m("/", None, &[("version", "two")], &[]),
                ],
            )],
        ),
        (
            "wild",
            Some(&["*.com"][..]),
            vec![("wild", vec![m("/", None, &[], &[])])],
        ),
        (
            "any",
            None,
            vec![("any", vec![m("/only-any", None, &[], &[])])],
        ),
    ]);
    assert_eq!(t.route("example.com", &get("/")).as_deref(), Some("v1"));
    assert_eq!(
        t.route("example.net", &get("/example")).as_deref(),
        Some("v1")
    );
    assert_eq!(
        t.route("example.com", &get("/v2/example")).as_deref(),
        Some("v2")
    );
    assert_eq!(
        t.route("example.com", &with(get("/"), &[("version", "two")]))
            .as_deref(),
        Some("v2")
    );
    assert_eq!(t.route("example.net", &get("/v2")).as_deref(), Some("v1"));
    assert_eq!(t.route("other.com", &get("/v2")).as_deref(), Some("wild"));
    assert_eq!(
        t.route("example.com", &get("/only-any")).as_deref(),
        Some("v1"),
        "exact hostname first"
    );
    assert_eq!(
        t.route("example.org", &get("/only-any")).as_deref(),
        Some("any")
    );
    assert_eq!(t.route("example.org", &get("/v2")), None);
}

#[test]
fn regular_expression_paths_rank_after_prefixes() {
    let t = Table::new(&[(
        "r",
        None,
        vec![
            ("regex", vec![m("~/api/v[0-9]+/.*", None, &[], &[])]),
            ("prefix", vec![m("/api", None, &[], &[])]),
        ],
    )]);
    assert_eq!(t.route("gw", &get("/api/v1/x")).as_deref(), Some("prefix"));
    let only_regex = Table::new(&[(
        "r",
        None,
        vec![("regex", vec![m("~/api/v[0-9]+/.*", None, &[], &[])])],
    )]);
    assert_eq!(
        only_regex.route("gw", &get("/api/v1/x")).as_deref(),
        Some("regex")
    );
    assert_eq!(only_regex.route("gw", &get("/api/vx/x")), None);
}
