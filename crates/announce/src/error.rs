//! `AnnounceError`: everything that can go wrong while announcing a VIP.
//!
//! A [`LinkSender`](crate::LinkSender) returns these; the schedule logs them and counts them
//! per VIP and reason, and never stops announcing because of one. The messages are written for
//! an operator reading the journal: they name the interface, what was being sent, and (for the
//! usual deployment mistake) the capability that is missing.

use std::io;

/// Why a frame could not be sent or an interface could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// A netlink request (listing, adding or removing addresses) failed.
    #[error("{0}")]
    Netlink(String),
    /// No interface by that name exists (in this network namespace).
    #[error("no network interface named {interface:?}")]
    NoSuchInterface { interface: String },

    /// The interface exists but has no link-layer (MAC) address, e.g. a tun or WireGuard
    /// device, so ARP and neighbour discovery do not apply to it.
    #[error(
        "interface {interface} has no MAC address; ARP and neighbour discovery need an Ethernet-like link"
    )]
    NoMacAddress { interface: String },

    /// Opening the raw socket was refused: the process lacks `CAP_NET_RAW`.
    ///
    /// Displays as `sending a gratuitous ARP on eth1 needs CAP_NET_RAW: Operation not permitted`.
    #[error(
        "sending {what} on {interface} needs CAP_NET_RAW: {}",
        os_message(error)
    )]
    PermissionDenied {
        interface: String,
        /// What was being sent, e.g. "a gratuitous ARP".
        what: &'static str,
        error: io::Error,
    },

    /// Any other operating-system error while opening the socket or sending.
    #[error("{action} {what} on {interface}: {}", os_message(error))]
    Io {
        interface: String,
        /// "opening a raw socket for" or "sending".
        action: &'static str,
        what: &'static str,
        error: io::Error,
    },

    /// The datalink backend returned something other than an Ethernet channel.
    #[error("interface {interface} did not give an Ethernet (AF_PACKET) channel")]
    UnsupportedChannel { interface: String },

    /// A schedule was started outside a Tokio runtime (a programming error in the caller).
    #[error("the VIP announcer must be used inside a Tokio runtime")]
    NoRuntime,
}

/// The OS description of an error without Rust's " (os error N)" suffix, so the message reads
/// like the C library's `strerror` ("Operation not permitted").
fn os_message(error: &io::Error) -> String {
    let text = error.to_string();
    match (error.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(cut)) => text[..cut].to_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_names_the_capability_and_the_interface() {
        let err = AnnounceError::PermissionDenied {
            interface: "eth1".into(),
            what: "a gratuitous ARP",
            error: io::Error::from_raw_os_error(1),
        };
        assert_eq!(
            err.to_string(),
            "sending a gratuitous ARP on eth1 needs CAP_NET_RAW: Operation not permitted"
        );
    }

    #[test]
    fn io_error_reads_like_strerror() {
        let err = AnnounceError::Io {
            interface: "eth1".into(),
            action: "sending",
            what: "an unsolicited neighbour advertisement",
            error: io::Error::from_raw_os_error(100),
        };
        assert_eq!(
            err.to_string(),
            "sending an unsolicited neighbour advertisement on eth1: Network is down"
        );
    }

    #[test]
    fn non_os_errors_keep_their_text() {
        assert_eq!(
            os_message(&io::Error::new(io::ErrorKind::TimedOut, "Timed out")),
            "Timed out"
        );
    }
}
