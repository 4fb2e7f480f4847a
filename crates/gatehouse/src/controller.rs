//! The controller: the one place a loaded configuration is applied, whatever triggered it
//! (start-up, SIGHUP, a file change).
//!
//! [`Controller::load`] reads the directory once its files have settled (see
//! [`crate::configdir::read_settled`]) and compiles it on a blocking thread, keeping what the
//! running configuration leaves to the next one ([`gatehouse_config::Previous`]: pool
//! addresses, each Secret's last good certificate). [`Controller::apply`] then, in order:
//!
//! 1. refuses a change from the file watcher that would remove every serving listener
//!    (a truncated `gatehouse.toml` parses as an empty set), unless `systemctl reload`
//!    (SIGHUP) asked or `[runtime] allowEmptyReload` allows it;
//! 2. keeps the pool allocations and last good certificates for the next load;
//! 3. swaps the snapshot into the data plane (at start-up, a socket that cannot be bound is
//!    fatal; on reload it is reported and the rest applies);
//! 4. puts VIPs on their interfaces and announces them;
//! 5. publishes status, warnings and metrics on the admin listener, and logs.

use crate::admin::Admin;
use crate::configdir::{self, Fingerprint, Settle};
use crate::state::AllocationStore;
use crate::vip::Vips;
use crate::watch::ConfigWatcher;
use anyhow::{Context, Result};
use gatehouse_config::pools::sticky_differences;
use gatehouse_config::{Diagnostics, Loaded, Previous};
use gatehouse_model::ResourceKey;
use gatehouse_model::settings::AnnounceMode;
use gatehouse_model::status::Status;
use gatehouse_proxy::DataPlane;
use prometheus::{IntGaugeVec, Opts};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What started a load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Start,
    /// SIGHUP: `systemctl reload`, an explicit request.
    Signal,
    /// The watcher saw a configuration or certificate file change.
    FileChange,
}

impl Trigger {
    /// As shown in `/status` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Signal => "SIGHUP",
            Trigger::FileChange => "file change",
        }
    }
}

/// What became of a load.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// Serving `generation`; `bind_errors` sockets could not be bound.
    Serving { generation: u64, bind_errors: usize },
    /// Rejected: the running configuration keeps serving.
    Rejected { errors: usize },
}

/// How long files must be left alone before a reload reads them. A file change waits for
/// the debounce window of quiet, and for emptied files to fill (an in-place writer truncates
/// first). Start-up and SIGHUP (the operator saying the files are ready) read at once, and
/// again if a file changes during the read.
pub fn settle(trigger: Trigger) -> Settle {
    let (window, emptied) = match trigger {
        Trigger::FileChange => (crate::watch::DEBOUNCE, Duration::from_secs(3)),
        Trigger::Start | Trigger::Signal => (Duration::ZERO, Duration::ZERO),
    };
    Settle {
        window,
        emptied,
        give_up: Duration::from_secs(30),
    }
}

/// A load's result: the compiled configuration (or its errors), and the fingerprint of the
/// files it was read from.
pub type LoadResult = Result<(std::result::Result<Loaded, Diagnostics>, Fingerprint)>;

/// Applies configurations to the data plane, the VIPs and the admin listener.
pub struct Controller {
    dir: PathBuf,
    admin: Arc<Admin>,
    admin_local: SocketAddr,
    plane: DataPlane,
    vips: Vips,
    watcher: ConfigWatcher,
    store: AllocationStore,
    previous: Previous,
    /// The files of the running configuration, as they were read.
    fingerprint: Fingerprint,
    secret_files: Vec<PathBuf>,
    generation: u64,
    /// The running configuration's status (VIP state changes are written into it).
    status: Status,
    stale_certificates: IntGaugeVec,
    stale: Vec<ResourceKey>,
}

impl Controller {
    /// Starts the admin listener, the serving threads, the watcher and VIP management, and
    /// applies the first configuration: afterwards gatehouse serves. `changed` receives a
    /// message per debounced burst of file changes.
    pub async fn start(
        dir: PathBuf,
        loaded: Loaded,
        fingerprint: Fingerprint,
        store: AllocationStore,
        changed: tokio::sync::mpsc::Sender<()>,
    ) -> Result<Controller> {
        let watcher = ConfigWatcher::new(&dir, changed)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
        let settings = &loaded.snapshot.settings;
        let admin = Admin::new();
        let admin_local = crate::admin::serve(admin.clone(), settings.admin.listen).await?;
        tracing::info!(address = %admin_local, "admin listening (/metrics /status /explain /healthz /readyz)");
        if let Some(w) = settings.admin.remote_warning() {
            tracing::warn!("{w}");
            admin.set_warnings("admin", vec![w]);
        }
        let threads = gatehouse_proxy::serving_threads(settings.runtime.threads);
        let plane =
            DataPlane::new(&admin.registry, threads).context("cannot start the serving threads")?;
        let current = plane.generations();
        admin.set_explainer(crate::admin::Explainer(Box::new(move |query| {
            crate::explain::from_daemon(&current(), query)
        })));
        let vips = Vips::new(&admin.registry, &loaded.snapshot);
        let stale_certificates = IntGaugeVec::new(
            Opts::new(
                "gatehouse_tls_certificate_stale",
                "1 while a Secret serves its previous certificate because its files failed to load.",
            ),
            &["secret"],
        )
        .expect("valid metric definition");
        let _ = admin
            .registry
            .register(Box::new(stale_certificates.clone()));
        let mut controller = Controller {
            dir,
            admin,
            admin_local,
            plane,
            vips,
            watcher,
            previous: Previous {
                allocations: store.current.clone(),
                ..Previous::default()
            },
            store,
            fingerprint: fingerprint.clone(),
            secret_files: Vec::new(),
            generation: 0,
            status: Status::default(),
            stale_certificates,
            stale: Vec::new(),
        };
        controller
            .apply(loaded, fingerprint, Trigger::Start)
            .await?;
        Ok(controller)
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Reads (once settled) and compiles the configuration on a blocking thread. The future
    /// owns what it needs, so the caller may drop it (SIGTERM during a load).
    pub fn load(&self, trigger: Trigger) -> impl Future<Output = LoadResult> + use<> {
        let dir = self.dir.clone();
        let extra = self.secret_files.clone();
        let before = self.fingerprint.clone();
        let previous = self.previous.clone();
        let generation = self.generation + 1;
        let task = tokio::task::spawn_blocking(move || {
            configdir::read_settled(&dir, &extra, &before, settle(trigger), || {
                let files = configdir::read(&dir)?;
                Ok(compile(&files, generation, &previous))
            })
        });
        async move { task.await.context("configuration loader panicked")? }
    }

    /// Applies `loaded` (see the module documentation for the order).
    pub async fn apply(
        &mut self,
        loaded: Loaded,
        fingerprint: Fingerprint,
        trigger: Trigger,
    ) -> Result<Applied> {
        if let Some(why) = self.refuse(&loaded, trigger) {
            return Ok(self.reject(trigger, vec![why]));
        }
        let next = self.generation + 1;
        let mut loaded = loaded;
        loaded.snapshot.generation = next;
        loaded.status.set_generation(next);
        if loaded.snapshot.settings.announce.mode == AnnounceMode::Keepalived {
            // Every box of a pair allocates alike; say where this one's record differed.
            for moved in sticky_differences(&loaded.allocations, &self.store.current) {
                tracing::warn!("{moved}");
            }
        }
        self.store.save(loaded.allocations.clone());
        self.previous = loaded.previous();
        self.fingerprint = fingerprint;
        self.secret_files.clone_from(&loaded.secret_files);
        self.watcher.watch_secret_files(&loaded.secret_files);
        log_status_problems(&loaded);
        if trigger != Trigger::Start {
            self.warn_restart_only(&loaded);
        }
        let warnings = crate::keys::warnings(&loaded.key_files);
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let stale = loaded.stale_certificates;
        let mut status = loaded.status;
        let snapshot = Arc::new(loaded.snapshot);
        let errors = self.plane.apply(snapshot.clone()).await;
        if trigger == Trigger::Start
            && let Some(e) = errors.first()
        {
            anyhow::bail!("{e}");
        }
        self.mark_stale(&stale);
        self.vips.apply(&snapshot, &mut status).await;
        self.vips.show_host_addresses(&mut status).await;
        self.generation = next;
        let listening: Vec<String> = self
            .plane
            .local_addrs()
            .await
            .iter()
            .map(|(t, a)| format!("{}{a}", t.prefix()))
            .collect();
        let bind_errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        self.status = status.clone();
        self.admin.applied(
            next,
            status,
            trigger.as_str(),
            listening.clone(),
            bind_errors.clone(),
        );
        self.admin.set_warnings("keys", warnings);
        self.admin.set_private_paths(&self.dir, &self.secret_files);
        if trigger == Trigger::Start {
            tracing::info!(
                generation = next,
                listening = listening.join(" "),
                "gatehouse serving"
            );
        } else {
            tracing::info!(
                generation = next,
                trigger = trigger.as_str(),
                bind_errors = errors.len(),
                "configuration applied"
            );
        }
        Ok(Applied::Serving {
            generation: next,
            bind_errors: bind_errors.len(),
        })
    }

    /// Reports a load that cannot be applied; the running configuration keeps serving.
    pub fn reject(&self, trigger: Trigger, errors: Vec<String>) -> Applied {
        for e in &errors {
            tracing::error!("{e}");
        }
        tracing::error!(
            generation = self.generation,
            trigger = trigger.as_str(),
            errors = errors.len(),
            "configuration rejected; still serving the previous one"
        );
        let count = errors.len();
        self.admin.rejected(trigger.as_str(), errors);
        Applied::Rejected { errors: count }
    }

    /// Why `loaded` must not replace the running configuration, if it must not.
    fn refuse(&self, loaded: &Loaded, trigger: Trigger) -> Option<String> {
        let serving = self.plane.current().snapshot.listeners.len();
        let allowed = trigger != Trigger::FileChange
            || loaded.snapshot.settings.runtime.allow_empty_reload
            || self
                .plane
                .current()
                .snapshot
                .settings
                .runtime
                .allow_empty_reload;
        (serving > 0 && loaded.snapshot.listeners.is_empty() && !allowed).then(|| {
            format!(
                "refusing a file change that would stop all {serving} serving listener(s) ({} Gateway(s) left): a file may be half-written; `systemctl reload gatehouse` (SIGHUP) applies it, or set [runtime] allowEmptyReload = true",
                loaded.status.gateways.len()
            )
        })
    }

    /// Settings that only a restart changes.
    fn warn_restart_only(&self, loaded: &Loaded) {
        let settings = &loaded.snapshot.settings;
        if gatehouse_proxy::serving_threads(settings.runtime.threads) != self.plane.threads() {
            tracing::warn!(
                serving = self.plane.threads(),
                "[runtime] threads changes take effect at the next restart"
            );
        }
        if settings.admin.listen != self.plane.current().snapshot.settings.admin.listen
            && settings.admin.listen != self.admin_local
        {
            tracing::warn!(configured = %settings.admin.listen, serving = %self.admin_local, "[admin] listen changes take effect at the next restart");
        }
    }

    /// Publishes which Secrets serve a previous certificate.
    fn mark_stale(&mut self, stale: &[(ResourceKey, String)]) {
        for key in &self.stale {
            if !stale.iter().any(|(k, _)| k == key) {
                let _ = self
                    .stale_certificates
                    .remove_label_values(&[&key.namespaced_name()]);
            }
        }
        for (key, why) in stale {
            tracing::warn!(secret = %key.namespaced_name(), "serving the previous certificate: {why}");
            self.stale_certificates
                .with_label_values(&[&key.namespaced_name()])
                .set(1);
        }
        self.stale = stale.iter().map(|(k, _)| k.clone()).collect();
    }

    /// Once a second: VIPs put back, re-announced, or retried.
    pub async fn tick(&mut self) {
        if self.vips.tick().await {
            self.vips.refresh_status(&mut self.status);
            self.admin.update_status(self.status.clone());
        }
    }

    /// Stops: no longer ready, drains for `[runtime] shutdownGrace`, takes VIPs off.
    pub async fn shutdown(mut self) {
        self.admin.set_not_ready();
        let grace = self
            .plane
            .current()
            .snapshot
            .settings
            .runtime
            .shutdown_grace;
        tracing::info!(
            open_connections = self.plane.open_connections(),
            grace_seconds = grace.as_secs(),
            "shutting down"
        );
        let left = self.plane.shutdown(grace).await;
        self.vips.shutdown().await;
        if left > 0 {
            tracing::warn!(
                connections = left,
                "grace period over; closed the remaining connections"
            );
        }
    }
}

/// Compiles `files`, keeping what `previous` says.
pub fn compile(
    files: &[gatehouse_config::SourceFile],
    generation: u64,
    previous: &Previous,
) -> std::result::Result<Loaded, Diagnostics> {
    let read = |p: &Path| std::fs::read(p);
    gatehouse_config::load_with(files, &read, generation, previous)
}

fn log_status_problems(loaded: &Loaded) {
    for g in &loaded.status.gateways {
        for c in g.conditions.iter().filter(|c| c.is_problem()) {
            tracing::warn!(gateway = %g.key.namespaced_name(), condition = %c.kind, reason = %c.reason, "{}", c.message);
        }
        for l in &g.listeners {
            for c in l.conditions.iter().filter(|c| c.is_problem()) {
                tracing::warn!(gateway = %g.key.namespaced_name(), listener = %l.name, condition = %c.kind, reason = %c.reason, "{}", c.message);
            }
        }
    }
    for r in &loaded.status.routes {
        for p in &r.parents {
            for c in p.conditions.iter().filter(|c| c.is_problem()) {
                tracing::warn!(route = %r.key, parent = %p.parent_ref.name, condition = %c.kind, reason = %c.reason, "{}", c.message);
            }
        }
    }
}
