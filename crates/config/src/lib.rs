//! gatehouse configuration: TOML files in, a compiled [`Snapshot`] and the Gateway API
//! [`Status`] of every resource out, or every located error of the load.
//!
//! ```text
//! files ─▶ parse (decode + schema rules) ─▶ Document ─▶ resolve (references, attachment,
//!          │                                   conditions) ─▶ compile ─▶ Snapshot + Status
//!          └─▶ Diagnostics (file:line:column: key path: message)
//! ```
//!
//! Errors are what Kubernetes' API server would refuse (unknown keys, wrong types, invalid
//! values, the Gateway API's CEL rules, duplicate names): a set with any of them is rejected
//! whole. Everything the Gateway API expresses as status (a missing backend, a route that
//! matches no listener, a bad certificate) is not an error: the set applies, and the
//! conditions say what is wrong.
//!
//! The crate reads no files itself: the caller passes the configuration files' text, and a
//! [`FileReader`] for the certificate and key files that Secrets name.

pub mod convert;
mod decode;
pub mod diag;
mod parse;
pub mod pools;
pub mod raw;
mod resolve;
pub mod schema;
pub mod validate;

#[cfg(test)]
mod tests;

pub use diag::{Diagnostic, Diagnostics, SourceFile};
pub use gatehouse_model::{Snapshot, Status};
pub use resolve::FileReader;

use diag::KeyPath;
use raw::{Document, Meta};
use std::collections::HashMap;
use std::sync::Arc;

/// The name of the main configuration file, the only one that may hold daemon settings.
pub const MAIN_FILE: &str = "gatehouse.toml";

/// The last certificate each Secret loaded successfully, by Secret.
pub type Certificates =
    HashMap<gatehouse_model::ResourceKey, Arc<gatehouse_model::tls::Certificate>>;

/// The last CA bundle each ConfigMap (`ca.crt`) or Secret (`caFile`) loaded successfully,
/// by that object (BackendTLSPolicy `caCertificateRefs`).
pub type CaBundles =
    HashMap<gatehouse_model::ResourceKey, Arc<Vec<rustls_pki_types::CertificateDer<'static>>>>;

/// What a load keeps from the configuration that serves now.
#[derive(Clone, Debug, Default)]
pub struct Previous {
    /// Gateway (`namespace/name`) to the address a LoadBalancerIPPool gave it: kept where
    /// still valid.
    pub allocations: pools::Allocations,
    /// A Secret whose files fail to load (unreadable, half-rotated, key and certificate not
    /// a pair) keeps serving the certificate it last loaded.
    pub certificates: Certificates,
    /// Likewise, a CA bundle file that fails to load keeps the bundle it last loaded.
    pub ca_bundles: CaBundles,
}

/// A configuration that loaded: what to serve, and the status of every resource.
#[derive(Debug)]
pub struct Loaded {
    pub snapshot: Snapshot,
    pub status: Status,
    /// The certificate, key and CA files Secrets and ConfigMaps name: a change to any of them
    /// is a reason to reload, wherever they live.
    pub secret_files: Vec<std::path::PathBuf>,
    /// The private key files Secrets name (a subset of `secret_files`), whose permissions
    /// the daemon checks.
    pub key_files: Vec<std::path::PathBuf>,
    /// Gateway (`namespace/name`) to the address a LoadBalancerIPPool gave it.
    pub allocations: pools::Allocations,
    /// Every certificate this configuration serves, by Secret: the [`Previous`] of the next
    /// load.
    pub certificates: Certificates,
    /// Every CA bundle the BackendTLSPolicies use, by object: the [`Previous`] of the next
    /// load.
    pub ca_bundles: CaBundles,
    /// Secrets whose files failed to load and that serve their previous certificate, and
    /// ConfigMaps and Secrets whose CA file failed and whose previous CA bundle is still
    /// used, with why.
    pub stale_certificates: Vec<(gatehouse_model::ResourceKey, String)>,
}

impl Loaded {
    /// What the next load keeps from this one.
    pub fn previous(&self) -> Previous {
        Previous {
            allocations: self.allocations.clone(),
            certificates: self.certificates.clone(),
            ca_bundles: self.ca_bundles.clone(),
        }
    }
}

/// Parses every file (the first one is `gatehouse.toml`) into one document, or returns every
/// error found.
pub fn parse(files: &[SourceFile]) -> Result<Document, Diagnostics> {
    let mut doc = Document::default();
    let mut diags = Vec::new();
    let mut order = 0;
    for (i, f) in files.iter().enumerate() {
        parse::parse_file(i, f, i == 0, &mut doc, &mut order, &mut diags);
    }
    check_duplicates(files, &doc, &mut diags);
    if diags.is_empty() {
        Ok(doc)
    } else {
        Err(Diagnostics(diags))
    }
}

/// Parses, resolves and compiles a configuration. `generation` numbers the result.
pub fn load(
    files: &[SourceFile],
    reader: &dyn FileReader,
    generation: u64,
) -> Result<Loaded, Diagnostics> {
    load_with(files, reader, generation, &Previous::default())
}

/// Like [`load`], keeping what `previous` says: pool addresses Gateways had (where still
/// valid), the last good certificate of each Secret and the last good CA bundle of each
/// ConfigMap or Secret.
pub fn load_with(
    files: &[SourceFile],
    reader: &dyn FileReader,
    generation: u64,
    previous: &Previous,
) -> Result<Loaded, Diagnostics> {
    let doc = parse(files)?;
    Ok(load_document(&doc, reader, generation, previous))
}

/// Resolves and compiles a document [`parse`] returned (for a caller that needed the
/// document first, e.g. for its settings). Semantic problems are status, never errors.
pub fn load_document(
    doc: &Document,
    reader: &dyn FileReader,
    generation: u64,
    previous: &Previous,
) -> Loaded {
    let resolve::Resolved {
        snapshot,
        status,
        allocations,
        certificates,
        ca_bundles,
        stale_certificates,
    } = resolve::resolve(doc, reader, generation, previous);
    let ca_files = doc.config_maps.iter().filter_map(|c| match &c.ca {
        Some(raw::CaSource::File(p)) => Some(p),
        _ => None,
    });
    let secret_files = doc
        .secrets
        .iter()
        .flat_map(|s| {
            s.cert_file
                .iter()
                .chain(s.key_file.iter())
                .chain(s.ca_file.iter())
        })
        .chain(ca_files)
        .cloned()
        .collect();
    let key_files = doc
        .secrets
        .iter()
        .filter_map(|s| s.key_file.clone())
        .collect();
    Loaded {
        snapshot,
        status,
        secret_files,
        key_files,
        allocations,
        certificates,
        ca_bundles,
        stale_certificates,
    }
}

/// Two resources of one kind with one namespace and name: the later one is an error.
fn check_duplicates(files: &[SourceFile], doc: &Document, diags: &mut Vec<diag::Diagnostic>) {
    let metas = doc
        .gateway_classes
        .iter()
        .map(|r| &r.meta)
        .chain(doc.gateways.iter().map(|r| &r.meta))
        .chain(doc.http_routes.iter().map(|r| &r.meta))
        .chain(doc.tls_routes.iter().map(|r| &r.meta))
        .chain(doc.tcp_routes.iter().map(|r| &r.meta))
        .chain(doc.udp_routes.iter().map(|r| &r.meta))
        .chain(doc.reference_grants.iter().map(|r| &r.meta))
        .chain(doc.services.iter().map(|r| &r.meta))
        .chain(doc.secrets.iter().map(|r| &r.meta))
        .chain(doc.namespaces.iter().map(|r| &r.meta))
        .chain(doc.pools.iter().map(|r| &r.meta))
        .chain(doc.backend_tls_policies.iter().map(|r| &r.meta))
        .chain(doc.config_maps.iter().map(|r| &r.meta));
    let mut sorted: Vec<&Meta> = metas.collect();
    sorted.sort_by_key(|m| m.order);
    let mut seen: HashMap<gatehouse_model::ResourceKey, &Meta> = HashMap::new();
    let mut found = Vec::new();
    for m in sorted {
        let src = &files[m.file];
        let path = KeyPath::root(m.key().to_string());
        if m.kind == gatehouse_model::Kind::GatewayClass
            && m.name == resolve::gateways::BUILTIN_CLASS
        {
            found.push(src.diagnostic(
                m.offset,
                &path,
                "the GatewayClass \"gatehouse\" is built in and cannot be redeclared",
            ));
            continue;
        }
        match seen.get(&m.key()) {
            Some(first) => {
                let (line, column) = files[first.file].line_col(first.offset);
                found.push(src.diagnostic(
                    m.offset,
                    &path,
                    format!(
                        "duplicate {}: first declared at {}:{line}:{column}",
                        m.key(),
                        files[first.file].name
                    ),
                ));
            }
            None => {
                seen.insert(m.key(), m);
            }
        }
    }
    diags.extend(found);
    diags.sort_by_key(|d| {
        let file = files
            .iter()
            .position(|f| f.name == d.file)
            .unwrap_or(usize::MAX);
        (file, d.line, d.column)
    });
}
