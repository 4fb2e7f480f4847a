//! `gatehouse check`: load the configuration as a reload would and report.
//!
//! Errors go to stderr, one per line, as `file:line:column: key path: message`. The status
//! of every resource with a problem goes to stdout as a table (or everything as JSON with
//! `-o json`); warnings (e.g. a private key others can read) go to stderr. In `[announce]
//! mode = "keepalived"` the keepalived include file is composed for this host's interfaces:
//! what keeps it from being written is a warning, and so is a pool allocation this box kept
//! that differs from the deterministic one; `--keepalived` prints the file. Exit status: 0
//! when the configuration would be applied, 1 when it would be rejected (or, with
//! `--strict`, when any resource shows a problem or there is a warning).

use crate::cli::{CheckArgs, Output};
use crate::configdir;
use anyhow::Result;
use gatehouse_config::pools::sticky_differences;
use gatehouse_config::{Diagnostics, Loaded};
use gatehouse_model::settings::AnnounceMode;
use gatehouse_model::status::{Condition, Status};
use std::process::ExitCode;

/// One problem condition, flattened for display.
struct Row {
    kind: String,
    namespace: String,
    name: String,
    at: String,
    condition: Condition,
}

fn problems(status: &Status) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut push = |key: &gatehouse_model::ResourceKey, at: String, c: &Condition| {
        if c.is_problem() {
            rows.push(Row {
                kind: key.kind.to_string(),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                at,
                condition: c.clone(),
            });
        }
    };
    for c in &status.gateway_classes {
        for cond in &c.conditions {
            push(&c.key, String::new(), cond);
        }
    }
    for g in &status.gateways {
        for cond in &g.conditions {
            push(&g.key, String::new(), cond);
        }
        for l in &g.listeners {
            for cond in &l.conditions {
                push(&g.key, format!("listener {}", l.name), cond);
            }
        }
    }
    for r in &status.routes {
        for p in &r.parents {
            let parent = match &p.parent_ref.section_name {
                Some(s) => format!(
                    "parent {}/{}/{s}",
                    p.parent_ref.namespace, p.parent_ref.name
                ),
                None => format!("parent {}/{}", p.parent_ref.namespace, p.parent_ref.name),
            };
            for cond in &p.conditions {
                push(&r.key, parent.clone(), cond);
            }
        }
    }
    // A policy's ancestors repeat its conditions: list them once.
    for p in &status.backend_tls_policies {
        for cond in &p.conditions {
            push(&p.key, String::new(), cond);
        }
    }
    rows
}

fn table(rows: &[Row]) -> String {
    let header = [
        "KIND",
        "NAMESPACE",
        "NAME",
        "WHERE",
        "CONDITION",
        "STATUS",
        "REASON",
        "MESSAGE",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.kind.clone(),
                r.namespace.clone(),
                r.name.clone(),
                r.at.clone(),
                r.condition.kind.clone(),
                format!("{:?}", r.condition.status),
                r.condition.reason.clone(),
                r.condition.message.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cols: &[String]| {
        let mut s = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i + 1 == cols.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(&header.map(String::from));
    for row in &cells {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}

fn summary(loaded: &Loaded) -> String {
    let s = &loaded.snapshot;
    let st = &loaded.status;
    let listeners: usize = st.gateways.iter().map(|g| g.listeners.len()).sum();
    let routes = st.routes.len();
    format!(
        "{} Gateway(s), {} of {} listener(s) programmed on {} port(s), {} route(s), {} Service(s)",
        st.gateways.len(),
        s.listeners.len(),
        listeners,
        s.ports.len(),
        routes,
        s.services.len()
    )
}

pub fn run(args: &CheckArgs) -> Result<ExitCode> {
    let files = configdir::read(&args.config)?;
    let loaded = gatehouse_config::load(&files, &|p: &std::path::Path| std::fs::read(p), 1);
    match (loaded, args.output) {
        (Err(diags), Output::Table) => {
            print_errors(&diags);
            Ok(ExitCode::from(1))
        }
        (Err(diags), Output::Json) => {
            let out = serde_json::json!({ "valid": false, "errors": diags, "status": null });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::from(1))
        }
        (Ok(loaded), output) => {
            let rows = problems(&loaded.status);
            let mut warnings = crate::keys::warnings(&loaded.key_files);
            warnings.extend(loaded.snapshot.settings.admin.remote_warning());
            warnings.extend(without_endpoints(&loaded.snapshot));
            if loaded.snapshot.settings.announce.mode == AnnounceMode::Keepalived {
                let settings = &loaded.snapshot.settings;
                let kept = crate::state::AllocationStore::open(&settings.runtime.state_dir);
                warnings.extend(sticky_differences(&loaded.allocations, &kept.current));
                match keepalived_file(&loaded) {
                    Ok((text, advice)) if args.keepalived => {
                        for w in warnings.iter().chain(&advice) {
                            eprintln!("warning: {w}");
                        }
                        print!("{text}");
                        return Ok(ExitCode::SUCCESS);
                    }
                    Ok((_, advice)) => warnings.extend(advice),
                    Err(errors) if args.keepalived => {
                        for e in &errors {
                            eprintln!("error: {e}");
                        }
                        return Ok(ExitCode::from(1));
                    }
                    Err(errors) => {
                        warnings.extend(errors.into_iter().map(|e| {
                            format!("the keepalived configuration cannot be written: {e}")
                        }))
                    }
                }
            } else if args.keepalived {
                eprintln!(
                    "error: [announce] mode is \"self\": gatehouse writes no keepalived configuration (set mode = \"keepalived\" and [ha])"
                );
                return Ok(ExitCode::from(1));
            }
            match output {
                Output::Json => {
                    let out = serde_json::json!({
                        "valid": true,
                        "errors": [],
                        "problems": rows.len(),
                        "warnings": warnings,
                        "status": loaded.status,
                    });
                    println!("{}", serde_json::to_string_pretty(&out)?);
                }
                Output::Table => {
                    for w in &warnings {
                        eprintln!("warning: {w}");
                    }
                    if !rows.is_empty() {
                        println!("{}\n", table(&rows));
                    }
                    let verdict = if rows.is_empty() {
                        "configuration OK".to_string()
                    } else {
                        format!("configuration OK with {} status problem(s)", rows.len())
                    };
                    println!("{verdict}: {}", summary(&loaded));
                }
            }
            let fail = args.strict && !(rows.is_empty() && warnings.is_empty());
            Ok(ExitCode::from(u8::from(fail)))
        }
    }
}

/// A Service with no endpoints: what `gatehouse convert` leaves for the operator to fill in
/// (Kubernetes found them by `selector`; here there are no pods).
fn without_endpoints(snapshot: &gatehouse_model::Snapshot) -> Vec<String> {
    snapshot
        .services
        .iter()
        .filter(|s| s.endpoints.is_empty())
        .map(|s| {
            format!(
                "{} has no endpoints: requests routed to it get 503 (list its backends' addresses in `endpoints`)",
                s.key
            )
        })
        .collect()
}

/// The keepalived include file for this host's interfaces, as the daemon would write it.
fn keepalived_file(loaded: &Loaded) -> std::result::Result<(String, Vec<String>), Vec<String>> {
    let exe =
        std::env::current_exe().map_err(|e| vec![format!("cannot find this executable: {e}")])?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| vec![e.to_string()])?;
    rt.block_on(gatehouse_announce::keepalived::preview(
        &loaded.snapshot,
        &exe,
    ))
}

fn print_errors(diags: &Diagnostics) {
    for d in diags.iter() {
        eprintln!("{d}");
    }
    eprintln!(
        "configuration rejected: {} error{}",
        diags.len(),
        if diags.len() == 1 { "" } else { "s" }
    );
}
