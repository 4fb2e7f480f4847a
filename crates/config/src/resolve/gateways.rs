//! GatewayClasses, Gateways and their listeners: which are accepted, which conflict, which
//! have usable certificates, and the conditions that say so.

use super::grants::{self, permitted};
use super::{FileReader, Problem};
use crate::raw::{Document, Gateway, GatewayClass, Listener, Secret, TlsMode};
use gatehouse_model::listener::Protocol;
use gatehouse_model::resource::{CORE_GROUP, GATEWAY_GROUP};
use gatehouse_model::status::{
    CONTROLLER_NAME, Condition, GatewayAddress, GatewayClassStatus, RouteGroupKind, condition,
    reason,
};
use gatehouse_model::tls::Certificate;
use gatehouse_model::{Kind, ResourceKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The name of the GatewayClass that always exists.
pub const BUILTIN_CLASS: &str = "gatehouse";

/// What resolution found out about one listener.
#[derive(Debug)]
pub(crate) struct ResolvedListener {
    pub gateway: usize,
    pub index: usize,
    /// `None` when gatehouse does not serve the protocol (or mode).
    pub protocol: Option<Protocol>,
    /// Whether TLS is terminated here (HTTPS, and TLS with mode Terminate): it needs a
    /// usable certificate to be programmed.
    pub terminates: bool,
    pub supported_kinds: Vec<RouteGroupKind>,
    pub accepted: Result<(), Problem>,
    pub resolved_refs: Result<(), Problem>,
    pub conflict: Option<Problem>,
    pub certificates: Vec<Arc<Certificate>>,
    pub attached_routes: u32,
}

impl ResolvedListener {
    /// Whether the data plane serves this listener.
    pub fn programmed(&self) -> Result<(), Problem> {
        if let Some(c) = &self.conflict {
            return Err(Problem::new(reason::INVALID, c.message.clone()));
        }
        if let Err(p) = &self.accepted {
            return Err(Problem::new(reason::INVALID, p.message.clone()));
        }
        if self.terminates && self.certificates.is_empty() {
            let why = match &self.resolved_refs {
                Err(p) => p.message.clone(),
                Ok(()) => "no usable certificate".to_string(),
            };
            return Err(Problem::new(reason::INVALID, why));
        }
        Ok(())
    }

    pub fn allows_kind(&self, kind: Kind) -> bool {
        self.supported_kinds
            .iter()
            .any(|k| k.group == GATEWAY_GROUP && k.kind == kind.as_str())
    }
}

/// What resolution found out about one Gateway.
#[derive(Debug)]
pub(crate) struct ResolvedGateway {
    /// Whether the Gateway belongs to gatehouse and is usable at all.
    pub accepted: Result<(), Problem>,
    /// The addresses it is bound to: its own, or the one a pool gave it; empty means every
    /// address of the host.
    pub addresses: Vec<IpAddr>,
    /// The address a LoadBalancerIPPool gave it.
    pub pool_address: Option<IpAddr>,
    /// It wanted a pool address and none was free.
    pub unassigned: bool,
}

pub(crate) fn gateway_class_status(classes: &[GatewayClass]) -> Vec<GatewayClassStatus> {
    let builtin = GatewayClassStatus {
        key: ResourceKey::new(Kind::GatewayClass, "", BUILTIN_CLASS),
        controller_name: CONTROLLER_NAME.to_string(),
        conditions: vec![
            Condition::new(
                condition::ACCEPTED,
                true,
                reason::ACCEPTED,
                "built-in GatewayClass",
            ),
            Condition::new(
                condition::SUPPORTED_VERSION,
                true,
                reason::SUPPORTED_VERSION,
                "Gateway API v1",
            ),
        ],
    };
    let declared = classes
        .iter()
        .filter(|c| c.controller_name == CONTROLLER_NAME)
        .map(|c| {
            let accepted = if c.has_parameters_ref {
                Condition::new(
                    condition::ACCEPTED,
                    false,
                    reason::INVALID_PARAMETERS,
                    "gatehouse takes no GatewayClass parameters",
                )
            } else {
                Condition::new(condition::ACCEPTED, true, reason::ACCEPTED, "")
            };
            GatewayClassStatus {
                key: c.meta.key(),
                controller_name: c.controller_name.clone(),
                conditions: vec![
                    accepted,
                    Condition::new(
                        condition::SUPPORTED_VERSION,
                        true,
                        reason::SUPPORTED_VERSION,
                        "Gateway API v1",
                    ),
                ],
            }
        });
    std::iter::once(builtin).chain(declared).collect()
}

/// Whether a Gateway is gatehouse's to serve, and its addresses.
pub(crate) fn resolve_gateway(doc: &Document, gw: &Gateway) -> ResolvedGateway {
    let class = doc
        .gateway_classes
        .iter()
        .find(|c| c.meta.name == gw.class_name);
    let accepted = match (gw.class_name.as_str(), class) {
        (BUILTIN_CLASS, _) => Ok(()),
        (name, None) => Err(Problem::new(
            reason::INVALID,
            format!("GatewayClass \"{name}\" does not exist"),
        )),
        (name, Some(c)) if c.controller_name != CONTROLLER_NAME => Err(Problem::new(
            reason::NOT_RECONCILED,
            format!(
                "GatewayClass \"{name}\" belongs to controller \"{}\", not {CONTROLLER_NAME}",
                c.controller_name
            ),
        )),
        (name, Some(c)) if c.has_parameters_ref => Err(Problem::new(
            reason::INVALID_PARAMETERS,
            format!(
                "GatewayClass \"{name}\" is not accepted: gatehouse takes no GatewayClass parameters"
            ),
        )),
        _ => Ok(()),
    };
    let accepted = accepted.and_then(|()| {
        if gw.has_infrastructure_parameters_ref {
            return Err(Problem::new(
                reason::INVALID_PARAMETERS,
                "infrastructure.parametersRef is not supported",
            ));
        }
        match gw.addresses.iter().find(|a| a.kind != "IPAddress") {
            Some(a) => Err(Problem::new(
                reason::UNSUPPORTED_ADDRESS,
                format!(
                    "address type \"{}\" is not supported; use IPAddress",
                    a.kind
                ),
            )),
            None => Ok(()),
        }
    });
    let addresses = gw
        .addresses
        .iter()
        .filter_map(|a| a.value.parse().ok())
        .collect();
    ResolvedGateway {
        accepted,
        addresses,
        pool_address: None,
        unassigned: false,
    }
}

pub(crate) fn status_addresses(gw: &Gateway, pool: Option<IpAddr>) -> Vec<GatewayAddress> {
    gw.addresses
        .iter()
        .map(|a| GatewayAddress {
            kind: a.kind.clone(),
            value: a.value.clone(),
        })
        .chain(pool.map(|ip| GatewayAddress {
            kind: "IPAddress".into(),
            value: ip.to_string(),
        }))
        .collect()
}

fn kind(group: &str, kind: Kind) -> RouteGroupKind {
    RouteGroupKind {
        group: group.to_string(),
        kind: kind.as_str().to_string(),
    }
}

/// What became of a Secret's certificate in this load.
#[derive(Clone, Debug)]
pub(crate) enum CertificateLoad {
    /// Its files loaded: serve this.
    Fresh(Arc<Certificate>),
    /// Its files failed to load (the message says why), but it loaded before: serve the
    /// previous certificate, so a rotation caught half-way does not take a listener down.
    Stale(Arc<Certificate>, String),
    /// It cannot be used, and nothing loaded before.
    Failed(String),
}

/// Reads and parses the certificates of Secrets, once per Secret, falling back to the last
/// good certificate of a Secret whose files fail to load.
pub(crate) struct CertificateCache<'r> {
    reader: &'r dyn FileReader,
    previous: &'r crate::Certificates,
    loaded: HashMap<ResourceKey, CertificateLoad>,
}

impl<'r> CertificateCache<'r> {
    pub fn new(reader: &'r dyn FileReader, previous: &'r crate::Certificates) -> Self {
        CertificateCache {
            reader,
            previous,
            loaded: HashMap::new(),
        }
    }

    pub(crate) fn load(&mut self, secret: &Secret) -> CertificateLoad {
        let (reader, previous) = (self.reader, self.previous);
        self.loaded
            .entry(secret.meta.key())
            .or_insert_with(|| match load_certificate(reader, secret) {
                Ok(c) => CertificateLoad::Fresh(Arc::new(c)),
                Err(CertError::Files(why)) => match previous.get(&secret.meta.key()) {
                    Some(last) => CertificateLoad::Stale(last.clone(), why),
                    None => CertificateLoad::Failed(why),
                },
                Err(CertError::Secret(why)) => CertificateLoad::Failed(why),
            })
            .clone()
    }

    /// The certificates this load serves, by Secret, and the Secrets serving a stale one.
    pub fn finish(self) -> (crate::Certificates, Vec<(ResourceKey, String)>) {
        let mut good = crate::Certificates::new();
        let mut stale = Vec::new();
        for (key, load) in self.loaded {
            match load {
                CertificateLoad::Fresh(c) => {
                    good.insert(key, c);
                }
                CertificateLoad::Stale(c, why) => {
                    good.insert(key.clone(), c);
                    stale.push((key, why));
                }
                CertificateLoad::Failed(_) => {}
            }
        }
        stale.sort();
        (good, stale)
    }
}

/// Why a Secret's certificate cannot be loaded.
enum CertError {
    /// The Secret itself is unusable (type, missing keys): a configuration change, so no
    /// previous certificate stands in.
    Secret(String),
    /// Its files cannot be read or are not a matching certificate and key.
    Files(String),
}

fn load_certificate(reader: &dyn FileReader, secret: &Secret) -> Result<Certificate, CertError> {
    if secret.secret_type != "kubernetes.io/tls" {
        return Err(CertError::Secret(format!(
            "Secret type is \"{}\", not \"kubernetes.io/tls\"",
            secret.secret_type
        )));
    }
    let (Some(cert_file), Some(key_file)) = (&secret.cert_file, &secret.key_file) else {
        return Err(CertError::Secret(
            "Secret needs certFile and keyFile".into(),
        ));
    };
    load_pair(reader, cert_file, key_file)
        .map(|(chain, key)| Certificate {
            secret: secret.meta.key(),
            chain,
            key,
        })
        .map_err(CertError::Files)
}

/// Reads a certificate chain and its private key as a pair: both parse, and the key is the
/// leaf certificate's.
fn load_pair(
    reader: &dyn FileReader,
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let read = |p: &std::path::Path| {
        reader
            .read(p)
            .map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let cert_pem = read(cert_file)?;
    let key_pem = read(key_file)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: malformed PEM: {e}", cert_file.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{}: no CERTIFICATE block found",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!(
            "{}: no private key found (PKCS#8, PKCS#1 or SEC1 PEM)",
            key_file.display()
        ),
        e => format!("{}: malformed PEM: {e}", key_file.display()),
    })?;
    // The key must be one rustls can sign with, and it must belong to the leaf certificate.
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| {
        format!(
            "{}: the private key is not a supported RSA, ECDSA (P-256, P-384) or Ed25519 key",
            key_file.display()
        )
    })?;
    match rustls::sign::CertifiedKey::new(chain.clone(), signing_key).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(format!(
                "{}: the private key does not belong to the certificate in {}",
                key_file.display(),
                cert_file.display()
            ));
        }
        Err(e) => {
            return Err(format!(
                "{}: the certificate cannot be used: {e}",
                cert_file.display()
            ));
        }
    }
    Ok((chain, key))
}

/// Resolves one listener: protocol, route kinds and certificates (conflicts come later).
pub(crate) fn resolve_listener(
    doc: &Document,
    certs: &mut CertificateCache<'_>,
    gateway: usize,
    index: usize,
) -> ResolvedListener {
    let gw = &doc.gateways[gateway];
    let l: &Listener = &gw.listeners[index];
    let mode = l.tls.as_ref().map(|t| t.mode);
    let (protocol, accepted) = match (l.protocol.as_str(), mode) {
        ("HTTP", _) => (Some(Protocol::HTTP), Ok(())),
        ("HTTPS", _) => (Some(Protocol::HTTPS), Ok(())),
        ("TLS", Some(_)) => (Some(Protocol::TLS), Ok(())),
        ("TCP", _) => (Some(Protocol::TCP), Ok(())),
        ("UDP", _) => (Some(Protocol::UDP), Ok(())),
        (p, _) => (
            None,
            Err(Problem::new(
                reason::UNSUPPORTED_PROTOCOL,
                format!(
                    "protocol \"{p}\" is not supported; gatehouse serves HTTP, HTTPS, TLS, TCP and UDP"
                ),
            )),
        ),
    };
    let terminates = protocol == Some(Protocol::HTTPS)
        || (protocol == Some(Protocol::TLS) && mode == Some(TlsMode::Terminate));
    let valid_kinds: &[Kind] = match protocol {
        Some(Protocol::HTTP) | Some(Protocol::HTTPS) => &[Kind::HTTPRoute],
        Some(Protocol::TLS) => &[Kind::TLSRoute],
        Some(Protocol::TCP) => &[Kind::TCPRoute],
        Some(Protocol::UDP) => &[Kind::UDPRoute],
        None => &[],
    };
    let mut supported_kinds = Vec::new();
    let mut invalid_kinds = Vec::new();
    match &l.allowed_routes.kinds {
        None => supported_kinds.extend(valid_kinds.iter().map(|k| kind(GATEWAY_GROUP, *k))),
        Some(kinds) => {
            for (group, name) in kinds {
                let valid =
                    group == GATEWAY_GROUP && valid_kinds.iter().any(|k| k.as_str() == name);
                if valid {
                    if !supported_kinds
                        .iter()
                        .any(|k: &RouteGroupKind| k.kind == *name)
                    {
                        supported_kinds.push(RouteGroupKind {
                            group: group.clone(),
                            kind: name.clone(),
                        });
                    }
                } else {
                    invalid_kinds.push(if group.is_empty() {
                        name.clone()
                    } else {
                        format!("{group}/{name}")
                    });
                }
            }
        }
    }
    let mut resolved_refs = if invalid_kinds.is_empty() {
        Ok(())
    } else {
        Err(Problem::new(
            reason::INVALID_ROUTE_KINDS,
            format!(
                "route kinds not supported on {} listener: {}",
                crate::validate::with_article(&l.protocol),
                invalid_kinds.join(", ")
            ),
        ))
    };
    let mut certificates = Vec::new();
    if terminates {
        let refs = l
            .tls
            .as_ref()
            .map(|t| t.certificate_refs.as_slice())
            .unwrap_or(&[]);
        let mut problems: Vec<Problem> = Vec::new();
        let mut stale: Vec<Problem> = Vec::new();
        for r in refs {
            let ns = r.namespace.as_deref().unwrap_or(&gw.meta.namespace);
            let display = format!("{}/{}", ns, r.name);
            if r.group != CORE_GROUP || r.kind != "Secret" {
                problems.push(Problem::new(
                    reason::INVALID_CERTIFICATE_REF,
                    format!(
                        "certificateRef {display}: group \"{}\" kind \"{}\" is not a Secret",
                        r.group, r.kind
                    ),
                ));
                continue;
            }
            let from = grants::From {
                group: GATEWAY_GROUP,
                kind: "Gateway",
                namespace: &gw.meta.namespace,
            };
            let to = grants::To {
                group: CORE_GROUP,
                kind: "Secret",
                namespace: ns,
                name: &r.name,
            };
            if !permitted(&doc.reference_grants, from, to) {
                problems.push(Problem::new(
                    reason::REF_NOT_PERMITTED,
                    format!("certificateRef {display}: no ReferenceGrant in namespace \"{ns}\" allows this Gateway to use it"),
                ));
                continue;
            }
            let Some(secret) = doc
                .secrets
                .iter()
                .find(|s| s.meta.namespace == ns && s.meta.name == r.name)
            else {
                problems.push(Problem::new(
                    reason::INVALID_CERTIFICATE_REF,
                    format!("certificateRef {display}: Secret not found"),
                ));
                continue;
            };
            match certs.load(secret) {
                CertificateLoad::Fresh(c) => certificates.push(c),
                CertificateLoad::Stale(c, why) => {
                    certificates.push(c);
                    stale.push(Problem::new(
                        reason::INVALID_CERTIFICATE_REF,
                        format!(
                            "certificateRef {display}: {why}; the previous certificate is still served"
                        ),
                    ));
                }
                CertificateLoad::Failed(why) => problems.push(Problem::new(
                    reason::INVALID_CERTIFICATE_REF,
                    format!("certificateRef {display}: {why}"),
                )),
            }
        }
        if problems.is_empty() {
            problems = stale;
        } else {
            // A listener with any bad certificate is not programmed: serving with the rest
            // would present certificates the operator did not intend for some names.
            certificates.clear();
            problems.extend(stale);
        }
        if let Some(first) = problems.first() {
            let message = problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            resolved_refs = Err(Problem::new(first.reason, message));
        }
    }
    ResolvedListener {
        gateway,
        index,
        protocol,
        terminates,
        supported_kinds,
        accepted,
        resolved_refs,
        conflict: None,
        certificates,
        attached_routes: 0,
    }
}

/// Whether two Gateways' listeners on one port compete for the same connections: both are
/// bound everywhere (no addresses), or both name a common address. A Gateway that names an
/// address takes that address's connections from Gateways bound everywhere, as a specific
/// `listen` address does in nginx, so those two never compete.
pub(crate) fn share_addresses(a: &[IpAddr], b: &[IpAddr]) -> bool {
    (a.is_empty() && b.is_empty()) || a.iter().any(|x| b.contains(x))
}

/// Marks listeners that cannot share their port with another one. Listeners conflict when
/// they are on the same port and addresses (see [`share_addresses`]) and either one is
/// plaintext while the other is TLS, or one is TCP and the other is not (`ProtocolConflict`:
/// a TCP listener takes every connection of its port), or both would be selected by the
/// same hostname (`HostnameConflict`; TCP and UDP listeners have none, so two on one port
/// always do). UDP listeners only ever conflict with UDP listeners: a UDP port is not the TCP
/// port of the same number (DNS serves both on 53).
pub(crate) fn mark_conflicts(
    doc: &Document,
    gateways: &[ResolvedGateway],
    listeners: &mut [ResolvedListener],
) {
    let n = listeners.len();
    let mut conflicts: Vec<Option<Problem>> = (0..n).map(|_| None).collect();
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let (a, b) = (&listeners[i], &listeners[j]);
            let (Some(pa), Some(pb)) = (a.protocol, b.protocol) else {
                continue;
            };
            if gateways[a.gateway].accepted.is_err() || gateways[b.gateway].accepted.is_err() {
                continue;
            }
            let la = &doc.gateways[a.gateway].listeners[a.index];
            let lb = &doc.gateways[b.gateway].listeners[b.index];
            // A UDP port is not the TCP port of the same number: they never conflict.
            if la.port != lb.port || pa.is_udp() != pb.is_udp() {
                continue;
            }
            if !share_addresses(
                &gateways[a.gateway].addresses,
                &gateways[b.gateway].addresses,
            ) {
                continue;
            }
            let other = format!(
                "listener \"{}\" of {}",
                lb.name,
                doc.gateways[b.gateway].meta.key()
            );
            let tcp_and_other = (pa == Protocol::TCP) != (pb == Protocol::TCP);
            let problem = if pa.is_tls() != pb.is_tls() || tcp_and_other {
                Some(Problem::new(
                    reason::PROTOCOL_CONFLICT,
                    format!(
                        "port {} is also used by {other} with protocol {}",
                        la.port, lb.protocol
                    ),
                ))
            } else if la.hostname == lb.hostname {
                let host = la
                    .hostname
                    .as_ref()
                    .map_or("no hostname".to_string(), |h| format!("hostname \"{h}\""));
                Some(Problem::new(
                    reason::HOSTNAME_CONFLICT,
                    format!("port {} with {host} is also used by {other}", la.port),
                ))
            } else {
                None
            };
            if let Some(p) = problem {
                // Protocol conflicts outrank hostname conflicts in the message.
                let keep = conflicts[i]
                    .as_ref()
                    .is_some_and(|c| c.reason == reason::PROTOCOL_CONFLICT);
                if !keep {
                    conflicts[i] = Some(p);
                }
            }
        }
    }
    for (l, c) in listeners.iter_mut().zip(conflicts) {
        l.conflict = c;
    }
}
