//! The HTTP request path: pingora's `ProxyHttp` implemented with Gateway API semantics.
//!
//! Per request, in pingora's phases:
//! 1. `request_filter`: load the current generation once; pick the listener by the local
//!    address and Host, then the rule by Gateway API precedence (404 when none); answer CORS
//!    preflights and redirects; draw a backendRef by weight (500 unresolved or no backends,
//!    503 all weights zero); note mirrors and deadlines.
//! 2. `upstream_peer`: pick an endpoint of the chosen Service (round robin, skipping
//!    unhealthy ones and those this request already failed to reach; 503 when none).
//! 3. `upstream_request_filter`: header modifiers, URL rewrite, X-Forwarded-For/-Proto.
//! 4. `response_filter`: response header modifiers, CORS headers.
//! 5. `fail_to_proxy`: 504 on timeouts, 503 when no endpoint could be reached, 502 for other
//!    backend failures.
//! 6. `logging`: the access log line, then mirrors are sent (the client never waits).

mod filters;
mod mirror;

use crate::backends::{NoEndpoint, Pool, Target};
use crate::{Generation, Shared};
use async_trait::async_trait;
use bytes::Bytes;
use filters::{CorsRequest, HeaderMut, modify_headers};
use gatehouse_model::backend::{AppProtocol, BackendTarget, Pick, Unresolved};
use gatehouse_model::filter::{Filters, RedirectRequest, Scheme};
use gatehouse_model::hostname::normalize_request_host;
use gatehouse_model::http::{HttpRule, RequestView};
use gatehouse_model::listener::Protocol;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long connecting to one endpoint may take when no route timeout is shorter.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request body copied to mirrors; larger requests are not mirrored.
const MIRROR_BODY_LIMIT: usize = 1 << 20;

/// The `ProxyHttp` implementation; cheap to clone, shares the current generation.
#[derive(Clone, Debug)]
pub struct GatewayProxy {
    pub(crate) shared: Arc<Shared>,
}

/// The backend a request was sent to.
#[derive(Debug)]
struct Chosen {
    /// Index of the backendRef in the rule.
    backend: usize,

    target_port: u16,
    protocol: AppProtocol,
    pool: Arc<Pool>,
    /// Endpoints this request already failed to connect to.
    /// Endpoints this request could not connect to: a retry picks another one. (A retry after
    /// a failure on a reused pooled connection may pick the same endpoint again.)
    failed: Vec<SocketAddr>,
    /// The endpoint of the current attempt.
    endpoint: Option<SocketAddr>,
    current: Option<Arc<Target>>,
    endpoint_error: Option<NoEndpoint>,
}

/// Per-request state.
#[derive(Debug, Default)]
pub struct RequestCtx {
    started: Option<Instant>,
    generation: Option<Arc<Generation>>,
    listener: Option<usize>,
    scheme: Option<Scheme>,
    rule: Option<Arc<HttpRule>>,
    matched_prefix: Option<String>,
    chosen: Option<Chosen>,
    deadline: Option<Instant>,
    backend_timeout: Option<Duration>,
    cors_origin: Option<String>,
    mirrors: Vec<mirror::Job>,
    mirror_body: Vec<u8>,
    /// The status the gateway answered itself (404, redirects, ...), for the access log.
    local_status: Option<u16>,
    /// The in-flight gauge this request raised, lowered when it is logged.
    in_flight: Option<prometheus::IntGauge>,
    /// When the current upstream attempt started.
    upstream_started: Option<Instant>,
}

/// A pingora request seen through the model's [`RequestView`].
struct View<'a>(&'a RequestHeader);

impl RequestView for View<'_> {
    fn method(&self) -> &str {
        self.0.method.as_str()
    }
    fn path(&self) -> &str {
        self.0.uri.path()
    }
    fn query(&self) -> Option<&str> {
        self.0.uri.query()
    }
    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        let mut values = self.0.headers.get_all(name).iter();
        let first = values.next()?;
        let first = String::from_utf8_lossy(first.as_bytes());
        match values.next() {
            None => Some(first),
            Some(second) => {
                let mut joined = first.into_owned();
                for v in std::iter::once(second).chain(values) {
                    joined.push(',');
                    joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
                }
                Some(Cow::Owned(joined))
            }
        }
    }
}

/// The Host a request names: the Host header, else the HTTP/2 authority.
fn request_host(req: &RequestHeader) -> Option<String> {
    let raw = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri.authority().map(|a| a.as_str().to_string()))?;
    normalize_request_host(&raw)
}

fn local_addr(session: &Session) -> Option<SocketAddr> {
    session.server_addr().and_then(|a| a.as_inet()).copied()
}

/// Writes a response the gateway produces itself.
async fn respond(
    session: &mut Session,
    ctx: &mut RequestCtx,
    status: u16,
    headers: &[(&str, String)],
    body: &str,
) -> Result<bool> {
    let mut resp = ResponseHeader::build(status, Some(headers.len() + 2))?;
    for (n, v) in headers {
        resp.insert_header(n.to_string(), v.as_str())?;
    }
    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    if !body.is_empty() {
        resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    }
    let head = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), body.is_empty() || head)
        .await?;
    if !body.is_empty() && !head {
        session
            .write_response_body(Some(Bytes::copy_from_slice(body.as_bytes())), true)
            .await?;
    }
    ctx.local_status = Some(status);
    Ok(true)
}

/// Answers with a RequestRedirect's status and Location (rule- or backend-level filter).
async fn redirect_to(
    session: &mut Session,
    ctx: &mut RequestCtx,
    redirect: &gatehouse_model::filter::Redirect,
    host: &str,
    listener_port: u16,
) -> Result<bool> {
    let req = session.req_header();
    let location = redirect.location(&RedirectRequest {
        scheme: ctx.scheme.unwrap_or(Scheme::Http),
        host,
        listener_port,
        path: req.uri.path(),
        query: req.uri.query(),
        matched_prefix: ctx.matched_prefix.as_deref(),
    });
    respond(
        session,
        ctx,
        redirect.status_code,
        &[("location", location)],
        "",
    )
    .await
}

fn http_error(code: u16, why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(code), why)
}

/// The name of the backendRef a request was sent to (`namespace/name:port`).
fn backend_name(ctx: &RequestCtx) -> Option<String> {
    let (rule, chosen) = ctx.rule.as_ref().zip(ctx.chosen.as_ref())?;
    rule.backends
        .entries()
        .get(chosen.backend)
        .map(|b| b.name.clone())
}

impl GatewayProxy {
    /// Counts a finished request in the metrics and lowers its in-flight gauge.
    fn record(&self, session: &Session, status: u16, ctx: &mut RequestCtx) {
        if let Some(g) = ctx.in_flight.take() {
            g.dec();
        }
        let m = &self.shared.metrics;
        let listener = ctx.listener.and_then(|i| {
            ctx.generation
                .as_ref()
                .and_then(|g| g.snapshot.listeners.get(i))
        });
        let gateway = listener
            .map(|l| l.gateway.namespaced_name())
            .unwrap_or_default();
        let listener = listener.map(|l| l.name.clone()).unwrap_or_default();
        let route = ctx
            .rule
            .as_ref()
            .map(|r| r.rule.route.namespaced_name())
            .unwrap_or_default();
        let backend = backend_name(ctx).unwrap_or_default();
        let method = crate::metrics::method_label(session.req_header().method.as_str());
        let code = status.to_string();
        m.http_requests
            .with_label_values(&[&gateway, &listener, &route, &backend, method, &code])
            .inc();
        if let Some(started) = ctx.started {
            m.http_request_duration
                .with_label_values(&[
                    &gateway,
                    &listener,
                    &route,
                    crate::metrics::code_class(status),
                ])
                .observe(started.elapsed().as_secs_f64());
        }
    }

    /// The filters that apply to the chosen backend (rule filters come first).
    fn backend_filters<'a>(rule: &'a HttpRule, chosen: Option<&Chosen>) -> Option<&'a Filters> {
        chosen
            .and_then(|c| rule.backends.entries().get(c.backend))
            .map(|b| &b.filters)
    }
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Some(Instant::now()),
            ..RequestCtx::default()
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let generation = self.shared.current();
        ctx.generation = Some(generation.clone());
        let snapshot = &generation.snapshot;
        let Some(local) = local_addr(session) else {
            return respond(session, ctx, 500, &[], "no local address\n").await;
        };
        let host = request_host(session.req_header());
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()));
        let local = SocketAddr::new(local.ip().to_canonical(), local.port());
        // Only TLS connections registered an SNI; plaintext ones skip the lookup.
        let is_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let sni = client
            .filter(|_| is_tls)
            .and_then(|c| self.shared.tls_sni(c, local));
        let listener = match sni {
            // Plaintext: the Host chooses the listener.
            None => snapshot.select_listener(local, host.as_deref()),
            // TLS: the SNI chose the listener; a Host that another HTTPS listener on this
            // port would take is a misdirected request (421), a Host no listener takes is 404.
            Some(sni) => {
                let by_sni = snapshot.select_listener_of(local, sni.as_deref(), Protocol::HTTPS);
                let by_host = snapshot.select_listener_of(local, host.as_deref(), Protocol::HTTPS);
                match (by_sni, by_host) {
                    (Some(a), Some(b)) if std::ptr::eq(a, b) => Some(a),
                    (_, Some(_)) => {
                        return respond(session, ctx, 421, &[], "misdirected request: this connection's SNI belongs to another listener\n").await;
                    }
                    (_, None) => None,
                }
            }
        };
        let Some((li, listener)) = listener.and_then(|l| {
            snapshot
                .listeners
                .iter()
                .position(|x| std::ptr::eq(x, l))
                .map(|i| (i, l))
        }) else {
            return respond(session, ctx, 404, &[], "no listener for this host\n").await;
        };
        ctx.listener = Some(li);
        let gauge = self
            .shared
            .metrics
            .http_requests_in_flight
            .with_label_values(&[&listener.gateway.namespaced_name(), &listener.name]);
        gauge.inc();
        ctx.in_flight = Some(gauge);
        ctx.scheme = Some(if listener.protocol == Protocol::HTTPS {
            Scheme::Https
        } else {
            Scheme::Http
        });
        let Some(routes) = listener.http_routes() else {
            return respond(session, ctx, 404, &[], "no route\n").await;
        };
        let Some(routed) = routes.route(host.as_deref(), &View(session.req_header())) else {
            return respond(session, ctx, 404, &[], "no route matches\n").await;
        };
        let rule = routed.rule.clone();
        ctx.matched_prefix = routed.matcher.path.prefix_value().map(str::to_string);
        ctx.rule = Some(rule.clone());

        // CORS: answer preflights, remember the origin for the response.
        if let Some(cors) = &rule.filters.cors {
            let req = session.req_header();
            let origin = req
                .headers
                .get("origin")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            if let Some(origin) = origin {
                let method = req
                    .headers
                    .get("access-control-request-method")
                    .and_then(|v| v.to_str().ok());
                let allowed = cors.origin_allowed(&origin);
                if req.method == http::Method::OPTIONS && method.is_some() {
                    if !allowed {
                        return respond(session, ctx, 403, &[], "CORS origin not allowed\n").await;
                    }
                    let cr = CorsRequest {
                        origin: &origin,
                        request_method: method,
                        request_headers: req
                            .headers
                            .get("access-control-request-headers")
                            .and_then(|v| v.to_str().ok()),
                    };
                    let headers = filters::preflight_headers(cors, &cr);
                    return respond(session, ctx, 204, &headers, "").await;
                }
                if allowed {
                    ctx.cors_origin = Some(origin);
                }
            }
        }

        // Redirects answer without a backend.
        let host_or_ip = host.clone().unwrap_or_else(|| local.ip().to_string());
        if let Some(redirect) = &rule.filters.redirect {
            return redirect_to(session, ctx, redirect, &host_or_ip, listener.port).await;
        }

        // Timeouts.
        ctx.deadline = rule.timeouts.request.map(|d| Instant::now() + d);
        ctx.backend_timeout = rule.timeouts.backend_request;

        // Mirrors of the rule.
        let mut mirrors: Vec<&gatehouse_model::filter::Mirror> =
            rule.filters.mirrors.iter().collect();

        // The backend.
        match rule.backends.pick(fastrand::u64(..)) {
            Pick::NoBackends => {
                return respond(
                    session,
                    ctx,
                    500,
                    &[],
                    "the matching rule has no backends\n",
                )
                .await;
            }
            Pick::AllWeightsZero => {
                return respond(
                    session,
                    ctx,
                    503,
                    &[],
                    "every backend of the matching rule has weight 0\n",
                )
                .await;
            }
            Pick::Backend(b) => {
                let backend = rule
                    .backends
                    .entries()
                    .iter()
                    .position(|x| std::ptr::eq(x, b))
                    .unwrap_or(0);
                match &b.target {
                    BackendTarget::Unresolved(why) => {
                        let msg = match why {
                            Unresolved::NotFound => "backend not found\n",
                            Unresolved::InvalidKind => "backend kind not supported\n",
                            Unresolved::NotPermitted => "backend reference not permitted\n",
                            Unresolved::UnsupportedProtocol => "backend protocol not supported\n",
                        };
                        return respond(session, ctx, 500, &[], msg).await;
                    }
                    BackendTarget::Service {
                        service,
                        target_port,
                        protocol,
                        ..
                    } => {
                        let Some(pool) = generation.pools.get(*service) else {
                            return respond(session, ctx, 500, &[], "backend not found\n").await;
                        };
                        if let Some(redirect) = &b.filters.redirect {
                            return redirect_to(session, ctx, redirect, &host_or_ip, listener.port)
                                .await;
                        }
                        mirrors.extend(b.filters.mirrors.iter());
                        ctx.chosen = Some(Chosen {
                            backend,

                            target_port: *target_port,
                            protocol: *protocol,
                            pool: pool.clone(),
                            failed: Vec::new(),
                            endpoint: None,
                            current: None,
                            endpoint_error: None,
                        });
                    }
                }
            }
        }
        for m in mirrors {
            if m.sampled(fastrand::u64(..))
                && let Some(job) = mirror::Job::new(m, &generation)
            {
                ctx.mirrors.push(job);
            }
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let remaining = match ctx.deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::explain(
                        ErrorType::ReadTimedout,
                        "request timeout elapsed",
                    ));
                }
                Some(left)
            }
            None => None,
        };
        let per_attempt = match (remaining, ctx.backend_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(chosen) = ctx.chosen.as_mut() else {
            return Err(http_error(500, "no backend chosen"));
        };
        let (target, addr) = match chosen.pool.pick(chosen.target_port, &chosen.failed) {
            Ok(t) => t,
            Err(e) => {
                chosen.endpoint_error = Some(e);
                return Err(http_error(503, "no healthy endpoint"));
            }
        };
        chosen.endpoint = Some(addr);
        chosen.current = Some(target);
        ctx.upstream_started = Some(Instant::now());
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout =
            Some(per_attempt.map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT)));
        peer.options.read_timeout = per_attempt;
        peer.options.write_timeout = per_attempt;
        if chosen.protocol == AppProtocol::H2c {
            peer.options.set_http_version(2, 2);
        }
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(name) = backend_name(ctx) {
            self.shared
                .metrics
                .upstream_connect_errors
                .with_label_values(&[&name])
                .inc();
        }
        if let Some(chosen) = ctx.chosen.as_mut() {
            if let Some(t) = &chosen.current {
                chosen.pool.connect_failed(t);
            }
            if let Some(addr) = chosen.endpoint {
                chosen.failed.push(addr);
            }
            // Try another endpoint of the same Service while there is one left.
            let left = chosen.pool.pick(chosen.target_port, &chosen.failed).is_ok();
            e.set_retry(left);
        }
        e
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora_core::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(chosen) = ctx.chosen.as_ref()
            && let Some(t) = &chosen.current
        {
            chosen.pool.connect_succeeded(t);
        }
        if let Some(name) = backend_name(ctx) {
            let reused = if reused { "true" } else { "false" };
            self.shared
                .metrics
                .upstream_connections
                .with_label_values(&[&name, reused])
                .inc();
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if resp.status.is_informational() {
            return Ok(());
        }
        if let (Some(started), Some(rule), Some(backend)) = (
            ctx.upstream_started.take(),
            ctx.rule.as_ref(),
            backend_name(ctx),
        ) {
            self.shared
                .metrics
                .upstream_request_duration
                .with_label_values(&[&rule.rule.route.namespaced_name(), &backend])
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(rule) = ctx.rule.clone() else {
            return Ok(());
        };
        apply_request_filters(
            upstream,
            &rule,
            ctx.chosen.as_ref(),
            ctx.matched_prefix.as_deref(),
        );
        // Proxy headers: X-Forwarded-For gets the client appended; X-Forwarded-Proto says how
        // the client reached the gateway. `Forwarded` is not added.
        if let Some(client) = session.client_addr().and_then(|a| a.as_inet()) {
            let ip = client.ip().to_canonical().to_string();
            let xff = match upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prev) => format!("{prev}, {ip}"),
                None => ip,
            };
            upstream.set("x-forwarded-for", &xff);
        }
        let proto = ctx.scheme.unwrap_or(Scheme::Http).as_str();
        upstream.set("x-forwarded-proto", proto);
        if !ctx.mirrors.is_empty() {
            for job in &mut ctx.mirrors {
                job.set_request(upstream.clone());
            }
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if !ctx.mirrors.is_empty()
            && let Some(b) = body
        {
            if ctx.mirror_body.len() + b.len() > MIRROR_BODY_LIMIT {
                tracing::warn!("request body over {MIRROR_BODY_LIMIT} bytes: not mirrored");
                ctx.mirrors.clear();
                ctx.mirror_body = Vec::new();
            } else {
                ctx.mirror_body.extend_from_slice(b);
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(rule) = ctx.rule.clone() else {
            return Ok(());
        };
        if let Some(m) = &rule.filters.response_headers {
            modify_headers(resp, m);
        }
        if let Some(m) = Self::backend_filters(&rule, ctx.chosen.as_ref())
            .and_then(|f| f.response_headers.as_ref())
        {
            modify_headers(resp, m);
        }
        if let (Some(cors), Some(origin)) = (&rule.filters.cors, &ctx.cors_origin) {
            for (n, v) in filters::response_headers(cors, origin) {
                resp.set(n, &v);
            }
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if ctx.deadline.is_some_and(|d| Instant::now() > d) {
            return Err(Error::explain(
                ErrorType::ReadTimedout,
                "request timeout elapsed while streaming the response",
            ));
        }
        Ok(None)
    }

    /// A client that goes away mid-request is not an error of the gateway's.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        error.esource() == &ErrorSource::Downstream
            && matches!(
                error.etype(),
                ErrorType::ConnectionClosed | ErrorType::WriteError | ErrorType::ReadError
            )
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if e.esource() != &ErrorSource::Downstream =>
            {
                504
            }
            ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => 503,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code > 0 {
            let _ = session.respond_error(code).await;
        }
        ctx.local_status = Some(code);
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or(ctx.local_status)
            .unwrap_or(0);
        self.record(session, status, ctx);
        let generation = ctx.generation.as_ref();
        if generation.is_some_and(|g| g.snapshot.settings.log.access_log) {
            let listener = ctx
                .listener
                .and_then(|i| generation.and_then(|g| g.snapshot.listeners.get(i)))
                .map(|l| l.label());
            let route = ctx.rule.as_ref().map(|r| r.rule.route.namespaced_name());
            let backend = ctx
                .rule
                .as_ref()
                .zip(ctx.chosen.as_ref())
                .and_then(|(r, c)| r.backends.entries().get(c.backend))
                .map(|b| b.name.clone());
            let endpoint = ctx
                .chosen
                .as_ref()
                .and_then(|c| c.endpoint)
                .map(|a| a.to_string());
            let req = session.req_header();
            let client = session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()).to_string())
                .unwrap_or_default();
            tracing::info!(
                target: "gatehouse::access",
                client = %client,
                method = %req.method,
                host = request_host(req).unwrap_or_default(),
                path = %req.uri.path(),
                status,
                listener = listener.unwrap_or_default(),
                route = route.unwrap_or_default(),
                backend = backend.unwrap_or_default(),
                endpoint = endpoint.unwrap_or_default(),
                duration_ms = ctx.started.map_or(0.0, |s| s.elapsed().as_secs_f64() * 1000.0),
                bytes_in = session.as_downstream().body_bytes_read(),
                bytes_out = session.as_downstream().body_bytes_sent(),
                error = e.map(|e| e.to_string()).unwrap_or_default(),
                "request"
            );
        }
        if !ctx.mirrors.is_empty() {
            let body = Bytes::from(std::mem::take(&mut ctx.mirror_body));
            for job in ctx.mirrors.drain(..) {
                job.send(session.req_header(), body.clone(), &self.shared);
            }
        }
    }
}

/// Request header modifiers and URL rewrites of the rule, then of the chosen backendRef.
fn apply_request_filters(
    req: &mut RequestHeader,
    rule: &HttpRule,
    chosen: Option<&Chosen>,
    matched_prefix: Option<&str>,
) {
    let backend = GatewayProxy::backend_filters(rule, chosen);
    for f in std::iter::once(&rule.filters).chain(backend) {
        if let Some(m) = &f.request_headers {
            modify_headers(req, m);
        }
        if let Some(rw) = &f.rewrite {
            filters::rewrite(req, rw, matched_prefix);
        }
    }
}
