//! Serving threads: one current-thread tokio runtime per thread, each with its own Pingora
//! proxy (and so its own upstream connection pool and mirror connector).
//!
//! A connection is accepted, served, and its backend connections made and reused on one
//! thread; the work-stealing runtime's wake-ups and task migrations between cores (a quarter
//! of all CPU samples when every thread served every connection) do not happen. Control work
//! (reloads, health checks, DNS, VIPs, the admin listener) runs on the caller's runtime and
//! reaches these threads only through the shared generation.

use crate::Shared;
use crate::http::GatewayProxy;
use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::ServerConf;
use pingora_proxy::HttpProxy;
use std::sync::Arc;

/// What a serving thread's connections share.
pub(crate) struct WorkerState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) proxy: Arc<HttpProxy<GatewayProxy>>,
}

impl std::fmt::Debug for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerState").finish_non_exhaustive()
    }
}

/// One serving thread.
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) state: Arc<WorkerState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start(index: usize, shared: &Arc<Shared>) -> std::io::Result<Worker> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("gatehouse-serve-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let state = Arc::new(WorkerState {
                        shared: shared.clone(),
                        proxy: new_proxy(GatewayProxy {
                            shared: shared.clone(),
                            mirror_connector: Arc::new(
                                pingora_core::connectors::http::Connector::new(None),
                            ),
                        }),
                    });
                    let _ = ready_tx.send(Ok((tokio::runtime::Handle::current(), state)));
                    let _ = stop_rx.await;
                });
                // Dropping the runtime ends whatever connections are left.
            })?;
        let (runtime, state) = ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("serving thread ended before it started"))??;
        Ok(Worker {
            runtime,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn new_proxy(inner: GatewayProxy) -> Arc<HttpProxy<GatewayProxy>> {
    let conf = Arc::new(ServerConf::default());
    let mut proxy = pingora_proxy::http_proxy(&conf, inner);
    // gatehouse drives HTTP/1 keep-alive and HTTP/2 itself (crate::serve); these options
    // only keep Pingora's defaults explicit.
    proxy.server_options = Some(HttpServerOptions::default());
    Arc::new(proxy)
}

/// Starts `count` serving threads (at least one).
pub(crate) fn start(count: usize, shared: &Arc<Shared>) -> std::io::Result<Vec<Worker>> {
    (0..count.max(1))
        .map(|i| Worker::start(i, shared))
        .collect()
}
