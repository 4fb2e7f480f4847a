//! `gatehouse convert` as an operator runs it: the lab's manifests to a configuration folder
//! that `gatehouse check` reports the same status for as the hand-written examples, stdin
//! with `kind: List`, Secrets to private PEM files, and the failure modes (bad YAML,
//! unsupported fields, files in the way).

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lab(name: &str) -> PathBuf {
    repo().join("tests/corpus/convert/lab").join(name)
}

fn corpus(name: &str) -> PathBuf {
    repo().join("tests/corpus/convert").join(name)
}

fn gatehouse(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gatehouse");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for gatehouse")
}

fn convert(args: &[&Path], extra: &[&str]) -> Output {
    let mut all: Vec<&str> = vec!["convert"];
    all.extend(args.iter().map(|p| p.to_str().expect("utf-8 path")));
    all.extend(extra);
    gatehouse(&all, None)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A configuration folder with an empty gatehouse.toml and a conf.d/.
fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("gatehouse.toml"), "").expect("gatehouse.toml");
    std::fs::create_dir(dir.path().join("conf.d")).expect("conf.d");
    dir
}

/// `gatehouse check -o json`'s status of a folder (which must load).
fn status(dir: &Path) -> serde_json::Value {
    let out = gatehouse(
        &["check", "-o", "json", "--config", dir.to_str().unwrap()],
        None,
    );
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    assert_eq!(v["valid"], true, "{v:#}");
    v["status"].take()
}

/// Gives every `endpoints = []` in `file` the endpoints of the same Service in the
/// examples: what the operator fills in after converting (there are no pods to select).
fn fill_endpoints(file: &Path, examples: &str) {
    let text = std::fs::read_to_string(file).expect("converted TOML");
    let mut out = String::new();
    let mut name = None;
    for line in text.lines() {
        if line.starts_with("[[") {
            name = None;
        }
        if let Some(n) = line.strip_prefix("name = ").filter(|_| name.is_none()) {
            name = Some(n.to_string());
        }
        if line == "endpoints = []" {
            let n = name.clone().unwrap_or_default();
            let at = examples
                .find(&format!("[[Service]]\nname = {n}\n"))
                .unwrap_or_else(|| panic!("no Service {n} in the examples"));
            let endpoints = examples[at..]
                .lines()
                .find(|l| l.starts_with("endpoints = "))
                .expect("endpoints");
            out.push_str(endpoints.split('#').next().unwrap_or_default().trim());
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    std::fs::write(file, out).expect("write filled TOML");
}

fn example(name: &str) -> String {
    std::fs::read_to_string(repo().join("etc/gatehouse/examples").join(name)).expect("example")
}

/// Converts `fixtures` into one folder and the `examples` into another; after filling in
/// the endpoints, `gatehouse check` reports the same status for both.
fn assert_same_status(fixtures: &[&str], examples: &[&str]) {
    let converted = config_dir();
    let conf_d = converted.path().join("conf.d");
    let paths: Vec<PathBuf> = fixtures.iter().map(|f| lab(f)).collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let out = convert(&refs, &["-o", conf_d.to_str().unwrap(), "--strict"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Left as converted, check names each Service still to fill in.
    let check = gatehouse(
        &["check", "--config", converted.path().to_str().unwrap()],
        None,
    );
    assert!(
        stderr(&check).contains("has no endpoints: requests routed to it get 503"),
        "{}",
        stderr(&check)
    );
    let all: String = examples.iter().map(|e| example(e) + "\n").collect();
    for f in fixtures {
        let toml = conf_d.join(f.replace(".yaml", ".toml"));
        fill_endpoints(&toml, &all);
    }
    let hand_written = config_dir();
    for e in examples {
        let text = example(e).replace("timeouts = { idle = \"5s\" }\n", "");
        std::fs::write(hand_written.path().join("conf.d").join(e), text).expect("copy example");
    }
    assert_eq!(status(converted.path()), status(hand_written.path()));
}

#[test]
fn the_lab_converts_to_the_status_of_the_hand_written_examples() {
    assert_same_status(&["basic-http.yaml"], &["basic-http.toml"]);
    assert_same_status(
        &["basic-http.yaml", "load-balancing.yaml"],
        &["basic-http.toml", "load-balancing.toml"],
    );
    assert_same_status(&["tls-passthrough.yaml"], &["tls-passthrough.toml"]);
    assert_same_status(&["tcp.yaml"], &["tcp.toml"]);
    // The hand-written UDPRoute's idle timeout is gatehouse's extension: no manifest has it.
    assert_same_status(&["udp-dns.yaml"], &["udp-dns.toml"]);
}

/// The demo certificate, made by the examples' script; `None` (with the reason printed)
/// when sh or openssl is missing.
fn demo_certs(dir: &Path) -> Option<(String, String)> {
    let script = repo().join("etc/gatehouse/examples/make-demo-certs.sh");
    match Command::new("sh").arg(script).arg(dir).output() {
        Ok(o) if o.status.success() => Some((
            std::fs::read_to_string(dir.join("_wildcard.cilium.rocks.pem")).ok()?,
            std::fs::read_to_string(dir.join("_wildcard.cilium.rocks-key.pem")).ok()?,
        )),
        Ok(o) => {
            eprintln!("skipping: make-demo-certs.sh failed: {}", stderr(&o));
            None
        }
        Err(e) => {
            eprintln!("skipping: cannot run sh/openssl: {e}");
            None
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_tls_secret_becomes_private_pem_files_and_the_https_lab_checks_clean() {
    let hand_written = config_dir();
    let certs = hand_written.path().join("conf.d/certs");
    let Some((cert, key)) = demo_certs(&certs) else {
        return;
    };
    std::fs::write(
        hand_written.path().join("conf.d/basic-https.toml"),
        example("basic-https.toml"),
    )
    .unwrap();
    // As `kubectl create secret tls demo-cert --cert=... --key=...` makes it, first (the
    // example declares it first too).
    let work = tempfile::tempdir().unwrap();
    let yaml = work.path().join("basic-https.yaml");
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: demo-cert\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n---\n",
        base64(cert.as_bytes()),
        base64(key.as_bytes())
    );
    let lab_text = std::fs::read_to_string(lab("basic-https.yaml")).unwrap();
    std::fs::write(&yaml, secret + &lab_text).unwrap();

    // stdout cannot carry a key.
    let out = convert(&[&yaml], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("give -o DIR"), "{}", stderr(&out));

    let converted = config_dir();
    let conf_d = converted.path().join("conf.d");
    let out = convert(&[&yaml], &["-o", conf_d.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key_file = conf_d.join("certs/default-demo-cert.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    let toml = std::fs::read_to_string(conf_d.join("basic-https.toml")).unwrap();
    assert!(
        toml.contains("keyFile = \"certs/default-demo-cert.key\""),
        "{toml}"
    );
    fill_endpoints(
        &conf_d.join("basic-https.toml"),
        &example("basic-https.toml"),
    );
    let strict = gatehouse(
        &[
            "check",
            "--strict",
            "--config",
            converted.path().to_str().unwrap(),
        ],
        None,
    );
    assert!(
        strict.status.success(),
        "{}{}",
        stdout(&strict),
        stderr(&strict)
    );
    assert_eq!(status(converted.path()), status(hand_written.path()));

    // A second run does not overwrite, and writes nothing; --force does.
    let again = convert(&[&yaml], &["-o", conf_d.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert!(
        std::fs::read_to_string(conf_d.join("basic-https.toml"))
            .unwrap()
            .contains("127.0.0.51")
    );
    let forced = convert(&[&yaml], &["-o", conf_d.to_str().unwrap(), "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn stdin_with_a_kubectl_list_converts_to_stdout() {
    let list = std::fs::read_to_string(corpus("kubectl-list.yaml")).unwrap();
    let out = gatehouse(&["convert", "-"], Some(&list));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let toml = stdout(&out);
    assert!(
        toml.starts_with(
            "#:schema file:///usr/share/gatehouse/gatehouse.schema.json\n# Converted by `gatehouse convert` from stdin.\n"
        ),
        "{toml}"
    );
    assert!(
        toml.contains("[[Gateway]]\nname = \"my-gateway\"\ngatewayClassName = \"cilium\"\n"),
        "{toml}"
    );
    assert!(
        toml.contains("[[HTTPRoute]]\nname = \"http-app-1\"\n"),
        "{toml}"
    );
    assert!(
        !toml.contains("managedFields") && !toml.contains("status"),
        "{toml}"
    );
}

#[test]
fn garbage_yaml_is_a_located_error_and_nothing_is_written() {
    let work = tempfile::tempdir().unwrap();
    let bad = work.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: [unclosed\n",
    )
    .unwrap();
    let good = lab("tcp.yaml");
    let out_dir = work.path().join("out");
    let out = convert(&[&good, &bad], &["-o", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "{}:5:1: did not find expected ',' or ']'",
            bad.display()
        )),
        "{err}"
    );
    assert!(!out_dir.exists(), "something was written");
}

#[test]
fn unsupported_fields_are_reported_with_their_paths_and_fail_only_with_strict() {
    let file = corpus("unsupported.yaml");
    let out = convert(&[&file], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let f = file.display();
    for line in [
        format!(
            "warning: {f}: HTTPRoute default/x: spec.rules[0].filters[1].extensionRef: not supported by gatehouse"
        ),
        format!(
            "warning: {f}: HTTPRoute default/x: spec.rules[0].retry: not supported by gatehouse"
        ),
        format!("warning: {f}: GRPCRoute default/grpc: gatehouse has no GRPCRoute"),
        format!(
            "warning: {f}: Deployment details-v1: apps/v1 Deployment is not supported by gatehouse; left out"
        ),
    ] {
        assert!(err.contains(&line), "missing {line:?} in\n{err}");
    }
    // The output loads: what could be converted is valid.
    let dir = config_dir();
    std::fs::write(dir.path().join("conf.d/unsupported.toml"), stdout(&out)).unwrap();
    status(dir.path());
    let strict = convert(&[&file], &["--strict"]);
    assert_eq!(strict.status.code(), Some(1));
    assert_eq!(
        stdout(&strict),
        stdout(&out),
        "--strict still prints the TOML"
    );
}
