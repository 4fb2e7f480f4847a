//! The `gatehouse` binary: a thin command-line front over the library crates.

use clap::Parser;
use std::process::ExitCode;

mod admin;
mod check;
mod cli;
mod configdir;
mod controller;
mod convert;
mod echo;
mod explain;
mod keys;
mod logging;
mod manual;
mod run;
mod state;
mod status;
mod vip;
mod watch;

/// mimalloc: the request path allocates and frees many small buffers from many threads,
/// which glibc's allocator handles poorly (see tests/bench/).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Run(args) => run::run(&args),
        cli::Command::Status(args) => status::run(&args),
        cli::Command::Check(args) => check::run(&args),
        cli::Command::Explain(args) => explain::run(&args),
        cli::Command::Convert(args) => convert::run(&args),
        cli::Command::Echo(a) => echo::run(&echo::EchoArgs {
            listen: a.listen,
            name: a.name,
            namespace: a.namespace,
        }),
        cli::Command::Schema => {
            print!("{}", gatehouse_config::schema::json_schema_text());
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Completions(a) => manual::completions(&a),
        cli::Command::Manpages(a) => manual::manpages(&a),
        cli::Command::KeepalivedNotify(a) => {
            gatehouse_announce::keepalived::record_state(&a.state_dir, &a.kind, &a.name, &a.state)
                .map(|()| ExitCode::SUCCESS)
                .map_err(anyhow::Error::msg)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::from(1)
        }
    }
}
