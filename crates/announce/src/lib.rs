//! VIP ownership and announcement: gratuitous ARP (IPv4) and unsolicited neighbour
//! advertisements (IPv6).
//!
//! The daemon uses one [`Announcer`]: `apply` after each configuration, `tick` once a
//! second, `host_addresses`, `shutdown`. It puts each VIP on an interface (after checking
//! that no other host on the link answers for it), records that the address is gatehouse's
//! (a state file and an address tag), and tells the LAN where the address now lives, as
//! keepalived and kube-vip do: a burst when the address comes up, a periodic refresh, and
//! another burst when the link comes back. This is the only crate that uses pnet.
//!
//! Modules, in the order a VIP meets them:
//! - [`announcer`]: the façade, [`Announcer`], and its [`Report`] of each VIP's [`VipState`].
//! - `manager`: puts VIPs on and takes them off interfaces, adopts gatehouse's addresses
//!   left by a crash, retries unusable VIPs.
//! - `ownership`: `<stateDir>/vips.json` and the `IFA_PROTO` tag
//!   ([`GATEHOUSE_PROTO`]) that mark gatehouse's addresses.
//! - `probe`: duplicate address detection (ARP probes, DAD solicitations) before a VIP is
//!   added.
//! - `netlink`: addresses and links over rtnetlink (`ip addr add/del`, `ip link`).
//! - [`schedule`]: the [`Schedule`] (per-VIP Tokio tasks: up burst, refresh, link-up burst,
//!   withdrawal), per-VIP/reason counters, and the [`LinkSender`] trait it sends through.
//! - [`frames`]: the exact frame bytes, pure functions.
//! - `pnet_sender`: [`PnetSender`], the `AF_PACKET` implementation of [`LinkSender`].
//! - [`keepalived`]: `[announce] mode = "keepalived"`: the include file for keepalived
//!   ([`keepalived::render`], pure) and reading which VIPs this box holds.
//! - [`error`]: [`AnnounceError`], the one error type.
//!
//! [`schedule`], [`frames`] and [`PnetSender`] stay public for the crate's own
//! integration test, which puts real frames on a veth link.

pub mod announcer;
pub mod error;
pub mod frames;
pub mod keepalived;
mod manager;
mod netlink;
mod ownership;
mod pnet_sender;
mod probe;
pub mod schedule;

pub use announcer::{Announcer, Report, VipState};
pub use error::AnnounceError;
pub use ownership::GATEHOUSE_PROTO;
pub use pnet_sender::PnetSender;
pub use probe::DURATION as PROBE_DURATION;
pub use schedule::{CounterKey, Counts, FrameEvent, LinkSender, Observer, Reason, Schedule};
