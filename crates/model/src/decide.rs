//! The routing decision for one HTTP request: a pure function of the snapshot, the
//! connection's facts and the request head.
//!
//! ```text
//! listener   local address + Host (plaintext), or the SNI's listener (TLS; 421 when the
//!            Host belongs to another HTTPS listener on the port, 404 when to none)
//! rule       the listener's route table: hostname, then match precedence, then age
//! CORS       preflights answered (204 / 403); an allowed origin remembered
//! redirect   a rule's RequestRedirect answers
//! backend    weighted draw: 500 no backendRefs, 503 all weights 0, 500 unresolved;
//!            a backendRef's own RequestRedirect answers
//! mirrors    sampled
//! ```
//!
//! The data plane only carries the decision out. The tests are in `gatehouse-config`
//! (`src/tests/decide.rs` and every routing test there), where snapshots are written as TOML.

use crate::backend::{AppProtocol, BackendTarget, Pick, ServiceId};
use crate::conn::ConnInfo;
use crate::cors::{CorsRequest, preflight_headers};
use crate::filter::{Mirror, Redirect, RedirectRequest, Scheme};
use crate::hostname::normalize_request_host;
use crate::http::{HttpRule, RequestView};
use crate::listener::{Listener, Protocol};
use crate::respond::Synthetic;
use crate::snapshot::Snapshot;
use std::sync::Arc;

/// An index into `Snapshot::listeners`.
pub type ListenerId = usize;

/// What to do with a request, and what it matched (for logs and metrics).
#[derive(Debug)]
pub struct Decision<'s> {
    pub listener: Option<ListenerId>,
    pub rule: Option<&'s Arc<HttpRule>>,
    pub action: Action<'s>,
}

/// Answer here, or forward to a backend.
#[derive(Debug)]
pub enum Action<'s> {
    Respond(Synthetic),
    Forward(Forward<'s>),
}

/// Where a forwarded request goes and what happens on the way.
#[derive(Debug)]
pub struct Forward<'s> {
    /// How the client reached the gateway.
    pub scheme: Scheme,
    /// The PathPrefix the request matched, for ReplacePrefixMatch.
    pub matched_prefix: Option<&'s str>,
    /// The index of the chosen backendRef in the rule.
    pub backend: usize,
    pub service: ServiceId,
    pub target_port: u16,
    pub protocol: AppProtocol,
    /// The BackendTLSPolicy (index in `Snapshot::backend_tls`) when the port speaks TLS.
    pub tls: Option<crate::backend_tls::BackendTlsId>,
    /// The request's Origin when the rule's CORS filter allows it: the response gets CORS
    /// headers for it.
    pub cors_origin: Option<String>,
    /// Mirrors sampled for this request (the rule's, then the backendRef's).
    pub mirrors: Vec<&'s Mirror>,
}

/// The Host a request names, normalized: the Host header, else the HTTP/2 authority.
pub fn request_host(req: &dyn RequestView) -> Option<String> {
    normalize_request_host(&req.host()?)
}

/// Decides what happens to a request. `random` supplies uniformly distributed numbers for
/// the weighted draw and mirror sampling.
pub fn decide<'s>(
    snapshot: &'s Snapshot,
    conn: &ConnInfo,
    req: &dyn RequestView,
    random: &mut dyn FnMut() -> u64,
) -> Decision<'s> {
    let host = request_host(req);
    let mut d = Decision {
        listener: None,
        rule: None,
        action: Action::Respond(Synthetic::no_listener()),
    };
    let (id, listener) = match select_listener(snapshot, conn, host.as_deref()) {
        Ok(Some(l)) => l,
        Ok(None) => return d,
        Err(misdirected) => {
            d.action = Action::Respond(misdirected);
            return d;
        }
    };
    d.listener = Some(id);
    let Some(routes) = listener.http_routes() else {
        d.action = Action::Respond(Synthetic::no_routes());
        return d;
    };
    let Some(routed) = routes.route(host.as_deref(), req) else {
        d.action = Action::Respond(Synthetic::no_match());
        return d;
    };
    let rule = routed.rule;
    d.rule = Some(rule);
    let scheme = if listener.protocol == Protocol::HTTPS {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let matched_prefix = routed.matcher.path.prefix_value();
    let redirect = |r: &Redirect| {
        let host_or_ip = host.clone().unwrap_or_else(|| conn.local.ip().to_string());
        let location = r.location(&RedirectRequest {
            scheme,
            host: &host_or_ip,
            listener_port: listener.port,
            path: req.path(),
            query: req.query(),
            matched_prefix,
        });
        Action::Respond(Synthetic::redirect(r.status_code, location))
    };

    // CORS: answer preflights, remember an allowed origin for the response.
    let mut cors_origin = None;
    if let Some(cors) = &rule.filters.cors
        && let Some(origin) = req.header("origin")
    {
        let allowed = cors.origin_allowed(&origin);
        let request_method = req.header("access-control-request-method");
        if req.method() == "OPTIONS" && request_method.is_some() {
            d.action = Action::Respond(if allowed {
                let request_headers = req.header("access-control-request-headers");
                Synthetic::cors_preflight(preflight_headers(
                    cors,
                    &CorsRequest {
                        origin: &origin,
                        request_method: request_method.as_deref(),
                        request_headers: request_headers.as_deref(),
                    },
                ))
            } else {
                Synthetic::cors_forbidden()
            });
            return d;
        }
        if allowed {
            cors_origin = Some(origin.into_owned());
        }
    }

    if let Some(r) = &rule.filters.redirect {
        d.action = redirect(r);
        return d;
    }

    let (index, backend) = match rule.backends.pick(random()) {
        Pick::NoBackends => {
            d.action = Action::Respond(Synthetic::no_backends());
            return d;
        }
        Pick::AllWeightsZero => {
            d.action = Action::Respond(Synthetic::all_weights_zero());
            return d;
        }
        Pick::Backend(index, backend) => (index, backend),
    };
    let (service, target_port, protocol, tls) = match &backend.target {
        BackendTarget::Unresolved(why) => {
            d.action = Action::Respond(Synthetic::unresolved(why));
            return d;
        }
        BackendTarget::Service {
            service,
            target_port,
            protocol,
            tls,
            ..
        } => (*service, *target_port, *protocol, *tls),
    };
    if let Some(r) = &backend.filters.redirect {
        d.action = redirect(r);
        return d;
    }
    let mirrors = rule
        .filters
        .mirrors
        .iter()
        .chain(&backend.filters.mirrors)
        .filter(|m| m.sampled(random()))
        .collect();
    d.action = Action::Forward(Forward {
        scheme,
        matched_prefix,
        backend: index,
        service,
        target_port,
        protocol,
        tls,
        cors_origin,
        mirrors,
    });
    d
}

/// The listener of a request. Plaintext: the Host chooses among the listeners bound to the
/// local address. TLS: the SNI chose the listener; a Host that another HTTPS listener on
/// this port would take is misdirected (421), a Host no listener takes finds none (404).
fn select_listener<'s>(
    snapshot: &'s Snapshot,
    conn: &ConnInfo,
    host: Option<&str>,
) -> Result<Option<(ListenerId, &'s Listener)>, Synthetic> {
    let Some(tls) = &conn.tls else {
        return Ok(snapshot.select_listener_id(conn.local, host, None));
    };
    let by_sni = snapshot.select_listener_id(conn.local, tls.sni.as_deref(), Some(Protocol::HTTPS));
    let by_host = snapshot.select_listener_id(conn.local, host, Some(Protocol::HTTPS));
    match (by_sni, by_host) {
        (Some((a, l)), Some((b, _))) if a == b => Ok(Some((a, l))),
        (_, Some(_)) => Err(Synthetic::misdirected()),
        (_, None) => Ok(None),
    }
}
