//! Shell completions and manual pages, generated from the clap definitions so they never
//! drift from the command line. The package build (`scripts/build-deb`) runs
//! `gatehouse manpages DIR` and `gatehouse completions SHELL`.

use crate::cli::{Cli, CompletionsArgs, ManpagesArgs};
use anyhow::{Context, Result};
use clap::CommandFactory as _;
use std::io::Write as _;
use std::process::ExitCode;

pub fn completions(args: &CompletionsArgs) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "gatehouse", &mut script);
    // Written here, not by clap_complete, so a closed pipe is an error, not a panic.
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("cannot write the completion script"),
    }
}

/// Writes `gatehouse.1` and `gatehouse-<sub>.1` for every visible subcommand.
pub fn manpages(args: &ManpagesArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let cmd = Cli::command().version(env!("CARGO_PKG_VERSION"));
    write_page(&args.dir, "gatehouse", cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("gatehouse-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("gatehouse {}", sub.get_name()))
            .version(env!("CARGO_PKG_VERSION"));
        write_page(&args.dir, &name, page)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_page(dir: &std::path::Path, name: &str, cmd: clap::Command) -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .section("1")
        .manual("gatehouse manual")
        .source(format!("gatehouse {}", env!("CARGO_PKG_VERSION")))
        .render(&mut out)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_page_is_written_for_gatehouse_and_each_visible_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        manpages(&ManpagesArgs {
            dir: dir.path().to_path_buf(),
        })
        .unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(names.contains(&"gatehouse.1".to_string()), "{names:?}");
        for sub in ["run", "check", "status", "echo", "completions"] {
            assert!(names.contains(&format!("gatehouse-{sub}.1")), "{names:?}");
        }
        assert!(!names.contains(&"gatehouse-manpages.1".to_string()));
        let run = std::fs::read_to_string(dir.path().join("gatehouse-run.1")).unwrap();
        assert!(run.starts_with(".ie") || run.contains(".TH"), "{run}");
        assert!(run.contains("\\-\\-config"), "{run}");
    }
}
