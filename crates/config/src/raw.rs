//! The configuration as written, after decoding and schema validation but before any
//! reference is resolved. Field names follow the Gateway API; defaults are already applied.
//! Match conditions and most filters are already in their compiled model form, because
//! nothing about them depends on other resources.

use gatehouse_model::backend::{Endpoint, HealthCheck, OutlierDetection, ServicePort};
use gatehouse_model::filter::Filters;
use gatehouse_model::hostname::Hostname;
use gatehouse_model::http::HttpMatch;
use gatehouse_model::settings::Settings;
use gatehouse_model::snapshot::IpBlock;
use gatehouse_model::{Kind, ResourceKey};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Identity and provenance of a resource.
#[derive(Clone, Debug)]
pub struct Meta {
    pub kind: Kind,
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// Index of the file in the load, and the byte offset of the resource in it.
    pub file: usize,
    pub offset: usize,
    /// Declaration order across the whole load: stands in for creation time.
    pub order: usize,
}

impl Meta {
    pub fn key(&self) -> ResourceKey {
        ResourceKey::new(self.kind, &self.namespace, &self.name)
    }
}

#[derive(Clone, Debug)]
pub struct GatewayClass {
    pub meta: Meta,
    pub controller_name: String,
    pub description: Option<String>,
    pub has_parameters_ref: bool,
}

/// A reference to another object by group, kind, name and optional namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    Terminate,
    Passthrough,
}

#[derive(Clone, Debug)]
pub struct ListenerTls {
    pub mode: TlsMode,
    pub certificate_refs: Vec<ObjectRef>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<(String, LabelOp, Vec<String>)>,
}

impl LabelSelector {
    /// Kubernetes label selector semantics: every matchLabels pair and every expression.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|(k, op, values)| {
                let v = labels.get(k);
                match op {
                    LabelOp::In => v.is_some_and(|v| values.contains(v)),
                    LabelOp::NotIn => v.is_none_or(|v| !values.contains(v)),
                    LabelOp::Exists => v.is_some(),
                    LabelOp::DoesNotExist => v.is_none(),
                }
            })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromNamespaces {
    Same,
    All,
    Selector(LabelSelector),
}

#[derive(Clone, Debug)]
pub struct AllowedRoutes {
    pub namespaces: FromNamespaces,
    /// `None`: the kinds the protocol implies.
    pub kinds: Option<Vec<(String, String)>>,
}

#[derive(Clone, Debug)]
pub struct Listener {
    pub name: String,
    pub hostname: Option<Hostname>,
    pub port: u16,
    pub protocol: String,
    pub tls: Option<ListenerTls>,
    pub allowed_routes: AllowedRoutes,
}

#[derive(Clone, Debug)]
pub struct Address {
    pub kind: String,
    pub value: String,
    pub interface: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Gateway {
    pub meta: Meta,
    pub class_name: String,
    pub listeners: Vec<Listener>,
    pub addresses: Vec<Address>,
    pub has_infrastructure_parameters_ref: bool,
    /// `tls.backend.clientCertificateRef`: the certificate presented to backends that a
    /// BackendTLSPolicy makes gatehouse speak TLS to.
    pub backend_client_certificate_ref: Option<ObjectRef>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentRef {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<u16>,
}

/// A reference to a backend: an object plus port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendObjectRef {
    pub object: ObjectRef,
    pub port: Option<u16>,
}

#[derive(Clone, Debug)]
pub struct Mirror {
    pub backend: BackendObjectRef,
    pub numerator: u32,
    pub denominator: u32,
}

/// The filters of a rule or backendRef: compiled where they stand alone, raw where they
/// reference other resources.
#[derive(Clone, Debug, Default)]
pub struct RawFilters {
    pub filters: Filters,
    pub mirrors: Vec<Mirror>,
    /// ExtensionRef filters: gatehouse implements none, so their rule answers 500.
    pub extension_refs: Vec<ObjectRef>,
}

#[derive(Clone, Debug)]
pub struct BackendRef {
    pub backend: BackendObjectRef,
    pub weight: u32,
    pub filters: RawFilters,
}

#[derive(Clone, Debug, Default)]
pub struct RouteTimeouts {
    pub request: Option<Duration>,
    pub backend_request: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct HttpRule {
    pub name: Option<String>,
    /// Never empty: a rule without matches gets `PathPrefix /`.
    pub matches: Vec<HttpMatch>,
    pub filters: RawFilters,
    pub backend_refs: Vec<BackendRef>,
    pub timeouts: RouteTimeouts,
}

#[derive(Clone, Debug)]
pub struct HttpRoute {
    pub meta: Meta,
    pub parent_refs: Vec<ParentRef>,
    pub hostnames: Vec<Hostname>,
    pub rules: Vec<HttpRule>,
}

/// A TLSRoute, TCPRoute or UDPRoute rule: a name and backendRefs, nothing to match on.
#[derive(Clone, Debug)]
pub struct TlsRule {
    pub name: Option<String>,
    pub backend_refs: Vec<BackendRef>,
    /// UDPRoute only (a gatehouse extension): `timeouts = { idle = "5s" }`, how long a flow
    /// may stay silent before it ends; `None` takes `[limits] udpIdleTimeout`.
    pub idle_timeout: Option<std::time::Duration>,
}

#[derive(Clone, Debug)]
pub struct TlsRoute {
    pub meta: Meta,
    pub parent_refs: Vec<ParentRef>,
    pub hostnames: Vec<Hostname>,
    pub rules: Vec<TlsRule>,
}

/// A TCPRoute or UDPRoute (Gateway API v1alpha2): no hostnames, 1 to 16 rules.
#[derive(Clone, Debug)]
pub struct L4Route {
    /// `TCPRoute` or `UDPRoute`.
    pub kind: gatehouse_model::Kind,
    pub meta: Meta,
    pub parent_refs: Vec<ParentRef>,
    pub rules: Vec<TlsRule>,
}

#[derive(Clone, Debug)]
pub struct GrantFrom {
    pub group: String,
    pub kind: String,
    pub namespace: String,
}

#[derive(Clone, Debug)]
pub struct GrantTo {
    pub group: String,
    pub kind: String,
    pub name: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ReferenceGrant {
    pub meta: Meta,
    pub from: Vec<GrantFrom>,
    pub to: Vec<GrantTo>,
}

#[derive(Clone, Debug)]
pub struct Service {
    pub meta: Meta,
    pub ports: Vec<ServicePort>,
    pub endpoints: Vec<Endpoint>,
    pub health_check: Option<HealthCheck>,
    pub outlier_detection: Option<OutlierDetection>,
    pub proxy_protocol: Option<gatehouse_model::backend::ProxyVersion>,
}

#[derive(Clone, Debug)]
pub struct Secret {
    pub meta: Meta,
    pub secret_type: String,
    /// Resolved against the folder of the file that declares the Secret.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// A PEM CA bundle, for BackendTLSPolicy `caCertificateRefs` (Kubernetes' `ca.crt` key).
    pub ca_file: Option<PathBuf>,
}

/// Where a ConfigMap's `ca.crt` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaSource {
    /// `caFile`: a PEM file, resolved against the declaring file's folder.
    File(PathBuf),
    /// `data = { "ca.crt" = "..." }`: PEM text inline.
    Inline(String),
}

/// A `[[ConfigMap]]`: the stand-in for the Kubernetes ConfigMap that BackendTLSPolicy's
/// `caCertificateRefs` name (only its `ca.crt` is used).
#[derive(Clone, Debug)]
pub struct ConfigMap {
    pub meta: Meta,
    /// `None`: the ConfigMap has no `ca.crt`.
    pub ca: Option<CaSource>,
}

/// A policy's targetRef (LocalPolicyTargetReferenceWithSectionName).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyTargetRef {
    pub group: String,
    pub kind: String,
    pub name: String,
    /// For a Service: a port name.
    pub section_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendTlsValidation {
    /// Local references (the policy's namespace).
    pub ca_certificate_refs: Vec<ObjectRef>,
    /// `Some("System")`; the schema allows no other value.
    pub well_known_ca_certificates: Option<String>,
    pub hostname: String,
    pub subject_alt_names: Vec<gatehouse_model::backend_tls::SubjectAltName>,
}

#[derive(Clone, Debug)]
pub struct BackendTlsPolicy {
    pub meta: Meta,
    pub target_refs: Vec<PolicyTargetRef>,
    pub validation: BackendTlsValidation,
    pub options: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct Namespace {
    pub meta: Meta,
}

#[derive(Clone, Debug)]
pub struct IpPool {
    pub meta: Meta,
    pub blocks: Vec<IpBlock>,
}

/// Everything one load declared.
#[derive(Clone, Debug, Default)]
pub struct Document {
    pub settings: Settings,
    pub gateway_classes: Vec<GatewayClass>,
    pub gateways: Vec<Gateway>,
    pub http_routes: Vec<HttpRoute>,
    pub tls_routes: Vec<TlsRoute>,
    pub tcp_routes: Vec<L4Route>,
    pub udp_routes: Vec<L4Route>,
    pub reference_grants: Vec<ReferenceGrant>,
    pub services: Vec<Service>,
    pub secrets: Vec<Secret>,
    pub namespaces: Vec<Namespace>,
    pub pools: Vec<IpPool>,
    pub backend_tls_policies: Vec<BackendTlsPolicy>,
    pub config_maps: Vec<ConfigMap>,
}
