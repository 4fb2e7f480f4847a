//! The seed lab of CONFIG.md against the real binary: path, header, method and query
//! matching (basic-http), and the weighted split (load-balancing), 50/50 then 99/1.

use gatehouse_tests::{Client, ConfigDir, Echo, Gateway, unique_ip};
use std::collections::HashMap;
use std::net::SocketAddr;

fn lab(
    ip: std::net::Ipv4Addr,
    details: &[&Echo],
    productpage: &Echo,
    echo1: &Echo,
    echo2: &Echo,
    weights: (u32, u32),
) -> String {
    let endpoints = |es: &[&Echo]| {
        es.iter()
            .map(|e| format!("\"{}\"", e.addr))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
[[Gateway]]
name = "my-gateway"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
[[Gateway.listeners]]
name = "web-gw"
protocol = "HTTP"
port = 8080
allowedRoutes = {{ namespaces = {{ from = "Same" }} }}

[[HTTPRoute]]
name = "http-app-1"
parentRefs = [{{ name = "my-gateway", namespace = "default" }}]
[[HTTPRoute.rules]]
matches = [{{ path = {{ type = "PathPrefix", value = "/details" }} }}]
backendRefs = [{{ name = "details", port = 9080 }}]
[[HTTPRoute.rules]]
backendRefs = [{{ name = "productpage", port = 9080 }}]
[[HTTPRoute.rules.matches]]
path = {{ type = "PathPrefix", value = "/" }}
method = "GET"
headers = [{{ type = "Exact", name = "magic", value = "foo" }}]
queryParams = [{{ type = "Exact", name = "great", value = "example" }}]

[[HTTPRoute]]
name = "load-balancing-route"
parentRefs = [{{ name = "my-gateway" }}]
[[HTTPRoute.rules]]
matches = [{{ path = {{ type = "PathPrefix", value = "/echo" }} }}]
backendRefs = [
  {{ kind = "Service", name = "echo-1", port = 8080, weight = {w1} }},
  {{ kind = "Service", name = "echo-2", port = 8090, weight = {w2} }},
]

[[Service]]
name = "details"
ports = [{{ port = 9080 }}]
endpoints = [{details}]
[[Service]]
name = "productpage"
ports = [{{ port = 9080 }}]
endpoints = [{productpage}]
[[Service]]
name = "echo-1"
ports = [{{ port = 8080 }}]
endpoints = ["{echo1}"]
[[Service]]
name = "echo-2"
ports = [{{ name = "high", port = 8090, targetPort = 8080 }}]
endpoints = ["{echo2}"]
"#,
        w1 = weights.0,
        w2 = weights.1,
        details = endpoints(details),
        productpage = endpoints(&[productpage]),
        echo1 = echo1.addr,
        echo2 = echo2.addr,
    )
}

async fn split(client: &mut Client, host: &str, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let r = client.get(host, "/echo").await;
        assert_eq!(r.status, 200);
        *counts.entry(r.backend().unwrap_or_default()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_lab_basic_http_and_load_balancing() {
    let details = [Echo::start("details-1"), Echo::start("details-2")];
    let productpage = Echo::start("productpage");
    let (echo1, echo2) = (Echo::start("echo-1"), Echo::start("echo-2"));
    let ip = unique_ip();
    let gw_addr = SocketAddr::from((ip, 8080));
    let dir = ConfigDir::with_main(&lab(
        ip,
        &[&details[0], &details[1]],
        &productpage,
        &echo1,
        &echo2,
        (50, 50),
    ));
    let gw = Gateway::start(dir, &[gw_addr]);
    let mut c = Client::http1(gw_addr);

    // Path match: both details endpoints answer, round robin.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = c.get("bookinfo", "/details/1").await;
        assert_eq!(r.status, 200, "{}", gw.log());
        seen.push(r.backend().unwrap());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["details-1", "details-2"]);

    // magic: foo + GET + ?great=example.
    let r = c
        .request("GET", "bookinfo", "/?great=example", &[("magic", "foo")])
        .await;
    assert_eq!(r.backend().as_deref(), Some("productpage"));
    assert_eq!(r.json()["path"], "/?great=example");
    for (method, path, headers) in [
        ("GET", "/?great=example", &[][..]),
        ("GET", "/", &[("magic", "foo")][..]),
        ("POST", "/?great=example", &[("magic", "foo")][..]),
        ("GET", "/?great=example", &[("magic", "bar")][..]),
    ] {
        let r = c.request(method, "bookinfo", path, headers).await;
        assert_eq!(r.status, 404, "{method} {path} {headers:?}");
    }

    // 50/50 over 500 requests.
    let counts = split(&mut c, "bookinfo", 500).await;
    let one = counts.get("echo-1").copied().unwrap_or(0);
    assert_eq!(one + counts.get("echo-2").copied().unwrap_or(0), 500);
    assert!((200..=300).contains(&one), "50/50 gave {counts:?}");
    drop(gw);

    // 99/1.
    let dir = ConfigDir::with_main(&lab(
        ip,
        &[&details[0], &details[1]],
        &productpage,
        &echo1,
        &echo2,
        (99, 1),
    ));
    let gw = Gateway::start(dir, &[gw_addr]);
    let mut c = Client::http1(gw_addr);
    let counts = split(&mut c, "bookinfo", 500).await;
    let one = counts.get("echo-1").copied().unwrap_or(0);
    assert!(one >= 480, "99/1 gave {counts:?}: {}", gw.log());
}
