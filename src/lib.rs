//! tower-handoff: tower middleware that lets HTTP requests survive what normally kills them.
//!
//! A server restarting in the middle of an upload, or a client whose connection dropped
//! before it got its answer, normally means a failed upload or a POST executed twice. This
//! facade re-exports the workspace's crates:
//!
//! - [`proto`] (`handoff-proto`): the wire formats, no I/O.
//! - `server` (`handoff-server`, feature `server`): layers for axum routers and any tower
//!   HTTP service, starting with Partial POST Replay on graceful shutdown.
//! - `client` (`handoff-client`, feature `client`): layers for a reverse proxy's or a
//!   client's upstream service, starting with the replay of a `379` on another backend.
//!
//! ```
//! use tower_handoff::proto::ppr;
//! assert_eq!(ppr::status().as_u16(), 379);
//! ```
//!
//! # Features
//!
//! - `server` (default): re-exports `handoff-server` as `tower_handoff::server`.
//! - `client` (default): re-exports `handoff-client` as `tower_handoff::client`.
//! - `full`: both.

pub use handoff_proto as proto;
pub use handoff_spool as spool;

#[cfg(feature = "client")]
pub use handoff_client as client;
#[cfg(feature = "server")]
pub use handoff_server as server;

/// The README's Rust snippets, compiled as doc tests with the paths a user writes.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeSnippets;
