//! VIP announcement: gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6).
//!
//! After the daemon adds a VIP to an interface (so the kernel answers ARP / neighbour
//! solicitations for it), gatehouse tells the LAN where the address now lives, as keepalived
//! and kube-vip do: a burst when the address comes up, a periodic refresh, and another burst
//! when the link comes back. This is the only crate that uses pnet.
//!
//! Modules, in the order a frame meets them:
//! - [`schedule`]: the [`Announcer`] (per-VIP Tokio tasks: up burst, refresh, link-up burst,
//!   withdrawal), per-VIP/reason counters, and the [`LinkSender`] trait it sends through.
//! - [`frames`]: the exact frame bytes, pure functions.
//! - [`pnet_sender`]: [`PnetSender`], the `AF_PACKET` implementation of [`LinkSender`].
//! - [`netlink`]: addresses and links over rtnetlink (`ip addr add/del`, `ip link`).
//! - [`vips`]: the [`vips::VipManager`], which puts VIPs on and takes them off interfaces.
//! - [`error`]: [`AnnounceError`], the one error type.

pub mod error;
pub mod frames;
pub mod netlink;
pub mod pnet_sender;
pub mod schedule;
pub mod vips;

pub use error::AnnounceError;
pub use pnet_sender::PnetSender;
pub use schedule::{Announcer, CounterKey, Counts, FrameEvent, LinkSender, Observer, Reason};
