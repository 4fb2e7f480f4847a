//! Shared by the BackendTLSPolicy tests (`backend_tls.rs`, `backend_tls_l4.rs`): a test CA
//! (rcgen) with server and client leaves, `openssl s_server` as a TLS backend (a web page, or
//! an echo of reversed lines for raw streams; optionally requiring a client certificate),
//! and a wait on the gateway's log.

use crate::{ConfigDir, Gateway, unique_ip};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A test certificate authority.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `dns` names and `uris`, valid now unless `expired`; returns
    /// (certificate PEM, key PEM).
    pub fn leaf(&self, dns: &[&str], uris: &[&str], expired: bool) -> (String, String) {
        let mut params =
            CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, dns[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        for u in uris {
            params
                .subject_alt_names
                .push(SanType::URI((*u).try_into().expect("URI SAN")));
        }
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        (cert.pem(), key.serialize_pem())
    }

    /// A client certificate (clientAuth) for `name`: (certificate PEM, key PEM).
    pub fn client_leaf(&self, name: &str) -> (String, String) {
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("client params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("client key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign client leaf");
        (cert.pem(), key.serialize_pem())
    }
}

/// `openssl s_server` on a loopback address of its own, killed when dropped.
#[derive(Debug)]
pub struct TlsBackend {
    child: Child,
    pub addr: SocketAddr,
}

impl TlsBackend {
    /// `s_server -www`: answers any request with a page about the TLS session.
    pub fn start(dir: &ConfigDir, name: &str, pair: (String, String)) -> TlsBackend {
        TlsBackend::start_with(dir, name, pair, &["-www"])
    }

    /// `s_server` with `args` (e.g. `-rev`, `-Verify 1 -CAfile ...`) in place of `-www`.
    pub fn start_with(
        dir: &ConfigDir,
        name: &str,
        (cert, key): (String, String),
        args: &[&str],
    ) -> TlsBackend {
        let addr = SocketAddr::from((unique_ip(), 8443));
        dir.write(&format!("backends/{name}.pem"), &cert);
        dir.write(&format!("backends/{name}-key.pem"), &key);
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-accept", &addr.to_string()])
            .args(args)
            .arg("-cert")
            .arg(dir.path().join(format!("backends/{name}.pem")))
            .arg("-key")
            .arg(dir.path().join(format!("backends/{name}-key.pem")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn openssl s_server");
        let b = TlsBackend { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "openssl s_server never listened on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: `openssl` is not installed (apt-get install openssl)");
    }
    ok
}

/// Waits until `gatehouse`'s log holds `needle` (log lines are written asynchronously).
pub fn log_has(gw: &Gateway, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if gw.log().contains(needle) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
