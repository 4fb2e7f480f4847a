//! The control plane never hurts the data plane, against the real binary: a certbot-style
//! certificate rotation under HTTPS load fails no handshake; a slow in-place writer is never
//! applied half; a file change that would stop every listener is refused (SIGHUP and
//! `allowEmptyReload` apply it); a conf.d symlink loop is a located error; SIGTERM during a
//! load that never ends exits within the grace.

use gatehouse_tests::raw::{exchange, metric};
use gatehouse_tests::reload::{
    self, Pki, eventually, generation, get_once, https_once, rejections, serial_of, wait_answer,
    wait_applied_after, wait_rejected_after, write_in_place,
};
use gatehouse_tests::{ConfigDir, Echo, Gateway, text, unique_ip};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The admin listener's `/status` document.
fn status(gw: &Gateway) -> serde_json::Value {
    let (text, _) = exchange(
        gw.admin,
        b"GET /status HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

fn service(echo: &Echo) -> String {
    format!(
        "\n[[Service]]\nname = \"svc\"\nports = [{{ port = 80 }}]\nendpoints = [\"{}\"]\n",
        echo.addr
    )
}

fn http_gateway(ip: Ipv4Addr) -> String {
    format!(
        r#"
[log]
accessLog = false

[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [{{ name = "http", protocol = "HTTP", port = 8080 }}]
"#
    )
}

const ROUTE: &str = r#"
[[HTTPRoute]]
name = "r"
parentRefs = [{ name = "gw" }]
hostnames = ["app.test"]
rules = [{ backendRefs = [{ name = "svc", port = 80 }] }]
"#;

/// `live/cert.pem` and `live/key.pem` pointing into `archive/`, as certbot lays them out.
fn link(live: &Path, name: &str, target: &Path) {
    let at = live.join(name);
    let _ = std::fs::remove_file(&at);
    symlink(target, &at).expect("symlink");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certbot_rotation_under_https_load_fails_no_handshake_and_serves_the_old_pair_until_the_new_one_matches()
 {
    let pki = Pki::new();
    let tls = pki.client_config();
    let (first, second) = (
        pki.issue(&["secure.test"], 1001),
        pki.issue(&["secure.test"], 2002),
    );
    let certs = tempfile::tempdir().expect("tempdir");
    let (archive, live) = (certs.path().join("archive"), certs.path().join("live"));
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    for (name, text) in [
        ("cert1.pem", &first.cert_pem),
        ("key1.pem", &first.key_pem),
        ("cert2.pem", &second.cert_pem),
        ("key2.pem", &second.key_pem),
    ] {
        std::fs::write(archive.join(name), text).unwrap();
    }
    link(&live, "cert.pem", &archive.join("cert1.pem"));
    link(&live, "key.pem", &archive.join("key1.pem"));

    let ip = unique_ip();
    let echo = Echo::start("svc");
    let toml = format!(
        r#"
[log]
accessLog = false

[[Secret]]
name = "site"
certFile = '{}'
keyFile = '{}'

[[Gateway]]
name = "gw"
gatewayClassName = "gatehouse"
addresses = [{{ value = "{ip}" }}]
listeners = [{{ name = "https", protocol = "HTTPS", port = 8443, tls = {{ certificateRefs = [{{ name = "site" }}] }} }}]
{}{}"#,
        live.join("cert.pem").display(),
        live.join("key.pem").display(),
        service(&echo),
        ROUTE.replace("app.test", "secure.test"),
    );
    let addr = SocketAddr::from((ip, 8443));
    let gw = Gateway::start(ConfigDir::with_main(&toml), &[addr]);

    // Two clients handshake continuously and record the serial they are shown.
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let serials = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (stop, failed, serials, tls) =
            (stop.clone(), failed.clone(), serials.clone(), tls.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match https_once(addr, "secure.test", "secure.test", "/", &tls).await {
                    Ok((code, _, shown)) if code == 200 => {
                        serials.lock().unwrap().push(serial_of(&shown).unwrap_or(0))
                    }
                    Ok((code, body, _)) => {
                        eprintln!("status {code}: {}", String::from_utf8_lossy(&body));
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("handshake failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let stale = || {
        metric(
            gw.admin,
            "gatehouse_tls_certificate_stale{secret=\"default/site\"}",
        )
    };
    let newest =
        |serials: &Arc<std::sync::Mutex<Vec<u64>>>| serials.lock().unwrap().last().copied();

    // certbot: unlink, then link the new certificate; the key follows 500 ms later.
    std::fs::remove_file(live.join("cert.pem")).unwrap();
    eventually(
        &gw,
        "a reload finds no certificate and keeps the old one",
        || async {
            if stale() == 1.0 {
                Ok(())
            } else {
                Err("not stale yet".to_string())
            }
        },
    )
    .await;
    link(&live, "cert.pem", &archive.join("cert2.pem"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stale(),
        1.0,
        "a new certificate with the old key is not a pair"
    );
    assert_eq!(newest(&serials), Some(first.serial));
    let status_doc = status(&gw);
    let listener = &status_doc["status"]["gateways"][0]["listeners"][0];
    let text = listener.to_string();
    assert!(
        text.contains("the previous certificate is still served"),
        "{text}"
    );
    link(&live, "key.pem", &archive.join("key2.pem"));
    eventually(&gw, "the new pair is served once it matches", || {
        let serials = serials.clone();
        async move {
            match newest(&serials) {
                Some(s) if s == second.serial && stale() == 0.0 => Ok(()),
                other => Err(format!("last serial {other:?}")),
            }
        }
    })
    .await;

    // The key unreadable for a while: the new pair keeps serving. (Handshakes in flight
    // while the serving threads took the new pair may still show the old one: settle.)
    tokio::time::sleep(Duration::from_millis(100)).await;
    let settled = serials.lock().unwrap().len();
    let aside = archive.join("key2.aside");
    std::fs::rename(archive.join("key2.pem"), &aside).unwrap();
    eventually(&gw, "a reload finds no key and keeps the pair", || async {
        if stale() == 1.0 {
            Ok(())
        } else {
            Err("not stale yet".to_string())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::rename(&aside, archive.join("key2.pem")).unwrap();
    eventually(&gw, "the key is back", || async {
        if stale() == 0.0 {
            Ok(())
        } else {
            Err("still stale".to_string())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let serials = serials.lock().unwrap().clone();
    let switch = serials
        .iter()
        .position(|s| *s == second.serial)
        .expect("the new certificate was served");
    eprintln!(
        "{} handshakes, {} failed, switched after {switch}",
        serials.len(),
        failed.load(Ordering::Relaxed)
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no handshake may fail");
    assert!(serials[..switch].iter().all(|s| *s == first.serial));
    assert!(
        serials[settled..].iter().all(|s| *s == second.serial),
        "the last good pair is the new one: never back to the old certificate"
    );
    assert!(serials.len() > 50, "the clients kept handshaking");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kubernetes_data_symlink_swap_of_a_secret_folder_is_served() {
    let pki = Pki::new();
    let tls = pki.client_config();
    let (first, second) = (
        pki.issue(&["secure.test"], 3003),
        pki.issue(&["secure.test"], 4004),
    );
    // A Secret volume as the kubelet writes it: tls.crt -> ..data/tls.crt, ..data -> ..v1.
    let vol = tempfile::tempdir().expect("tempdir");
    let version = |name: &str, leaf: &reload::Leaf| {
        let d = vol.path().join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("tls.crt"), &leaf.cert_pem).unwrap();
        std::fs::write(d.join("tls.key"), &leaf.key_pem).unwrap();
    };
    version("..v1", &first);
    symlink("..v1", vol.path().join("..data")).unwrap();
    symlink("..data/tls.crt", vol.path().join("tls.crt")).unwrap();
    symlink("..data/tls.key", vol.path().join("tls.key")).unwrap();

    let ip = unique_ip();
    let echo = Echo::start("svc");
    let toml = format!(
        "[log]\naccessLog = false\n[[Secret]]\nname = \"site\"\ncertFile = '{}'\nkeyFile = '{}'\n[[Gateway]]\nname = \"gw\"\ngatewayClassName = \"gatehouse\"\naddresses = [{{ value = \"{ip}\" }}]\nlisteners = [{{ name = \"https\", protocol = \"HTTPS\", port = 8443, tls = {{ certificateRefs = [{{ name = \"site\" }}] }} }}]\n{}{}",
        vol.path().join("tls.crt").display(),
        vol.path().join("tls.key").display(),
        service(&echo),
        ROUTE.replace("app.test", "secure.test"),
    );
    let addr = SocketAddr::from((ip, 8443));
    let gw = Gateway::start(ConfigDir::with_main(&toml), &[addr]);
    let shown = |want: u64| {
        let tls = tls.clone();
        async move {
            let (_, _, der) = https_once(addr, "secure.test", "secure.test", "/", &tls)
                .await
                .map_err(|e| e.to_string())?;
            match serial_of(&der) {
                Some(s) if s == want => Ok(()),
                other => Err(format!("serial {other:?}")),
            }
        }
    };
    eventually(&gw, "the first certificate", || shown(first.serial)).await;
    // The kubelet's atomic writer: a new version folder, ..data_tmp renamed over ..data.
    version("..v2", &second);
    symlink("..v2", vol.path().join("..data_tmp")).unwrap();
    std::fs::rename(vol.path().join("..data_tmp"), vol.path().join("..data")).unwrap();
    eventually(&gw, "the swapped-in certificate", || shown(second.serial)).await;
    // The keys were written 0644: a warning, not a refusal.
    let warnings = status(&gw)["warnings"].to_string();
    assert!(
        warnings.contains("tls.key is readable by group and others"),
        "{warnings}"
    );
    let out = gw.dir.check(&[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("warning: private key"), "{stderr}");
    assert_eq!(gw.dir.check(&["--strict"]).status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_in_place_writer_is_never_applied_half() {
    let ip = unique_ip();
    let echo = Echo::start("svc");
    let dir = ConfigDir::with_main(&format!("{}{}", http_gateway(ip), service(&echo)));
    dir.write("conf.d/routes.toml", ROUTE);
    let addr = SocketAddr::from((ip, 8080));
    let gw = Gateway::start(dir, &[addr]);
    wait_answer(&gw, addr, "app.test", Some("svc")).await;

    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut bad = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                match get_once(addr, "app.test", "/").await {
                    Ok(r) if r.status == 200 => {}
                    other => bad.push(reload::describe(&other)),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (n, bad)
        })
    };
    // Truncate, pause a second, then write (the route plus a second hostname).
    let path = gw.dir.path().join("conf.d/routes.toml");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    drop(file);
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::write(
        &path,
        ROUTE.replace("[\"app.test\"]", "[\"app.test\", \"new.test\"]"),
    )
    .unwrap();
    wait_answer(&gw, addr, "new.test", Some("svc")).await;
    stop.store(true, Ordering::Relaxed);
    let (n, bad) = prober.await.unwrap();
    eprintln!("{n} requests during the write, {} not 200", bad.len());
    assert!(bad.is_empty(), "the half-written file was applied: {bad:?}");
}

/// `main` as gatehouse.toml, and the only Gateway (with its route and Service) in
/// `conf.d/gw.toml`; returns once the route answers.
async fn gateway_in_conf_d(main: &str) -> (Gateway, SocketAddr, Echo) {
    let ip = unique_ip();
    let echo = Echo::start("svc");
    let dir = ConfigDir::with_main(main);
    let gateway = http_gateway(ip).replace("[log]\naccessLog = false\n", "");
    dir.write(
        "conf.d/gw.toml",
        &format!("{gateway}{}{ROUTE}", service(&echo)),
    );
    let addr = SocketAddr::from((ip, 8080));
    let gw = Gateway::start(dir, &[addr]);
    wait_answer(&gw, addr, "app.test", Some("svc")).await;
    (gw, addr, echo)
}

/// Waits until nothing listens on `addr` any more.
async fn wait_closed(gw: &Gateway, addr: SocketAddr) {
    eventually(gw, "the listener is closed", || async {
        match get_once(addr, "app.test", "/").await {
            Err(_) => Ok(()),
            Ok(r) => Err(format!("still answered {}", r.status)),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_change_that_stops_every_listener_is_refused_but_sighup_applies_it() {
    let (gw, addr, _echo) = gateway_in_conf_d("[log]\naccessLog = false\n").await;

    // Removing the only file with a Gateway: refused, still serving.
    let rejected = rejections(&gw);
    std::fs::remove_file(gw.dir.path().join("conf.d/gw.toml")).unwrap();
    wait_rejected_after(&gw, rejected, 1).await;
    let doc = status(&gw);
    let errors = doc["reload"]["errors"].to_string();
    assert!(
        errors.contains("refusing a file change that would stop all 1 serving listener"),
        "{errors}"
    );
    assert_eq!(doc["reload"]["trigger"], "file change");
    wait_answer(&gw, addr, "app.test", Some("svc")).await;

    // systemctl reload (SIGHUP) is an explicit request: applied, the listener closes.
    gw.reload();
    wait_applied_after(&gw, 1).await;
    wait_closed(&gw, addr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_empty_reload_lets_a_file_change_stop_every_listener() {
    let (gw, addr, _echo) =
        gateway_in_conf_d("[log]\naccessLog = false\n[runtime]\nallowEmptyReload = true\n").await;
    std::fs::remove_file(gw.dir.path().join("conf.d/gw.toml")).unwrap();
    wait_applied_after(&gw, 1).await;
    wait_closed(&gw, addr).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conf_d_symlink_loop_is_a_located_error_in_under_a_second() {
    let ip = unique_ip();
    let echo = Echo::start("svc");
    let dir = ConfigDir::with_main(&format!("{}{}{ROUTE}", http_gateway(ip), service(&echo)));
    std::fs::create_dir_all(dir.path().join("conf.d/a")).unwrap();
    let addr = SocketAddr::from((ip, 8080));
    let gw = Gateway::start(dir, &[addr]);
    wait_answer(&gw, addr, "app.test", Some("svc")).await;

    let rejected = rejections(&gw);
    let started = Instant::now();
    symlink("..", gw.dir.path().join("conf.d/a/up")).unwrap();
    symlink(".", gw.dir.path().join("conf.d/a/here")).unwrap();
    wait_rejected_after(&gw, rejected, 1).await;
    let took = started.elapsed();
    let errors = status(&gw)["reload"]["errors"].to_string();
    assert!(errors.contains("conf.d/a/here: symlink loop"), "{errors}");
    eprintln!("symlink loop rejected after {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    wait_answer(&gw, addr, "app.test", Some("svc")).await;

    let started = Instant::now();
    let out = gw.dir.check(&[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("conf.d/a/here: symlink loop"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_load_that_never_ends_exits_within_the_grace() {
    let ip = unique_ip();
    let echo = Echo::start("svc");
    let main = format!(
        "{}{}{ROUTE}\n[runtime]\nshutdownGrace = \"2s\"\n",
        http_gateway(ip),
        service(&echo)
    );
    let dir = ConfigDir::with_main(&main);
    let addr = SocketAddr::from((ip, 8080));
    let mut gw = Gateway::start(dir, &[addr]);
    wait_answer(&gw, addr, "app.test", Some("svc")).await;

    // A Secret whose certificate is a FIFO nobody writes: reading it never ends.
    let fifo = gw.dir.path().join("conf.d/cert.fifo");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let https = format!(
        "[[Secret]]\nname = \"stuck\"\ncertFile = 'cert.fifo'\nkeyFile = 'cert.fifo'\n[[Gateway]]\nname = \"tls\"\ngatewayClassName = \"gatehouse\"\naddresses = [{{ value = \"{ip}\" }}]\nlisteners = [{{ name = \"https\", protocol = \"HTTPS\", port = 8443, tls = {{ certificateRefs = [{{ name = \"stuck\" }}] }} }}]\n"
    );
    write_in_place(&gw.dir.path().join("conf.d/stuck.toml"), &https);
    eventually(&gw, "the reload is under way", || async {
        if gw.log().contains("reloading") {
            Ok(())
        } else {
            Err("no reload started".to_string())
        }
    })
    .await;
    // Long enough for the files to settle and the read to reach the FIFO.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(generation(&gw), 1, "the load is stuck, nothing applied");
    let started = Instant::now();
    let exit = gw.stop();
    let took = started.elapsed();
    eprintln!("stopped {took:?} after SIGTERM");
    assert!(exit.success(), "{exit:?}");
    assert!(
        took < Duration::from_secs(2) + Duration::from_secs(3),
        "took {took:?}"
    );
}
