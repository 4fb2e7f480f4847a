//! The JSON Schema of a configuration file, for editors: a TOML language server (taplo, Even
//! Better TOML) completes and checks keys with it. `gatehouse schema` prints it and the
//! package installs it as [`INSTALLED_PATH`]; the shipped files, and what `gatehouse convert`
//! writes, name it in their first line ([`DIRECTIVE`]).
//!
//! The decoder (`parse/`) reads the TOML by hand to locate every error, so the schema is
//! described here as shape types and generated from them with schemars. Tests
//! (`schema/tests.rs`) keep the two from drifting apart: every table the decoder reads has
//! exactly the keys of a table here, every shipped and documented example validates, and
//! every broken corpus file the decoder rejects for its shape the schema rejects too.
//!
//! A value rule here may be looser than the decoder's, never stricter, so an editor never
//! flags what `gatehouse check` accepts; the one exception is a listener's `protocol`, an
//! enum of what gatehouse serves (any other is reported `UnsupportedProtocol`).

// The shape types are read by schemars' derive only: nothing builds or reads a value of them.
#![allow(
    dead_code,
    reason = "shape types exist for their JSON Schema, never as values"
)]

mod resources;
mod routes;
mod settings;
#[cfg(test)]
mod tests;
mod values;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

/// Where the package installs the schema.
pub const INSTALLED_PATH: &str = "/usr/share/gatehouse/gatehouse.schema.json";

/// The first line of the shipped files and of what `gatehouse convert` writes: taplo's
/// header directive naming the installed schema (a URL; a bare path would be taken as
/// relative to the file).
pub const DIRECTIVE: &str = "#:schema file:///usr/share/gatehouse/gatehouse.schema.json";

/// One file of the configuration directory: `gatehouse.toml` or a `conf.d/**/*.toml`.
/// Resources are arrays of tables named after their kind (`[[Gateway]]`); the daemon
/// tables (`[admin]`, `[limits]`, ...) belong in gatehouse.toml only.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "gatehouse configuration")]
#[allow(non_snake_case)]
struct ConfigFile {
    GatewayClass: Option<Vec<resources::GatewayClass>>,
    Gateway: Option<Vec<resources::Gateway>>,
    HTTPRoute: Option<Vec<routes::HTTPRoute>>,
    TLSRoute: Option<Vec<routes::TLSRoute>>,
    TCPRoute: Option<Vec<routes::TCPRoute>>,
    UDPRoute: Option<Vec<routes::UDPRoute>>,
    ReferenceGrant: Option<Vec<resources::ReferenceGrant>>,
    Service: Option<Vec<resources::Service>>,
    Secret: Option<Vec<resources::Secret>>,
    Namespace: Option<Vec<resources::Namespace>>,
    LoadBalancerIPPool: Option<Vec<resources::LoadBalancerIPPool>>,
    BackendTLSPolicy: Option<Vec<resources::BackendTLSPolicy>>,
    ConfigMap: Option<Vec<resources::ConfigMap>>,
    admin: Option<settings::Admin>,
    log: Option<settings::Log>,
    runtime: Option<settings::Runtime>,
    announce: Option<settings::Announce>,
    ha: Option<settings::Ha>,
    http: Option<settings::Http>,
    limits: Option<settings::Limits>,
    forwarded: Option<settings::Forwarded>,
    proxyProtocol: Option<settings::ProxyProtocol>,
}

/// The schema as a JSON value (draft 7, which every TOML language server reads).
pub fn json_schema() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<ConfigFile>().to_value();
    without_null(&mut schema);
    schema
}

/// The schema as the package ships it: pretty-printed, with a final newline.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// TOML has no null: a value is left out by leaving out its key. schemars lets every
/// `Option` be null; this takes that back out, so an editor never offers `null`.
fn without_null(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(options)) = map.get_mut(key) {
                    options.retain(|o| *o != serde_json::json!({ "type": "null" }));
                    if options.len() == 1 {
                        let only = options.remove(0);
                        map.remove(key);
                        if let Value::Object(inner) = only {
                            for (k, x) in inner {
                                map.entry(k).or_insert(x);
                            }
                        }
                    }
                }
            }
            map.values_mut().for_each(without_null);
        }
        Value::Array(items) => items.iter_mut().for_each(without_null),
        _ => {}
    }
}
