//! Partial POST Replay, the origin side: hand unfinished uploads back to the proxy on shutdown.
//!
//! Implements `PROTOCOL.md` part A, server side (draft-frindell-httpbis-partial-post-replay §2.1).
//! While shutdown has not begun, [`PartialPostReplay`] is transparent. Once the [`Shutdown`]
//! handle is triggered, every in-flight request whose body is not complete is answered with
//! `379 Partial POST Replay`:
//!
//! - the headers echo the request (`Echo-*`, `Pseudo-Echo-*`), with no `Content-Length`; on
//!   HTTP/1.1 the response is chunked and carries `Connection: close`, on HTTP/2 the server's
//!   graceful shutdown sends GOAWAY;
//! - the body is every request-body byte received so far, *including those the handler
//!   already consumed*, then the bytes still arriving, until the proxy ends the request;
//! - the handler's future is dropped.
//!
//! Requests whose body is complete run to completion (they drain). So do requests whose
//! handler called [`ReplayControl::disable`] after an irreversible side effect, requests that
//! consumed more than [`max_echo_bytes`](PartialPostReplayLayer::max_echo_bytes) (4 GiB by
//! default) or found the layer's shared
//! [`max_total_echo_bytes`](PartialPostReplayLayer::max_total_echo_bytes) budget (16 GiB)
//! spent, and requests a [`ReplayPredicate`] ruled out.
//!
//! # Memory and disk
//!
//! Because the echo must include the bytes the handler already consumed (part A, server 4),
//! the layer copies every body byte the handler reads into a spool (`handoff-spool`) until
//! the body completes, the handler disables replay, or a bound is reached. The first
//! [`echo_memory_limit`](PartialPostReplayLayer::echo_memory_limit) bytes (128 KiB) stay in
//! memory, the rest goes to an unlinked temporary file
//! ([`echo_spool_dir`](PartialPostReplayLayer::echo_spool_dir)), written on tokio's blocking
//! pool; the handler's reads wait while more than two 256 KiB chunks are on their way to
//! disk. So memory per request is bounded whatever the body's size, and the byte bounds
//! are disk bounds: [`max_echo_bytes`](PartialPostReplayLayer::max_echo_bytes) per request
//! and [`max_total_echo_bytes`](PartialPostReplayLayer::max_total_echo_bytes) per layer. A
//! request whose spill file fails is logged at `warn` and drains instead of being handed
//! off. The record is released the moment the body completes.
//!
//! The cost: while it runs, every eligible upload past the memory limit is written to disk
//! once more than the handler writes it, and holds one file descriptor. Where the system's
//! temp dir is a tmpfs, that "disk" is memory: point `echo_spool_dir` at a real disk.
//!
//! # Prior knowledge
//!
//! A `379` must never reach an end user (part A, server 2). So by default the layer hands
//! back only requests that prove a proxy understanding `379` is in front: they carry
//! `Partial-Post-Replay` (`0` on a first attempt), which `handoff-client`'s replay layer
//! sets on every request it forwards and strips from its clients ([`ViaReplayProxy`]). A
//! request that reached the origin some other way drains on shutdown like any request.
//!
//! Behind a proxy that understands `379` but does not mark requests, opt out explicitly
//! with `.predicate(Always)` ([`Always`]), and only if *every* request comes through it;
//! or write a predicate for the traffic that does.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use handoff_server::replay::{PartialPostReplayLayer, RecordedBody};
//! use handoff_server::Shutdown;
//! use http::{Request, Response};
//! use http_body_util::{channel::Channel, BodyExt};
//! use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};
//!
//! // A slow upload handler: reads the whole body before answering.
//! async fn store(request: Request<RecordedBody<Channel<Bytes, BoxError>>>) -> Result<Response<String>, BoxError> {
//!     let body = request.into_body().collect().await?.to_bytes();
//!     Ok(Response::new(format!("stored {} bytes", body.len())))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let shutdown = Shutdown::new();
//! let service = ServiceBuilder::new()
//!     .layer(PartialPostReplayLayer::new(shutdown.clone()))
//!     .service(service_fn(store));
//!
//! // The upload is half-way through when the deploy begins.
//! let (mut upload, body) = Channel::<Bytes, BoxError>::new(4);
//! upload.send_data(Bytes::from_static(b"first half, ")).await.unwrap();
//! // Forwarded by a replay proxy, which marks every request it sends (see below).
//! let request = Request::post("/upload")
//!     .header("partial-post-replay", "0")
//!     .header("x-id", "7")
//!     .body(body)
//!     .unwrap();
//! let deploy = shutdown.clone();
//! tokio::spawn(async move { deploy.trigger() }); // runs once the handler waits for more
//!
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status().as_u16(), 379);
//! assert_eq!(response.headers()["echo-x-id"], "7");
//! assert_eq!(response.headers()["pseudo-echo-path"], "/upload");
//!
//! // The echo replays the consumed bytes, then whatever still arrives.
//! upload.send_data(Bytes::from_static(b"second half")).await.unwrap();
//! drop(upload); // the proxy ends the request
//! let echo = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(echo, "first half, second half");
//! # }
//! ```

mod body;
mod control;
mod echo;
mod future;
mod layer;
mod predicate;
mod recorder;
mod service;

pub use self::body::ResponseBody;
pub use self::control::ReplayControl;
pub use self::echo::EchoBody;
pub use self::future::ResponseFuture;
pub use self::layer::{
    PartialPostReplayLayer, DEFAULT_ECHO_MEMORY_LIMIT, DEFAULT_MAX_ECHO_BYTES,
    DEFAULT_MAX_TOTAL_ECHO_BYTES,
};
pub use self::predicate::{Always, ReplayPredicate, ViaReplayProxy};
pub use self::recorder::{HandedOff, RecordedBody};
pub use self::service::PartialPostReplay;

#[allow(unused_imports)] // for the intra-doc links above
use crate::Shutdown;
