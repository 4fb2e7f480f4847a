//! BackendTLSPolicy resolution: CA bundles, target Service ports, conflicts, and status.
//!
//! ```text
//! policies (oldest first) ─▶ CA refs read and parsed ─▶ targetRefs to (Service, port) ─▶
//!   each port claimed by the oldest policy naming it ─▶ Policies (port → BackendTlsId)
//! routes compiled: a backendRef to a claimed port carries the id (or 500 when the policy
//!   has no valid CA) ─▶ ancestors: the Gateways whose attached routes use a claimed port
//! ```
//!
//! A policy without any valid CA certificate still claims its ports, so traffic to them
//! fails (5xx) instead of silently going out in plaintext, as the Gateway API requires.
//!
//! CA bundles are read once per referenced ConfigMap or Secret per load. A bundle whose file
//! fails (unreadable, malformed: a rotation caught half-way) keeps the last bundle that
//! loaded from it, exactly as a listener certificate keeps its last good certificate: the
//! policy stays accepted, `ResolvedRefs=False/InvalidCACertificateRef` says why and that the
//! previous CA certificates are still used, and the object is listed as stale. A reference
//! that is wrong in the configuration itself (missing object, no `ca.crt`, an inline bundle
//! that does not parse) is a decision, not a rotation, and gets no previous bundle.

use super::{FileReader, Problem, merge};
use crate::raw::{BackendTlsPolicy, CaSource, Document, ObjectRef};
use gatehouse_model::ResourceKey;
use gatehouse_model::backend_tls::{BackendTls, BackendTlsId, TrustAnchors};
use gatehouse_model::resource::{CORE_GROUP, GATEWAY_GROUP};
use gatehouse_model::status::{
    CONTROLLER_NAME, Condition, ParentRef, PolicyAncestorStatus, PolicyStatus, condition, reason,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::collections::HashMap;
use std::sync::Arc;

/// What a backendRef to a Service port gets from the policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// TLS with this entry of `Snapshot::backend_tls`.
    Tls(BackendTlsId),
    /// A policy claims the port but has no valid CA certificate: connections must fail.
    Invalid,
}

/// One policy's outcome.
#[derive(Debug)]
struct Outcome {
    accepted: Result<(), Problem>,
    resolved_refs: Result<(), Problem>,
    /// The (Service index, port) pairs this policy claims.
    claimed: Vec<(usize, u16)>,
}

/// What became of one CA bundle (a ConfigMap's `ca.crt` or a Secret's `caFile`) in this load.
#[derive(Clone, Debug)]
enum CaLoad {
    Fresh(Arc<Vec<CertificateDer<'static>>>),
    /// Its file failed (why), but it loaded before: the previous bundle is used.
    Stale(Arc<Vec<CertificateDer<'static>>>, String),
    Failed(Problem),
}

/// Every policy of a document, resolved.
#[derive(Debug, Default)]
pub(crate) struct Policies {
    by_port: HashMap<(usize, u16), (Claim, usize)>,
    outcomes: Vec<Outcome>,
    /// `Snapshot::backend_tls`.
    pub compiled: Vec<BackendTls>,
    /// The CA bundles read in this load, by ConfigMap or Secret.
    bundles: HashMap<ResourceKey, CaLoad>,
}

impl Policies {
    /// Resolves every policy; `previous` holds the last good CA bundle of each object.
    pub fn resolve(
        doc: &Document,
        reader: &dyn FileReader,
        previous: &crate::CaBundles,
    ) -> Policies {
        let mut policies = Policies::default();
        let mut order: Vec<usize> = (0..doc.backend_tls_policies.len()).collect();
        // Oldest first (declaration order stands in for creation time), then by name.
        order.sort_by_key(|&i| {
            let m = &doc.backend_tls_policies[i].meta;
            (m.order, m.name.clone())
        });
        let mut outcomes: Vec<Option<Outcome>> = (0..order.len()).map(|_| None).collect();
        for i in order {
            let outcome = policies.resolve_one(doc, reader, previous, i);
            outcomes[i] = Some(outcome);
        }
        policies.outcomes = outcomes.into_iter().flatten().collect();
        policies
    }

    /// The CA bundles this load uses (the [`crate::Previous`] of the next load), and the
    /// objects using a previous bundle, with why.
    pub fn ca_bundles(&self) -> (crate::CaBundles, Vec<(ResourceKey, String)>) {
        let mut good = crate::CaBundles::new();
        let mut stale = Vec::new();
        for (key, load) in &self.bundles {
            match load {
                CaLoad::Fresh(b) => {
                    good.insert(key.clone(), b.clone());
                }
                CaLoad::Stale(b, why) => {
                    good.insert(key.clone(), b.clone());
                    stale.push((key.clone(), why.clone()));
                }
                CaLoad::Failed(_) => {}
            }
        }
        stale.sort();
        (good, stale)
    }

    fn resolve_one(
        &mut self,
        doc: &Document,
        reader: &dyn FileReader,
        previous: &crate::CaBundles,
        pi: usize,
    ) -> Outcome {
        let p = &doc.backend_tls_policies[pi];
        let (trust, ref_problems) = self.trust_anchors(doc, reader, previous, p);
        let resolved_refs = match merge(&ref_problems) {
            Some(problem) => Err(problem),
            None => Ok(()),
        };
        let (ports, missing) = target_ports(doc, p);
        let mut claimed = Vec::new();
        let mut lost = Vec::new();
        let claim = match &trust {
            Some(trust) => {
                self.compiled.push(BackendTls {
                    policy: p.meta.key(),
                    hostname: p.validation.hostname.clone(),
                    subject_alt_names: p.validation.subject_alt_names.clone(),
                    trust: trust.clone(),
                });
                Claim::Tls(self.compiled.len() - 1)
            }
            None => Claim::Invalid,
        };
        for port in ports {
            match self.by_port.get(&port) {
                Some((_, winner)) => lost.push((port, *winner)),
                None => {
                    self.by_port.insert(port, (claim, pi));
                    claimed.push(port);
                }
            }
        }
        let accepted = if trust.is_none() {
            Err(Problem::new(
                reason::NO_VALID_CA_CERTIFICATE,
                format!(
                    "no valid CA certificate: requests to its targets fail ({})",
                    resolved_refs
                        .as_ref()
                        .err()
                        .map_or(String::new(), |e| e.message.clone())
                ),
            ))
        } else if claimed.is_empty() && lost.is_empty() {
            Err(Problem::new(
                reason::TARGET_NOT_FOUND,
                if missing.is_empty() {
                    "no target".to_string()
                } else {
                    missing.join("; ")
                },
            ))
        } else if let Some(((si, port), winner)) = lost.first() {
            Err(Problem::new(
                reason::CONFLICTED,
                format!(
                    "Service \"{}\" port {port} is already targeted by the older {}",
                    doc.services[*si].meta.key().namespaced_name(),
                    doc.backend_tls_policies[*winner].meta.key()
                ),
            ))
        } else {
            Ok(())
        };
        Outcome {
            accepted,
            resolved_refs,
            claimed,
        }
    }

    /// The policy claiming a Service port, if any.
    pub fn claim(&self, service: usize, port: u16) -> Option<Claim> {
        self.by_port.get(&(service, port)).map(|(c, _)| *c)
    }

    /// The key of the policy claiming a Service port (valid or not), if any.
    pub fn claimant(&self, doc: &Document, service: usize, port: u16) -> Option<ResourceKey> {
        let (_, pi) = self.by_port.get(&(service, port))?;
        doc.backend_tls_policies.get(*pi).map(|p| p.meta.key())
    }

    /// The status of every policy; `used` lists (Gateway index, Service index, port) for
    /// each Service port an attached route sends traffic to.
    pub fn status(&self, doc: &Document, used: &[(usize, usize, u16)]) -> Vec<PolicyStatus> {
        doc.backend_tls_policies
            .iter()
            .zip(&self.outcomes)
            .map(|(p, o)| {
                let conditions = vec![
                    cond(condition::ACCEPTED, &o.accepted, reason::ACCEPTED),
                    cond(
                        condition::RESOLVED_REFS,
                        &o.resolved_refs,
                        reason::RESOLVED_REFS,
                    ),
                ];
                let mut gateways: Vec<usize> = used
                    .iter()
                    .filter(|(_, s, port)| o.claimed.contains(&(*s, *port)))
                    .map(|(g, _, _)| *g)
                    .collect();
                gateways.sort_unstable();
                gateways.dedup();
                let ancestors = gateways
                    .into_iter()
                    .map(|g| {
                        let gw = &doc.gateways[g].meta;
                        PolicyAncestorStatus {
                            ancestor_ref: ParentRef {
                                group: GATEWAY_GROUP.to_string(),
                                kind: "Gateway".to_string(),
                                namespace: gw.namespace.clone(),
                                name: gw.name.clone(),
                                section_name: None,
                                port: None,
                            },
                            controller_name: CONTROLLER_NAME.to_string(),
                            conditions: conditions.clone(),
                        }
                    })
                    .collect();
                PolicyStatus {
                    key: p.meta.key(),
                    conditions,
                    ancestors,
                }
            })
            .collect()
    }
}

fn cond(kind: &str, r: &Result<(), Problem>, ok_reason: &str) -> Condition {
    super::cond(kind, r, ok_reason)
}

/// The Service ports a policy's targetRefs name, and why the others name none.
fn target_ports(doc: &Document, p: &BackendTlsPolicy) -> (Vec<(usize, u16)>, Vec<String>) {
    let ns = &p.meta.namespace;
    let mut ports = Vec::new();
    let mut missing = Vec::new();
    for t in &p.target_refs {
        if t.group != CORE_GROUP || t.kind != "Service" {
            missing.push(format!(
                "targetRef {}/{} \"{}\": only Services can be targeted",
                t.group, t.kind, t.name
            ));
            continue;
        }
        let Some(si) = doc
            .services
            .iter()
            .position(|s| &s.meta.namespace == ns && s.meta.name == t.name)
        else {
            missing.push(format!("Service \"{ns}/{}\" not found", t.name));
            continue;
        };
        let svc = &doc.services[si];
        let before = ports.len();
        for sp in &svc.ports {
            if (t.section_name.is_none() || sp.name == t.section_name)
                && !ports.contains(&(si, sp.port))
            {
                ports.push((si, sp.port));
            }
        }
        if ports.len() == before {
            missing.push(format!(
                "Service \"{ns}/{}\" has no port named \"{}\"",
                t.name,
                t.section_name.as_deref().unwrap_or_default()
            ));
        }
    }
    (ports, missing)
}

impl Policies {
    /// The policy's trust anchors, or `None` when it names CA certificates and none is
    /// valid; plus one problem per invalid (or stale) reference.
    fn trust_anchors(
        &mut self,
        doc: &Document,
        reader: &dyn FileReader,
        previous: &crate::CaBundles,
        p: &BackendTlsPolicy,
    ) -> (Option<TrustAnchors>, Vec<Problem>) {
        if p.validation.ca_certificate_refs.is_empty() {
            // The schema leaves "System" as the only other choice.
            return (Some(TrustAnchors::System), Vec::new());
        }
        let mut certs = Vec::new();
        let mut problems = Vec::new();
        for r in &p.validation.ca_certificate_refs {
            let ns = p.meta.namespace.as_str();
            let load = match ca_object(doc, ns, r) {
                Err(problem) => CaLoad::Failed(problem),
                Ok((key, source)) => self
                    .bundles
                    .entry(key.clone())
                    .or_insert_with(|| load_bundle(reader, previous, &key, source))
                    .clone(),
            };
            let display = format!("caCertificateRef {} \"{ns}/{}\"", r.kind, r.name);
            match load {
                CaLoad::Fresh(b) => certs.extend(b.iter().cloned()),
                CaLoad::Stale(b, why) => {
                    certs.extend(b.iter().cloned());
                    problems.push(Problem::new(
                        reason::INVALID_CA_CERTIFICATE_REF,
                        format!("{display}: {why}; the previous CA certificates are still used"),
                    ));
                }
                CaLoad::Failed(problem) if problem.reason == reason::INVALID_KIND => {
                    problems.push(problem);
                }
                CaLoad::Failed(problem) => problems.push(Problem::new(
                    problem.reason,
                    format!("{display}: {}", problem.message),
                )),
            }
        }
        let trust = (!certs.is_empty()).then_some(TrustAnchors::Bundle(certs));
        (trust, problems)
    }
}

/// Where one reference's CA bundle comes from.
enum CaSourceRef<'d> {
    Inline(&'d str),
    File(&'d std::path::Path),
}

/// The object a CA reference names and where its bundle is, or why it names none.
fn ca_object<'d>(
    doc: &'d Document,
    ns: &str,
    r: &ObjectRef,
) -> Result<(ResourceKey, CaSourceRef<'d>), Problem> {
    let invalid = |why: &str| Problem::new(reason::INVALID_CA_CERTIFICATE_REF, why.to_string());
    match (r.group.as_str(), r.kind.as_str()) {
        ("", "ConfigMap") => {
            let Some(cm) = doc
                .config_maps
                .iter()
                .find(|c| c.meta.namespace == ns && c.meta.name == r.name)
            else {
                return Err(invalid("ConfigMap not found"));
            };
            match &cm.ca {
                None => Err(invalid("the ConfigMap has no ca.crt")),
                Some(CaSource::Inline(text)) => Ok((cm.meta.key(), CaSourceRef::Inline(text))),
                Some(CaSource::File(path)) => Ok((cm.meta.key(), CaSourceRef::File(path))),
            }
        }
        ("", "Secret") => {
            let Some(secret) = doc
                .secrets
                .iter()
                .find(|s| s.meta.namespace == ns && s.meta.name == r.name)
            else {
                return Err(invalid("Secret not found"));
            };
            match &secret.ca_file {
                None => Err(invalid("the Secret has no caFile")),
                Some(path) => Ok((secret.meta.key(), CaSourceRef::File(path))),
            }
        }
        (group, kind) => {
            let gk = if group.is_empty() {
                kind.to_string()
            } else {
                format!("{group}/{kind}")
            };
            Err(Problem::new(
                reason::INVALID_KIND,
                format!(
                    "caCertificateRef {gk} \"{}\": kind not supported; use a ConfigMap or a Secret",
                    r.name
                ),
            ))
        }
    }
}

/// Reads and parses one object's bundle; a file that fails falls back to the object's
/// previous bundle, an inline bundle never does.
fn load_bundle(
    reader: &dyn FileReader,
    previous: &crate::CaBundles,
    key: &ResourceKey,
    source: CaSourceRef<'_>,
) -> CaLoad {
    let invalid =
        |why: String| CaLoad::Failed(Problem::new(reason::INVALID_CA_CERTIFICATE_REF, why));
    let from_file = |path: &std::path::Path| -> Result<Vec<CertificateDer<'static>>, String> {
        let pem = reader
            .read(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        parse_ca_bundle(&pem)
    };
    match source {
        CaSourceRef::Inline(text) => match parse_ca_bundle(text.as_bytes()) {
            Ok(b) => CaLoad::Fresh(Arc::new(b)),
            Err(why) => invalid(why),
        },
        CaSourceRef::File(path) => match from_file(path) {
            Ok(b) => CaLoad::Fresh(Arc::new(b)),
            Err(why) => match previous.get(key) {
                Some(last) => CaLoad::Stale(last.clone(), why),
                None => invalid(why),
            },
        },
    }
}

/// Every certificate of a PEM bundle, each usable as a trust anchor.
pub(crate) fn parse_ca_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("malformed PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block found".into());
    }
    let mut store = rustls::RootCertStore::empty();
    for (i, c) in certs.iter().enumerate() {
        store
            .add(c.clone())
            .map_err(|e| format!("certificate {} is not a usable CA certificate: {e}", i + 1))?;
    }
    Ok(certs)
}
