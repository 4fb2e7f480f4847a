//! Private key hygiene: a key file readable by group or others, or owned by a user other
//! than root or the one gatehouse runs as, is worth a warning (in the log, `/status` and
//! `gatehouse check`). Nothing is refused: the key still loads.

use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

/// The user gatehouse runs as: the owner of its own `/proc/self`.
fn own_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// One warning per key file that others could read or that belongs to another user.
pub fn warnings(key_files: &[PathBuf]) -> Vec<String> {
    let me = own_uid();
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for path in key_files {
        if !seen.insert(path) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
                (true, true) => "group and others",
                (true, false) => "its group",
                _ => "others",
            };
            out.push(format!(
                "private key {} is readable by {who} (mode {mode:04o}); chmod 600 it",
                path.display()
            ));
        }
        let uid = meta.uid();
        if uid != 0 && Some(uid) != me {
            out.push(format!(
                "private key {} is owned by uid {uid}, neither root nor the user gatehouse runs as",
                path.display()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn key(mode: u32) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("key.pem");
        std::fs::write(&p, "k").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        (d, p)
    }

    #[test]
    fn a_key_only_its_owner_reads_gets_no_warning() {
        let (_d, p) = key(0o600);
        assert!(warnings(&[p]).is_empty());
    }

    #[test]
    fn a_key_others_can_read_is_a_warning_naming_file_and_mode() {
        let (_d, p) = key(0o644);
        let w = warnings(&[p.clone(), p.clone()]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains(&p.display().to_string()), "{w:?}");
        assert!(w[0].contains("group and others (mode 0644)"), "{w:?}");
    }

    #[test]
    fn a_group_readable_key_is_a_warning() {
        let (_d, p) = key(0o640);
        assert!(warnings(&[p])[0].contains("readable by its group"));
    }

    #[test]
    fn a_missing_key_is_left_to_the_certificate_status() {
        assert!(warnings(&[PathBuf::from("/nonexistent/key.pem")]).is_empty());
    }
}
