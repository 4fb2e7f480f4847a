//! Resource identity: the kind, namespace and name that status, metrics and logs refer to.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The Gateway API group that Gateway, HTTPRoute, TLSRoute, TCPRoute, UDPRoute and
/// ReferenceGrant belong to.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// The core group (`""`), which Service, Secret and Namespace belong to.
pub const CORE_GROUP: &str = "";
/// The namespace a resource gets when it names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Every kind of resource a configuration can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    GatewayClass,
    Gateway,
    HTTPRoute,
    TLSRoute,
    TCPRoute,
    UDPRoute,
    ReferenceGrant,
    Service,
    Secret,
    Namespace,
    LoadBalancerIPPool,
    BackendTLSPolicy,
    ConfigMap,
}

impl Kind {
    /// All kinds, in the order `gatehouse check` lists them.
    pub const ALL: [Kind; 13] = [
        Kind::GatewayClass,
        Kind::Gateway,
        Kind::HTTPRoute,
        Kind::TLSRoute,
        Kind::TCPRoute,
        Kind::UDPRoute,
        Kind::ReferenceGrant,
        Kind::Service,
        Kind::Secret,
        Kind::Namespace,
        Kind::LoadBalancerIPPool,
        Kind::BackendTLSPolicy,
        Kind::ConfigMap,
    ];

    /// The kind's name as written in configuration (and as a TOML array name).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::GatewayClass => "GatewayClass",
            Kind::Gateway => "Gateway",
            Kind::HTTPRoute => "HTTPRoute",
            Kind::TLSRoute => "TLSRoute",
            Kind::TCPRoute => "TCPRoute",
            Kind::UDPRoute => "UDPRoute",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::Service => "Service",
            Kind::Secret => "Secret",
            Kind::Namespace => "Namespace",
            Kind::LoadBalancerIPPool => "LoadBalancerIPPool",
            Kind::BackendTLSPolicy => "BackendTLSPolicy",
            Kind::ConfigMap => "ConfigMap",
        }
    }

    /// The API group of the kind, as a reference (`group` + `kind`) names it.
    pub fn group(self) -> &'static str {
        match self {
            Kind::GatewayClass
            | Kind::Gateway
            | Kind::HTTPRoute
            | Kind::TLSRoute
            | Kind::TCPRoute
            | Kind::UDPRoute
            | Kind::ReferenceGrant
            | Kind::BackendTLSPolicy => GATEWAY_GROUP,
            Kind::Service | Kind::Secret | Kind::Namespace | Kind::ConfigMap => CORE_GROUP,
            Kind::LoadBalancerIPPool => "cilium.io",
        }
    }

    /// Whether resources of this kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        !matches!(
            self,
            Kind::GatewayClass | Kind::Namespace | Kind::LoadBalancerIPPool
        )
    }

    /// Looks a kind up by its configuration name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one resource: kind, namespace (empty for cluster-scoped kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceKey {
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
}

impl ResourceKey {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        let namespace = if kind.is_namespaced() {
            namespace.into()
        } else {
            String::new()
        };
        ResourceKey {
            kind,
            namespace,
            name: name.into(),
        }
    }

    /// `namespace/name`, or just `name` for cluster-scoped kinds.
    pub fn namespaced_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

impl fmt::Display for ResourceKey {
    /// `HTTPRoute "shop"` in the default namespace, `HTTPRoute "web/shop"` elsewhere: the form
    /// configuration errors and status lines use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() || self.namespace == DEFAULT_NAMESPACE {
            write!(f, "{} \"{}\"", self.kind, self.name)
        } else {
            write!(f, "{} \"{}/{}\"", self.kind, self.namespace, self.name)
        }
    }
}
