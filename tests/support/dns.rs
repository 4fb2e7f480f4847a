//! DNS for the UDPRoute tests: dnsmasq as the real server behind gatehouse (answering a TXT
//! record with its own name, so a test sees which backend answered), and a minimal client
//! that sends one standard query per call from a fresh socket (a new flow each time).

use crate::peers::Peer;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// A dnsmasq on `addr` answering `www.test A 192.0.2.10` and `who.test TXT <name>`, and
/// nothing else (no upstream, no hosts file).
pub fn dnsmasq(addr: SocketAddr, name: &str) -> Option<Peer> {
    let config = format!(
        "port={port}\nlisten-address={ip}\nbind-interfaces\nno-resolv\nno-hosts\n\
         user=root\ngroup=root\npid-file={{dir}}/dnsmasq.pid\n\
         host-record=www.test,192.0.2.10\ntxt-record=who.test,\"{name}\"\n",
        port = addr.port(),
        ip = addr.ip(),
    );
    Peer::start("dnsmasq", &config, &[addr])
}

/// The record types the tests ask for.
#[derive(Clone, Copy, Debug)]
pub enum Type {
    A = 1,
    Txt = 16,
}

/// A DNS query for `name`, id `id`, recursion desired.
pub fn query(id: u16, name: &str, qtype: Type) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, qtype as u8, 0, 1]);
    q
}

/// An answer and where it came from.
#[derive(Debug)]
pub struct Answer {
    pub bytes: Vec<u8>,
    pub from: SocketAddr,
}

impl Answer {
    /// Whether the answer's id is `id`, it is a response with no error, and it has at
    /// least one answer record.
    pub fn answers(&self, id: u16) -> bool {
        self.bytes.len() >= 12
            && self.bytes[..2] == id.to_be_bytes()
            && self.bytes[2] & 0x80 != 0
            && self.bytes[3] & 0x0f == 0
            && u16::from_be_bytes([self.bytes[6], self.bytes[7]]) >= 1
    }

    /// Whether `text` appears in the answer (a TXT string, an address's bytes).
    pub fn contains(&self, text: &[u8]) -> bool {
        self.bytes.windows(text.len()).any(|w| w == text)
    }
}

/// Sends `packet` to `server` from `socket` and waits up to `wait` for the answer.
pub fn exchange_on(
    socket: &UdpSocket,
    server: SocketAddr,
    packet: &[u8],
    wait: Duration,
) -> Option<Answer> {
    socket.set_read_timeout(Some(wait)).ok()?;
    socket.send_to(packet, server).ok()?;
    let mut buf = [0u8; 4096];
    let (n, from) = socket.recv_from(&mut buf).ok()?;
    Some(Answer {
        bytes: buf[..n].to_vec(),
        from,
    })
}

/// A client socket on `127.0.0.1` (a new source port: a new flow).
pub fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind a UDP client socket")
}

/// Asks `server` for `name` from a fresh socket.
pub fn ask(server: SocketAddr, id: u16, name: &str, qtype: Type, wait: Duration) -> Option<Answer> {
    exchange_on(&client(), server, &query(id, name, qtype), wait)
}
