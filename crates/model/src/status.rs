//! Gateway API status: conditions with their reasons, per GatewayClass, Gateway (and each
//! listener) and route (per parentRef), as `kubectl get -o json` would show them.
//!
//! A condition is a *problem* when it is not in its healthy state: `Accepted`,
//! `ResolvedRefs` and `Programmed` are healthy when True; `Conflicted`, `PartiallyInvalid`
//! and `OverlappingTLSConfig` are healthy when False or absent. A Gateway accepted with
//! reason `ListenersNotValid` is a problem too.

use crate::ResourceKey;
use serde::{Deserialize, Serialize};

/// The controller name of the built-in `gatehouse` GatewayClass.
pub const CONTROLLER_NAME: &str = "gatehouse.dev/gateway-controller";

/// Condition types.
pub mod condition {
    pub const ACCEPTED: &str = "Accepted";
    pub const PROGRAMMED: &str = "Programmed";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const CONFLICTED: &str = "Conflicted";
    pub const PARTIALLY_INVALID: &str = "PartiallyInvalid";
    pub const OVERLAPPING_TLS_CONFIG: &str = "OverlappingTLSConfig";
    pub const SUPPORTED_VERSION: &str = "SupportedVersion";
}

/// Condition reasons, as the Gateway API names them.
pub mod reason {
    // GatewayClass
    pub const ACCEPTED: &str = "Accepted";
    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    pub const SUPPORTED_VERSION: &str = "SupportedVersion";
    // Gateway
    pub const INVALID: &str = "Invalid";
    pub const LISTENERS_NOT_VALID: &str = "ListenersNotValid";
    pub const NOT_RECONCILED: &str = "NotReconciled";
    pub const UNSUPPORTED_ADDRESS: &str = "UnsupportedAddress";
    pub const PROGRAMMED: &str = "Programmed";
    pub const ADDRESS_NOT_ASSIGNED: &str = "AddressNotAssigned";
    pub const ADDRESS_NOT_USABLE: &str = "AddressNotUsable";
    pub const INVALID_CLIENT_CERTIFICATE_REF: &str = "InvalidClientCertificateRef";
    pub const LISTENERS_NOT_RESOLVED: &str = "ListenersNotResolved";
    // Listener
    pub const PORT_UNAVAILABLE: &str = "PortUnavailable";
    pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
    pub const INVALID_ROUTE_KINDS: &str = "InvalidRouteKinds";
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    pub const HOSTNAME_CONFLICT: &str = "HostnameConflict";
    pub const PROTOCOL_CONFLICT: &str = "ProtocolConflict";
    pub const NO_CONFLICTS: &str = "NoConflicts";
    pub const OVERLAPPING_HOSTNAMES: &str = "OverlappingHostnames";
    // Routes
    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    pub const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    pub const INVALID_KIND: &str = "InvalidKind";
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
    // BackendTLSPolicy
    pub const CONFLICTED: &str = "Conflicted";
    pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
    pub const NO_VALID_CA_CERTIFICATE: &str = "NoValidCACertificate";
    pub const INVALID_CA_CERTIFICATE_REF: &str = "InvalidCACertificateRef";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// One status condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
    /// The configuration generation this condition describes.
    pub observed_generation: u64,
}

impl Condition {
    pub fn new(kind: &str, ok: bool, reason: &str, message: impl Into<String>) -> Condition {
        Condition {
            kind: kind.to_string(),
            status: if ok {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: reason.to_string(),
            message: message.into(),
            observed_generation: 0,
        }
    }

    /// Whether this condition reports something an operator should look at.
    pub fn is_problem(&self) -> bool {
        match self.kind.as_str() {
            condition::CONFLICTED
            | condition::PARTIALLY_INVALID
            | condition::OVERLAPPING_TLS_CONFIG => self.status == ConditionStatus::True,
            condition::ACCEPTED if self.reason == reason::LISTENERS_NOT_VALID => true,
            _ => self.status != ConditionStatus::True,
        }
    }
}

/// Looks a condition up by type.
pub fn find<'a>(conditions: &'a [Condition], kind: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.kind == kind)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteGroupKind {
    pub group: String,
    pub kind: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub name: String,
    pub supported_kinds: Vec<RouteGroupKind>,
    pub attached_routes: u32,
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayAddress {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    pub key: ResourceKey,
    pub gateway_class_name: String,
    pub addresses: Vec<GatewayAddress>,
    pub conditions: Vec<Condition>,
    pub listeners: Vec<ListenerStatus>,
    /// gatehouse's own addition: this box's part in each of the Gateway's VIPs (filled in by
    /// the daemon, empty from the configuration alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<VipStatus>,
}

/// One VIP of a Gateway as this box sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VipStatus {
    pub address: String,
    /// The interface it is on, or would go on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface: String,
    /// [`vip_role`]: `Active`, `MASTER`, `BACKUP`, `FAULT`, `STOPPED`, `Local` or
    /// `NotUsable`.
    pub role: String,
}

/// The roles a [`VipStatus`] shows.
pub mod vip_role {
    /// `[announce] mode = "self"`: on this box's interface and announced.
    pub const ACTIVE: &str = "Active";
    /// `[announce] mode = "keepalived"`: keepalived put it on this box.
    pub const MASTER: &str = "MASTER";
    /// `[announce] mode = "keepalived"`: not on this box; it takes over when the other
    /// box fails.
    pub const BACKUP: &str = "BACKUP";
    /// `[announce] mode = "keepalived"`: not on this box, and keepalived here is in FAULT (its
    /// interface is down, or gatehouse's readiness check fails): it will not take over.
    pub const FAULT: &str = "FAULT";
    /// `[announce] mode = "keepalived"`: not on this box, and keepalived here has stopped
    /// (or dropped the instance).
    pub const STOPPED: &str = "STOPPED";
    /// In the loopback's subnet: served, nothing to announce.
    pub const LOCAL: &str = "Local";
    /// Cannot be used (the Gateway's Programmed condition says why).
    pub const NOT_USABLE: &str = "NotUsable";
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassStatus {
    pub key: ResourceKey,
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}

/// A route's parentRef, with defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    pub parent_ref: ParentRef,
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStatus {
    pub key: ResourceKey,
    pub parents: Vec<RouteParentStatus>,
}

/// A policy's status for one ancestor (for a BackendTLSPolicy: a Gateway whose routes send
/// traffic to a Service port the policy targets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    pub ancestor_ref: ParentRef,
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}

/// A BackendTLSPolicy's status: the Gateway API's `ancestors`, plus the same conditions at
/// the top (a gatehouse addition, so a policy that no route uses still shows its problems).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatus {
    pub key: ResourceKey,
    pub conditions: Vec<Condition>,
    pub ancestors: Vec<PolicyAncestorStatus>,
}

/// The status of every resource in one configuration generation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub generation: u64,
    pub gateway_classes: Vec<GatewayClassStatus>,
    pub gateways: Vec<GatewayStatus>,
    pub routes: Vec<RouteStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_tls_policies: Vec<PolicyStatus>,
}

impl Status {
    pub fn backend_tls_policy(&self, key: &ResourceKey) -> Option<&PolicyStatus> {
        self.backend_tls_policies.iter().find(|p| &p.key == key)
    }

    pub fn gateway(&self, namespace: &str, name: &str) -> Option<&GatewayStatus> {
        self.gateways
            .iter()
            .find(|g| g.key.namespace == namespace && g.key.name == name)
    }

    pub fn route(&self, key: &ResourceKey) -> Option<&RouteStatus> {
        self.routes.iter().find(|r| &r.key == key)
    }

    /// Stamps every condition with the generation it describes.
    pub fn set_generation(&mut self, generation: u64) {
        self.generation = generation;
        let all = self
            .gateway_classes
            .iter_mut()
            .flat_map(|c| c.conditions.iter_mut())
            .chain(self.gateways.iter_mut().flat_map(|g| {
                g.conditions
                    .iter_mut()
                    .chain(g.listeners.iter_mut().flat_map(|l| l.conditions.iter_mut()))
            }))
            .chain(
                self.routes
                    .iter_mut()
                    .flat_map(|r| r.parents.iter_mut().flat_map(|p| p.conditions.iter_mut())),
            )
            .chain(self.backend_tls_policies.iter_mut().flat_map(|p| {
                p.conditions
                    .iter_mut()
                    .chain(p.ancestors.iter_mut().flat_map(|a| a.conditions.iter_mut()))
            }));
        for c in all {
            c.observed_generation = generation;
        }
    }
}

impl GatewayStatus {
    pub fn listener(&self, name: &str) -> Option<&ListenerStatus> {
        self.listeners.iter().find(|l| l.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polarity_of_problem_conditions() {
        assert!(!Condition::new(condition::ACCEPTED, true, reason::ACCEPTED, "").is_problem());
        assert!(
            Condition::new(
                condition::ACCEPTED,
                false,
                reason::NOT_ALLOWED_BY_LISTENERS,
                ""
            )
            .is_problem()
        );
        assert!(
            Condition::new(condition::ACCEPTED, true, reason::LISTENERS_NOT_VALID, "").is_problem()
        );
        assert!(
            !Condition::new(condition::CONFLICTED, false, reason::NO_CONFLICTS, "").is_problem()
        );
        assert!(
            Condition::new(condition::CONFLICTED, true, reason::HOSTNAME_CONFLICT, "").is_problem()
        );
    }
}
