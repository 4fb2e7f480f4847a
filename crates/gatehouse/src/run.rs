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
//! reload, its generation in STATUS=, and pings the watchdog from the serve loop when one is
//! configured, so a wedged loop is restarted. What a load does is the
//! [`crate::controller::Controller`]'s; this module only wires signals and the watcher to it.

use crate::cli::RunArgs;
use crate::configdir;
use crate::controller::{Applied, Controller, Trigger};
use crate::state::AllocationStore;
use anyhow::{Context, Result};
use gatehouse_config::{Loaded, Previous};
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    // Read and parse once; the state directory (for the pool allocations) comes from the
    // same document.
    let (files, fingerprint) = configdir::read_settled(
        &args.config,
        &[],
        &configdir::Fingerprint::default(),
        crate::controller::settle(Trigger::Start),
        || configdir::read(&args.config),
    )?;
    let doc = match gatehouse_config::parse(&files) {
        Ok(doc) => doc,
        Err(diags) => return Ok(not_starting(&diags)),
    };
    let store = AllocationStore::open(&doc.settings.runtime.state_dir);
    let previous = Previous {
        allocations: store.current.clone(),
        ..Previous::default()
    };
    let loaded = gatehouse_config::load_document(&doc, &read_file, 1, &previous);
    crate::logging::init(&loaded.snapshot.settings.log)?;
    // The control runtime: reloads, health checks, DNS, VIPs, the admin listener. Requests
    // are served on the data plane's own threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let code = runtime.block_on(serve(args.config.clone(), loaded, fingerprint, store));
    // A load abandoned by SIGTERM may still be reading on a blocking thread: do not wait.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

fn read_file(p: &std::path::Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(p)
}

fn not_starting(diags: &gatehouse_config::Diagnostics) -> ExitCode {
    for d in diags.iter() {
        eprintln!("{d}");
    }
    eprintln!(
        "configuration rejected: {} error(s); not starting",
        diags.len()
    );
    ExitCode::from(1)
}

/// Tells systemd (when it is listening: `NOTIFY_SOCKET`) how the daemon is doing.
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(states)
    {
        tracing::debug!("sd_notify: {e}");
    }
}

fn notify_ready(status: &str) {
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
}

async fn serve(
    dir: std::path::PathBuf,
    loaded: Loaded,
    fingerprint: configdir::Fingerprint,
    store: AllocationStore,
) -> Result<ExitCode> {
    let mut sighup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let (changed_tx, mut changed) = tokio::sync::mpsc::channel(1);
    let mut controller = Controller::start(dir, loaded, fingerprint, store, changed_tx).await?;
    notify_ready(&format!("serving generation {}", controller.generation()));
    // The watchdog is fed from this loop: a loop stuck anywhere stops feeding it.
    let watchdog = if std::env::var_os("NOTIFY_SOCKET").is_some() {
        sd_notify::watchdog_enabled()
    } else {
        None
    };
    let mut tick = tokio::time::interval(watchdog.map_or(Duration::from_secs(1), |w| {
        (w / 2).min(Duration::from_secs(1))
    }));

    'serve: loop {
        let trigger = tokio::select! {
            _ = sighup.recv() => Trigger::Signal,
            Some(()) = changed.recv() => Trigger::FileChange,
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = tick.tick() => {
                if watchdog.is_some() {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                }
                controller.tick().await;
                continue;
            }
        };
        notify(&[
            sd_notify::NotifyState::Reloading,
            sd_notify::NotifyState::monotonic_usec_now()
                .unwrap_or(sd_notify::NotifyState::Reloading),
        ]);
        tracing::info!(trigger = trigger.as_str(), "reloading");
        // SIGTERM is honoured while a load runs: the load is abandoned.
        let load = controller.load(trigger);
        let result = tokio::select! {
            r = load => r,
            _ = sigterm.recv() => break 'serve,
            _ = sigint.recv() => break 'serve,
        };
        let outcome = match result {
            Ok((Ok(loaded), fingerprint)) => controller.apply(loaded, fingerprint, trigger).await?,
            Ok((Err(diags), _)) => {
                controller.reject(trigger, diags.iter().map(|d| d.to_string()).collect())
            }
            Err(e) => {
                controller.reject(trigger, vec![format!("configuration not reloaded: {e:#}")])
            }
        };
        let generation = controller.generation();
        notify_ready(&match outcome {
            Applied::Serving { .. } => format!("serving generation {generation}"),
            Applied::Rejected { errors } => format!(
                "serving generation {generation}; the last change was rejected ({errors} errors)"
            ),
        });
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    controller.shutdown().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
