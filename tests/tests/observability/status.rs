//! `/status` and `gatehouse status` for a configuration with every kind of problem: the
//! Gateway API conditions exactly, the generation and reload fields, and the tables.

use gatehouse_tests::observability::*;
use gatehouse_tests::{ConfigDir, Echo, Gateway, gatehouse_bin, tls, unique_ip};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Command;

/// (type, status, reason) of each condition, sorted by type.
fn conditions(v: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = v
        .as_array()
        .unwrap_or_else(|| panic!("conditions is not an array: {v}"))
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap_or("?").to_string(),
                c["status"].as_str().unwrap_or("?").to_string(),
                c["reason"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn want_conditions(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = list
        .iter()
        .map(|(t, s, r)| (t.to_string(), s.to_string(), r.to_string()))
        .collect();
    out.sort();
    out
}

fn find<'a>(list: &'a Value, pred: impl Fn(&Value) -> bool, what: &str) -> &'a Value {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|x| pred(x))
        .unwrap_or_else(|| panic!("no {what} in {list:#}"))
}

/// A configuration with every kind of problem, on Gateway `gw` (bound to `ip`) and the pair
/// `one`/`two` (bound to `ip2`).
fn problems_toml(
    admin: SocketAddr,
    ip: std::net::Ipv4Addr,
    ip2: std::net::Ipv4Addr,
    echo: &Echo,
) -> String {
    let mut t = daemon(admin, "");
    t.push_str(&echo_service("echo-a", echo));
    t.push_str(&format!(
        r#"
[[Namespace]]
name = "other"

[[Service]]
name = "elsewhere"
namespace = "other"
ports = [{{ port = 8080, targetPort = 3000 }}]
endpoints = ["{}"]

[[Secret]]
name = "broken-cert"
type = "kubernetes.io/tls"
certFile = "certs/absent.pem"
keyFile = "certs/absent-key.pem"
"#,
        echo.addr.ip()
    ));
    t.push_str(&gateway(
        "gw",
        ip,
        &[
            http_listener("web", Some("*.example.com")),
            tls::https_listener("secure", 443, Some("secure.example.com"), "broken-cert"),
        ],
    ));
    for name in ["one", "two"] {
        t.push_str(&gateway(
            name,
            ip2,
            &[http_listener("dup", Some("dup.example.com"))],
        ));
    }
    t.push_str(&route(
        "good",
        "web",
        &["good.example.com"],
        r#"{ name = "echo-a", port = 8080 }"#,
    ));
    t.push_str(&route(
        "missing-backend",
        "web",
        &["missing.example.com"],
        r#"{ name = "no-such-service", port = 8080 }"#,
    ));
    t.push_str(&route(
        "cross-namespace",
        "web",
        &["cross.example.com"],
        r#"{ name = "elsewhere", namespace = "other", port = 8080 }"#,
    ));
    t.push_str(&route(
        "wrong-host",
        "web",
        &["www.example.org"],
        r#"{ name = "echo-a", port = 8080 }"#,
    ));
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_the_gateway_api_conditions_of_every_kind_of_problem() {
    let (ip, ip2) = (unique_ip(), unique_ip());
    let admin = SocketAddr::from((unique_ip(), 9542));
    let echo = Echo::start("echo-a");
    let gw = Gateway::start(
        ConfigDir::with_main(&problems_toml(admin, ip, ip2, &echo)),
        &[SocketAddr::from((ip, 80))],
    );
    let doc = wait_status(&gw, |d| d["generation"] == 1).await;

    // Generation and reload fields.
    let mut problems = Vec::new();
    let mut check = |what: &str, ok: bool, got: &Value| {
        if !ok {
            problems.push(format!("{what}: got {got}"));
        }
    };
    check(
        "generation is 1",
        doc["generation"] == 1,
        &doc["generation"],
    );
    let reload = &doc["reload"];
    check(
        "reload.lastResult",
        reload["lastResult"] == "success",
        reload,
    );
    check("reload.trigger", reload["trigger"] == "start", reload);
    check(
        "reload.lastAttempt is a time",
        reload["lastAttempt"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000),
        reload,
    );
    check(
        "reload.lastSuccess is a time",
        reload["lastSuccess"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000),
        reload,
    );
    check(
        "reload.errors is empty",
        reload["errors"].as_array().is_some_and(Vec::is_empty),
        reload,
    );
    check(
        "listening is a list",
        doc["listening"].as_array().is_some_and(|l| !l.is_empty()),
        &doc["listening"],
    );
    check(
        "bindErrors is a list",
        doc["bindErrors"].as_array().is_some(),
        &doc["bindErrors"],
    );

    let status = &doc["status"];
    let gateways = &status["gateways"];
    let routes = &status["routes"];
    let gw_of = |name: &str| {
        find(
            gateways,
            |g| g["key"]["name"] == name,
            &format!("Gateway {name}"),
        )
    };
    let listener_of = |g: &str, l: &str| {
        find(
            &gw_of(g)["listeners"],
            |x| x["name"] == l,
            &format!("listener {g}/{l}"),
        )
        .clone()
    };
    let parent_of = |route: &str| {
        let r = find(
            routes,
            |r| r["key"]["name"] == route,
            &format!("HTTPRoute {route}"),
        );
        let parents = r["parents"].as_array().expect("parents");
        assert_eq!(parents.len(), 1, "HTTPRoute {route}: {r:#}");
        parents[0].clone()
    };
    let mut compare = |what: &str, got: &Value, want: &[(&str, &str, &str)]| {
        let (got, want) = (conditions(got), want_conditions(want));
        if got != want {
            problems.push(format!("{what}:\n      want {want:?}\n      got  {got:?}"));
        }
    };

    // Gateway gw: both listeners are accepted (the HTTPS one is valid but its certificate
    // reference is not resolved, so it is not programmed); the Gateway is programmed since
    // `web` serves, and its ResolvedRefs sums up that a listener's refs are not resolved.
    compare(
        "Gateway gw",
        &gw_of("gw")["conditions"],
        &[
            ("Accepted", "True", "Accepted"),
            ("Programmed", "True", "Programmed"),
            ("ResolvedRefs", "False", "ListenersNotResolved"),
        ],
    );
    compare(
        "listener gw/web",
        &listener_of("gw", "web")["conditions"],
        &[
            ("Accepted", "True", "Accepted"),
            ("Conflicted", "False", "NoConflicts"),
            ("Programmed", "True", "Programmed"),
            ("ResolvedRefs", "True", "ResolvedRefs"),
        ],
    );
    compare(
        "listener gw/secure (certificate file missing)",
        &listener_of("gw", "secure")["conditions"],
        &[
            ("Accepted", "True", "Accepted"),
            ("Conflicted", "False", "NoConflicts"),
            ("Programmed", "False", "Invalid"),
            ("ResolvedRefs", "False", "InvalidCertificateRef"),
        ],
    );
    for g in ["one", "two"] {
        compare(
            &format!("Gateway {g} (its only listener conflicts)"),
            &gw_of(g)["conditions"],
            &[
                ("Accepted", "False", "ListenersNotValid"),
                ("Programmed", "False", "Invalid"),
                ("ResolvedRefs", "True", "ResolvedRefs"),
            ],
        );
        compare(
            &format!("listener {g}/dup (hostname conflict with the other Gateway)"),
            &listener_of(g, "dup")["conditions"],
            &[
                ("Accepted", "False", "HostnameConflict"),
                ("Conflicted", "True", "HostnameConflict"),
                ("Programmed", "False", "Invalid"),
                ("ResolvedRefs", "True", "ResolvedRefs"),
            ],
        );
    }
    compare(
        "HTTPRoute good",
        &parent_of("good")["conditions"],
        &[
            ("Accepted", "True", "Accepted"),
            ("ResolvedRefs", "True", "ResolvedRefs"),
        ],
    );
    compare(
        "HTTPRoute missing-backend",
        &parent_of("missing-backend")["conditions"],
        &[
            ("Accepted", "True", "Accepted"),
            ("ResolvedRefs", "False", "BackendNotFound"),
        ],
    );
    compare(
        "HTTPRoute cross-namespace (no ReferenceGrant)",
        &parent_of("cross-namespace")["conditions"],
        &[
            ("Accepted", "True", "Accepted"),
            ("ResolvedRefs", "False", "RefNotPermitted"),
        ],
    );
    compare(
        "HTTPRoute wrong-host",
        &parent_of("wrong-host")["conditions"],
        &[
            ("Accepted", "False", "NoMatchingListenerHostname"),
            ("ResolvedRefs", "True", "ResolvedRefs"),
        ],
    );
    let attached = listener_of("gw", "web")["attachedRoutes"].clone();
    if attached != 3 {
        problems.push(format!(
            "listener gw/web: want 3 attached routes (good, missing-backend, cross-namespace), got {attached}"
        ));
    }

    // `gatehouse status`: table, wide and JSON.
    let run = |args: &[&str]| {
        let out = Command::new(gatehouse_bin())
            .arg("status")
            .arg("--admin")
            .arg(admin.to_string())
            .args(args)
            .output()
            .expect("run gatehouse status");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "gatehouse status {args:?} exited with {}: {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let table = run(&[]);
    for needle in [
        "generation 1",
        "GATEWAY",
        "PROGRAMMED",
        "default/gw",
        "default/one",
        "default/two",
        "ROUTE",
        "RESOLVEDREFS",
        "default/good",
        "default/missing-backend",
        "default/cross-namespace",
        "default/wrong-host",
        "HTTPRoute",
    ] {
        if !table.contains(needle) {
            problems.push(format!("`gatehouse status` lacks {needle:?}:\n{table}"));
        }
    }
    let row = |text: &str, start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let missing_row = row(&table, "default/missing-backend ");
    if !(missing_row.contains(&"True".to_string()) && missing_row.contains(&"False".to_string())) {
        problems.push(format!(
            "`gatehouse status`: route missing-backend should show Accepted True, ResolvedRefs False: {missing_row:?}"
        ));
    }
    let wide = run(&["-o", "wide"]);
    for needle in [
        "LISTENER",
        "REASON",
        "secure",
        "dup",
        "InvalidCertificateRef",
        "HostnameConflict",
        "BackendNotFound",
        "RefNotPermitted",
        "NoMatchingListenerHostname",
        "default/missing-backend",
        "default/cross-namespace",
        "default/wrong-host",
    ] {
        if !wide.contains(needle) {
            problems.push(format!(
                "`gatehouse status -o wide` lacks {needle:?}:\n{wide}"
            ));
        }
    }
    let json = run(&["-o", "json"]);
    match serde_json::from_str::<Value>(&json) {
        Ok(v) => {
            if v["generation"] != doc["generation"] || v["status"] != doc["status"] {
                problems.push("`gatehouse status -o json` differs from /status".to_string());
            }
        }
        Err(e) => problems.push(format!(
            "`gatehouse status -o json` is not JSON ({e}): {json}"
        )),
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n--- /status ---\n{doc:#}",
        problems.len(),
        problems.join("\n  ")
    );
}
