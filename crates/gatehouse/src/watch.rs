//! Watching the configuration: the directory (recursively) and the folders of the
//! certificate and key files Secrets name, wherever they live.
//!
//! Folders are watched rather than files, so an editor's write-to-temporary-then-rename and
//! a certificate replaced by a new file are both seen. What counts: `.toml` files under the
//! configuration directory, folders there appearing, disappearing or renamed, and the
//! Secrets' files. Hidden files (editor swap and lock files) and backups (`name~`) do not.
//! Kubernetes-style `..data` symlink swaps in a Secret's folder count too ([`atomic_swap`]).
//! Bursts are debounced: a reload starts once no event has arrived for [`DEBOUNCE`]; the
//! reload then reads only settled files ([`crate::configdir::read_settled`]).

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Quiet time after the last event before a reload starts.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// A filesystem watcher that sends one message per burst of relevant changes.
pub struct ConfigWatcher {
    watcher: RecommendedWatcher,
    config_dir: PathBuf,
    /// Folders outside the configuration directory watched for Secret files.
    extra: BTreeSet<PathBuf>,
    files: std::sync::Arc<std::sync::Mutex<BTreeSet<PathBuf>>>,
}

fn ignored(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp") || name.ends_with(".swx")
}

/// Kubernetes' atomic writer (Secret and ConfigMap volumes) updates a folder by writing a
/// new `..<timestamp>` folder and renaming a `..data_tmp` symlink over `..data`; the files
/// (`tls.crt -> ..data/tls.crt`) never change themselves. A `..`-named entry appearing or
/// renamed in a folder that holds Secret files is such a swap.
fn atomic_swap(path: &Path, secret_files: &BTreeSet<PathBuf>) -> bool {
    let hidden_dots = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(".."));
    hidden_dots
        && path
            .parent()
            .is_some_and(|dir| secret_files.iter().any(|f| f.parent() == Some(dir)))
}

/// Where the symlink `path` points, with its folder resolved; also for a dangling link
/// (its target renamed away for a moment must still be watched to be seen coming back).
fn link_target(path: &Path) -> Option<PathBuf> {
    if let Ok(t) = path.canonicalize() {
        return Some(t);
    }
    let link = std::fs::read_link(path).ok()?;
    let link = match path.parent() {
        Some(dir) if link.is_relative() => dir.join(link),
        _ => link,
    };
    let dir = link.parent()?.canonicalize().ok()?;
    Some(dir.join(link.file_name()?))
}

impl ConfigWatcher {
    /// Watches `config_dir`; `changed` receives a message per debounced burst.
    pub fn new(config_dir: &Path, changed: mpsc::Sender<()>) -> notify::Result<ConfigWatcher> {
        let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
        let config_dir = config_dir
            .canonicalize()
            .unwrap_or_else(|_| config_dir.to_path_buf());
        let files: std::sync::Arc<std::sync::Mutex<BTreeSet<PathBuf>>> = Default::default();
        let (dir, secret_files) = (config_dir.clone(), files.clone());
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if matches!(event.kind, notify::EventKind::Access(_)) {
                    return;
                }
                // Folders come and go by creation, removal and renaming; their content changes
                // are seen as changes of the files in them.
                let folder_event = matches!(
                    event.kind,
                    notify::EventKind::Create(_)
                        | notify::EventKind::Remove(_)
                        | notify::EventKind::Modify(notify::event::ModifyKind::Name(_))
                );
                let relevant = event.paths.iter().any(|p| {
                    let files = secret_files.lock().unwrap_or_else(|e| e.into_inner());
                    if files.contains(p) || atomic_swap(p, &files) {
                        return true;
                    }
                    if ignored(p) {
                        return false;
                    }
                    p.starts_with(&dir)
                        && (p.extension().is_some_and(|e| e == "toml")
                            // A folder appearing, disappearing or renamed (its name may
                            // have dots); a removed path can no longer be asked whether it
                            // was a folder, so any removal counts.
                            || (folder_event && !p.is_file()))
                });
                if relevant {
                    let _ = raw_tx.send(());
                }
            })?;
        watcher.watch(&config_dir, RecursiveMode::Recursive)?;
        // Debounce: forward one message after a quiet period.
        tokio::spawn(async move {
            while raw_rx.recv().await.is_some() {
                loop {
                    match tokio::time::timeout(DEBOUNCE, raw_rx.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                if changed.send(()).await.is_err() {
                    return;
                }
            }
        });
        Ok(ConfigWatcher {
            watcher,
            config_dir,
            extra: BTreeSet::new(),
            files,
        })
    }

    /// Watches the folders of `secret_files` that lie outside the configuration directory
    /// (and stops watching folders no longer needed).
    pub fn watch_secret_files(&mut self, secret_files: &[PathBuf]) {
        // Each file as named (its folder resolved) and, when it is a symlink, what it points
        // to: certbot's live/ links into archive/, and a target changing counts too.
        let absolute: BTreeSet<PathBuf> = secret_files
            .iter()
            .flat_map(|f| {
                let named = match (
                    f.parent().and_then(|p| p.canonicalize().ok()),
                    f.file_name(),
                ) {
                    (Some(dir), Some(name)) => dir.join(name),
                    _ => f.clone(),
                };
                let target = link_target(f).filter(|t| *t != named);
                std::iter::once(named).chain(target)
            })
            .collect();
        let wanted: BTreeSet<PathBuf> = absolute
            .iter()
            .filter(|f| !f.starts_with(&self.config_dir))
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        for dir in self.extra.difference(&wanted) {
            let _ = self.watcher.unwatch(dir);
        }
        for dir in wanted.difference(&self.extra) {
            if let Err(e) = self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(folder = %dir.display(), "cannot watch for certificate changes: {e}");
            }
        }
        self.extra = wanted;
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = absolute;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_symlink_swap_in_a_secret_folder_is_a_change() {
        let files: BTreeSet<PathBuf> = [PathBuf::from("/etc/certs/tls.crt")].into();
        assert!(atomic_swap(Path::new("/etc/certs/..data"), &files));
        assert!(atomic_swap(Path::new("/etc/certs/..data_tmp"), &files));
        assert!(atomic_swap(
            Path::new("/etc/certs/..2026_12_05_12_00_00.1"),
            &files
        ));
        assert!(!atomic_swap(Path::new("/etc/other/..data"), &files));
        assert!(!atomic_swap(Path::new("/etc/certs/.swap"), &files));
    }
}
