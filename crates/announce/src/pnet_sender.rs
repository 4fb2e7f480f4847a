//! The real [`LinkSender`]: raw Ethernet frames through `pnet_datalink` (Linux `AF_PACKET`).
//!
//! Each [`send`](LinkSender::send) looks the interface up by name, opens an `AF_PACKET`
//! socket bound to it, writes the frame and closes the socket. Announcements are a few frames
//! a second at most, so the socket is not kept: a long-lived `ETH_P_ALL` socket would receive
//! a copy of every packet on the interface for nothing, and a fresh lookup follows an interface
//! that was deleted and re-created. The write waits at most [`WRITE_TIMEOUT`] for buffer
//! space, so it never stalls the announcer's task for long. The socket is not promiscuous.
//!
//! Opening the socket needs `CAP_NET_RAW`; without it the error says so and names the
//! interface and the kind of frame (the systemd unit grants the capability).

use crate::error::AnnounceError;
use crate::frames;
use crate::schedule::LinkSender;
use pnet_datalink::{Channel, Config, MacAddr, NetworkInterface};
use std::io;
use std::time::Duration;

/// How long a send waits for the socket to become writable.
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(200);

/// Sends frames with `pnet_datalink` over `AF_PACKET`. Holds no sockets between sends.
#[derive(Clone, Copy, Debug, Default)]
pub struct PnetSender;

impl PnetSender {
    pub fn new() -> Self {
        PnetSender
    }
}

impl LinkSender for PnetSender {
    fn send(&self, interface: &str, frame: &[u8]) -> Result<(), AnnounceError> {
        let link = find(interface)?;
        let what = frames::describe(frame);
        let config = Config {
            // `send_to` writes the caller's slice directly; these buffers go unused.
            write_buffer_size: 64,
            read_buffer_size: 64,
            write_timeout: Some(WRITE_TIMEOUT),
            promiscuous: false,
            ..Config::default()
        };
        let channel = pnet_datalink::channel(&link, config)
            .map_err(|error| os_error(interface, "opening a raw socket for", what, error))?;
        let Channel::Ethernet(mut tx, _rx) = channel else {
            return Err(AnnounceError::UnsupportedChannel {
                interface: interface.to_owned(),
            });
        };
        match tx.send_to(frame, None) {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) => Err(os_error(interface, "sending", what, error)),
            // Only the macOS/BPF backend returns None (buffer too small); report it anyway.
            None => Err(os_error(
                interface,
                "sending",
                what,
                io::Error::other("the datalink backend did not send the frame"),
            )),
        }
    }

    fn mac(&self, interface: &str) -> Result<[u8; 6], AnnounceError> {
        match find(interface)?.mac {
            Some(MacAddr(a, b, c, d, e, f)) => Ok([a, b, c, d, e, f]),
            None => Err(AnnounceError::NoMacAddress {
                interface: interface.to_owned(),
            }),
        }
    }
}

/// The interface called `name` in this network namespace.
pub(crate) fn find(name: &str) -> Result<NetworkInterface, AnnounceError> {
    pnet_datalink::interfaces()
        .into_iter()
        // Index 0 means the interface vanished between listing and lookup.
        .find(|link| link.name == name && link.index != 0)
        .ok_or_else(|| AnnounceError::NoSuchInterface {
            interface: name.to_owned(),
        })
}

/// Classifies an OS error: a refused raw socket means a missing capability.
pub(crate) fn os_error(
    interface: &str,
    action: &'static str,
    what: &'static str,
    error: io::Error,
) -> AnnounceError {
    let interface = interface.to_owned();
    match error.kind() {
        io::ErrorKind::PermissionDenied => AnnounceError::PermissionDenied {
            interface,
            what,
            error,
        },
        io::ErrorKind::NotFound => AnnounceError::NoSuchInterface { interface },
        _ => AnnounceError::Io {
            interface,
            action,
            what,
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_interface_is_a_clear_error() {
        let sender = PnetSender::new();
        let frame = frames::gratuitous_arp([2, 0, 0, 0, 0, 1], [192, 0, 2, 1].into());
        let err = sender.send("gh-no-such0", &frame).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no network interface named \"gh-no-such0\""
        );
        assert!(matches!(
            sender.mac("gh-no-such0"),
            Err(AnnounceError::NoSuchInterface { .. })
        ));
    }

    #[test]
    fn loopback_is_found_by_name() {
        // Every network namespace has `lo`; its MAC is all zeros.
        assert_eq!(PnetSender::new().mac("lo").unwrap(), [0; 6]);
    }

    #[test]
    fn permission_errors_name_the_missing_capability() {
        let err = os_error(
            "eth1",
            "opening a raw socket for",
            "a gratuitous ARP",
            io::Error::from_raw_os_error(1),
        );
        assert_eq!(
            err.to_string(),
            "sending a gratuitous ARP on eth1 needs CAP_NET_RAW: Operation not permitted"
        );
        let err = os_error(
            "eth1",
            "sending",
            "a frame",
            io::Error::from_raw_os_error(19),
        );
        assert!(matches!(err, AnnounceError::Io { .. }), "{err:?}");
        assert_eq!(err.to_string(), "sending a frame on eth1: No such device");
    }
}
