//! `gatehouse convert`: Kubernetes manifests (YAML) to gatehouse TOML.
//!
//! ```text
//! (name, YAML text) ─▶ documents (`---`), `kind: List` items ─▶ one object each
//!   ─▶ by apiVersion and kind: metadata flattened, spec copied key by key (core, gateway,
//!      route) ─▶ [`Resource`]s ─▶ one TOML text per input
//!   every key not copied ─▶ a [`Warning`] with its path (and a comment in the TOML)
//!   a Secret's certificate and key ─▶ [`SecretFile`]s, named from the TOML
//! ```
//!
//! What is dropped without a word is only what the API server adds itself: `status`, and
//! `metadata` such as `uid`, `resourceVersion`, `managedFields` and kubectl's
//! last-applied annotation. Everything else either has a home in the TOML of
//! docs/configuration.md or is reported. Like the rest of this crate it reads and writes no
//! files: the binary does, and refuses to print a Secret's keys to stdout.

mod core;
mod gateway;
mod route;
#[cfg(test)]
mod tests;
mod tree;

use serde::Deserialize as _;
use serde_yaml_ng::Value;
use std::fmt;
use std::path::PathBuf;
use tree::{Node, Obj, Resource};

/// One manifest file (or stdin, named `-`).
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// What a conversion produced.
#[derive(Debug, Default)]
pub struct Converted {
    /// One TOML text per input, in input order.
    pub outputs: Vec<Output>,
    /// Certificate and key files of Secrets, named relative to the TOML files' folder.
    pub secret_files: Vec<SecretFile>,
    /// Every field (or resource) gatehouse has no home for.
    pub warnings: Vec<Warning>,
}

#[derive(Debug)]
pub struct Output {
    /// `basic-http.toml` for `dir/basic-http.yaml`, `stdin.toml` for `-`.
    pub file_name: String,
    /// The input's name, as given.
    pub source: String,
    pub toml: String,
}

/// A file a Secret's data becomes: PEM text that must be written with mode 0600.
#[derive(Debug)]
pub struct SecretFile {
    /// Relative to the TOML files' folder: `certs/<namespace>-<name>.crt`.
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

/// A field, or a whole resource, that the TOML cannot express.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub file: String,
    /// `HTTPRoute default/name`, or `document 3` before the object is known.
    pub resource: String,
    /// The key path inside the object (`spec.rules[0].filters[1].extensionRef`); empty for
    /// the whole object.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.file, self.resource)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Why nothing can be written.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The YAML does not parse.
    #[error("{file}:{line}:{column}: {message}")]
    Yaml {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A document parses but cannot be converted (no kind, data that is not base64, ...).
    #[error("{file}: {resource}: {message}")]
    Invalid {
        file: String,
        resource: String,
        message: String,
    },
}

/// The Gateway API versions whose shapes gatehouse reads.
const GATEWAY_VERSIONS: [&str; 4] = ["v1", "v1beta1", "v1alpha2", "v1alpha3"];
const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Converts every input; any error means nothing should be written.
pub fn convert(inputs: &[Input<'_>]) -> Result<Converted, Vec<ConvertError>> {
    let mut converted = Converted::default();
    let mut errors = Vec::new();
    for input in inputs {
        let mut cx = Cx::new(display_name(input.name));
        let mut resources = Vec::new();
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(input.text).enumerate() {
            // `<<: *anchor` merge keys, as kubectl applies them.
            let value = match Value::deserialize(doc).and_then(|mut v| v.apply_merge().map(|()| v))
            {
                Ok(v) => v,
                Err(e) => {
                    errors.push(yaml_error(input.name, &e));
                    break;
                }
            };
            cx.resource = format!("document {}", i + 1);
            object(&mut cx, value, &mut resources);
        }
        let file_name = toml_name(input.name, &converted.outputs);
        let mut toml = format!(
            "{}\n# Converted by `gatehouse convert` from {}.\n",
            crate::schema::DIRECTIVE,
            if input.name == "-" {
                "stdin"
            } else {
                input.name
            }
        );
        for r in &resources {
            toml.push('\n');
            tree::write_resource(&mut toml, r);
        }
        converted.outputs.push(Output {
            file_name,
            source: input.name.to_string(),
            toml,
        });
        converted.warnings.extend(cx.warnings);
        errors.extend(cx.errors);
        for f in cx.secret_files {
            if converted.secret_files.iter().any(|g| g.path == f.path) {
                errors.push(ConvertError::Invalid {
                    file: display_name(input.name).to_string(),
                    resource: format!("Secret {}", f.path.display()),
                    message: "declared twice: its files would overwrite each other".into(),
                });
            } else {
                converted.secret_files.push(f);
            }
        }
    }
    if errors.is_empty() {
        Ok(converted)
    } else {
        Err(errors)
    }
}

fn yaml_error(file: &str, e: &serde_yaml_ng::Error) -> ConvertError {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    // The message repeats the location ("... at line 3 column 5, while parsing ..."): keep
    // it once, in front, and the context after it.
    let message = e.to_string();
    let message = match message.find(" at line ") {
        Some(i) => {
            let rest = &message[i + " at line ".len()..];
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            let rest = rest.strip_prefix(" column ").unwrap_or(rest);
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{}{rest}", &message[..i])
        }
        None => message,
    };
    ConvertError::Yaml {
        file: display_name(file).to_string(),
        line,
        column,
        message,
    }
}

/// The name messages use for an input: `<stdin>` for `-`.
fn display_name(name: &str) -> &str {
    if name == "-" { "<stdin>" } else { name }
}

/// `basic-http.yaml` → `basic-http.toml`; a second input of the same stem gets `-2`.
fn toml_name(input: &str, taken: &[Output]) -> String {
    let stem = if input == "-" {
        "stdin"
    } else {
        std::path::Path::new(input)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("converted")
    };
    let mut name = format!("{stem}.toml");
    let mut n = 1;
    while taken.iter().any(|o| o.file_name == name) {
        n += 1;
        name = format!("{stem}-{n}.toml");
    }
    name
}

/// The state of one input's conversion.
#[derive(Debug)]
pub(crate) struct Cx {
    file: String,
    /// What the current warnings are about: `HTTPRoute default/name`.
    resource: String,
    warnings: Vec<Warning>,
    errors: Vec<ConvertError>,
    secret_files: Vec<SecretFile>,
}

impl Cx {
    fn new(file: &str) -> Self {
        Cx {
            file: file.to_string(),
            resource: String::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
            secret_files: Vec::new(),
        }
    }

    /// Reports a field (or, with an empty path, the whole object) that is not converted.
    pub fn warn(&mut self, path: &str, message: &str) {
        self.warnings.push(Warning {
            file: self.file.clone(),
            resource: self.resource.clone(),
            path: path.to_string(),
            message: message.to_string(),
        });
    }

    pub fn error(&mut self, message: String) {
        self.errors.push(ConvertError::Invalid {
            file: self.file.clone(),
            resource: self.resource.clone(),
            message,
        });
    }
}

/// One YAML document: an object, a `List` of them, or nothing.
fn object(cx: &mut Cx, value: Value, out: &mut Vec<Resource>) {
    if value.is_null() {
        return; // an empty document, e.g. after a trailing `---`
    }
    if !value.is_mapping() {
        cx.error("not a Kubernetes object: `apiVersion` and `kind` are required".into());
        return;
    }
    let Some(mut obj) = Obj::new(cx, value, "") else {
        return;
    };
    let kind = obj.take_str(cx, "kind");
    let api_version = obj.take_str(cx, "apiVersion");
    let (Some(kind), Some(api_version)) = (kind, api_version) else {
        cx.error("not a Kubernetes object: `apiVersion` and `kind` are required".into());
        return;
    };
    if kind == "List" || (kind.ends_with("List") && obj.peek("items").is_some()) {
        let Some(Value::Sequence(items)) = obj.take("items") else {
            return; // an empty list
        };
        let base = cx.resource.clone();
        for (i, item) in items.into_iter().enumerate() {
            cx.resource = format!("{base}, items[{i}]");
            object(cx, item, out);
        }
        return;
    }
    let Some(handler) = handler(&api_version, &kind) else {
        let label = label_of(&kind, &obj);
        cx.resource = label;
        cx.warn(
            "",
            &format!("{api_version} {kind} is not supported by gatehouse; left out"),
        );
        let last = cx.warnings.len() - 1;
        out.push(Resource::comment(not_converted(&cx.warnings[last..], true)));
        return;
    };
    let warnings_before = cx.warnings.len();
    let meta_value = obj.take("metadata").unwrap_or(Value::Null);
    let Some(meta) = metadata(cx, &kind, meta_value, handler.namespaced) else {
        return;
    };
    obj.drop_silently("status");
    let mut r = Resource::new(handler.toml_kind);
    r.push("name", Node::Str(meta.name.clone()));
    if handler.namespaced && meta.namespace != "default" {
        r.push("namespace", Node::Str(meta.namespace.clone()));
    }
    if let Some(labels) = &meta.labels {
        r.push("labels", labels.clone());
    }
    let keep = (handler.convert)(cx, &mut obj, &meta, &mut r);
    obj.finish(cx);
    if keep {
        r.comments = not_converted(&cx.warnings[warnings_before..], false);
        out.push(r);
    } else {
        out.push(Resource::comment(not_converted(
            &cx.warnings[warnings_before..],
            true,
        )));
    }
}

/// The comment lines that repeat `warnings` in the TOML, naming the resource when it was
/// left out.
fn not_converted(warnings: &[Warning], resource: bool) -> Vec<String> {
    warnings
        .iter()
        .map(|w| {
            let mut line = "not converted: ".to_string();
            if resource {
                line.push_str(&w.resource);
                line.push_str(": ");
            }
            if !w.path.is_empty() {
                line.push_str(&w.path);
                line.push_str(": ");
            }
            line.push_str(&w.message);
            line
        })
        .collect()
}

/// `Kind namespace/name` for a message about an object gatehouse does not read.
fn label_of(kind: &str, obj: &Obj) -> String {
    let meta = obj.peek("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(|v| v.as_str())
        .unwrap_or("(no name)");
    match meta
        .and_then(|m| m.get("namespace"))
        .and_then(|v| v.as_str())
    {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The identity of an object.
#[derive(Debug)]
pub(crate) struct Meta {
    pub name: String,
    pub namespace: String,
    labels: Option<Node>,
}

/// Metadata the API server writes: not part of what the user declared.
const SERVER_METADATA: [&str; 10] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "ownerReferences",
];

/// The annotation `kubectl apply` keeps its input in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn metadata(cx: &mut Cx, kind: &str, value: Value, namespaced: bool) -> Option<Meta> {
    if !(value.is_mapping() || value.is_null()) {
        cx.resource = format!("{kind} in {}", cx.resource);
        cx.error("metadata must be an object with a name".into());
        return None;
    }
    let mut m = Obj::new(cx, value, "metadata")?;
    let name = m.take_str(cx, "name");
    let namespace = m.take_str(cx, "namespace");
    cx.resource = match (&name, &namespace, namespaced) {
        (Some(n), Some(ns), true) => format!("{kind} {ns}/{n}"),
        (Some(n), None, true) => format!("{kind} default/{n}"),
        (Some(n), _, false) => format!("{kind} {n}"),
        (None, ..) => format!("{kind} in {}", cx.resource),
    };
    let Some(name) = name else {
        cx.error("metadata.name is required".into());
        return None;
    };
    let labels = m
        .take("labels")
        .and_then(|v| tree::copy(cx, v, "metadata.labels", &tree::Shape::StringMap))
        .map(|n| match n {
            // The API server sets it on every Namespace; gatehouse does too.
            Node::Table(t) if kind == "Namespace" => Node::Table(
                t.into_iter()
                    .filter(|(k, _)| k != "kubernetes.io/metadata.name")
                    .collect(),
            ),
            n => n,
        })
        .filter(|n| !matches!(n, Node::Table(t) if t.is_empty()));
    if let Some(Value::Mapping(annotations)) = m.take("annotations") {
        for (k, _) in annotations {
            let k = k.as_str().unwrap_or_default().to_string();
            if k != LAST_APPLIED {
                cx.warn(
                    &tree::join("metadata.annotations", &k),
                    "gatehouse reads no annotations",
                );
            }
        }
    }
    for key in SERVER_METADATA {
        m.drop_silently(key);
    }
    m.finish(cx);
    Some(Meta {
        name,
        namespace: namespace.unwrap_or_else(|| "default".into()),
        labels,
    })
}

/// How one apiVersion and kind converts.
struct Handler {
    toml_kind: &'static str,
    namespaced: bool,
    /// Takes the rest of the object (`spec`, `data`, ...) into the resource; `false` leaves
    /// the resource out (the reason is reported).
    convert: fn(&mut Cx, &mut Obj, &Meta, &mut Resource) -> bool,
}

fn handler(api_version: &str, kind: &str) -> Option<Handler> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let h = |toml_kind, namespaced, convert| {
        Some(Handler {
            toml_kind,
            namespaced,
            convert,
        })
    };
    match (group, version, kind) {
        (GATEWAY_GROUP, v, _) if !GATEWAY_VERSIONS.contains(&v) => None,
        (GATEWAY_GROUP, _, "GatewayClass") => h("GatewayClass", false, gateway::gateway_class),
        (GATEWAY_GROUP, _, "Gateway") => h("Gateway", true, gateway::gateway),
        (GATEWAY_GROUP, _, "HTTPRoute") => h("HTTPRoute", true, route::http_route),
        (GATEWAY_GROUP, _, "GRPCRoute") => h("GRPCRoute", true, route::grpc_route),
        (GATEWAY_GROUP, _, "TLSRoute") => h("TLSRoute", true, route::tls_route),
        (GATEWAY_GROUP, _, "TCPRoute") => h("TCPRoute", true, route::tcp_route),
        (GATEWAY_GROUP, _, "UDPRoute") => h("UDPRoute", true, route::udp_route),
        (GATEWAY_GROUP, _, "ReferenceGrant") => h("ReferenceGrant", true, gateway::reference_grant),
        (GATEWAY_GROUP, _, "BackendTLSPolicy") => {
            h("BackendTLSPolicy", true, gateway::backend_tls_policy)
        }
        ("", "v1", "Service") => h("Service", true, core::service),
        ("", "v1", "Secret") => h("Secret", true, core::secret),
        ("", "v1", "ConfigMap") => h("ConfigMap", true, core::config_map),
        ("", "v1", "Namespace") => h("Namespace", false, core::namespace),
        ("cilium.io", "v2alpha1" | "v2", "CiliumLoadBalancerIPPool") => {
            h("LoadBalancerIPPool", false, core::ip_pool)
        }
        _ => None,
    }
}
