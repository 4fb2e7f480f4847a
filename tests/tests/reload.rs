//! Live reconfiguration against the real binary: each way a change reaches the daemon (a
//! file edited in place, an editor's rename-over, a new file, a new folder, a removed file,
//! SIGHUP, a certificate replaced outside the configuration directory, a broken file and
//! its fix), each waited for until the new behaviour is observable over HTTP; then a soak
//! of more than 50 reloads under steady client load in which no request may fail.
//!
//! Every Gateway runs on a loopback address of its own; nothing waits a fixed time.

use gatehouse_tests::reload::{
    self, H1, Pki, applied_line, eventually, generation, https_once, rejections, rename_over,
    serial_of, tls_connect, wait_answer, wait_applied_after, wait_rejected_after, write_in_place,
};
use gatehouse_tests::{ConfigDir, Echo, Gateway, unique_ip};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Two echo backends (`svc-a`, `svc-b`) and a Gateway `gw` with one HTTP listener on port
/// 8080 of an address of its own; routes live in `conf.d/`.
struct Lab {
    gw: Gateway,
    addr: SocketAddr,
    _a: Echo,
    _b: Echo,
}

fn services(a: &Echo, b: &Echo) -> String {
    format!(
        r#"
[[Service]]
name = "svc-a"
ports = [{{ port = 80 }}]
endpoints = ["{}"]

[[Service]]
name = "svc-b"
ports = [{{ port = 80 }}]
endpoints = ["{}"]
"#,
        a.addr, b.addr
    )
}

fn main_toml(ip: Ipv4Addr, a: &Echo, b: &Echo) -> String {
    format!(
        r#"
[log]
accessLog = false

[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [{{ name = "http", protocol = "HTTP", port = 8080 }}]
{}"#,
        services(a, b)
    )
}

/// An HTTPRoute on `gw` sending every request for `host` to the Service `svc`.
fn route(name: &str, host: &str, svc: &str) -> String {
    format!(
        r#"
[[HTTPRoute]]
name = "{name}"
parentRefs = [{{ name = "gw" }}]
hostnames = ["{host}"]
rules = [{{ backendRefs = [{{ name = "{svc}", port = 80 }}] }}]
"#
    )
}

impl Lab {
    /// Starts the lab with an existing `conf.d/` and `files` (relative path, text) written
    /// before the gateway starts.
    fn start(files: &[(&str, &str)]) -> Lab {
        let ip = unique_ip();
        let (a, b) = (Echo::start("svc-a"), Echo::start("svc-b"));
        let dir = ConfigDir::with_main(&main_toml(ip, &a, &b));
        std::fs::create_dir_all(dir.path().join("conf.d")).expect("mkdir conf.d");
        for (rel, text) in files {
            dir.write(rel, text);
        }
        let addr = SocketAddr::from((ip, 8080));
        let gw = Gateway::start(dir, &[addr]);
        Lab {
            gw,
            addr,
            _a: a,
            _b: b,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.gw.dir.path().join(rel)
    }
}

/// Asserts that generation `g` was applied because of `trigger` ("file change" or "SIGHUP").
fn assert_trigger(gw: &Gateway, g: u64, trigger: &str) {
    let line = applied_line(gw, g).expect("the generation was applied");
    assert!(
        line.contains(&format!("trigger=\"{trigger}\""))
            || line.contains(&format!("trigger={trigger}")),
        "generation {g} should have been applied on {trigger}: {line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_edited_in_place_is_applied() {
    let lab = Lab::start(&[("conf.d/route.toml", &route("edit", "edit.test", "svc-a"))]);
    wait_answer(&lab.gw, lab.addr, "edit.test", Some("svc-a")).await;

    write_in_place(
        &lab.path("conf.d/route.toml"),
        &route("edit", "edit.test", "svc-b"),
    );
    let g = wait_applied_after(&lab.gw, 1).await;
    assert_trigger(&lab.gw, g, "file change");
    wait_answer(&lab.gw, lab.addr, "edit.test", Some("svc-b")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_editors_write_to_temp_then_rename_over_is_applied() {
    let lab = Lab::start(&[("conf.d/route.toml", &route("edit", "edit.test", "svc-a"))]);
    wait_answer(&lab.gw, lab.addr, "edit.test", Some("svc-a")).await;

    // `.route.toml.tmp` (hidden, not read) then renamed over `route.toml`.
    rename_over(
        &lab.path("conf.d/route.toml"),
        &route("edit", "edit.test", "svc-b"),
    );
    let g = wait_applied_after(&lab.gw, 1).await;
    assert_trigger(&lab.gw, g, "file change");
    wait_answer(&lab.gw, lab.addr, "edit.test", Some("svc-b")).await;
    assert!(
        !lab.path("conf.d/.route.toml.tmp").exists(),
        "the temporary file was renamed away"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_file_in_conf_d_is_applied() {
    let lab = Lab::start(&[("conf.d/route.toml", &route("old", "old.test", "svc-a"))]);
    wait_answer(&lab.gw, lab.addr, "new.test", None).await;

    write_in_place(
        &lab.path("conf.d/new.toml"),
        &route("new", "new.test", "svc-b"),
    );
    wait_applied_after(&lab.gw, 1).await;
    wait_answer(&lab.gw, lab.addr, "new.test", Some("svc-b")).await;
    wait_answer(&lab.gw, lab.addr, "old.test", Some("svc-a")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_file_in_a_new_subfolder_is_applied_and_the_folder_is_watched() {
    let lab = Lab::start(&[]);
    wait_answer(&lab.gw, lab.addr, "deep.test", None).await;

    // A folder two levels deep appears together with its file.
    write_in_place(
        &lab.path("conf.d/team/web/route.toml"),
        &route("deep", "deep.test", "svc-a"),
    );
    let g = wait_applied_after(&lab.gw, 1).await;
    wait_answer(&lab.gw, lab.addr, "deep.test", Some("svc-a")).await;

    // The new folder is now watched too: a second file in it is seen.
    write_in_place(
        &lab.path("conf.d/team/web/second.toml"),
        &route("second", "second.test", "svc-b"),
    );
    wait_applied_after(&lab.gw, g).await;
    wait_answer(&lab.gw, lab.addr, "second.test", Some("svc-b")).await;
}

/// Prepares `folder/route.toml` (route `name` for `host` to svc-a) outside the configuration
/// directory, on the same filesystem, and moves the whole folder into conf.d at once: the
/// only event is the folder's arrival.
fn move_folder_in(lab: &Lab, folder: &str, name: &str, host: &str) -> tempfile::TempDir {
    let staging = tempfile::tempdir().expect("tempdir");
    let prepared = staging.path().join(folder);
    write_in_place(&prepared.join("route.toml"), &route(name, host, "svc-a"));
    std::fs::rename(&prepared, lab.path(&format!("conf.d/{folder}"))).expect("move folder in");
    staging
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prepared_folder_moved_into_conf_d_is_applied() {
    let lab = Lab::start(&[]);
    wait_answer(&lab.gw, lab.addr, "team.test", None).await;
    let _staging = move_folder_in(&lab, "team", "team", "team.test");
    wait_applied_after(&lab.gw, 1).await;
    wait_answer(&lab.gw, lab.addr, "team.test", Some("svc-a")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prepared_folder_with_a_dot_in_its_name_moved_into_conf_d_is_applied() {
    // Folders named after the site they serve (`shop.example.com`) are common; the name's
    // dot must not make the folder look like a non-.toml file.
    let lab = Lab::start(&[]);
    wait_answer(&lab.gw, lab.addr, "shop.example.com", None).await;
    let _staging = move_folder_in(&lab, "shop.example.com", "shop", "shop.example.com");
    wait_applied_after(&lab.gw, 1).await;
    wait_answer(&lab.gw, lab.addr, "shop.example.com", Some("svc-a")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_file_and_a_removed_folder_are_applied() {
    let lab = Lab::start(&[
        ("conf.d/keep.toml", &route("keep", "keep.test", "svc-a")),
        ("conf.d/gone.toml", &route("gone", "gone.test", "svc-b")),
        (
            "conf.d/team/nested/route.toml",
            &route("nested", "nested.test", "svc-b"),
        ),
    ]);
    wait_answer(&lab.gw, lab.addr, "gone.test", Some("svc-b")).await;
    wait_answer(&lab.gw, lab.addr, "nested.test", Some("svc-b")).await;

    std::fs::remove_file(lab.path("conf.d/gone.toml")).expect("remove file");
    let g = wait_applied_after(&lab.gw, 1).await;
    wait_answer(&lab.gw, lab.addr, "gone.test", None).await;
    wait_answer(&lab.gw, lab.addr, "nested.test", Some("svc-b")).await;

    std::fs::remove_dir_all(lab.path("conf.d/team")).expect("remove folder");
    wait_applied_after(&lab.gw, g).await;
    wait_answer(&lab.gw, lab.addr, "nested.test", None).await;
    wait_answer(&lab.gw, lab.addr, "keep.test", Some("svc-a")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_without_any_file_event() {
    // conf.d/linked.toml is a symbolic link to a file in a folder nobody watches: editing
    // the target changes the configuration without an event in the configuration directory.
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().join("linked.toml");
    std::fs::write(&target, route("linked", "linked.test", "svc-a")).expect("write target");
    let lab = Lab::start(&[]);
    std::os::unix::fs::symlink(&target, lab.path("conf.d/linked.toml")).expect("symlink");
    // Creating the link is a change of conf.d: wait for it to be applied.
    let g = wait_applied_after(&lab.gw, 1).await;
    wait_answer(&lab.gw, lab.addr, "linked.test", Some("svc-a")).await;

    // SIGHUP alone, nothing changed: a reload all the same, and it says why.
    lab.gw.reload();
    let g = wait_applied_after(&lab.gw, g).await;
    assert_trigger(&lab.gw, g, "SIGHUP");

    // The link's target changes (no event in the watched folders); SIGHUP picks it up.
    std::fs::write(&target, route("linked", "linked.test", "svc-b")).expect("rewrite target");
    lab.gw.reload();
    wait_applied_after(&lab.gw, g).await;
    wait_answer(&lab.gw, lab.addr, "linked.test", Some("svc-b")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_replaced_outside_the_config_dir_is_presented_to_new_handshakes() {
    let pki = Pki::new();
    let tls = pki.client_config();
    let first = pki.issue(&["secure.test"], 1001);
    let second = pki.issue(&["secure.test", "rotated.secure.test"], 2002);

    // The certificate and key live in a folder of their own, outside the configuration.
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (certs.path().join("tls.crt"), certs.path().join("tls.key"));
    first.install(&cert, &key);

    let ip = unique_ip();
    let a = Echo::start("svc-a");
    let b = Echo::start("svc-b");
    let toml = format!(
        r#"
[log]
accessLog = false

[[Secret]]
name = "secure-cert"
certFile = '{}'
keyFile = '{}'

[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [{{ name = "https", protocol = "HTTPS", port = 8443, hostname = "secure.test", tls = {{ certificateRefs = [{{ name = "secure-cert" }}] }} }}]
{}
{}"#,
        cert.display(),
        key.display(),
        services(&a, &b),
        route("secure", "secure.test", "svc-a"),
    );
    let addr = SocketAddr::from((ip, 8443));
    let gw = Gateway::start(ConfigDir::with_main(&toml), &[addr]);

    let (status, body, shown) = eventually(&gw, "HTTPS answers with the first certificate", || {
        let tls = tls.clone();
        async move {
            https_once(addr, "secure.test", "secure.test", "/", &tls)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serial_of(&shown), Some(first.serial));
    assert!(shown == first.der, "the first certificate is presented");

    // A keep-alive connection opened with the first certificate.
    let (stream, _) = tls_connect(addr, "secure.test", &tls).await.expect("TLS");
    let mut kept = H1::handshake(stream).await.expect("HTTP/1.1 handshake");
    let (status, _) = kept
        .get("secure.test", "/kept")
        .await
        .expect("kept request");
    assert_eq!(status, 200);

    // A renewal tool writes both files next to the old ones and renames them over.
    second.install(&cert, &key);
    let g = wait_applied_after(&gw, 1).await;
    assert_trigger(&gw, g, "file change");
    eventually(
        &gw,
        "a new handshake presents the second certificate",
        || {
            let tls = tls.clone();
            let second = &second;
            async move {
                let (status, body, shown) =
                    https_once(addr, "secure.test", "secure.test", "/", &tls)
                        .await
                        .map_err(|e| e.to_string())?;
                if status != 200 {
                    return Err(format!(
                        "status {status}: {}",
                        String::from_utf8_lossy(&body)
                    ));
                }
                if serial_of(&shown) != Some(second.serial) || shown != second.der {
                    return Err(format!("serial {:?} presented", serial_of(&shown)));
                }
                Ok(())
            }
        },
    )
    .await;

    // The connection opened before the change carries on.
    let (status, _) = kept
        .get("secure.test", "/kept-after")
        .await
        .expect("the keep-alive connection survives the certificate change");
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_file_is_rejected_whole_with_its_location_and_its_fix_is_applied() {
    let lab = Lab::start(&[("conf.d/route.toml", &route("edit", "edit.test", "svc-a"))]);
    wait_answer(&lab.gw, lab.addr, "edit.test", Some("svc-a")).await;

    // One change of two files: a valid edit, and a new file with an error on line 3,
    // column 1. The set is rejected whole: neither applies.
    let broken = "[[HTTPRoute]]\nname = \"broken\"\nhostnamez = [\"broken.test\"]\nparentRefs = [{ name = \"gw\" }]\nrules = [{ backendRefs = [{ name = \"svc-b\", port = 80 }] }]\n";
    rename_over(&lab.path("conf.d/broken.toml"), broken);
    rename_over(
        &lab.path("conf.d/route.toml"),
        &route("edit", "edit.test", "svc-b"),
    );
    wait_rejected_after(&lab.gw, 0, 1).await;
    let log = lab.gw.log();
    let located = log.contains("conf.d/broken.toml:3:1")
        || (log.contains("file=conf.d/broken.toml") && log.contains("line=3 column=1"));
    assert!(
        located,
        "the rejection names conf.d/broken.toml, line 3, column 1:\n{log}"
    );
    assert!(
        log.contains("hostnamez"),
        "the rejection names the key:\n{log}"
    );
    // Still the previous configuration: the valid edit in the same set did not apply.
    wait_answer(&lab.gw, lab.addr, "edit.test", Some("svc-a")).await;
    wait_answer(&lab.gw, lab.addr, "broken.test", None).await;
    assert_eq!(generation(&lab.gw), 1, "nothing was applied");

    // The fix applies, together with the edit that waited for it.
    let fixed = broken.replace("hostnamez", "hostnames");
    rename_over(&lab.path("conf.d/broken.toml"), &fixed);
    let rejected = rejections(&lab.gw);
    wait_applied_after(&lab.gw, 1).await;
    assert_eq!(rejections(&lab.gw), rejected, "the fix is not rejected");
    wait_answer(&lab.gw, lab.addr, "broken.test", Some("svc-b")).await;
    wait_answer(&lab.gw, lab.addr, "edit.test", Some("svc-b")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_reloads_under_steady_load_fail_no_request() {
    reload::soak::run().await;
}
