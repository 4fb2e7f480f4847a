//! Reading a configuration directory: `gatehouse.toml`, then `conf.d/**/*.toml` in lexical
//! order of their paths. Hidden files (an editor's `.name.toml` swap or lock files) are
//! skipped; so is anything not ending in `.toml` (backups such as `name.toml~`).
//!
//! Directory symlinks in `conf.d` are followed (operators link shared snippets in), once
//! each: a link that leads back to a folder already being read is a loop, reported with its
//! path instead of walked forever.
//!
//! A reload reads *settled* files ([`Fingerprint`], [`Settle`]): every file's size and
//! modification time unchanged for the settle window, and unchanged again after the read, so
//! a file caught mid-write is never applied half. A file that was emptied (an in-place
//! writer's truncation, before it writes) waits for the longer empty window.

use anyhow::{Context, Result, bail};
use gatehouse_config::{MAIN_FILE, SourceFile};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Reads every configuration file of `dir`; the first is `gatehouse.toml`.
pub fn read(dir: &Path) -> Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    for path in paths(dir)? {
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = if path == dir.join(MAIN_FILE) {
            MAIN_FILE.to_string()
        } else {
            path.strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/")
        };
        files.push(SourceFile::new(name, path, text));
    }
    Ok(files)
}

/// The configuration files of `dir`, `gatehouse.toml` first, then `conf.d` in lexical order
/// of their paths relative to `dir`.
pub fn paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let main = dir.join(MAIN_FILE);
    let mut out = vec![main];
    let conf_d = dir.join("conf.d");
    if conf_d.is_dir() {
        let mut found = Vec::new();
        let mut visiting = Vec::new();
        collect(&conf_d, &mut visiting, &mut found)?;
        let mut rel: Vec<(String, PathBuf)> = found
            .into_iter()
            .map(|p| {
                let name = p
                    .strip_prefix(dir)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                (name, p)
            })
            .collect();
        rel.sort();
        out.extend(rel.into_iter().map(|(_, p)| p));
    }
    Ok(out)
}

/// Walks `dir`; `visiting` holds the (device, inode) and path of every folder from conf.d
/// down to here, so a symlink back up to one of them is a loop.
fn collect(
    dir: &Path,
    visiting: &mut Vec<((u64, u64), PathBuf)>,
    out: &mut Vec<PathBuf>,
) -> Result<()> {
    let meta = fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let id = (meta.dev(), meta.ino());
    if let Some((_, first)) = visiting.iter().find(|(seen, _)| *seen == id) {
        bail!(
            "{}: symlink loop: this folder is {} again",
            dir.display(),
            first.display()
        );
    }
    visiting.push((id, dir.to_path_buf()));
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        names.push(entry.file_name());
    }
    names.sort();
    for name in names {
        let text = name.to_string_lossy();
        if text.starts_with('.') {
            continue;
        }
        let path = dir.join(&name);
        // Follows symlinks, as operators link shared snippets into conf.d.
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => collect(&path, visiting, out)?,
            Ok(m) if m.is_file() && text.ends_with(".toml") => out.push(path),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(40) => {
                // ELOOP: a symlink that points at itself (or a chain of links that does).
                bail!("{}: symlink loop: {e}", path.display())
            }
            // A dangling symlink is not a configuration file.
            Err(_) if fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink()) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    visiting.pop();
    Ok(())
}

/// The size and modification time of a set of files (absent files included, as absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint(BTreeMap<PathBuf, Option<(u64, SystemTime)>>);

impl Fingerprint {
    /// Takes the fingerprint of `dir`'s configuration files and of `extra` files (the
    /// certificates and keys Secrets name).
    pub fn take(dir: &Path, extra: &[PathBuf]) -> Result<Fingerprint> {
        let mut map = BTreeMap::new();
        for p in paths(dir)?.iter().chain(extra) {
            let stat = fs::metadata(p)
                .ok()
                .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            map.insert(p.clone(), stat);
        }
        Ok(Fingerprint(map))
    }

    /// How long ago the most recently modified file changed (zero for a time in the future).
    fn youngest(&self) -> Duration {
        let now = SystemTime::now();
        self.0
            .values()
            .flatten()
            .map(|(_, mtime)| now.duration_since(*mtime).unwrap_or(Duration::ZERO))
            .min()
            .unwrap_or(Duration::MAX)
    }

    /// Whether a file is empty now that was not in `before`.
    fn emptied_since(&self, before: &Fingerprint) -> bool {
        self.0.iter().any(|(p, now)| {
            matches!(now, Some((0, _)))
                && matches!(before.0.get(p), Some(Some((len, _))) if *len > 0)
        })
    }
}

/// How long files must be left alone before they are read.
#[derive(Clone, Copy, Debug)]
pub struct Settle {
    /// Unchanged size and modification time for this long.
    pub window: Duration,
    /// A file emptied since the running configuration was read waits this long.
    pub emptied: Duration,
    /// Past this, the files are read however busy they are (with a warning).
    pub give_up: Duration,
}

/// Waits until the files of `dir` (and `extra`) are settled, then runs `read` and returns its
/// result if nothing changed while it ran; otherwise waits and reads again. `before` is the
/// fingerprint of the running configuration (to see emptied files). Returns the fingerprint
/// of what was read.
pub fn read_settled<T>(
    dir: &Path,
    extra: &[PathBuf],
    before: &Fingerprint,
    settle: Settle,
    mut read: impl FnMut() -> Result<T>,
) -> Result<(T, Fingerprint)> {
    let started = Instant::now();
    let poll = (settle.window / 4).max(Duration::from_millis(10));
    let mut seen = Fingerprint::take(dir, extra)?;
    // Unchanged since: as old as the youngest file, as far as the window cares.
    let mut since = Instant::now()
        .checked_sub(seen.youngest().min(settle.emptied))
        .unwrap_or_else(Instant::now);
    loop {
        let busy = started.elapsed() < settle.give_up;
        let needed = if seen.emptied_since(before) {
            settle.emptied
        } else {
            settle.window
        };
        if since.elapsed() < needed && busy {
            std::thread::sleep(poll);
            let now = Fingerprint::take(dir, extra)?;
            if now != seen {
                seen = now;
                since = Instant::now();
            }
            continue;
        }
        if !busy {
            tracing::warn!(
                waited_ms = started.elapsed().as_millis() as u64,
                "configuration files keep changing; reading them as they are"
            );
        }
        let value = read()?;
        let after = Fingerprint::take(dir, extra)?;
        if after == seen || !busy {
            return Ok((value, after));
        }
        // Changed while being read: read again once it settles.
        seen = after;
        since = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(MAIN_FILE), "").unwrap();
        fs::create_dir(d.path().join("conf.d")).unwrap();
        d
    }

    #[test]
    fn conf_d_is_read_in_lexical_order_after_the_main_file_skipping_hidden_and_backups() {
        let d = dir();
        let c = d.path().join("conf.d");
        fs::create_dir(c.join("b")).unwrap();
        for f in ["b/x.toml", "a.toml", ".a.toml", "a.toml~", "c.txt"] {
            fs::write(c.join(f), "").unwrap();
        }
        let names: Vec<String> = read(d.path())
            .unwrap()
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(
            names,
            ["gatehouse.toml", "conf.d/a.toml", "conf.d/b/x.toml"]
        );
    }

    #[test]
    fn a_directory_symlink_is_followed_once() {
        let d = dir();
        let shared = d.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::write(shared.join("s.toml"), "").unwrap();
        std::os::unix::fs::symlink(&shared, d.path().join("conf.d/shared")).unwrap();
        let names: Vec<String> = read(d.path())
            .unwrap()
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(names, ["gatehouse.toml", "conf.d/shared/s.toml"]);
    }

    #[test]
    fn a_symlink_loop_is_an_error_naming_its_path() {
        let d = dir();
        let c = d.path().join("conf.d");
        fs::create_dir(c.join("a")).unwrap();
        std::os::unix::fs::symlink("..", c.join("a/up")).unwrap();
        std::os::unix::fs::symlink(".", c.join("a/here")).unwrap();
        let err = format!("{:#}", read(d.path()).unwrap_err());
        assert!(err.contains("symlink loop"), "{err}");
        assert!(err.contains("conf.d/a/"), "{err}");
    }

    #[test]
    fn a_symlink_to_itself_is_an_error_naming_its_path() {
        let d = dir();
        let c = d.path().join("conf.d");
        std::os::unix::fs::symlink("self", c.join("self")).unwrap();
        let err = format!("{:#}", read(d.path()).unwrap_err());
        assert!(err.contains("conf.d/self: symlink loop"), "{err}");
    }

    #[test]
    fn a_dangling_symlink_is_not_a_file() {
        let d = dir();
        std::os::unix::fs::symlink("nowhere.toml", d.path().join("conf.d/gone.toml")).unwrap();
        assert_eq!(read(d.path()).unwrap().len(), 1);
    }

    const QUICK: Settle = Settle {
        window: Duration::from_millis(100),
        emptied: Duration::from_millis(600),
        give_up: Duration::from_secs(10),
    };

    #[test]
    fn a_file_written_in_two_steps_is_read_once_whole() {
        let d = dir();
        let f = d.path().join("conf.d/r.toml");
        fs::write(&f, "a = 1\n").unwrap();
        let before = Fingerprint::take(d.path(), &[]).unwrap();
        let path = f.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            fs::write(&path, "a = 1\nb = 2\n").unwrap();
        });
        // The first write is younger than the window: the second lands before the read.
        fs::write(&f, "a = 1\n").unwrap();
        let (text, _) = read_settled(d.path(), &[], &before, QUICK, || {
            Ok(fs::read_to_string(&f)?)
        })
        .unwrap();
        writer.join().unwrap();
        assert_eq!(text, "a = 1\nb = 2\n");
    }

    #[test]
    fn a_truncated_file_waits_for_its_content() {
        let d = dir();
        let f = d.path().join("conf.d/r.toml");
        fs::write(&f, "a = 1\n").unwrap();
        let before = Fingerprint::take(d.path(), &[]).unwrap();
        fs::write(&f, "").unwrap();
        let path = f.clone();
        let writer = std::thread::spawn(move || {
            // Longer than the window, shorter than the emptied window.
            std::thread::sleep(Duration::from_millis(300));
            fs::write(&path, "a = 2\n").unwrap();
        });
        let (text, _) = read_settled(d.path(), &[], &before, QUICK, || {
            Ok(fs::read_to_string(&f)?)
        })
        .unwrap();
        writer.join().unwrap();
        assert_eq!(text, "a = 2\n");
    }

    #[test]
    fn an_emptied_file_that_stays_empty_is_read_after_the_emptied_window() {
        let d = dir();
        let f = d.path().join("conf.d/r.toml");
        fs::write(&f, "a = 1\n").unwrap();
        let before = Fingerprint::take(d.path(), &[]).unwrap();
        fs::write(&f, "").unwrap();
        let (text, _) = read_settled(d.path(), &[], &before, QUICK, || {
            Ok(fs::read_to_string(&f)?)
        })
        .unwrap();
        assert_eq!(text, "");
    }
}
