//! The admin listener: `/metrics` (Prometheus text), `/status` (Gateway API status and the
//! reload state, JSON), `/healthz` (the process answers) and `/readyz` (a configuration is
//! applied and its listeners are bound). It listens on `[admin] listen`, loopback by
//! default, and never on a data-plane socket.

use bytes::Bytes;
use gatehouse_model::Status;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{
    Encoder as _, Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The result of the last reload attempt.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadState {
    /// "success", "failure", or "" before the first reload.
    pub last_result: String,
    /// Unix seconds of the last attempt and of the last success.
    pub last_attempt: u64,
    pub last_success: u64,
    /// The errors of the last attempt, when it failed.
    pub errors: Vec<String>,
    /// What started it: "start", "SIGHUP", "file change".
    pub trigger: String,
}

/// Everything `/status` shows.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDoc {
    pub generation: u64,
    pub reload: ReloadState,
    /// The addresses the data plane listens on.
    pub listening: Vec<String>,
    /// Sockets that could not be bound.
    pub bind_errors: Vec<String>,
    /// Unix seconds a resource (`Kind/namespace/name`) first appeared, for its age.
    pub first_seen: BTreeMap<String, u64>,
    /// Things an operator should fix that do not stop anything from serving.
    pub warnings: Vec<Warning>,
    pub status: Status,
}

/// One warning and the part of the daemon that raised it.
#[derive(Clone, Debug, Serialize)]
pub struct Warning {
    pub source: String,
    pub message: String,
}

/// State shared between the daemon and the admin server.
#[derive(Debug)]
pub struct Admin {
    pub registry: Registry,
    doc: Mutex<StatusDoc>,
    /// Whether a configuration is being served; `/readyz?hold=` waits on its changes.
    ready: tokio::sync::watch::Sender<bool>,
    reloads: IntCounterVec,
    last_reload_ok: IntGauge,
    last_success: Gauge,
    generation: IntGauge,
    rejected_connections: IntCounter,
    /// File system paths `/status` shows only with `?verbose` (longest first).
    private: Mutex<Vec<String>>,
    /// Answers `/explain` from the data plane's current generation (set once it exists).
    explainer: std::sync::OnceLock<Explainer>,
}

/// What answers `/explain?url=...`: the query string in, the explanation (JSON) or an error
/// message out.
pub struct Explainer(pub Box<ExplainFn>);

/// The query string in, the explanation or an error message out.
pub type ExplainFn = dyn Fn(&str) -> Result<serde_json::Value, String> + Send + Sync;

impl std::fmt::Debug for Explainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Explainer")
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Admin {
    pub fn new() -> Arc<Admin> {
        let registry = Registry::new();
        gatehouse_proxy::metrics::register_build_info(&registry);
        let reloads = IntCounterVec::new(
            Opts::new(
                "gatehouse_config_reloads_total",
                "Configuration loads, by result (the first load counts as one).",
            ),
            &["result"],
        )
        .expect("valid metric definition");
        let last_reload_ok = IntGauge::new(
            "gatehouse_config_last_reload_successful",
            "1 when the last configuration load was applied, 0 when it was rejected.",
        )
        .expect("valid metric definition");
        let last_success = Gauge::new(
            "gatehouse_config_last_reload_success_timestamp_seconds",
            "When a configuration was last applied (Unix time).",
        )
        .expect("valid metric definition");
        let generation = IntGauge::new(
            "gatehouse_config_generation",
            "The generation of the configuration being served.",
        )
        .expect("valid metric definition");
        let rejected_connections = IntCounter::new(
            "gatehouse_admin_connections_rejected_total",
            "Admin listener connections closed at once because the connection cap was reached.",
        )
        .expect("valid metric definition");
        for c in [
            Box::new(reloads.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(last_reload_ok.clone()),
            Box::new(last_success.clone()),
            Box::new(generation.clone()),
            Box::new(rejected_connections.clone()),
        ] {
            let _ = registry.register(c);
        }
        reloads.with_label_values(&["success"]);
        reloads.with_label_values(&["failure"]);
        Arc::new(Admin {
            registry,
            doc: Mutex::new(StatusDoc::default()),
            ready: tokio::sync::watch::Sender::new(false),
            reloads,
            last_reload_ok,
            last_success,
            generation,
            rejected_connections,
            private: Mutex::new(Vec::new()),
            explainer: std::sync::OnceLock::new(),
        })
    }

    /// Lets `/explain` answer (once; later calls are ignored).
    pub fn set_explainer(&self, explainer: Explainer) {
        let _ = self.explainer.set(explainer);
    }

    /// The paths `/status` names only when asked (`?verbose`): the configuration folder
    /// (its prefix is dropped) and the certificate and key files (shown by file name).
    pub fn set_private_paths(&self, config_dir: &std::path::Path, files: &[std::path::PathBuf]) {
        let mut paths: Vec<String> = files
            .iter()
            .map(|p| p.display().to_string())
            .filter(|p| p.starts_with('/'))
            .collect();
        for dir in [
            config_dir.to_path_buf(),
            config_dir.canonicalize().unwrap_or_default(),
        ] {
            let dir = dir.display().to_string();
            if dir.starts_with('/') && dir != "/" {
                paths.push(format!("{}/", dir.trim_end_matches('/')));
            }
        }
        paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
        paths.dedup();
        *self.private.lock().unwrap_or_else(|e| e.into_inner()) = paths;
    }

    fn doc(&self) -> std::sync::MutexGuard<'_, StatusDoc> {
        self.doc.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an applied configuration.
    pub fn applied(
        &self,
        generation: u64,
        status: Status,
        trigger: &str,
        listening: Vec<String>,
        bind_errors: Vec<String>,
    ) {
        let t = now();
        let mut doc = self.doc();
        doc.generation = generation;
        let mut first_seen = std::mem::take(&mut doc.first_seen);
        let keys: Vec<String> = status
            .gateways
            .iter()
            .map(|g| g.key.clone())
            .chain(status.routes.iter().map(|r| r.key.clone()))
            .chain(status.gateway_classes.iter().map(|c| c.key.clone()))
            .map(|k| format!("{}/{}", k.kind, k.namespaced_name()))
            .collect();
        first_seen.retain(|k, _| keys.contains(k));
        for k in keys {
            first_seen.entry(k).or_insert(t);
        }
        doc.first_seen = first_seen;
        doc.status = status;
        doc.listening = listening;
        doc.bind_errors = bind_errors;
        doc.reload = ReloadState {
            last_result: "success".into(),
            last_attempt: t,
            last_success: t,
            errors: Vec::new(),
            trigger: trigger.into(),
        };
        self.reloads.with_label_values(&["success"]).inc();
        self.last_reload_ok.set(1);
        self.last_success.set(t as f64);
        self.generation.set(generation as i64);
        self.ready.send_replace(true);
    }

    /// Records a rejected configuration: the running one stays.
    pub fn rejected(&self, trigger: &str, errors: Vec<String>) {
        let mut doc = self.doc();
        doc.reload.last_result = "failure".into();
        doc.reload.last_attempt = now();
        doc.reload.errors = errors;
        doc.reload.trigger = trigger.into();
        self.reloads.with_label_values(&["failure"]).inc();
        self.last_reload_ok.set(0);
    }

    /// Replaces the status of the running generation (a VIP's state changed between
    /// reloads).
    pub fn update_status(&self, status: Status) {
        self.doc().status = status;
    }

    /// Replaces the warnings `source` reported (its earlier ones go).
    pub fn set_warnings(&self, source: &str, warnings: Vec<String>) {
        let mut doc = self.doc();
        doc.warnings.retain(|w| w.source != source);
        doc.warnings
            .extend(warnings.into_iter().map(|message| Warning {
                source: source.to_string(),
                message,
            }));
    }

    pub fn set_not_ready(&self) {
        self.ready.send_replace(false);
    }

    fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let text = |code: StatusCode, body: String, ctype: &str| {
            Response::builder()
                .status(code)
                .header("content-type", ctype)
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
        };
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET only\n".into(),
                "text/plain",
            );
        }
        match req.uri().path() {
            "/metrics" => {
                let mut out = Vec::new();
                let encoder = TextEncoder::new();
                if let Err(e) = encoder.encode(&self.registry.gather(), &mut out) {
                    return text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("{e}\n"),
                        "text/plain",
                    );
                }
                text(
                    StatusCode::OK,
                    String::from_utf8_lossy(&out).into_owned(),
                    encoder.format_type(),
                )
            }
            "/status" => {
                let verbose = req.uri().query().is_some_and(|q| {
                    q.split('&')
                        .any(|kv| matches!(kv, "verbose" | "verbose=1" | "verbose=true"))
                });
                let doc = self.doc().clone();
                let mut value = serde_json::to_value(&doc).unwrap_or_default();
                if !verbose {
                    let private = self
                        .private
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    redact_value(&mut value, &private);
                }
                match serde_json::to_string_pretty(&value) {
                    Ok(json) => text(StatusCode::OK, json + "\n", "application/json"),
                    Err(e) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("{e}\n"),
                        "text/plain",
                    ),
                }
            }
            "/explain" => {
                let Some(explainer) = self.explainer.get() else {
                    return text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no configuration is served yet\n".into(),
                        "text/plain",
                    );
                };
                match explainer.0(req.uri().query().unwrap_or("")) {
                    Ok(v) => text(
                        StatusCode::OK,
                        serde_json::to_string_pretty(&v).unwrap_or_default() + "\n",
                        "application/json",
                    ),
                    Err(e) => text(StatusCode::BAD_REQUEST, e + "\n", "text/plain"),
                }
            }
            "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
            "/readyz" => readiness(*self.ready.borrow()),
            _ => text(
                StatusCode::NOT_FOUND,
                "try /metrics, /status, /explain, /healthz or /readyz\n".into(),
                "text/plain",
            ),
        }
    }
}

/// Concurrent admin connections; more are closed at once (and counted).
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request head, and the longest a connection lives.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Serves the admin endpoints on `addr` until the process ends: HTTP/1.1, at most
/// [`MAX_CONNECTIONS`] at once, a request head within [`HEADER_TIMEOUT`], connections closed
/// after [`CONNECTION_LIFETIME`], and accept errors (out of file descriptors) backed off
/// from 5 ms up to 1 s instead of spinning.
pub async fn serve(admin: Arc<Admin>, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for [admin]: {e}"))?;
    let local = listener.local_addr()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(5);
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => {
                    backoff = Duration::from_millis(5);
                    stream
                }
                Err(e) => {
                    if backoff == Duration::from_millis(5) {
                        tracing::warn!("admin listener: accept failed: {e}");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                admin.rejected_connections.inc();
                drop(stream);
                continue;
            };
            let admin = admin.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let admin = admin.clone();
                    async move {
                        let resp = match hold(&req) {
                            Some(hold) => admin.ready_within(hold).await,
                            None => admin.respond(&req),
                        };
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
                drop(slot);
            });
        }
    });
    Ok(local)
}

/// `text` with every path of `private` replaced by its file name (and the configuration
/// directory's prefix dropped), for `/status` without `?verbose`.
fn redact(text: &str, private: &[String]) -> String {
    let mut out = text.to_string();
    for path in private {
        if path.ends_with('/') {
            out = out.replace(path.as_str(), "");
        } else if out.contains(path.as_str()) {
            let name = std::path::Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out = out.replace(path.as_str(), &name);
        }
    }
    out
}

fn redact_value(v: &mut serde_json::Value, private: &[String]) {
    match v {
        serde_json::Value::String(s) => *s = redact(s, private),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| redact_value(x, private)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| redact_value(x, private)),
        _ => {}
    }
}

/// The longest `/readyz?hold=` a request may ask for.
const MAX_HOLD: Duration = Duration::from_secs(5);

/// `GET /readyz?hold=800ms`: how long to hold the answer (capped at [`MAX_HOLD`]).
fn hold(req: &Request<Incoming>) -> Option<Duration> {
    if req.uri().path() != "/readyz" {
        return None;
    }
    let value = req
        .uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("hold="))?;
    gatehouse_config::validate::duration(value)
        .ok()
        .map(|d| d.min(MAX_HOLD))
}

fn readiness(ready: bool) -> Response<Full<Bytes>> {
    let (code, body) = if ready {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    };
    Response::builder()
        .status(code)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_default()
}

impl Admin {
    /// `/readyz?hold=`: answers 503 at once when not ready, or as soon as readiness is lost
    /// within `hold` (a drain starts); 200 when still ready after `hold`. keepalived's
    /// readiness check holds such a request, so a gatehouse that dies or drains is noticed
    /// at once rather than at the next one-second check.
    async fn ready_within(&self, hold: Duration) -> Response<Full<Bytes>> {
        let mut rx = self.ready.subscribe();
        if !*rx.borrow_and_update() {
            return readiness(false);
        }
        let lost = tokio::time::timeout(hold, rx.wait_for(|ready| !*ready)).await;
        readiness(lost.is_err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_without_verbose_names_files_not_their_paths() {
        let private = vec!["/etc/letsencrypt/live/site/privkey.pem".to_string()];
        assert_eq!(
            redact(
                "certificateRef default/site: cannot read /etc/letsencrypt/live/site/privkey.pem: No such file",
                &private
            ),
            "certificateRef default/site: cannot read privkey.pem: No such file"
        );
        let mut v =
            serde_json::json!({"a": ["/etc/letsencrypt/live/site/privkey.pem is readable"]});
        redact_value(&mut v, &private);
        assert_eq!(v, serde_json::json!({"a": ["privkey.pem is readable"]}));
    }

    #[test]
    fn the_configuration_directory_prefix_is_dropped() {
        // Longest first, as private_paths() sorts them: the folder's prefix goes, the
        // relative name stays.
        let private = vec!["/srv/gh/".to_string()];
        assert_eq!(
            redact("cannot read /srv/gh/conf.d/a.toml", &private),
            "cannot read conf.d/a.toml"
        );
    }
}
