//! The Debian package as an operator meets it: built with `scripts/build-deb`, checked by
//! lintian and `systemd-analyze security`, then installed in a
//! minimal Debian booted with a real systemd (`tests/system/deb-in-nspawn.sh`): upgrade,
//! `systemd-analyze verify`, service identity and capabilities, routing, reload, a refused reload, the journal, man
//! page and completion, stop, remove and purge.
//!
//! Needs root, debootstrap, systemd-nspawn and lintian (`scripts/install-prerequisites`).
//! Elsewhere it is skipped with the reason printed; with `CI` set it must run.

use gatehouse_tests::repo_root;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Why this machine cannot run the test, if it cannot.
fn missing() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        });
    if uid.as_deref() != Some("0") {
        return Some("not root".into());
    }
    for tool in [
        "debootstrap",
        "systemd-nspawn",
        "lintian",
        "systemd-analyze",
        "jq",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!(
                "{tool} is not installed (scripts/install-prerequisites)"
            ));
        }
    }
    None
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Builds the package (optionally as another version) and returns its path.
fn build(version: Option<&str>) -> PathBuf {
    let mut cmd = Command::new(repo_root().join("scripts/build-deb"));
    if let Some(v) = version {
        cmd.args(["--deb-version", v]);
    }
    let out = run(cmd.current_dir(repo_root()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("build-deb prints the path");
    repo_root().join(last.trim())
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn check_lintian(deb: &Path) {
    let out = Command::new("lintian")
        .args(["--fail-on", "error,warning"])
        .arg(deb)
        .output()
        .expect("lintian");
    let report = text(&out);
    eprintln!("lintian:\n{report}");
    assert!(out.status.success(), "lintian: {report}");
    assert!(
        !report
            .lines()
            .any(|l| l.starts_with("E:") || l.starts_with("W:")),
        "{report}"
    );
}

/// The packaged unit's exposure (`systemd-analyze verify` runs in the container, where the
/// unit is installed on a real system).
fn check_unit(deb: &Path) {
    let root = tempfile::tempdir().expect("tempdir");
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root.path()));
    let unit = root.path().join("usr/lib/systemd/system/gatehouse.service");
    let security = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit));
    let report = text(&security);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("gatehouse.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    eprintln!("systemd-analyze security: exposure {exposure}");
    assert!(exposure < 2.0, "exposure {exposure}:\n{report}");
}

#[test]
fn the_package_installs_runs_upgrades_and_purges_under_a_real_systemd() {
    if let Some(why) = missing() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the package test, but {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    // cargo-deb clears its output folder: keep the previous version elsewhere.
    let keep = tempfile::tempdir().expect("tempdir");
    let previous = keep.path().join("gatehouse_0.0.9-1.deb");
    std::fs::copy(build(Some("0.0.9-1")), &previous).expect("keep the previous package");
    let current = build(None);
    check_lintian(&current);
    check_unit(&current);
    let out = Command::new(repo_root().join("tests/system/deb-in-nspawn.sh"))
        .arg(&previous)
        .arg(&current)
        .output()
        .expect("run deb-in-nspawn.sh");
    let report = text(&out);
    eprintln!("{report}");
    assert!(out.status.success(), "the system test failed:\n{report}");
    assert!(report.lines().any(|l| l == "PASS"), "{report}");
}
