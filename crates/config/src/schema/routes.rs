//! The routes: HTTPRoute (matches, filters, weighted backendRefs, timeouts), TLSRoute,
//! TCPRoute and UDPRoute (docs/configuration.md, "HTTPRoute" to "UDPRoute").

use super::resources::Meta;
use super::values::{
    Duration, HeaderName, Hostname, Method, Name, NamespaceName, PATH, Path, Port, PreciseHostname,
    SectionName,
};
use schemars::JsonSchema;

/// The Gateway (and optionally its listener or port) a route attaches to.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParentRef {
    /// Default "gateway.networking.k8s.io".
    pub group: Option<String>,
    /// Default "Gateway".
    pub kind: Option<String>,
    /// Default: the route's namespace.
    pub namespace: Option<NamespaceName>,
    pub name: Name,
    /// A listener's name.
    pub section_name: Option<SectionName>,
    pub port: Option<Port>,
}

/// Routes HTTP requests by hostname, path, headers, method and query.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPRoute {
    #[serde(flatten)]
    pub meta: Meta,
    #[schemars(length(max = 32))]
    pub parent_refs: Option<Vec<ParentRef>>,
    /// Up to 16; intersected with the listeners' hostnames.
    #[schemars(length(max = 16))]
    pub hostnames: Option<Vec<Hostname>>,
    /// Up to 16 rules (at most 128 matches in all); default: one rule matching every request,
    /// with no backends.
    #[schemars(length(max = 16))]
    pub rules: Option<Vec<HttpRule>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRule {
    /// Unique in the route.
    pub name: Option<SectionName>,
    /// Up to 64, any of which selects the rule; default: every request.
    #[schemars(length(max = 64))]
    pub matches: Option<Vec<HttpMatch>>,
    #[schemars(length(max = 16))]
    pub filters: Option<Vec<HttpFilter>>,
    /// Up to 16, drawn by weight; none (and no redirect): 500.
    #[schemars(length(max = 16))]
    pub backend_refs: Option<Vec<HttpBackendRef>>,
    pub timeouts: Option<HttpTimeouts>,
}

/// Every condition must hold.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatch {
    /// Default: PathPrefix "/".
    pub path: Option<PathMatch>,
    #[schemars(length(max = 16))]
    pub headers: Option<Vec<HeaderMatch>>,
    #[schemars(length(max = 16))]
    pub query_params: Option<Vec<QueryMatch>>,
    pub method: Option<Method>,
}

#[derive(JsonSchema)]
pub enum PathMatchType {
    Exact,
    PathPrefix,
    RegularExpression,
}

/// An Exact or PathPrefix value starts with '/'.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend(
    "if" = { "properties": { "type": { "const": "RegularExpression" } }, "required": ["type"] },
    "else" = { "properties": { "value": { "pattern": PATH, "maxLength": 1024 } } }
))]
pub struct PathMatch {
    /// Default "PathPrefix".
    #[serde(rename = "type")]
    pub kind: Option<PathMatchType>,
    /// Default "/". A RegularExpression must match the whole path.
    pub value: Option<String>,
}

#[derive(JsonSchema)]
pub enum ValueMatchType {
    Exact,
    RegularExpression,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMatch {
    /// Default "Exact".
    #[serde(rename = "type")]
    pub kind: Option<ValueMatchType>,
    /// Case-insensitive; only the first match of a name counts.
    pub name: HeaderName,
    #[schemars(length(max = 4096))]
    pub value: String,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryMatch {
    /// Default "Exact".
    #[serde(rename = "type")]
    pub kind: Option<ValueMatchType>,
    /// Case-sensitive.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// A filter: `type` and the one key it names.
#[derive(JsonSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum HttpFilter {
    RequestHeaderModifier {
        #[serde(rename = "requestHeaderModifier")]
        config: HeaderModifier,
    },
    ResponseHeaderModifier {
        #[serde(rename = "responseHeaderModifier")]
        config: HeaderModifier,
    },
    /// Answers with a redirect; not with backendRefs or URLRewrite.
    RequestRedirect {
        #[serde(rename = "requestRedirect")]
        config: Redirect,
    },
    #[serde(rename = "URLRewrite")]
    UrlRewrite {
        #[serde(rename = "urlRewrite")]
        config: UrlRewrite,
    },
    /// Copies the request to another backend (the answer is dropped); may repeat.
    RequestMirror {
        #[serde(rename = "requestMirror")]
        config: Mirror,
    },
    #[serde(rename = "CORS")]
    Cors {
        #[serde(rename = "cors")]
        config: Cors,
    },
    /// Accepted and reported: gatehouse has no extension filters (the rule answers 500).
    ExtensionRef {
        #[serde(rename = "extensionRef")]
        config: super::resources::TypedLocalRef,
    },
}

/// Header names are case-insensitive and may appear once across set, add and remove.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderModifier {
    #[schemars(length(max = 16))]
    pub set: Option<Vec<HeaderValue>>,
    #[schemars(length(max = 16))]
    pub add: Option<Vec<HeaderValue>>,
    #[schemars(length(max = 16))]
    pub remove: Option<Vec<HeaderName>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderValue {
    pub name: HeaderName,
    #[schemars(length(max = 4096))]
    pub value: String,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Redirect {
    pub scheme: Option<Scheme>,
    pub hostname: Option<PreciseHostname>,
    pub path: Option<PathModifier>,
    pub port: Option<Port>,
    /// 301, 302 (the default), 303, 307 or 308.
    #[schemars(extend("enum" = [301, 302, 303, 307, 308]))]
    pub status_code: Option<u16>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UrlRewrite {
    pub hostname: Option<PreciseHostname>,
    pub path: Option<PathModifier>,
}

/// The new path: all of it, or the part the rule's one PathPrefix match matched.
#[derive(JsonSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum PathModifier {
    ReplaceFullPath {
        #[serde(rename = "replaceFullPath")]
        path: Path,
    },
    ReplacePrefixMatch {
        /// May be "" (the prefix is removed).
        #[serde(rename = "replacePrefixMatch")]
        prefix: String,
    },
}

/// Which requests are mirrored: `percent` or `fraction`, not both; default all.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("not" = { "required": ["percent", "fraction"] }))]
pub struct Mirror {
    pub backend_ref: BackendObjectRef,
    #[schemars(range(max = 100))]
    pub percent: Option<u8>,
    pub fraction: Option<Fraction>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fraction {
    pub numerator: u32,
    /// Default 100; not less than numerator.
    #[schemars(range(min = 1))]
    pub denominator: Option<u32>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cors {
    /// Up to 64 origins such as "https://www.example.com" or "https://*.example.com", or "*".
    #[schemars(length(max = 64))]
    pub allow_origins: Option<Vec<String>>,
    /// Up to 9 methods, or "*".
    #[schemars(length(max = 9))]
    pub allow_methods: Option<Vec<String>>,
    #[schemars(length(max = 64))]
    pub allow_headers: Option<Vec<String>>,
    #[schemars(length(max = 64))]
    pub expose_headers: Option<Vec<String>>,
    /// Default false.
    pub allow_credentials: Option<bool>,
    /// Seconds a preflight answer may be cached. Default 5.
    #[schemars(range(min = 1))]
    pub max_age: Option<u32>,
}

/// A Service (no group and no kind, or kind "Service") needs a `port`.
fn service_needs_port(schema: &mut schemars::Schema) {
    schema.insert(
        "if".into(),
        serde_json::json!({ "properties": { "group": { "const": "" }, "kind": { "const": "Service" } } }),
    );
    schema.insert("then".into(), serde_json::json!({ "required": ["port"] }));
}

/// A backend: a Service port, by default in the route's namespace.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = service_needs_port)]
pub struct BackendObjectRef {
    /// Default "" (the core group).
    pub group: Option<String>,
    /// Default "Service".
    pub kind: Option<String>,
    pub name: Name,
    /// Another namespace needs a ReferenceGrant there.
    pub namespace: Option<NamespaceName>,
    /// Required for a Service.
    pub port: Option<Port>,
}

/// A backendRef of an HTTPRoute rule: weighted, with its own filters.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = service_needs_port)]
pub struct HttpBackendRef {
    #[serde(flatten)]
    pub backend: BackendObjectRef,
    /// 0 to 1,000,000; the share of requests is weight / sum of weights. Default 1.
    #[schemars(range(max = 1_000_000))]
    pub weight: Option<u32>,
    #[schemars(length(max = 16))]
    pub filters: Option<Vec<HttpFilter>>,
}

/// A backendRef of a TLSRoute, TCPRoute or UDPRoute rule: weighted per connection or flow.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = service_needs_port)]
pub struct BackendRef {
    #[serde(flatten)]
    pub backend: BackendObjectRef,
    /// 0 to 1,000,000. Default 1.
    #[schemars(range(max = 1_000_000))]
    pub weight: Option<u32>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpTimeouts {
    /// How long the gateway may take to answer the request; "0s" disables.
    pub request: Option<Duration>,
    /// How long one request to a backend may take; "0s" disables; not longer than request.
    pub backend_request: Option<Duration>,
}

/// Routes TLS connections by SNI: passthrough (never decrypted) or after Terminate.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TLSRoute {
    #[serde(flatten)]
    pub meta: Meta,
    #[schemars(length(max = 32))]
    pub parent_refs: Option<Vec<ParentRef>>,
    /// 1 to 1024 SNI names, intersected with the listeners' hostnames.
    #[schemars(length(min = 1, max = 1024))]
    pub hostnames: Vec<Hostname>,
    /// Exactly one rule.
    #[schemars(length(min = 1, max = 1))]
    pub rules: Vec<L4Rule>,
}

/// A TLSRoute or TCPRoute rule.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L4Rule {
    pub name: Option<SectionName>,
    #[schemars(length(min = 1, max = 16))]
    pub backend_refs: Vec<BackendRef>,
}

/// Splices every connection of a TCP listener (or a TLS Terminate one) to a backend.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TCPRoute {
    #[serde(flatten)]
    pub meta: Meta,
    #[schemars(length(max = 32))]
    pub parent_refs: Option<Vec<ParentRef>>,
    /// 1 to 16 rules; a listener serves the first.
    #[schemars(length(min = 1, max = 16))]
    pub rules: Vec<L4Rule>,
}

/// Relays the datagrams of a UDP listener, per client flow.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UDPRoute {
    #[serde(flatten)]
    pub meta: Meta,
    #[schemars(length(max = 32))]
    pub parent_refs: Option<Vec<ParentRef>>,
    /// 1 to 16 rules; a listener serves the first.
    #[schemars(length(min = 1, max = 16))]
    pub rules: Vec<UdpRule>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UdpRule {
    pub name: Option<SectionName>,
    #[schemars(length(min = 1, max = 16))]
    pub backend_refs: Vec<BackendRef>,
    pub timeouts: Option<UdpTimeouts>,
}

/// A gatehouse extension.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UdpTimeouts {
    /// How long a flow may stay silent both ways; greater than 0s. Default: [limits]
    /// udpIdleTimeout.
    pub idle: Option<Duration>,
}
