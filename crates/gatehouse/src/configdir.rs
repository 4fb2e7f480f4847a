//! Reading a configuration directory: `gatehouse.toml`, then `conf.d/**/*.toml` in lexical
//! order of their paths. Hidden files (an editor's `.name.toml` swap or lock files) are
//! skipped; so is anything not ending in `.toml` (backups such as `name.toml~`).

use anyhow::{Context, Result};
use gatehouse_config::{MAIN_FILE, SourceFile};
use std::fs;
use std::path::{Path, PathBuf};

/// Reads every configuration file of `dir`; the first is `gatehouse.toml`.
pub fn read(dir: &Path) -> Result<Vec<SourceFile>> {
    let main = dir.join(MAIN_FILE);
    let text =
        fs::read_to_string(&main).with_context(|| format!("cannot read {}", main.display()))?;
    let mut files = vec![SourceFile::new(MAIN_FILE, main, text)];
    let conf_d = dir.join("conf.d");
    if conf_d.is_dir() {
        let mut found = Vec::new();
        collect(&conf_d, &mut found)?;
        let mut rel: Vec<(String, PathBuf)> = found
            .into_iter()
            .map(|p| {
                let name = p
                    .strip_prefix(dir)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .replace('\\', "/");
                (name, p)
            })
            .collect();
        rel.sort();
        for (name, path) in rel {
            let text = fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            files.push(SourceFile::new(name, path, text));
        }
    }
    Ok(files)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks, as operators link shared snippets into conf.d.
        if path.is_dir() {
            collect(&path, out)?;
        } else if name.ends_with(".toml") && path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}
