//! Server-side layers of tower-handoff: let requests survive the server's own restart.
//!
//! A deploy restarts origin servers one by one. Requests that are still uploading when the
//! restart begins normally fail (the server stops reading) or hold the restart hostage
//! (the server waits for them). [`replay::PartialPostReplayLayer`] implements the origin side
//! of Partial POST Replay (`PROTOCOL.md` part A): on graceful shutdown it answers every
//! request whose body is still arriving with `379`, echoing the request's headers and every
//! body byte back to the reverse proxy, which replays the request on another origin. The
//! proxy side is `handoff-client`'s replay layer. [`interim`] lets a handler put headers on
//! hyper's HTTP/1.1 `100 Continue` and send more interim responses, which resumable uploads
//! need (docs/PROTOCOL.md part C).
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use handoff_server::{replay::PartialPostReplayLayer, Shutdown};
//!
//! # async fn upload(body: axum::body::Bytes) -> String { body.len().to_string() }
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! let shutdown = Shutdown::new();
//! let app = Router::new()
//!     .route("/upload", post(upload))
//!     .layer(PartialPostReplayLayer::new(shutdown.clone()));
//!
//! // Trigger the handle on SIGTERM; the same signal drains the server.
//! let trigger = shutdown.clone();
//! tokio::spawn(async move {
//!     tokio::signal::ctrl_c().await.ok();
//!     trigger.trigger();
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(shutdown.signalled())
//!     .await
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `axum` (default): `interim::InterimListener` and `interim::WithInterimHandle`, the
//!   interim-response hook for `axum::serve`.

pub mod interim;
pub mod replay;
pub mod resume;
mod shutdown;

pub use shutdown::{Shutdown, Signalled};

/// The boxed error of the bodies this crate builds.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
