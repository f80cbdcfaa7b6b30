//! Client-side tower layers of tower-handoff, for reverse proxies.
//!
//! An origin server that restarts in the middle of an upload normally costs the client a
//! failed request. With Partial POST Replay (`PROTOCOL.md` part A) the origin hands every
//! unfinished request back to the proxy in front of it with a `379` status whose body echoes
//! the bytes it received; this crate's [`replay::ReplayLayer`] wraps the proxy's upstream
//! service and replays such requests on another backend, verifying the echo against a
//! running keyed tag of what it forwarded, so the client never notices and never re-sends a
//! byte. Its [`replay::policy`] picks the backend of each attempt (a list of origins for a
//! plain hyper-util client, or a balancer of your own); [`backend`] holds the two extensions
//! through which the layer and such a balancer agree on "another backend".
//!
//! ```no_run
//! use bytes::Bytes;
//! use handoff_client::replay::policy::Backends;
//! use handoff_client::replay::{ReplayBody, ReplayLayer};
//! use http::Request;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{BoxError, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), BoxError> {
//! // A plain hyper-util client; the layer points each attempt at one of the origins, and
//! // each replay at one that did not hand the request back.
//! let origins = Backends::new(["http://10.0.0.1:8080", "http://10.0.0.2:8080"])?;
//! let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
//! let proxy = ServiceBuilder::new()
//!     .layer(ReplayLayer::with_policy(origins))
//!     .service(client);
//! let res = proxy
//!     .oneshot(Request::post("/upload").body(Full::new(Bytes::from("payload")))?)
//!     .await?;
//! println!("{}", res.status());
//! # Ok(())
//! # }
//! ```
//!
//! Over a balancer of your own instead, keep the default policy and let the balancer read
//! the [`backend`] extensions (see [`replay`]'s "Where each attempt goes").
//!
//! # Features
//!
//! - `replay` (default): the [`replay`] module, Partial POST Replay on the proxy side.
//! - `full`: every feature.
//!
//! The [`backend`] extensions are always available.

pub mod backend;
#[cfg(feature = "replay")]
pub mod replay;
#[cfg(feature = "resume")]
pub mod resume;

/// The boxed error of request and response bodies.
#[cfg(any(feature = "replay", feature = "resume"))]
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
