//! A plain TCP backend for TCPRoute and TLS-terminate tests: on each connection it greets with
//! its name and a newline, echoes every byte it reads, and once the client has closed its
//! sending side (EOF) writes `bye\n` and closes its own. The greeting tells which backend a
//! connection reached; the `bye` after EOF shows a half-close went through.

use crate::unique_ip;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A running TCP echo backend on a loopback address of its own.
#[derive(Debug)]
pub struct TcpBackend {
    pub name: String,
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TcpBackend {
    /// Listens on a fresh loopback address, port 3000.
    pub fn start(name: &str) -> TcpBackend {
        let listener =
            TcpListener::bind(SocketAddr::from((unique_ip(), 3000))).expect("bind TCP backend");
        let addr = listener.local_addr().expect("local address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (greeting, count, stopping) = (format!("{name}\n"), accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let greeting = greeting.clone();
                std::thread::spawn(move || serve(conn, greeting.as_bytes()));
            }
        });
        TcpBackend {
            name: name.to_string(),
            addr,
            accepted,
            stop,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn serve(mut conn: TcpStream, greeting: &[u8]) {
    if conn.write_all(greeting).is_err() {
        return;
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let _ = conn.write_all(b"bye\n");
    let _ = conn.shutdown(Shutdown::Write);
}

impl Drop for TcpBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}
