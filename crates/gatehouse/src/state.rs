//! Daemon state kept across restarts: the addresses LoadBalancerIPPools gave Gateways,
//! in `<stateDir>/allocations.json`, so a Gateway keeps its address through reloads and
//! restarts. Written atomically (temporary file, then rename).

use gatehouse_config::pools::Allocations;
use std::path::{Path, PathBuf};

/// The allocations and where they are kept.
#[derive(Debug)]
pub struct AllocationStore {
    path: PathBuf,
    pub current: Allocations,
    warned: bool,
}

impl AllocationStore {
    /// Reads `<state_dir>/allocations.json`; a missing or unreadable file is an empty set.
    pub fn open(state_dir: &Path) -> AllocationStore {
        let path = state_dir.join("allocations.json");
        let current = std::fs::read(&path)
            .ok()
            .and_then(|b| match serde_json::from_slice(&b) {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(file = %path.display(), "ignoring unreadable pool allocations: {e}");
                    None
                }
            })
            .unwrap_or_default();
        AllocationStore {
            path,
            current,
            warned: false,
        }
    }

    /// Keeps `next`; writes the file when it changed. A write failure is logged once (the
    /// allocations then last only as long as the process).
    pub fn save(&mut self, next: Allocations) {
        if next == self.current {
            return;
        }
        self.current = next;
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = self.path.with_extension("json.tmp");
            let json = serde_json::to_vec_pretty(&self.current).map_err(std::io::Error::other)?;
            std::fs::write(&tmp, json)?;
            std::fs::rename(&tmp, &self.path)
        };
        if let Err(e) = write()
            && !self.warned
        {
            tracing::warn!(file = %self.path.display(), "cannot keep pool allocations across restarts: {e}");
            self.warned = true;
        }
    }
}
