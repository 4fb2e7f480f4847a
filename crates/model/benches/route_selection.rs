//! Route selection cost for 10, 1,000 and 10,000 routes, each on its own hostname with a
//! few rules. The cost of routing one request should stay flat as routes on other hostnames
//! are added: the table is indexed by hostname.
//!
//! `decide` is the whole routing decision of the data plane on the same tables: listener
//! selection, the route, the weighted backend draw.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gatehouse_model::backend::{AppProtocol, Backend, BackendTarget, Backends};
use gatehouse_model::conn::ConnInfo;
use gatehouse_model::decide::{Action, decide};
use gatehouse_model::hostname::Hostname;
use gatehouse_model::http::{
    HttpEntry, HttpMatch, HttpRouteTable, HttpRule, PathMatch, RequestView, RouteOrder, RuleRef,
    Timeouts, ValueMatch,
};
use gatehouse_model::listener::{Listener, ListenerKind, Protocol};
use gatehouse_model::snapshot::{PortGroup, Snapshot};
use gatehouse_model::{Kind, ResourceKey};
use std::borrow::Cow;
use std::hint::black_box;
use std::sync::Arc;

struct Req;

impl RequestView for Req {
    fn method(&self) -> &str {
        "GET"
    }
    fn path(&self) -> &str {
        "/api/v2/items"
    }
    fn query(&self) -> Option<&str> {
        Some("page=2")
    }
    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            "x-version" => Some(Cow::Borrowed("two")),
            "host" => Some(Cow::Owned(HOST.with(|h| h.borrow().clone()))),
            _ => None,
        }
    }
}

thread_local! {
    static HOST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A snapshot with one HTTP listener on port 80 serving `t`.
fn snapshot(t: HttpRouteTable) -> Snapshot {
    Snapshot {
        listeners: vec![Listener {
            gateway: ResourceKey::new(Kind::Gateway, "default", "gw"),
            name: "web".into(),
            hostname: None,
            port: 80,
            protocol: Protocol::HTTP,
            addresses: Vec::new(),
            kind: ListenerKind::Http { routes: t },
        }],
        ports: vec![PortGroup {
            port: 80,
            tls: false,
            tcp: false,
            listeners: vec![0],
            addresses: Vec::new(),
        }],
        ..Snapshot::default()
    }
}

fn table(routes: usize) -> HttpRouteTable {
    let mut t = HttpRouteTable::default();
    for r in 0..routes {
        let host = Hostname::parse(&format!("host-{r}.example.com")).unwrap();
        let matches = [
            HttpMatch {
                path: PathMatch::Exact("/healthz".into()),
                ..Default::default()
            },
            HttpMatch {
                path: PathMatch::prefix("/api/v1"),
                ..Default::default()
            },
            HttpMatch {
                path: PathMatch::prefix("/api"),
                headers: vec![("x-version".into(), ValueMatch::Exact("two".into()))],
                ..Default::default()
            },
            HttpMatch::default(),
        ];
        for (i, m) in matches.into_iter().enumerate() {
            let rule = Arc::new(HttpRule {
                rule: RuleRef {
                    route: ResourceKey::new(Kind::HTTPRoute, "default", format!("r{r}")),
                    index: i,
                    name: None,
                },
                filters: Default::default(),
                backends: Backends::new(vec![Backend {
                    name: "default/backend:80".into(),
                    weight: 1,
                    target: BackendTarget::Service {
                        service: 0,
                        port: 80,
                        target_port: 80,
                        protocol: AppProtocol::Http1,
                        tls: None,
                    },
                    filters: Default::default(),
                }]),
                timeouts: Timeouts::default(),
            });
            let order = RouteOrder {
                declared: r,
                namespaced_name: format!("default/r{r}"),
                rule: i,
                matched: 0,
            };
            t.insert(
                Some(std::slice::from_ref(&host)),
                HttpEntry::new(m, rule, order),
            );
        }
    }
    t.finish();
    t
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_selection");
    for routes in [10usize, 1_000, 10_000] {
        let t = table(routes);
        let host = format!("host-{}.example.com", routes / 2);
        group.bench_with_input(BenchmarkId::from_parameter(routes), &routes, |b, _| {
            b.iter(|| {
                black_box(
                    t.route(Some(black_box(&host)), &Req)
                        .map(|r| r.rule.rule.index),
                )
            })
        });
    }
    group.finish();
}

fn bench_decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    let conn = ConnInfo::new(
        "127.0.0.1:80".parse().unwrap(),
        "192.0.2.7:40000".parse().unwrap(),
    );
    for routes in [10usize, 1_000, 10_000] {
        let s = snapshot(table(routes));
        HOST.with(|h| *h.borrow_mut() = format!("host-{}.example.com", routes / 2));
        group.bench_with_input(BenchmarkId::from_parameter(routes), &routes, |b, _| {
            b.iter(|| {
                let d = decide(black_box(&s), &conn, &Req, &mut || 7);
                black_box(matches!(d.action, Action::Forward(_)))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_decide);
criterion_main!(benches);
