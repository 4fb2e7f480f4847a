//! `gatehouse run`: the daemon.
//!
//! Start-up: read and compile the configuration (any error: exit 1 with every located
//! error), install logging per `[log]`, bind every listener (a socket that cannot be bound:
//! exit 1, as nginx does), then serve. `SIGHUP` reloads: the whole directory is read and
//! compiled off the serving path; a set with errors is rejected whole and the running
//! configuration keeps serving. A change to any file of the directory, or to a certificate
//! or key a Secret names, reloads the same way (see [`crate::watch`]). `SIGTERM` (and
//! `SIGINT`) stop accepting, let in-flight requests finish for up to
//! `[runtime] shutdownGrace`, and exit 0. Under systemd (`Type=notify-reload`) the daemon
//! reports READY=1 once its listeners are bound, RELOADING=1 with MONOTONIC_USEC around each
//! reload, its generation in STATUS=, and pings the watchdog when one is configured.

use crate::cli::RunArgs;
use crate::configdir;
use crate::state::AllocationStore;
use anyhow::{Context, Result};
use gatehouse_config::Loaded;
use gatehouse_config::pools::Allocations;
use gatehouse_proxy::DataPlane;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};

fn load(
    dir: &Path,
    generation: u64,
    allocations: &Allocations,
) -> Result<std::result::Result<Loaded, gatehouse_config::Diagnostics>> {
    let files = configdir::read(dir)?;
    Ok(compile(&files, generation, allocations))
}

fn compile(
    files: &[gatehouse_config::SourceFile],
    generation: u64,
    allocations: &Allocations,
) -> std::result::Result<Loaded, gatehouse_config::Diagnostics> {
    let read = |p: &Path| std::fs::read(p);
    gatehouse_config::load_with(files, &read, generation, allocations)
}

/// The pool allocations kept under the state directory the configuration names.
fn allocation_store(files: &[gatehouse_config::SourceFile]) -> Option<AllocationStore> {
    let doc = gatehouse_config::parse(files).ok()?;
    Some(AllocationStore::open(&doc.settings.runtime.state_dir))
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

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    // Read once: the state directory (for the pool allocations) comes from the same files.
    let files = configdir::read(&args.config)?;
    let mut store = allocation_store(&files);
    let previous = store
        .as_ref()
        .map(|s| s.current.clone())
        .unwrap_or_default();
    let loaded = match compile(&files, 1, &previous) {
        Ok(l) => l,
        Err(diags) => {
            for d in diags.iter() {
                eprintln!("{d}");
            }
            eprintln!(
                "configuration rejected: {} error(s); not starting",
                diags.len()
            );
            return Ok(ExitCode::from(1));
        }
    };
    let settings = loaded.snapshot.settings.clone();
    crate::logging::init(&settings.log)?;
    // The control runtime: reloads, health checks, DNS, VIPs, the admin listener. Requests
    // are served on the data plane's own threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if let Some(store) = store.as_mut() {
        store.save(loaded.allocations.clone());
    }
    runtime.block_on(serve(args.config.clone(), loaded, store))
}

/// Tells systemd (when it is listening: `NOTIFY_SOCKET`) how the daemon is doing.
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(states)
    {
        tracing::debug!("sd_notify: {e}");
    }
}

/// Pings the systemd watchdog at half its interval, when the unit asks for one.
fn spawn_watchdog() {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Some(interval) = sd_notify::watchdog_enabled() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tick.tick().await;
                notify(&[sd_notify::NotifyState::Watchdog]);
            }
        });
    }
}

/// Reads and compiles the configuration on a blocking thread, off the serving path.
async fn load_off_path(
    dir: &Path,
    generation: u64,
    allocations: Allocations,
) -> Result<std::result::Result<Loaded, gatehouse_config::Diagnostics>> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || load(&dir, generation, &allocations))
        .await
        .context("configuration loader panicked")?
}

async fn serve(
    dir: std::path::PathBuf,
    loaded: Loaded,
    mut store: Option<AllocationStore>,
) -> Result<ExitCode> {
    let mut sighup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let (changed_tx, mut changed) = tokio::sync::mpsc::channel(1);
    let mut watcher = crate::watch::ConfigWatcher::new(&dir, changed_tx)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    watcher.watch_secret_files(&loaded.secret_files);

    let admin = crate::admin::Admin::new();
    let admin_addr = loaded.snapshot.settings.admin.listen;
    let admin_local = crate::admin::serve(admin.clone(), admin_addr).await?;
    tracing::info!(address = %admin_local, "admin listening (/metrics /status /healthz /readyz)");

    let threads = gatehouse_proxy::serving_threads(loaded.snapshot.settings.runtime.threads);
    let plane =
        DataPlane::new(&admin.registry, threads).context("cannot start the serving threads")?;
    let mut vips = crate::vip::Vips::new(&admin.registry, &loaded.snapshot);
    log_status_problems(&loaded);
    let mut status = loaded.status;
    let snapshot = Arc::new(loaded.snapshot);
    let errors = plane.apply(snapshot.clone()).await;
    if let Some(e) = errors.first() {
        anyhow::bail!("{e}");
    }
    vips.apply(&snapshot, &mut status).await;
    vips.show_host_addresses(&mut status).await;
    let mut vip_tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut generation = 1;
    let addrs: Vec<String> = plane
        .local_addrs()
        .await
        .iter()
        .map(|a| a.to_string())
        .collect();
    admin.applied(generation, status, "start", addrs.clone(), Vec::new());
    tracing::info!(generation, listening = addrs.join(" "), "gatehouse serving");
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!("serving generation {generation}")),
    ]);
    spawn_watchdog();

    loop {
        let why = tokio::select! {
            _ = sighup.recv() => "SIGHUP",
            Some(()) = changed.recv() => "file change",
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = vip_tick.tick() => {
                vips.tick().await;
                continue;
            }
        };
        notify(&[
            sd_notify::NotifyState::Reloading,
            sd_notify::NotifyState::monotonic_usec_now()
                .unwrap_or(sd_notify::NotifyState::Reloading),
        ]);
        let next = generation + 1;
        let previous = store
            .as_ref()
            .map(|s| s.current.clone())
            .unwrap_or_default();
        let status = match load_off_path(&dir, next, previous).await {
            Ok(Ok(loaded)) => {
                if let Some(store) = store.as_mut() {
                    store.save(loaded.allocations.clone());
                }
                log_status_problems(&loaded);
                watcher.watch_secret_files(&loaded.secret_files);
                if gatehouse_proxy::serving_threads(loaded.snapshot.settings.runtime.threads)
                    != plane.threads()
                {
                    tracing::warn!(
                        serving = plane.threads(),
                        "[runtime] threads changes take effect at the next restart"
                    );
                }
                if loaded.snapshot.settings.admin.listen != admin_addr {
                    tracing::warn!(configured = %loaded.snapshot.settings.admin.listen, serving = %admin_local, "[admin] listen changes take effect at the next restart");
                }
                let mut status = loaded.status;
                let snapshot = Arc::new(loaded.snapshot);
                let errors = plane.apply(snapshot.clone()).await;
                vips.apply(&snapshot, &mut status).await;
                vips.show_host_addresses(&mut status).await;
                generation = next;
                let listening = plane
                    .local_addrs()
                    .await
                    .iter()
                    .map(|a| a.to_string())
                    .collect();
                let bind_errors = errors.iter().map(|e| e.to_string()).collect();
                admin.applied(generation, status, why, listening, bind_errors);
                tracing::info!(
                    generation,
                    trigger = why,
                    bind_errors = errors.len(),
                    "configuration applied"
                );
                format!("serving generation {generation}")
            }
            Ok(Err(diags)) => {
                admin.rejected(why, diags.iter().map(|d| d.to_string()).collect());
                for d in diags.iter() {
                    tracing::error!("{d}");
                }
                tracing::error!(
                    generation,
                    trigger = why,
                    errors = diags.len(),
                    "configuration rejected; still serving the previous one"
                );
                format!(
                    "serving generation {generation}; the last change was rejected ({} errors)",
                    diags.len()
                )
            }
            Err(e) => {
                admin.rejected(why, vec![format!("{e:#}")]);
                tracing::error!(
                    generation,
                    trigger = why,
                    "configuration not reloaded: {e:#}"
                );
                format!("serving generation {generation}; the last reload failed")
            }
        };
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ]);
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    admin.set_not_ready();
    let grace = plane.current().snapshot.settings.runtime.shutdown_grace;
    tracing::info!(
        open_connections = plane.open_connections(),
        grace_seconds = grace.as_secs(),
        "shutting down"
    );
    let left = plane.shutdown(grace).await;
    vips.shutdown().await;
    if left > 0 {
        tracing::warn!(
            connections = left,
            "grace period over; closing the remaining connections"
        );
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
