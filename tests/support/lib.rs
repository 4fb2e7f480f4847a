//! Helpers for the end-to-end tests: the real `gatehouse` binary run as a gateway and as echo
//! backends on loopback addresses of their own, configuration directories, and an HTTP client
//! (HTTP/1.1 and h2c with prior knowledge) that sets any Host.
//!
//! The support of one area is a module of its own, shared by the test binaries of that area
//! rather than compiled into each: [`tls`] (test CA, rustls client, HTTPS, TLS backends),
//! [`backend_tls`] (BackendTLSPolicy), [`conformance`] (the Gateway API conformance
//! fixtures), [`observability`] (`/metrics`, `/status`, the observability lab), [`reload`]
//! (live reconfiguration and its soak), [`vips`] (network namespaces, frame capture) and
//! [`ha`] (keepalived boxes and their client).

pub mod backend_tls;
pub mod client;
pub mod conformance;
pub mod dns;
pub mod ha;
pub mod observability;
pub mod peers;
pub mod process;
pub mod raw;
pub mod reload;
pub mod tcp;
pub mod tls;
pub mod vips;

pub use client::{Client, Resp};
pub use process::{Echo, Gateway, unique_ip};
pub use tcp::TcpBackend;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `gatehouse` binary built by this `cargo test` run (`target/<profile>/gatehouse`), or
/// the one `GATEHOUSE_BIN` names.
pub fn gatehouse_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GATEHOUSE_BIN") {
        return PathBuf::from(p);
    }
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable is in target/<profile>/deps");
    let bin = profile_dir.join(format!("gatehouse{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} does not exist: run the whole workspace (`cargo test --workspace`), which builds it, or set GATEHOUSE_BIN",
        bin.display()
    );
    bin
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// A temporary configuration directory.
#[derive(Debug)]
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl Default for ConfigDir {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigDir {
    pub fn new() -> ConfigDir {
        ConfigDir {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A directory whose gatehouse.toml is `text`.
    pub fn with_main(text: &str) -> ConfigDir {
        let d = ConfigDir::new();
        d.write("gatehouse.toml", text);
        d
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `rel` (creating folders).
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("file has a parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
        self
    }

    /// Runs `gatehouse check --config DIR` plus `extra` arguments.
    pub fn check(&self, extra: &[&str]) -> Output {
        Command::new(gatehouse_bin())
            .arg("check")
            .arg("--config")
            .arg(self.path())
            .args(extra)
            .output()
            .expect("run gatehouse check")
    }
}

/// The text of a process's stdout and stderr.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
