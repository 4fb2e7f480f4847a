//! `gatehouse convert FILE.yaml... [-o DIR|-]`: Kubernetes manifests to gatehouse TOML.
//!
//! The conversion itself is `gatehouse_config::convert` (pure: text in, TOML text, PEM files
//! and reports out); this module reads the inputs (`-` is stdin), prints every report on
//! stderr, and writes the result:
//!
//! - `-o -` (the default): the TOML on stdout. A TLS Secret's key cannot go there, so an
//!   input with one is refused: give `-o DIR`.
//! - `-o DIR`: `DIR/<input>.toml` per input, and the Secrets' PEM files under `DIR/certs/`
//!   with mode 0600, written before the TOML that names them. Existing files are refused
//!   (nothing is written) unless `--force`.
//!
//! Bad YAML is `file:line:column: message` and exit 1, with nothing written. Fields gatehouse
//! cannot express are warnings; `--strict` makes them exit 1 (after writing).

use crate::cli::ConvertArgs;
use anyhow::{Context, Result, bail};
use gatehouse_config::convert::{self, Converted, Input};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::ExitCode;

pub fn run(args: &ConvertArgs) -> Result<ExitCode> {
    let texts = read_inputs(&args.files)?;
    let inputs: Vec<Input<'_>> = args
        .files
        .iter()
        .zip(&texts)
        .map(|(name, text)| Input { name, text })
        .collect();
    let converted = match convert::convert(&inputs) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "nothing converted: {} error{}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            return Ok(ExitCode::from(1));
        }
    };
    for w in &converted.warnings {
        eprintln!("warning: {w}");
    }
    if args.output == "-" {
        print(&converted)?;
    } else {
        write(&converted, Path::new(&args.output), args.force)?;
    }
    if !converted.warnings.is_empty() {
        eprintln!(
            "{} field{} or resource{} not converted (see the warnings above)",
            converted.warnings.len(),
            if converted.warnings.len() == 1 {
                ""
            } else {
                "s"
            },
            if converted.warnings.len() == 1 {
                ""
            } else {
                "s"
            },
        );
    }
    Ok(ExitCode::from(u8::from(
        args.strict && !converted.warnings.is_empty(),
    )))
}

/// Each input's text; `-` is stdin (once).
fn read_inputs(files: &[String]) -> Result<Vec<String>> {
    if files.iter().filter(|f| *f == "-").count() > 1 {
        bail!("stdin (-) can be read only once");
    }
    files
        .iter()
        .map(|f| {
            if f == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("cannot read stdin")?;
                Ok(s)
            } else {
                std::fs::read_to_string(f).with_context(|| format!("cannot read {f}"))
            }
        })
        .collect()
}

fn print(converted: &Converted) -> Result<()> {
    if !converted.secret_files.is_empty() {
        let names: Vec<String> = converted
            .secret_files
            .iter()
            .map(|f| f.path.display().to_string())
            .collect();
        bail!(
            "the input has TLS Secrets, whose certificates and keys become files ({}): give -o DIR to write them beside the TOML (stdout carries only the TOML)",
            names.join(", ")
        );
    }
    let mut text = String::new();
    for (i, o) in converted.outputs.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.push_str(&o.toml);
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

fn write(converted: &Converted, dir: &Path, force: bool) -> Result<()> {
    let secrets: Vec<(std::path::PathBuf, &[u8])> = converted
        .secret_files
        .iter()
        .map(|f| (dir.join(&f.path), f.contents.as_slice()))
        .collect();
    let tomls: Vec<(std::path::PathBuf, &[u8])> = converted
        .outputs
        .iter()
        .map(|o| (dir.join(&o.file_name), o.toml.as_bytes()))
        .collect();
    if !force {
        let existing: Vec<String> = secrets
            .iter()
            .chain(&tomls)
            .filter(|(p, _)| p.symlink_metadata().is_ok())
            .map(|(p, _)| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            bail!(
                "not overwriting {} (give --force to replace): nothing written",
                existing.join(", ")
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Keys first: a daemon watching DIR never sees a TOML naming a file not yet there.
    for (path, contents) in &secrets {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        write_private(path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    for (path, contents) in &tomls {
        std::fs::write(path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    for (path, _) in secrets.iter().chain(&tomls) {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Writes a file only its owner can read, also when it replaces one (`--force`).
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents)?;
    f.sync_all()
}
