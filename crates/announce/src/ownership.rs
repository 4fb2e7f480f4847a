//! Which addresses on the interfaces are gatehouse's own, across crashes.
//!
//! Two records, so that a `SIGKILL`ed gatehouse neither leaves its VIPs behind nor, on the
//! next start, takes away an address the operator configured:
//!
//! - `<stateDir>/vips.json` ([`OwnershipFile`]) lists every address gatehouse added and the
//!   interface it is on. An address is written there **before** it is added, and taken out
//!   only **after** it was removed, so a crash at any point leaves it listed. The file is
//!   replaced atomically (temporary file, then rename). A state directory that cannot be
//!   written is logged once; the tag below still works.
//! - The address itself carries the `IFA_PROTO` address protocol [`GATEHOUSE_PROTO`]
//!   (Linux 6.1 and later), visible as `proto 71` in `ip -d addr` and selectable with
//!   `ip addr show proto 71`.
//!
//! On its first reconcile the manager treats an address that is tagged or listed as
//! gatehouse's: still wanted, it is adopted (not added again, removed on stop); no longer
//! wanted, it is removed. Any other address is the operator's and is never removed.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The `IFA_PROTO` value on every address gatehouse adds: 71, ASCII `G`.
///
/// The kernel defines 0 (unspec) to 3 (`kernel_ll`) and leaves the rest of the byte to user
/// space without a registry (iproute2's `rt_addrprotos` names only the kernel's). 71 is far
/// from the kernel's small numbers and reads as "G" for gatehouse in a hex dump.
pub const GATEHOUSE_PROTO: u8 = 0x47;

/// The file's name inside the state directory.
pub const FILE_NAME: &str = "vips.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    addresses: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    address: IpAddr,
    interface: String,
}

/// `<stateDir>/vips.json`: the addresses gatehouse added, kept in step with the interfaces.
#[derive(Debug)]
pub struct OwnershipFile {
    path: PathBuf,
    /// Address to interface name.
    entries: BTreeMap<IpAddr, String>,
    warned: bool,
}

impl OwnershipFile {
    /// Reads `<state_dir>/vips.json`; a missing file is empty, an unreadable one is logged and
    /// treated as empty (the tag still identifies gatehouse's addresses).
    pub fn open(state_dir: &Path) -> OwnershipFile {
        let path = state_dir.join(FILE_NAME);
        let entries = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Contents>(&bytes) {
                Ok(c) => c
                    .addresses
                    .into_iter()
                    .map(|e| (e.address, e.interface))
                    .collect(),
                Err(e) => {
                    tracing::warn!(file = %path.display(), "ignoring an unreadable list of gatehouse's addresses: {e}");
                    BTreeMap::new()
                }
            },
            Err(_) => BTreeMap::new(),
        };
        OwnershipFile {
            path,
            entries,
            warned: false,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.entries.contains_key(&ip)
    }

    /// The listed addresses.
    pub fn listed(&self) -> Vec<IpAddr> {
        self.entries.keys().copied().collect()
    }

    /// Lists `ip` on `interface` (call before adding it).
    pub fn record(&mut self, ip: IpAddr, interface: &str) {
        if self.entries.get(&ip).map(String::as_str) != Some(interface) {
            self.entries.insert(ip, interface.to_owned());
            self.write();
        }
    }

    /// Takes `ip` off the list (call after removing it).
    pub fn forget(&mut self, ip: IpAddr) {
        if self.entries.remove(&ip).is_some() {
            self.write();
        }
    }

    fn write(&mut self) {
        let contents = Contents {
            addresses: self
                .entries
                .iter()
                .map(|(address, interface)| Entry {
                    address: *address,
                    interface: interface.clone(),
                })
                .collect(),
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = self.path.with_extension("json.tmp");
            let json = serde_json::to_vec_pretty(&contents).map_err(std::io::Error::other)?;
            std::fs::write(&tmp, json)?;
            std::fs::rename(&tmp, &self.path)
        };
        match write() {
            Ok(()) => self.warned = false,
            Err(e) if !self.warned => {
                tracing::warn!(file = %self.path.display(), "cannot record gatehouse's addresses (the address tag still marks them): {e}");
                self.warned = true;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 100));
    const B: IpAddr = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100));

    #[test]
    fn recorded_addresses_are_listed_after_a_restart_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = OwnershipFile::open(dir.path());
        assert!(file.listed().is_empty());
        file.record(A, "eth0");
        file.record(B, "eth1");
        let reopened = OwnershipFile::open(dir.path());
        assert_eq!(reopened.listed(), vec![A, B]);
        file.forget(A);
        let reopened = OwnershipFile::open(dir.path());
        assert_eq!(reopened.listed(), vec![B]);
        assert!(reopened.contains(B) && !reopened.contains(A));
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(
            text.contains("\"2001:db8::100\"") && text.contains("\"eth1\""),
            "{text}"
        );
        assert!(!dir.path().join("vips.json.tmp").exists());
    }

    #[test]
    fn an_unwritable_state_dir_keeps_the_list_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the state directory should be: not writable even by root.
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, b"").unwrap();
        let mut file = OwnershipFile::open(&not_a_dir);
        file.record(A, "eth0");
        assert!(file.contains(A));
        assert!(file.warned);
        file.forget(A);
        assert!(!file.contains(A));
    }

    #[test]
    fn a_corrupt_file_is_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{ not json").unwrap();
        assert!(OwnershipFile::open(dir.path()).listed().is_empty());
    }
}
