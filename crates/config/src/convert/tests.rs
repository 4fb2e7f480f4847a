//! The conversion rules, one test each, and the lab: every manifest of
//! tests/corpus/convert/lab converts to TOML whose snapshot and status equal those of the
//! hand-written example in etc/gatehouse/examples (after filling in the Services'
//! endpoints, which no manifest holds).

use super::*;
use crate::tests::load_with;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpus/convert");
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../etc/gatehouse/examples");

fn one(yaml: &str) -> Converted {
    match convert(&[Input {
        name: "in.yaml",
        text: yaml,
    }]) {
        Ok(c) => c,
        Err(e) => panic!("conversion failed: {e:?}"),
    }
}

fn toml_of(yaml: &str) -> String {
    one(yaml).outputs.remove(0).toml
}

fn warnings(yaml: &str) -> Vec<String> {
    one(yaml).warnings.iter().map(|w| w.to_string()).collect()
}

fn errors(yaml: &str) -> Vec<String> {
    match convert(&[Input {
        name: "in.yaml",
        text: yaml,
    }]) {
        Ok(c) => panic!("converted, expected an error:\n{}", c.outputs[0].toml),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

fn corpus(name: &str) -> String {
    std::fs::read_to_string(format!("{CORPUS}/{name}")).expect("corpus file")
}

/// The TOML without its comment lines (the header names the input).
fn body(toml: &str) -> String {
    toml.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

#[test]
fn metadata_is_flattened_into_the_table() {
    let toml = toml_of(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: other\n  labels:\n    a: b\nspec:\n  controllerName: example.com/x\n",
    );
    assert_eq!(
        body(&toml),
        "[[GatewayClass]]\nname = \"other\"\nlabels = { a = \"b\" }\ncontrollerName = \"example.com/x\""
    );
}

#[test]
fn the_default_namespace_is_left_implicit_and_others_are_written() {
    let toml = toml_of(
        "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: shop}\nspec: {ports: [{port: 80}]}\n",
    );
    assert!(!toml.contains("namespace = \"default\""), "{toml}");
    assert!(
        toml.contains("name = \"b\"\nnamespace = \"shop\"\n"),
        "{toml}"
    );
}

#[test]
fn server_side_fields_are_dropped_without_a_report() {
    let c = one(&corpus("kubectl-list.yaml"));
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w, Vec::<String>::new());
    let toml = &c.outputs[0].toml;
    for gone in [
        "status",
        "managedFields",
        "uid",
        "resourceVersion",
        "172.18.255.200",
    ] {
        assert!(!toml.contains(gone), "{gone} in {toml}");
    }
}

#[test]
fn kind_list_items_are_converted_in_order() {
    let toml = toml_of(&corpus("kubectl-list.yaml"));
    let gw = toml.find("[[Gateway]]").expect("a Gateway");
    let route = toml.find("[[HTTPRoute]]").expect("an HTTPRoute");
    assert!(gw < route);
    assert!(
        toml.contains("[[Gateway.listeners]]\nname = \"web-gw\"\nprotocol = \"HTTP\"\nport = 80\n")
    );
}

#[test]
fn annotations_are_reported_except_kubectls_last_applied() {
    let w = warnings(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{}'\n    example.com/owner: web\n",
    );
    assert_eq!(
        w,
        [
            "in.yaml: Namespace shop: metadata.annotations[\"example.com/owner\"]: gatehouse reads no annotations"
        ]
    );
}

#[test]
fn an_unsupported_field_is_reported_with_its_path_and_commented_in_the_toml() {
    let c = one(&corpus("unsupported.yaml"));
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    for expected in [
        "in.yaml: HTTPRoute default/x: metadata.annotations[\"example.com/owner\"]: gatehouse reads no annotations",
        "in.yaml: HTTPRoute default/x: spec.rules[0].filters[1].extensionRef: not supported by gatehouse (it implements no extension): kept, and the rule answers 500",
        "in.yaml: HTTPRoute default/x: spec.rules[0].retry: not supported by gatehouse",
        "in.yaml: HTTPRoute default/x: spec.rules[0].sessionPersistence: not supported by gatehouse",
        "in.yaml: Service default/web: spec.ports[0].nodePort: not supported by gatehouse",
        "in.yaml: Service default/web: spec.type: \"LoadBalancer\" is not supported by gatehouse: its Services are backends only (a Gateway's `addresses` are what it serves on); left out",
    ] {
        assert!(
            w.iter().any(|l| l == expected),
            "missing {expected:?} in {w:#?}"
        );
    }
    let toml = &c.outputs[0].toml;
    assert!(toml.contains("# not converted: spec.rules[0].retry: not supported by gatehouse\n"));
}

#[test]
fn an_extension_ref_filter_is_kept_and_reported() {
    let toml = toml_of(&corpus("unsupported.yaml"));
    assert!(
        toml.contains(
            "[[HTTPRoute.rules.filters]]\ntype = \"ExtensionRef\"\nextensionRef = { group = \"example.com\", kind = \"RateLimit\", name = \"slow\" }\n"
        ),
        "{toml}"
    );
}

#[test]
fn values_too_long_for_a_line_get_a_table_header_of_their_own() {
    let toml = toml_of(&corpus("lab/basic-http.yaml"));
    assert!(
        toml.contains(
            "[[HTTPRoute.rules]]\nbackendRefs = [{ name = \"productpage\", port = 9080 }]\n\n[[HTTPRoute.rules.matches]]\npath = { type = \"PathPrefix\", value = \"/\" }\nheaders = [{ type = \"Exact\", name = \"magic\", value = \"foo\" }]\n"
        ),
        "{toml}"
    );
    assert!(
        toml.lines().all(|l| l.starts_with('#') || l.len() <= 100),
        "{toml}"
    );
}

#[test]
fn a_grpc_route_is_reported_whole_and_left_out() {
    let c = one(&corpus("unsupported.yaml"));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.resource == "GRPCRoute default/grpc"
                && w.path.is_empty()
                && w.message.starts_with("gatehouse has no GRPCRoute"))
    );
    assert!(!c.outputs[0].toml.contains("[[GRPCRoute]]"));
}

#[test]
fn a_kind_gatehouse_does_not_read_is_reported_whole() {
    let w = warnings(&corpus("unsupported.yaml"));
    assert!(w.contains(
        &"in.yaml: Deployment details-v1: apps/v1 Deployment is not supported by gatehouse; left out"
            .to_string()
    ), "{w:#?}");
}

#[test]
fn a_gateway_api_version_gatehouse_does_not_know_is_reported() {
    let w = warnings(
        "apiVersion: gateway.networking.k8s.io/v9\nkind: Gateway\nmetadata: {name: g}\nspec: {}\n",
    );
    assert_eq!(
        w,
        [
            "in.yaml: Gateway g: gateway.networking.k8s.io/v9 Gateway is not supported by gatehouse; left out"
        ]
    );
}

#[test]
fn a_service_selector_becomes_empty_endpoints_with_a_comment() {
    let toml = toml_of(
        "apiVersion: v1\nkind: Service\nmetadata: {name: details}\nspec:\n  selector: {app: details, version: v1}\n  ports: [{port: 9080, protocol: TCP}]\n  clusterIP: 10.96.0.12\n  type: ClusterIP\n  sessionAffinity: None\n",
    );
    assert_eq!(
        body(&toml),
        "[[Service]]\nname = \"details\"\nports = [{ port = 9080 }]\nendpoints = []"
    );
    assert!(
        toml.contains("# selector app=details,version=v1: gatehouse runs no pods."),
        "{toml}"
    );
}

#[test]
fn a_port_listed_again_for_another_protocol_is_left_out_and_reported() {
    let c = one(
        "apiVersion: v1\nkind: Service\nmetadata: {name: dns}\nspec:\n  ports:\n  - {name: dns, port: 53, protocol: UDP}\n  - {name: dns-tcp, port: 53, protocol: TCP}\n",
    );
    assert!(
        c.outputs[0]
            .toml
            .contains("ports = [{ name = \"dns\", port = 53 }]")
    );
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(c.warnings[0].path, "spec.ports[1]");
}

#[test]
fn yaml_merge_keys_are_applied() {
    let toml = toml_of(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - &p {port: 80, appProtocol: http}\n  - <<: *p\n    port: 81\n",
    );
    assert!(
        toml.contains("{ port = 81, appProtocol = \"http\" }"),
        "{toml}"
    );
}

#[test]
fn an_external_name_service_becomes_its_endpoint() {
    let toml = toml_of(
        "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {type: ExternalName, externalName: api.example.net, ports: [{port: 443}]}\n",
    );
    assert!(toml.contains("endpoints = [\"api.example.net\"]"), "{toml}");
}

#[test]
fn a_named_target_port_is_reported() {
    let w = warnings(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80, targetPort: http}]}\n",
    );
    assert_eq!(w.len(), 1);
    assert!(
        w[0].starts_with(
            "in.yaml: Service default/s: spec.ports[0].targetPort: a named port (http)"
        )
    );
}

#[test]
fn a_tls_secret_becomes_pem_files_that_the_toml_names() {
    let c = one(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: demo-cert, namespace: web}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: Q0VSVA==\n  tls.key: S0VZ\n  ca.crt: Q0E=\n",
    );
    let files: Vec<(String, String)> = c
        .secret_files
        .iter()
        .map(|f| {
            (
                f.path.display().to_string(),
                String::from_utf8_lossy(&f.contents).into(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("certs/web-demo-cert.crt".into(), "CERT".into()),
            ("certs/web-demo-cert.key".into(), "KEY".into()),
            ("certs/web-demo-cert.ca.crt".into(), "CA".into()),
        ]
    );
    assert_eq!(
        body(&c.outputs[0].toml),
        "[[Secret]]\nname = \"demo-cert\"\nnamespace = \"web\"\ntype = \"kubernetes.io/tls\"\ncertFile = \"certs/web-demo-cert.crt\"\nkeyFile = \"certs/web-demo-cert.key\"\ncaFile = \"certs/web-demo-cert.ca.crt\""
    );
}

#[test]
fn secret_values_never_appear_in_reports() {
    let c = one(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: CERT\n  tls.key: KEY\n  password: hunter2\n",
    );
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        ["in.yaml: Secret default/s: data.password: not supported by gatehouse; left out"]
    );
    assert!(!c.outputs[0].toml.contains("hunter2"));
}

#[test]
fn secret_data_that_is_not_base64_is_an_error() {
    let e = errors(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\ndata: {tls.crt: '!!!', tls.key: S0VZ}\n",
    );
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("in.yaml: Secret default/s: data[\"tls.crt\"]: not base64"),
        "{e:?}"
    );
}

#[test]
fn a_secret_of_another_type_is_reported_and_left_out() {
    let c = one(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: pull}\ntype: kubernetes.io/dockerconfigjson\ndata: {.dockerconfigjson: e30=}\n",
    );
    assert!(c.secret_files.is_empty());
    assert!(!c.outputs[0].toml.contains("[[Secret]]"));
    assert_eq!(c.warnings.len(), 1);
}

#[test]
fn an_opaque_secret_keeps_only_its_ca_and_one_without_is_left_out() {
    let c = one(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: ca}\nstringData: {ca.crt: PEM}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: x}\n",
    );
    assert_eq!(
        body(&c.outputs[0].toml),
        "[[Secret]]\nname = \"ca\"\ntype = \"Opaque\"\ncaFile = \"certs/default-ca.ca.crt\""
    );
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            "in.yaml: Secret default/db: data: no tls.crt, tls.key or ca.crt (keys: password): nothing gatehouse reads; left out"
        ]
    );
}

#[test]
fn a_config_map_keeps_its_data() {
    let toml = toml_of(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata:\n  ca.crt: |\n    PEM\n",
    );
    assert!(
        toml.contains("data = { \"ca.crt\" = \"PEM\\n\" }"),
        "{toml}"
    );
}

#[test]
fn a_cilium_pool_becomes_a_load_balancer_ip_pool() {
    let c = one(
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: lan}\nspec:\n  cidrs: [{cidr: 192.0.2.0/28}]\n  blocks: [{start: 192.0.2.100, stop: 192.0.2.110}]\n  disabled: false\n  serviceSelector: {matchLabels: {color: blue}}\n",
    );
    assert_eq!(
        body(&c.outputs[0].toml),
        "[[LoadBalancerIPPool]]\nname = \"lan\"\nblocks = [{ start = \"192.0.2.100\", stop = \"192.0.2.110\" }, { cidr = \"192.0.2.0/28\" }]"
    );
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(c.warnings[0].path, "spec.serviceSelector");
}

#[test]
fn the_builtin_gatehouse_class_is_left_out() {
    let c = one(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: gatehouse}\nspec: {controllerName: gatehouse.dev/gateway-controller}\n",
    );
    assert!(!c.outputs[0].toml.contains("[[GatewayClass]]"));
    assert_eq!(c.warnings.len(), 1);
}

#[test]
fn namespace_keeps_its_labels_but_not_the_one_kubernetes_sets() {
    let toml = toml_of(&corpus("every-kind.yaml"));
    assert!(
        toml.contains("[[Namespace]]\nname = \"shop\"\nlabels = { team = \"shop\" }\n"),
        "{toml}"
    );
}

#[test]
fn keys_are_written_in_the_documented_order_with_rules_as_sections() {
    let toml = toml_of(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n  - backendRefs: [{port: 80, name: a}]\n    matches: [{method: GET, path: {value: /, type: PathPrefix}}]\n  hostnames: [a.example]\n  parentRefs: [{name: g}]\n",
    );
    assert_eq!(
        body(&toml),
        "[[HTTPRoute]]\nname = \"r\"\nparentRefs = [{ name = \"g\" }]\nhostnames = [\"a.example\"]\n\n[[HTTPRoute.rules]]\nmatches = [{ path = { type = \"PathPrefix\", value = \"/\" }, method = \"GET\" }]\nbackendRefs = [{ name = \"a\", port = 80 }]"
    );
}

#[test]
fn long_lists_of_tables_are_written_one_entry_per_line() {
    let toml = toml_of(&corpus("lab/load-balancing.yaml"));
    assert!(toml.contains("backendRefs = [\n  { kind = \"Service\", name = \"echo-1\", port = 8080, weight = 50 },\n  { kind = \"Service\", name = \"echo-2\", port = 8090, weight = 50 },\n]\n"), "{toml}");
}

#[test]
fn garbage_yaml_is_an_error_with_line_and_column() {
    let e = errors("apiVersion: v1\nkind: Service\nmetadata:\n  name: [unclosed\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("in.yaml:5:1: "), "{e:?}");
}

#[test]
fn a_document_that_is_not_an_object_is_an_error() {
    let e = errors("just a string\n");
    assert_eq!(
        e,
        ["in.yaml: document 1: not a Kubernetes object: `apiVersion` and `kind` are required"]
    );
}

#[test]
fn a_resource_without_a_name_is_an_error() {
    let e = errors("apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}\n");
    assert_eq!(
        e,
        ["in.yaml: Namespace in document 1: metadata.name is required"]
    );
    let e = errors("apiVersion: v1\nkind: Namespace\nmetadata: shop\n");
    assert_eq!(
        e,
        ["in.yaml: Namespace in document 1: metadata must be an object with a name"]
    );
}

#[test]
fn empty_documents_are_skipped() {
    let c = one("---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n");
    assert!(c.warnings.is_empty());
    assert!(c.outputs[0].toml.contains("[[Namespace]]\nname = \"a\"\n"));
}

#[test]
fn every_kind_converts_without_reports_and_loads() {
    let c = one(&corpus("every-kind.yaml"));
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w, Vec::<String>::new());
    // The Secret's PEM is not real: the load has status problems, but no errors.
    let files: Vec<(String, String)> = c
        .secret_files
        .iter()
        .map(|f| {
            (
                format!("/etc/gatehouse/{}", f.path.display()),
                String::from_utf8_lossy(&f.contents).into_owned(),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let loaded = load_with(&c.outputs[0].toml, &refs);
    let kinds = [
        "Namespace",
        "GatewayClass",
        "LoadBalancerIPPool",
        "Gateway",
        "ReferenceGrant",
        "Secret",
        "HTTPRoute",
        "TLSRoute",
        "TCPRoute",
        "UDPRoute",
        "BackendTLSPolicy",
        "ConfigMap",
        "Service",
    ];
    for k in kinds {
        assert!(c.outputs[0].toml.contains(&format!("[[{k}]]")), "no {k}");
    }
    assert_eq!(loaded.snapshot.pools.len(), 1);
    assert!(
        c.outputs[0].toml.contains(
            "tls = { backend = { clientCertificateRef = { name = \"shop-cert\", namespace = \"shop\" } } }"
        ),
        "{}",
        c.outputs[0].toml
    );
}

// ---- the lab ----------------------------------------------------------------------------

/// Gives every `endpoints = []` of `converted` the endpoints of the same Service in
/// `example`: what an operator fills in after converting.
fn fill_endpoints(converted: &str, example: &str) -> String {
    let mut out = String::new();
    let mut service = None;
    for line in converted.lines() {
        if line.starts_with("[[") {
            service = None;
        }
        if let Some(name) = line.strip_prefix("name = ").filter(|_| service.is_none()) {
            service = Some(name.to_string());
        }
        if line == "endpoints = []" {
            let name = service.clone().unwrap_or_default();
            let at = example
                .find(&format!("[[Service]]\nname = {name}\n"))
                .unwrap_or_else(|| panic!("no Service {name} in the example"));
            let endpoints = example[at..]
                .lines()
                .find(|l| l.starts_with("endpoints = "))
                .expect("endpoints");
            out.push_str(endpoints.split('#').next().unwrap_or_default().trim());
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Converts the lab's `fixture` (plus `extra` YAML) and loads it beside the hand-written
/// `examples`; the snapshots and statuses must be equal.
fn assert_lab_equals(fixtures: &[&str], extra: &str, examples: &[&str], files: &[(&str, &str)]) {
    let mut yaml = String::new();
    for f in fixtures {
        yaml.push_str(&corpus(&format!("lab/{f}")));
        yaml.push_str("\n---\n");
    }
    yaml.push_str(extra);
    let c = one(&yaml);
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w, Vec::<String>::new());
    let mut example = String::new();
    for e in examples {
        example.push_str(&std::fs::read_to_string(format!("{EXAMPLES}/{e}")).expect("example"));
        example.push('\n');
    }
    // The Gateway API's UDPRoute has no idle timeout: gatehouse's extension has no source.
    let example = example.replace("timeouts = { idle = \"5s\" }\n", "");
    let converted = fill_endpoints(&c.outputs[0].toml, &example);
    let mut converted_files: Vec<(String, String)> = c
        .secret_files
        .iter()
        .map(|f| {
            (
                format!("/etc/gatehouse/{}", f.path.display()),
                String::from_utf8_lossy(&f.contents).into_owned(),
            )
        })
        .collect();
    converted_files.extend(files.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    let refs: Vec<(&str, &str)> = converted_files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let got = load_with(&converted, &refs);
    let want = load_with(&example, &refs);
    assert_eq!(
        format!("{:#?}", got.snapshot),
        format!("{:#?}", want.snapshot),
        "converted:\n{converted}"
    );
    assert_eq!(format!("{:#?}", got.status), format!("{:#?}", want.status));
}

#[test]
fn lab_basic_http_equals_the_hand_written_example() {
    assert_lab_equals(&["basic-http.yaml"], "", &["basic-http.toml"], &[]);
}

#[test]
fn lab_load_balancing_equals_the_hand_written_example() {
    assert_lab_equals(
        &["basic-http.yaml", "load-balancing.yaml"],
        "",
        &["basic-http.toml", "load-balancing.toml"],
        &[],
    );
}

#[test]
fn lab_basic_https_with_its_secret_equals_the_hand_written_example() {
    let c = rcgen::generate_simple_self_signed(vec!["*.cilium.rocks".to_string()]).expect("rcgen");
    let (cert, key) = (c.cert.pem(), c.signing_key.serialize_pem());
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    // As `kubectl create secret tls demo-cert --cert=... --key=...` makes it.
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: demo-cert\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(&cert),
        b64(&key)
    );
    // The example declares the Secret first; so does this input.
    let yaml = format!("{secret}---\n{}", corpus("lab/basic-https.yaml"));
    let c = one(&yaml);
    assert_eq!(c.secret_files.len(), 2);
    let example_files = [
        (
            "/etc/gatehouse/certs/_wildcard.cilium.rocks.pem",
            cert.as_str(),
        ),
        (
            "/etc/gatehouse/certs/_wildcard.cilium.rocks-key.pem",
            key.as_str(),
        ),
    ];
    assert_lab_equals(&[], &yaml, &["basic-https.toml"], &example_files);
}

#[test]
fn lab_tls_passthrough_equals_the_hand_written_example() {
    assert_lab_equals(
        &["tls-passthrough.yaml"],
        "",
        &["tls-passthrough.toml"],
        &[],
    );
}

#[test]
fn tcp_manifests_equal_the_hand_written_example() {
    assert_lab_equals(&["tcp.yaml"], "", &["tcp.toml"], &[]);
}

#[test]
fn udp_manifests_equal_the_hand_written_example_but_for_its_idle_timeout() {
    assert_lab_equals(&["udp-dns.yaml"], "", &["udp-dns.toml"], &[]);
}

use base64::Engine as _;
