//! The compiled, immutable gatehouse configuration and the pure Gateway API matchers.
//!
//! `gatehouse-config` turns TOML into a [`Snapshot`] (what the data plane serves) and a
//! [`Status`] (the Gateway API conditions of every resource). Everything here is plain data
//! plus pure functions: no I/O, no async runtime, no proxy library. The data plane loads one
//! `Arc<Snapshot>` per connection or request and only walks tables that were put in
//! precedence order at compile time.
//!
//! Modules, in the order a request meets them:
//! - [`hostname`]: Gateway API hostnames, wildcards, intersection and listener selection.
//! - [`listener`]: listeners grouped by port, chosen by Host or SNI.
//! - [`http`]: HTTPRoute matches, their precedence, and the per-listener route table.
//! - [`filter`]: compiled HTTPRoute filters.
//! - [`backend`]: Services, endpoints, backendRefs and the weighted choice.
//! - [`backend_tls`]: BackendTLSPolicy, compiled: TLS to a Service port.
//! - [`tls`]: certificates (parsed PEM) and the TLSRoute SNI table.
//! - [`settings`]: daemon settings (`[admin]`, `[log]`, `[runtime]`, `[announce]`).
//! - [`status`]: Gateway API status: conditions, reasons, per-resource status.

pub mod backend;
pub mod backend_tls;
pub mod conn;
pub mod cors;
pub mod decide;
pub mod explain;
pub mod filter;
pub mod hostname;
pub mod http;
pub mod listener;
pub mod path;
pub mod resource;
pub mod respond;
pub mod settings;
pub mod snapshot;
pub mod status;
pub mod tls;

pub use resource::{Kind, ResourceKey};
pub use snapshot::Snapshot;
pub use status::Status;
