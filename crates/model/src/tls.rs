//! TLS material and TLSRoute routing: certificates read from Secrets, and the SNI table of a
//! TLS listener (Passthrough or Terminate). [`TlsRule`] is also what a TCPRoute or UDPRoute rule
//! compiles to: such a rule is its backends and nothing else.

use crate::ResourceKey;
use crate::backend::Backends;
use crate::hostname::Hostname;
use crate::http::RuleRef;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A certificate chain and its private key, from a `kubernetes.io/tls` Secret.
pub struct Certificate {
    pub secret: ResourceKey,
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("secret", &self.secret)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// A compiled TLSRoute, TCPRoute or UDPRoute rule.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsRule {
    pub rule: RuleRef,
    pub backends: Backends,
}

/// The TLSRoutes of one TLS listener, by the SNI they serve. Only one route serves a
/// hostname: the first one inserted (the oldest route) keeps it.
#[derive(Clone, Debug, Default)]
pub struct SniTable {
    exact: HashMap<String, Arc<TlsRule>>,
    /// Keyed by the suffix with its leading dot.
    wildcard: HashMap<String, Arc<TlsRule>>,
}

impl SniTable {
    /// Adds a rule for hostnames; names already served by an older route are left to it.
    pub fn insert(&mut self, hostnames: &[Hostname], rule: Arc<TlsRule>) {
        for name in hostnames {
            let map = match name.wildcard_suffix() {
                Some(_) => &mut self.wildcard,
                None => &mut self.exact,
            };
            let key = name.wildcard_suffix().unwrap_or(name.as_str()).to_string();
            map.entry(key).or_insert_with(|| rule.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }

    /// Every rule in the table (once per hostname it serves).
    pub fn rules(&self) -> impl Iterator<Item = &Arc<TlsRule>> {
        self.exact.values().chain(self.wildcard.values())
    }

    /// The rule for a normalised SNI: exact, then the most specific wildcard.
    pub fn lookup(&self, sni: &str) -> Option<&Arc<TlsRule>> {
        if let Some(rule) = self.exact.get(sni) {
            return Some(rule);
        }
        sni.char_indices()
            .filter(|(i, c)| *c == '.' && *i > 0)
            .find_map(|(i, _)| self.wildcard.get(&sni[i..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    fn rule(name: &str) -> Arc<TlsRule> {
        Arc::new(TlsRule {
            rule: RuleRef {
                route: ResourceKey::new(Kind::TLSRoute, "default", name),
                index: 0,
                name: None,
            },
            backends: Backends::default(),
        })
    }

    fn names(list: &[&str]) -> Vec<Hostname> {
        list.iter().map(|h| Hostname::parse(h).unwrap()).collect()
    }

    #[test]
    fn sni_exact_beats_the_most_specific_wildcard() {
        let mut t = SniTable::default();
        t.insert(&names(&["*.com"]), rule("com"));
        t.insert(&names(&["*.example.com"]), rule("wild"));
        t.insert(&names(&["abc.example.com"]), rule("exact"));
        let hit = |sni: &str| t.lookup(sni).map(|r| r.rule.route.name.clone());
        assert_eq!(hit("abc.example.com").as_deref(), Some("exact"));
        assert_eq!(hit("other.example.com").as_deref(), Some("wild"));
        assert_eq!(hit("x.com").as_deref(), Some("com"));
        assert_eq!(hit("example.org"), None);
        assert_eq!(hit("com"), None);
    }

    #[test]
    fn oldest_tls_route_keeps_a_contested_hostname() {
        let mut t = SniTable::default();
        t.insert(&names(&["a.example.com"]), rule("older"));
        t.insert(&names(&["a.example.com"]), rule("newer"));
        assert_eq!(t.lookup("a.example.com").unwrap().rule.route.name, "older");
    }
}
