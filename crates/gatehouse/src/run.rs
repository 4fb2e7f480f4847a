//! `gatehouse run`: the daemon.
//!
//! Start-up: read and compile the configuration (any error: exit 1 with every located
//! error), install logging per `[log]`, bind every listener (a socket that cannot be bound:
//! exit 1, as nginx does), then serve. `SIGHUP` reloads: the whole directory is read and
//! compiled off the serving path; a set with errors is rejected whole and the running
//! configuration keeps serving. `SIGTERM` (and `SIGINT`) stop accepting, let in-flight
//! requests finish for up to `[runtime] shutdownGrace`, and exit 0.

use crate::cli::RunArgs;
use crate::configdir;
use anyhow::{Context, Result};
use gatehouse_config::Loaded;
use gatehouse_proxy::DataPlane;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};

fn load(
    dir: &Path,
    generation: u64,
) -> Result<std::result::Result<Loaded, gatehouse_config::Diagnostics>> {
    let files = configdir::read(dir)?;
    Ok(gatehouse_config::load(
        &files,
        &|p: &Path| std::fs::read(p),
        generation,
    ))
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
    let loaded = match load(&args.config, 1)? {
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
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all().thread_name("gatehouse");
    if settings.runtime.threads > 0 {
        runtime.worker_threads(settings.runtime.threads);
    }
    let runtime = runtime.build().context("cannot start the async runtime")?;
    runtime.block_on(serve(args.config.clone(), loaded))
}

async fn serve(dir: std::path::PathBuf, loaded: Loaded) -> Result<ExitCode> {
    let mut sighup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;

    let plane = DataPlane::new();
    log_status_problems(&loaded);
    let errors = plane.apply(Arc::new(loaded.snapshot)).await;
    if let Some(e) = errors.first() {
        anyhow::bail!("{e}");
    }
    let mut generation = 1;
    let addrs: Vec<String> = plane.local_addrs().iter().map(|a| a.to_string()).collect();
    tracing::info!(generation, listening = addrs.join(" "), "gatehouse serving");

    loop {
        tokio::select! {
            _ = sighup.recv() => {
                let next = generation + 1;
                match load(&dir, next) {
                    Ok(Ok(loaded)) => {
                        log_status_problems(&loaded);
                        let errors = plane.apply(Arc::new(loaded.snapshot)).await;
                        generation = next;
                        tracing::info!(generation, bind_errors = errors.len(), "configuration reloaded");
                    }
                    Ok(Err(diags)) => {
                        for d in diags.iter() {
                            tracing::error!(file = %d.file, line = d.line, column = d.column, path = %d.path, "{}", d.message);
                        }
                        tracing::error!(generation, errors = diags.len(), "configuration rejected; still serving the previous one");
                    }
                    Err(e) => tracing::error!(generation, "configuration not reloaded: {e:#}"),
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    let grace = plane.current().snapshot.settings.runtime.shutdown_grace;
    tracing::info!(
        open_connections = plane.open_connections(),
        grace_seconds = grace.as_secs(),
        "shutting down"
    );
    let left = plane.shutdown(grace).await;
    if left > 0 {
        tracing::warn!(
            connections = left,
            "grace period over; closing the remaining connections"
        );
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
