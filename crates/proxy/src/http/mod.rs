//! The HTTP request path: Pingora's `ProxyHttp` carrying out [`decide`]'s decision.
//!
//! Per request, in Pingora's phases:
//! 1. `request_filter`: load the current generation once; refuse what the limits or path
//!    normalization refuse (400/413/431, counted by reason); normalize the path (the backend
//!    gets the normalized one); [`decide`]: listener, rule, CORS, redirects, backendRef,
//!    mirrors — a gateway answer is written here.
//! 2. `upstream_peer`: pick an endpoint of the chosen Service (round robin, skipping
//!    unhealthy ones and those this request already failed to reach; 503 when none).
//! 3. `upstream_request_filter`: forwarding headers, then header modifiers and URL rewrite.
//! 4. `response_filter`: response header modifiers, CORS headers.
//! 5. `fail_to_proxy`: 504 on timeouts, 503 when no endpoint could be reached, 502 for other
//!    backend failures.
//! 6. `logging`: metrics, the access log line, then mirrors are sent (the client never waits).
//!
//! Pingora's own error log lines are suppressed: they carry the request's query string, and a
//! client going away is not the gateway's error. The access log records every request;
//! backend failures are also logged as warnings, at most a few per minute.

mod filters;
mod forwarded;
mod mirror;

use crate::backends::{NoEndpoint, Pool, Target};
use crate::metrics::{Matched, Reject};
use crate::serve::Connection;
use crate::{Generation, Shared};
use async_trait::async_trait;
use bytes::Bytes;
use filters::modify_headers;
use gatehouse_model::backend::AppProtocol;
use gatehouse_model::cors;
use gatehouse_model::decide::{Action, decide};
use gatehouse_model::filter::{Filters, Scheme};
use gatehouse_model::http::{HttpRule, RequestView};
use gatehouse_model::path;
use gatehouse_model::respond::Synthetic;
use pingora_core::protocols::TcpKeepalive;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long connecting to one endpoint may take when no route timeout is shorter.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle pooled backend connection is kept.
const UPSTREAM_IDLE: Duration = Duration::from_secs(60);
/// Largest request body copied to mirrors; larger requests are not mirrored.
const MIRROR_BODY_LIMIT: usize = 1 << 20;

/// The `ProxyHttp` implementation of one serving thread.
#[derive(Clone)]
pub struct GatewayProxy {
    pub(crate) shared: Arc<Shared>,
    /// This thread's connector for RequestMirror copies.
    pub(crate) mirror_connector: Arc<pingora_core::connectors::http::Connector>,
}

impl std::fmt::Debug for GatewayProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayProxy").finish_non_exhaustive()
    }
}

/// The backend a request is forwarded to.
#[derive(Debug)]
struct Chosen {
    /// Index of the backendRef in the rule.
    backend: usize,
    target_port: u16,
    protocol: AppProtocol,
    /// The BackendTLSPolicy of the Service port, when it speaks TLS.
    tls: Option<gatehouse_model::backend_tls::BackendTlsId>,
    scheme: Scheme,
    pool: Arc<Pool>,
    /// The PathPrefix matched, kept only when a URLRewrite needs it.
    matched_prefix: Option<Box<str>>,
    cors_origin: Option<String>,
    /// Endpoints this request could not connect to: a retry picks another one. (A retry after
    /// a failure on a reused pooled connection may pick the same endpoint again.)
    failed: Vec<SocketAddr>,
    /// The endpoint of the current attempt.
    endpoint: Option<SocketAddr>,
    current: Option<Arc<Target>>,
    endpoint_error: Option<NoEndpoint>,
}

/// Per-request state.
#[derive(Debug)]
pub struct RequestCtx {
    started: Instant,
    conn: Option<Arc<Connection>>,
    generation: Option<Arc<Generation>>,
    listener: Option<usize>,
    rule: Option<Arc<HttpRule>>,
    chosen: Option<Chosen>,
    deadline: Option<Instant>,
    backend_timeout: Option<Duration>,
    /// The client as the access log records it (see [`forwarded::effective_client`]).
    client: Option<IpAddr>,
    body_bytes: u64,
    mirrors: Vec<mirror::Job>,
    mirror_body: Vec<u8>,
    /// The status the gateway answered itself (404, redirects, ...), for the access log.
    local_status: Option<u16>,
    /// The in-flight gauge this request raised, lowered when it is logged.
    in_flight: Option<prometheus::IntGauge>,
    /// When the current upstream attempt started.
    upstream_started: Option<Instant>,
}

/// A Pingora request seen through the model's [`RequestView`].
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
    fn host(&self) -> Option<Cow<'_, str>> {
        raw_host(self.0).map(Cow::Borrowed)
    }
}

/// The Host header, else the HTTP/2 authority, as sent.
fn raw_host(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

/// Writes a response the gateway produces itself.
async fn respond(session: &mut Session, ctx: &mut RequestCtx, s: &Synthetic) -> Result<bool> {
    let mut resp = ResponseHeader::build(s.status, Some(s.headers.len() + 2))?;
    for (n, v) in &s.headers {
        resp.insert_header(*n, v.as_str())?;
    }
    resp.insert_header(http::header::CONTENT_LENGTH, s.body.len().to_string())?;
    if !s.body.is_empty() {
        resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    }
    if s.close {
        session.set_keepalive(None);
    }
    let head = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), s.body.is_empty() || head)
        .await?;
    if !s.body.is_empty() && !head {
        session
            .write_response_body(Some(Bytes::from_static(s.body.as_bytes())), true)
            .await?;
    }
    ctx.local_status = Some(s.status);
    Ok(true)
}

fn http_error(code: u16, why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(code), why)
}

impl RequestCtx {
    /// What the request matched, for its metric series.
    fn matched(&self) -> Option<Matched<'_>> {
        let g = self.generation.as_ref()?;
        Some(Matched {
            generation: g.snapshot.generation,
            listener: self
                .listener
                .and_then(|i| g.snapshot.listeners.get(i).map(|l| (i, l))),
            rule: self.rule.as_ref(),
            backend: self.chosen.as_ref().map(|c| c.backend),
        })
    }

    /// The filters of the chosen backendRef.
    fn backend_filters(&self) -> Option<&Filters> {
        let (rule, chosen) = self.rule.as_ref().zip(self.chosen.as_ref())?;
        rule.backends
            .entries()
            .get(chosen.backend)
            .map(|b| &b.filters)
    }
}

impl GatewayProxy {
    /// Refuses a request before routing: counted by reason, answered, connection closed.
    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        reason: Reject,
        answer: Synthetic,
    ) -> Result<bool> {
        self.shared.metrics.rejected(reason);
        tracing::debug!(
            client = %ctx.client.map(|c| c.to_string()).unwrap_or_default(),
            reason = reason.label(),
            "request refused"
        );
        respond(session, ctx, &answer).await
    }
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            conn: None,
            generation: None,
            listener: None,
            rule: None,
            chosen: None,
            deadline: None,
            backend_timeout: None,
            client: None,
            body_bytes: 0,
            mirrors: Vec::new(),
            mirror_body: Vec::new(),
            local_status: None,
            in_flight: None,
            upstream_started: None,
        }
    }

    /// No downstream modules: Pingora's default adds a (disabled) response compression
    /// module whose state is built for every request.
    fn init_downstream_modules(&self, _modules: &mut pingora_core::modules::http::HttpModules) {}

    /// HTTP/1: the connection facts come with every request on the connection.
    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
        prev: Box<dyn std::any::Any + Send + Sync>,
    ) {
        ctx.conn = crate::serve::connection_of(prev);
    }

    /// HTTP/2: the connection facts ride on the request.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.conn.is_none() {
            ctx.conn = session
                .req_header_mut()
                .extensions_mut()
                .remove::<Arc<Connection>>();
        }
        if let Some(c) = &ctx.conn {
            c.requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let generation = self.shared.current();
        ctx.generation = Some(generation.clone());
        let snapshot = &generation.snapshot;
        let settings = &snapshot.settings;
        let Some(connection) = ctx.conn.clone() else {
            return Err(http_error(500, "no connection facts for this request"));
        };
        let conn = &connection.info;
        ctx.client = Some(forwarded::effective_client(
            session.req_header(),
            conn.peer.ip(),
            &settings.forwarded,
        ));

        // Limits HTTP/1 heads were already held to before Pingora parsed them (serve.rs).
        if session.is_http2()
            && session.req_header().headers.len() > settings.limits.max_request_headers
        {
            return self
                .refuse(
                    session,
                    ctx,
                    Reject::TooManyHeaders,
                    Synthetic::headers_too_large(),
                )
                .await;
        }
        let max_body = settings.limits.max_request_body_bytes;
        if max_body > 0
            && let Some(len) = session
                .req_header()
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
            && len > max_body
        {
            return self
                .refuse(
                    session,
                    ctx,
                    Reject::BodyTooLarge,
                    Synthetic::payload_too_large(),
                )
                .await;
        }

        // The path is matched, and forwarded, normalized.
        let normalized = match path::normalize(session.req_header().uri.path(), &settings.http.path)
        {
            Ok(Cow::Borrowed(_)) => None,
            Ok(Cow::Owned(p)) => Some(p),
            Err(e) => {
                return self
                    .refuse(session, ctx, Reject::of_path(e), Synthetic::bad_request())
                    .await;
            }
        };
        if let Some(p) = normalized {
            filters::set_path(session.req_header_mut(), &p);
        }

        let decision = decide(snapshot, conn, &View(session.req_header()), &mut || {
            fastrand::u64(..)
        });
        ctx.listener = decision.listener;
        ctx.rule = decision.rule.cloned();
        if let Some(m) = ctx.matched()
            && m.listener.is_some()
        {
            let g = self.shared.metrics.in_flight(&m);
            g.inc();
            ctx.in_flight = Some(g);
        }
        let forward = match decision.action {
            Action::Respond(s) => return respond(session, ctx, &s).await,
            Action::Forward(f) => f,
        };
        let Some(rule) = decision.rule else {
            return Err(http_error(500, "forwarded without a rule"));
        };
        let Some(pool) = generation.pools.get(forward.service) else {
            return respond(
                session,
                ctx,
                &Synthetic::unresolved(&gatehouse_model::backend::Unresolved::NotFound),
            )
            .await;
        };
        let rewrites = rule.filters.rewrite.is_some()
            || rule.backends.entries()[forward.backend]
                .filters
                .rewrite
                .is_some();
        ctx.deadline = rule.timeouts.request.map(|d| Instant::now() + d);
        ctx.backend_timeout = rule.timeouts.backend_request;
        ctx.mirrors = forward
            .mirrors
            .iter()
            .filter_map(|m| mirror::Job::new(m, &generation, ctx.listener))
            .collect();
        ctx.chosen = Some(Chosen {
            backend: forward.backend,
            target_port: forward.target_port,
            protocol: forward.protocol,
            tls: forward.tls,
            scheme: forward.scheme,
            pool: pool.clone(),
            matched_prefix: forward.matched_prefix.filter(|_| rewrites).map(Box::from),
            cors_origin: forward.cors_origin,
            failed: Vec::new(),
            endpoint: None,
            current: None,
            endpoint_error: None,
        });
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
        let limits = ctx
            .generation
            .as_ref()
            .map(|g| g.snapshot.settings.limits)
            .unwrap_or_default();
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
        // Without a route timeout, a backend that stops sending is bounded by
        // `[limits] backendResponseTimeout` (per read, like nginx's proxy_read_timeout).
        let read = per_attempt
            .or((!limits.backend_response_timeout.is_zero())
                .then_some(limits.backend_response_timeout));
        peer.options.read_timeout = read;
        peer.options.write_timeout = read;
        peer.options.idle_timeout = Some(UPSTREAM_IDLE);
        if !limits.tcp_keepalive.is_zero() {
            peer.options.tcp_keepalive = Some(TcpKeepalive {
                idle: limits.tcp_keepalive,
                interval: Duration::from_secs(10),
                count: 6,
                #[cfg(target_os = "linux")]
                user_timeout: Duration::ZERO,
            });
        }
        if chosen.protocol == AppProtocol::H2c {
            peer.options.set_http_version(2, 2);
        }
        if let Some(id) = chosen.tls {
            // Built when the snapshot was applied; a policy whose client configuration could
            // not be built fails closed.
            let Some(tls) = ctx
                .generation
                .as_ref()
                .and_then(|g| g.upstream_tls.get(id, chosen.protocol, ctx.listener))
            else {
                return Err(http_error(502, "backend TLS configuration unusable"));
            };
            tls.apply(&mut peer);
            peer.options.total_connection_timeout = peer.options.connection_timeout;
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
        if let Some(m) = ctx.matched() {
            self.shared.metrics.connect_error(&m);
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
        if let Some(m) = ctx.matched() {
            self.shared.metrics.upstream_connection(&m, reused);
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
        if let Some(started) = ctx.upstream_started.take()
            && let Some(m) = ctx.matched()
        {
            self.shared.metrics.upstream_duration(&m, started.elapsed());
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(rule), Some(chosen), Some(conn), Some(generation)) = (
            ctx.rule.as_ref(),
            ctx.chosen.as_ref(),
            ctx.conn.as_ref().map(|c| &c.info),
            ctx.generation.as_ref(),
        ) else {
            return Ok(());
        };
        let client = forwarded::Client {
            peer: &conn.peer_ip_text,
            scheme: chosen.scheme.as_str(),
            host: raw_host(session.req_header()),
            port: &conn.local_port_text,
        };
        let trusted = generation
            .snapshot
            .settings
            .forwarded
            .trusts(conn.peer.ip());
        forwarded::apply(upstream, &client, trusted);
        // Header modifiers and rewrites of the rule, then of the chosen backendRef.
        let backend = rule
            .backends
            .entries()
            .get(chosen.backend)
            .map(|b| &b.filters);
        for f in std::iter::once(&rule.filters).chain(backend) {
            if let Some(m) = &f.request_headers {
                modify_headers(upstream, m);
            }
            if let Some(rw) = &f.rewrite {
                filters::rewrite(upstream, rw, chosen.matched_prefix.as_deref());
            }
        }
        for job in &mut ctx.mirrors {
            job.set_request(upstream.clone());
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
        let Some(b) = body else { return Ok(()) };
        ctx.body_bytes += b.len() as u64;
        let max = ctx
            .generation
            .as_ref()
            .map_or(0, |g| g.snapshot.settings.limits.max_request_body_bytes);
        if max > 0 && ctx.body_bytes > max {
            self.shared.metrics.rejected(Reject::BodyTooLarge);
            return Err(http_error(413, "request body over maxRequestBodyBytes"));
        }
        if !ctx.mirrors.is_empty() {
            if ctx.mirror_body.len() + b.len() > MIRROR_BODY_LIMIT {
                tracing::debug!("request body over {MIRROR_BODY_LIMIT} bytes: not mirrored");
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
        let Some(rule) = ctx.rule.as_ref() else {
            return Ok(());
        };
        if let Some(m) = &rule.filters.response_headers {
            modify_headers(resp, m);
        }
        if let Some(m) = ctx
            .backend_filters()
            .and_then(|f| f.response_headers.as_ref())
        {
            modify_headers(resp, m);
        }
        if let (Some(c), Some(origin)) = (
            &rule.filters.cors,
            ctx.chosen.as_ref().and_then(|c| c.cors_origin.as_deref()),
        ) {
            for (n, v) in cors::response_headers(c, origin) {
                let _ = resp.insert_header(n, v.as_str());
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

    /// Pingora's error lines carry the query string; `logging` reports failures instead.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _error: &Error) -> bool {
        true
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &RequestCtx,
        _error: &Error,
        _context: ProxyWarnLogContext,
    ) -> bool {
        true
    }

    /// The request as Pingora names it in its own messages: never with the query string.
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!(
            "{} {}, Host: {}",
            req.method,
            req.uri.path(),
            raw_host(req).unwrap_or("")
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
        if let Some(g) = ctx.in_flight.take() {
            g.dec();
        }
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or(ctx.local_status)
            .unwrap_or(0);
        let req = session.req_header();
        if let Some(m) = ctx.matched() {
            self.shared.metrics.request_done(
                &m,
                req.method.as_str(),
                status,
                ctx.started.elapsed(),
            );
        }
        let generation = ctx.generation.as_ref();
        let listener = ctx
            .listener
            .and_then(|i| generation.and_then(|g| g.snapshot.listeners.get(i)));
        let route = ctx.rule.as_ref().map(|r| r.rule.route.namespaced_name());
        let backend = ctx
            .rule
            .as_ref()
            .zip(ctx.chosen.as_ref())
            .and_then(|(r, c)| r.backends.entries().get(c.backend))
            .map(|b| b.name.as_str());
        let endpoint = ctx.chosen.as_ref().and_then(|c| c.endpoint);
        let client = || ctx.client.map(|c| c.to_string()).unwrap_or_default();
        if let Some(e) = e
            && e.esource() != &ErrorSource::Downstream
            && status >= 500
            && self.shared.log_limiter.allow()
        {
            tracing::warn!(
                client = %client(),
                route = route.as_deref().unwrap_or_default(),
                backend = backend.unwrap_or_default(),
                endpoint = %endpoint.map(|a| a.to_string()).unwrap_or_default(),
                status,
                "request failed: {e}"
            );
        }
        if generation.is_some_and(|g| g.snapshot.settings.log.access_log) {
            tracing::info!(
                target: "gatehouse::access",
                client = %client(),
                peer = %ctx.conn.as_ref().map(|c| c.info.peer.to_string()).unwrap_or_default(),
                method = %req.method,
                host = raw_host(req)
                    .and_then(gatehouse_model::hostname::normalize_request_host)
                    .unwrap_or_default(),
                path = %req.uri.path(),
                status,
                listener = listener.map(|l| l.label()).unwrap_or_default(),
                route = route.unwrap_or_default(),
                backend = backend.unwrap_or_default(),
                endpoint = endpoint.map(|a| a.to_string()).unwrap_or_default(),
                duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
                bytes_in = session.as_downstream().body_bytes_read(),
                bytes_out = session.as_downstream().body_bytes_sent(),
                error = e.map(|e| e.to_string()).unwrap_or_default(),
                "request"
            );
        }
        if !ctx.mirrors.is_empty() {
            let body = Bytes::from(std::mem::take(&mut ctx.mirror_body));
            let max = generation.map_or(0, |g| g.snapshot.settings.limits.max_mirrors_in_flight);
            for job in ctx.mirrors.drain(..) {
                job.send(
                    session.req_header(),
                    body.clone(),
                    &self.shared,
                    &self.mirror_connector,
                    max,
                );
            }
        }
    }
}
