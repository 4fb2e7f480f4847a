//! Every resource kind but the routes: GatewayClass, Gateway, ReferenceGrant, and the
//! stand-ins for what Kubernetes provides (Service, Secret, Namespace, ConfigMap), plus
//! LoadBalancerIPPool and BackendTLSPolicy (docs/configuration.md, "Resources").
//!
//! Metadata and spec are flattened into one table: `name`, `namespace` (namespaced kinds
//! only, "default" when absent) and `labels` sit beside the spec's keys.

use super::values::{
    Cidr, Duration, Endpoint, FilePath, Hostname, IP_CHARACTERS, InterfaceName, IpAddress, Labels,
    Name, NamespaceName, Path, Port, PreciseHostname, SectionName,
};
use schemars::JsonSchema;
use std::collections::BTreeMap;

/// The metadata of a namespaced resource.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub name: Name,
    /// Default "default".
    pub namespace: Option<NamespaceName>,
    pub labels: Option<Labels>,
}

/// The metadata of a cluster-scoped resource (GatewayClass, Namespace, LoadBalancerIPPool).
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterMeta {
    pub name: Name,
    pub labels: Option<Labels>,
}

/// A reference to an object by group, kind and name (a Secret unless `kind` says otherwise),
/// in another namespace only with a ReferenceGrant there.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    /// Default "" (the core group).
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: Name,
    /// Default: the referring resource's namespace.
    pub namespace: Option<NamespaceName>,
}

/// A reference to an object in the referring resource's namespace.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalObjectRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: Name,
}

/// A reference with every part given (a filter's extensionRef, a CA certificate ref).
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TypedLocalRef {
    pub group: String,
    pub kind: String,
    pub name: String,
}

/// A class of Gateways; gatehouse serves `controllerName = "gatehouse.dev/gateway-controller"`.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayClass {
    #[serde(flatten)]
    pub meta: ClusterMeta,
    pub controller_name: String,
    pub description: Option<String>,
    /// Accepted and reported: gatehouse takes no class parameters.
    pub parameters_ref: Option<ObjectRef>,
}

/// A Gateway: listeners on addresses.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gateway {
    #[serde(flatten)]
    pub meta: Meta,
    pub gateway_class_name: Name,
    /// 1 to 64 listeners, unique by name and by (port, protocol, hostname).
    #[schemars(length(min = 1, max = 64))]
    pub listeners: Vec<Listener>,
    /// Up to 16 addresses; none: the first free address of a LoadBalancerIPPool, or, with
    /// no pool, every address of the box.
    #[schemars(length(max = 16))]
    pub addresses: Option<Vec<GatewayAddress>>,
    pub infrastructure: Option<Infrastructure>,
    pub tls: Option<GatewayTls>,
}

/// What a listener speaks.
#[derive(JsonSchema)]
pub enum Protocol {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
    #[serde(rename = "TLS")]
    Tls,
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

/// A listener: a port, a protocol and, for HTTP, HTTPS and TLS, an optional hostname.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// The Gateway API's rules between protocol, tls and hostname (its CEL validations).
#[schemars(extend("allOf" = [
    {
        "if": { "properties": { "protocol": { "const": "HTTPS" } }, "required": ["protocol"] },
        "then": { "required": ["tls"], "properties": { "tls": { "properties": { "mode": { "const": "Terminate" } } } } }
    },
    {
        "if": { "properties": { "protocol": { "const": "TLS" } }, "required": ["protocol"] },
        "then": { "required": ["tls"], "properties": { "tls": { "required": ["mode"] } } }
    },
    {
        "if": { "properties": { "protocol": { "enum": ["HTTP", "TCP", "UDP"] } }, "required": ["protocol"] },
        "then": { "not": { "required": ["tls"] } }
    },
    {
        "if": { "properties": { "protocol": { "enum": ["TCP", "UDP"] } }, "required": ["protocol"] },
        "then": { "not": { "required": ["hostname"] } }
    }
]))]
pub struct Listener {
    pub name: SectionName,
    /// Not on TCP and UDP listeners.
    pub hostname: Option<Hostname>,
    pub port: Port,
    pub protocol: Protocol,
    /// Required on HTTPS (Terminate) and TLS (a mode) listeners; not allowed on others.
    pub tls: Option<ListenerTls>,
    /// Default: routes of the Gateway's namespace, of the kinds the protocol serves.
    pub allowed_routes: Option<AllowedRoutes>,
}

#[derive(JsonSchema)]
pub enum TlsMode {
    Terminate,
    Passthrough,
}

/// Terminate (the default mode) needs a certificate.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend(
    "if" = { "properties": { "mode": { "const": "Passthrough" } }, "required": ["mode"] },
    "else" = { "required": ["certificateRefs"], "properties": { "certificateRefs": { "minItems": 1 } } }
))]
pub struct ListenerTls {
    /// "Terminate" (the default) or "Passthrough" (TLS listeners only).
    pub mode: Option<TlsMode>,
    /// Up to 64 Secrets; Terminate needs at least one.
    #[schemars(length(max = 64))]
    pub certificate_refs: Option<Vec<ObjectRef>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowedRoutes {
    pub namespaces: Option<RouteNamespaces>,
    /// Up to 8 route kinds.
    #[schemars(length(max = 8))]
    pub kinds: Option<Vec<RouteGroupKind>>,
}

#[derive(JsonSchema)]
pub enum FromNamespaces {
    Same,
    All,
    Selector,
}

/// `from = "Selector"` needs a `selector`.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend(
    "if" = { "properties": { "from": { "const": "Selector" } }, "required": ["from"] },
    "then" = { "required": ["selector"] }
))]
pub struct RouteNamespaces {
    /// "Same" (the default), "All", or "Selector" (with `selector`).
    pub from: Option<FromNamespaces>,
    pub selector: Option<LabelSelector>,
}

/// Selects namespaces by their labels (every namespace carries
/// `kubernetes.io/metadata.name`).
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    pub match_labels: Option<Labels>,
    pub match_expressions: Option<Vec<LabelExpression>>,
}

#[derive(JsonSchema)]
pub enum LabelOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelExpression {
    pub key: String,
    pub operator: LabelOperator,
    /// Required for In and NotIn; none for Exists and DoesNotExist.
    pub values: Option<Vec<String>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteGroupKind {
    /// Default "gateway.networking.k8s.io".
    pub group: Option<String>,
    pub kind: String,
}

/// A Gateway address: an IP address gatehouse binds (and announces as a VIP).
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("allOf" = [
    {
        "if": { "properties": { "type": { "const": "IPAddress" } } },
        "then": { "required": ["value"], "properties": { "value": { "pattern": IP_CHARACTERS } } }
    },
    {
        "if": { "properties": { "type": { "const": "Hostname" } }, "required": ["type"] },
        "then": { "properties": { "value": { "$ref": "#/definitions/PreciseHostname" } } }
    }
]))]
pub struct GatewayAddress {
    /// "IPAddress" (the default); other types are accepted and reported
    /// UnsupportedAddress.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The address, e.g. "192.0.2.10"; required for IPAddress.
    pub value: Option<String>,
    /// The interface the VIP is put on; default: the one whose subnet holds it.
    pub interface: Option<InterfaceName>,
}

/// Accepted and reported: labels and annotations for infrastructure gatehouse does not create.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Infrastructure {
    pub labels: Option<Labels>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub parameters_ref: Option<LocalObjectRef>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayTls {
    pub backend: Option<GatewayBackendTls>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayBackendTls {
    /// The Secret (certificate and key) presented on every TLS connection to a backend.
    pub client_certificate_ref: Option<ObjectRef>,
}

/// Lets resources in `from` namespaces refer to objects in this one.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferenceGrant {
    #[serde(flatten)]
    pub meta: Meta,
    #[schemars(length(min = 1, max = 16))]
    pub from: Vec<GrantFrom>,
    #[schemars(length(min = 1, max = 16))]
    pub to: Vec<GrantTo>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantFrom {
    pub group: String,
    pub kind: String,
    pub namespace: NamespaceName,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantTo {
    pub group: String,
    pub kind: String,
    /// Default: every object of the kind.
    pub name: Option<String>,
}

/// A backend: ports and the endpoints that serve them.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    #[serde(flatten)]
    pub meta: Meta,
    #[schemars(length(min = 1, max = 64))]
    pub ports: Vec<ServicePort>,
    /// IP addresses or DNS names, each optionally with ":port" ("[v6]:port").
    pub endpoints: Option<Vec<Endpoint>>,
    pub health_check: Option<HealthCheck>,
    pub outlier_detection: Option<OutlierDetection>,
    /// Send a PROXY protocol header to the endpoints: "v1" or "v2".
    pub proxy_protocol: Option<ProxyVersion>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProxyVersion {
    V1,
    V2,
}

#[derive(JsonSchema)]
pub enum TcpOnly {
    #[serde(rename = "TCP")]
    Tcp,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: Port,
    /// The endpoints' port; default `port`.
    pub target_port: Option<Port>,
    /// Unset, "http", "kubernetes.io/h2c" or "kubernetes.io/ws"; others make backendRefs to
    /// the port ResolvedRefs=False/UnsupportedProtocol.
    pub app_protocol: Option<String>,
    pub protocol: Option<TcpOnly>,
}

#[derive(JsonSchema)]
pub enum HealthCheckType {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "TCP")]
    Tcp,
}

/// Active health checks of every endpoint.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// "HTTP" (the default: a GET that must answer 2xx or 3xx) or "TCP" (a connect).
    #[serde(rename = "type")]
    pub kind: Option<HealthCheckType>,
    /// Default "/".
    pub path: Option<Path>,
    /// Default 5s.
    pub interval: Option<Duration>,
    /// Default 1s.
    pub timeout: Option<Duration>,
    /// Failures before an endpoint leaves the rotation, 1 to 100. Default 3.
    #[schemars(range(min = 1, max = 100))]
    pub unhealthy_threshold: Option<u8>,
    /// Successes before it returns, 1 to 100. Default 2.
    #[schemars(range(min = 1, max = 100))]
    pub healthy_threshold: Option<u8>,
}

/// Passive health: endpoints that fail requests in a row are ejected for a while.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// 1 to 1000. Default 5.
    #[schemars(range(min = 1, max = 1000))]
    pub consecutive_errors: Option<u16>,
    /// Default 30s.
    pub ejection_time: Option<Duration>,
}

/// Certificate files: a TLS certificate and key, or a CA bundle.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    #[serde(flatten)]
    pub meta: Meta,
    /// "kubernetes.io/tls" (the default: certFile and keyFile required) or e.g. "Opaque".
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// PEM certificate chain, relative to this file's folder.
    pub cert_file: Option<FilePath>,
    /// PEM private key, relative to this file's folder.
    pub key_file: Option<FilePath>,
    /// PEM CA bundle (for a BackendTLSPolicy's caCertificateRefs).
    pub ca_file: Option<FilePath>,
}

/// A namespace, to give it labels that listeners' selectors match.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Namespace {
    pub name: NamespaceName,
    pub labels: Option<Labels>,
}

/// Addresses Gateways without `addresses` are given (Cilium's CiliumLoadBalancerIPPool).
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerIPPool {
    #[serde(flatten)]
    pub meta: ClusterMeta,
    #[schemars(length(min = 1, max = 1024))]
    pub blocks: Vec<IpBlock>,
}

/// A CIDR, or a range from start to stop.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum IpBlock {
    Cidr(CidrBlock),
    Range(RangeBlock),
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CidrBlock {
    pub cidr: Cidr,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeBlock {
    pub start: IpAddress,
    pub stop: IpAddress,
}

/// A CA bundle for BackendTLSPolicy, from a file or inline.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMap {
    #[serde(flatten)]
    pub meta: Meta,
    /// PEM CA bundle, relative to this file's folder (or `data."ca.crt"`, not both).
    pub ca_file: Option<FilePath>,
    /// `"ca.crt"` holds a PEM CA bundle; other keys are ignored.
    pub data: Option<BTreeMap<String, String>>,
}

/// TLS from gatehouse to a Service's port, verified against a CA.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTLSPolicy {
    #[serde(flatten)]
    pub meta: Meta,
    #[schemars(length(min = 1, max = 16))]
    pub target_refs: Vec<PolicyTargetRef>,
    pub validation: BackendTlsValidation,
    /// Up to 16 implementation-specific options (none is read).
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetRef {
    /// "" for a Service.
    pub group: String,
    pub kind: String,
    pub name: Name,
    /// A Service port's name.
    pub section_name: Option<SectionName>,
}

#[derive(JsonSchema)]
pub enum WellKnownCa {
    System,
}

/// Exactly one of caCertificateRefs and wellKnownCACertificates.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTlsValidation {
    /// Up to 8 ConfigMaps (`ca.crt`) or Secrets (`caFile`) in the policy's namespace.
    #[schemars(length(max = 8))]
    pub ca_certificate_refs: Option<Vec<TypedLocalRef>>,
    #[serde(rename = "wellKnownCACertificates")]
    pub well_known_ca_certificates: Option<WellKnownCa>,
    /// The SNI sent and, without subjectAltNames, the name the certificate must have.
    pub hostname: PreciseHostname,
    #[schemars(length(max = 5))]
    pub subject_alt_names: Option<Vec<SubjectAltName>>,
}

/// A name the backend's certificate must have.
#[derive(JsonSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum SubjectAltName {
    Hostname {
        hostname: Hostname,
    },
    #[serde(rename = "URI")]
    Uri {
        uri: String,
    },
}
