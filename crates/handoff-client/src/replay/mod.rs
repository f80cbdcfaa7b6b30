//! Replay requests that an origin hands back with `379 Partial POST Replay`.
//!
//! An origin that shuts down answers every request whose body it has not fully received
//! with a `379` whose body echoes the request-body bytes it got (`PROTOCOL.md` part A, server
//! side). [`ReplayLayer`] goes around a reverse proxy's upstream service (hyper-util's
//! client, or a balancer over it) and turns that `379` into a replay on another backend, so
//! the end client never sees an error and never re-sends a byte (part A, intermediary side):
//!
//! 1. Each request body is forwarded as it arrives, counted and tagged with a keyed hash
//!    (HighwayHash under a random per-request key; see "The echo check"); the layer keeps no
//!    copy of it. [`ReplayStats::max_held_bytes`] stays at one frame per request. Only a
//!    `379`'s echo is kept, for as long as the replay needs it (see below).
//! 2. On a `379` the layer stops forwarding to that origin and rebuilds the request from its
//!    own copy of the head (never from the `Echo-` headers; `Host` kept as the first attempt
//!    had it), with `Partial-Post-Replay: k` (a client's own one is never forwarded) and with
//!    the origin added to the [`AvoidBackends`] request extension; the [`policy`] then points
//!    it at another upstream. Its body is the echo, then the rest of the client's body.
//! 3. The echo is taken from the old origin as fast as it sends it, into a spool (see
//!    below), and checked against the count and the digest of what was forwarded *before*
//!    the frame that completes it is sent on, so a new origin never receives a complete
//!    request made of altered bytes. Once the spool holds the whole echo, the old exchange
//!    is dropped, whatever the pace of the replay.
//! 4. A wrong echo (too long, too short, different bytes), an echo that stalls longer than
//!    [`ReplayLayer::echo_timeout`], more than [`ReplayLayer::max_replays`] replays, or an
//!    upstream error during a replay answers the client `502` (short plain text) and logs a
//!    `warn` line; the replayed upstream request is aborted with an error so its origin
//!    never sees it complete.
//! 5. A replay's response, whatever its status, is held until its echo is verified
//!    (intermediary 6), then passed to the client as is; see below when it comes before its
//!    upstream read the whole echo.
//!
//! # The echo check
//!
//! The layer keeps a 128-bit tag of the bytes it forwards to each origin, never the bytes,
//! and compares it with the tag of the echo before the frame that completes the echo goes
//! on. The tag is HighwayHash-128 (the `highway` crate), a keyed pseudorandom function,
//! under a 256-bit key drawn at random for each client request.
//!
//! Why an origin cannot make a different echo pass: without the key, HighwayHash's output
//! on any input is meant to be indistinguishable from random bits, even for inputs the
//! origin chose. The key never leaves the layer (neither it nor any tag is sent or logged,
//! and nothing an origin sees depends on it). Echoes are compared only at the forwarded
//! length (part A, intermediary 4). One key serves every attempt of the request, but the
//! first comparison of two different streams decides: a mismatch fails the whole request
//! (every attempt's body fails, no further replay), so an origin gets one blind try and no
//! oracle. Whatever it sends, knowing the forwarded bytes but not the key, a different echo
//! passes with probability `2^-128` plus its advantage in telling HighwayHash from a random
//! function, per request (`max_replays` times that, counting every allowed replay as a try).
//!
//! This is a computational guarantee, like that of the SHA-256 digest the layer used first
//! (collision resistance), and it rests on HighwayHash's design and public analysis rather
//! than on a proof. A universal hash such as POLYVAL has a proven `n / 2^128` bound for `n`
//! 16-byte blocks, and the layer used it before, but it cost 0.20-0.30 s of CPU per GiB on
//! the development machine against 0.08 s for HighwayHash (and 0.69 s for SHA-256), which
//! was most of what the layer added to a proxy's CPU. The comparison is not constant-time,
//! which is fine for the same reason: a mismatch ends the request.
//!
//! # The echo spool
//!
//! An origin that answers `379` is shutting down, usually within a short drain window, and
//! the origin that gets the replay may read slowly. So the layer does not pull an echo at
//! the replay's pace: a task per echo reads it as fast as the old origin sends it into a
//! spool (`handoff-spool`): the first [`echo_memory_limit`](ReplayLayer::echo_memory_limit)
//! bytes (256 KiB) in memory, the rest in an unlinked temporary file
//! ([`echo_spool_dir`](ReplayLayer::echo_spool_dir)). The replay's body reads the spool. The
//! old origin's exit then depends on its own send rate only, and over HTTP/2 no echo waits
//! on another stream's flow-control window. The task reads exactly the forwarded count (a
//! frame going past it fails the echo as too long), each wait bounded by
//! [`echo_timeout`](ReplayLayer::echo_timeout).
//!
//! An echo's size is known when its `379` arrives (the bytes forwarded to that origin), so
//! its spool is reserved in full then, against two bounds:
//! [`max_echo_spool_bytes`](ReplayLayer::max_echo_spool_bytes) per echo and
//! [`max_total_echo_spool_bytes`](ReplayLayer::max_total_echo_spool_bytes) for the layer
//! (4 GiB and 16 GiB by default). A replay handed back while it still sends an older echo
//! spools its own echo beside the older one, so one request holds at most
//! `max_replays + 1` echoes at once; the total bound holds whatever happens. A `379` whose
//! echo does not fit is answered `503`
//! (logged at `warn`); what the spools hold now is
//! [`echo_spool_budget`](ReplayLayer::echo_spool_budget)`().used()`, and
//! [`ReplayStats::spooled_bytes`] counts what went through them.
//!
//! # A replay nobody takes
//!
//! The replay goes through the inner service like any request. If no upstream takes it
//! within [`replay_timeout`](ReplayLayer::replay_timeout) (10 s: the service never becomes
//! ready, the connect never completes, the replay's body is never polled), the client gets
//! `502`. Once an upstream took it, the echo must keep moving: an upstream that reads none
//! of it for between one and two [`echo_timeout`](ReplayLayer::echo_timeout)s before it
//! answers (an HTTP/2 window that never opens) gets the client a `502` too. Once the echo
//! is sent, only the upstream's own timeouts apply, however long the upload.
//!
//! # Trailers
//!
//! A `379`'s echo carries body bytes only. The layer keeps the client's trailers once it
//! has forwarded them, and a replay sends them again after the echo and the rest of the
//! body.
//!
//! # Answers that come before the echo is read
//!
//! Only the replay's request body, pulled by its upstream connection, sends an echo on. An
//! upstream may answer without reading it all: a balancer's `503` when no backend is left,
//! an origin's early `413` or `400`, an origin that answers and closes. Its answer gets no
//! special treatment by status; it is held until the echo it carries is verified
//! (intermediary 6), and what matters is whether anybody still pulls the echo:
//!
//! - **The replay's body is dropped** (the balancer never sent it, hyper's connection
//!   ended): once the answer is in, the layer reads the rest of the echo from its spool
//!   itself, at once. If instead the upstream hands the request back (`379`), nothing was
//!   lost: the next replay sends every echoed byte.
//! - **The body is alive but not polled** (the upstream keeps the connection but stopped
//!   reading): once the answer is in and no echoed byte went through the body for between
//!   one and two [`echo_timeout`](ReplayLayer::echo_timeout)s, the layer takes the echo over
//!   the same way. Before the answer arrives an idle body is left alone, as for any request:
//!   hyper may still be connecting.
//! - **The body is alive and polled**: the answer is held while the body sends the echo, as
//!   for any replay (full-duplex upstreams answer early and keep reading).
//!
//! Reading it itself, the layer checks the echo exactly as the body would (count and tag,
//! part A intermediary 4 and 6), one frame at a time, and discards the bytes. A verified
//! echo lets the answer through unchanged (so a balancer's `503` reaches the client as
//! `503`); a wrong one answers `502`. The replay's upload can never be completed after that:
//! if its body is still alive it stays pending until the response passed for it is read to
//! its end or dropped, then fails (so hyper closes that connection without cutting the
//! response short).
//!
//! # Where each attempt goes
//!
//! Before each attempt the layer asks its [`policy::Policy`] to point the request at an
//! upstream, given the backends to avoid: [`policy::Backends`] rewrites the URI for a plain
//! hyper-util `Client`; the default, [`policy::Balancer`], leaves the choice to a balancer
//! beneath the layer (tower's balancers choose a backend before they see the request), which
//! must skip the backends in the request's [`AvoidBackends`], tag responses with
//! [`ServedBy`], and answer `503` itself when no backend is left (see
//! [`backend`](crate::backend)). To avoid the origin that sent a `379` the layer takes its
//! [`ServedBy`], else the backend the policy chose; without either it answers `502`: not
//! knowing which origin is shutting down, a replay could go right back to it. Every origin
//! that handed the request back stays in its [`AvoidBackends`], with the time it did
//! ([`handed_back_at`](crate::backend::AvoidBackends::handed_back_at)), so that it gets the
//! request again only once it came up again since.
//!
//! # How the module is built
//!
//! What remains to send of a request is a `Chain` (the echoes to verify, newest first, then
//! the rest of the client's body and its trailers), owned by the attempt that sends it; a
//! `379` moves it to the next attempt. An attempt's body and the response future share only
//! the attempt's stage: `Sending(chain)`, `Parked` (forwards nothing and stays pending), or
//! `Ended(kind)` (fails, so hyper ends that exchange). The echo check is a pure type, and
//! each echo is read into its spool by a task of its own.
//!
//! The inner service gets `Request<ReplayBody<B>>`. [`ReplayBody`] is `Send + Unpin +
//! 'static`, as hyper-util's `Client` needs, and fails (rather than ends) when the layer
//! stops an upstream request, because hyper tears the connection down when a request body
//! fails and would refuse a body shorter than its `Content-Length`.
//!
//! # How this meets hyper
//!
//! Read from hyper 1's HTTP/1 client dispatcher and checked over real sockets (see
//! `tests/real_sockets.rs`):
//!
//! - the response head is delivered as soon as it arrives, while the request body is still
//!   being written, and the response body streams alongside: a `379` and its echo reach the
//!   layer mid-upload;
//! - a request body that fails tears the connection down, and any response body still
//!   streaming on it ends with an error: so the old attempt's body fails only once its echo
//!   is complete;
//! - a request body that ends early is refused when a `Content-Length` was sent, and ends a
//!   chunked message cleanly otherwise (the origin would take it as complete): so the layer
//!   never ends a body early;
//! - a pending request body keeps its connection task alive even after the response body
//!   was dropped: so a detached attempt's body is always woken and failed;
//! - hyper-util's client adds `Host` only when absent: the replay drops it.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use handoff_client::backend::{AvoidBackends, ServedBy};
//! use handoff_client::replay::{ReplayBody, ReplayLayer, ReplayStats};
//! use handoff_proto::ppr;
//! use http::uri::Authority;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::channel::Channel;
//! use http_body_util::combinators::UnsyncBoxBody;
//! use http_body_util::{BodyExt, Full};
//! use tower::{BoxError, ServiceBuilder, ServiceExt};
//!
//! type ClientBody = Channel<Bytes>;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A toy balancer over two in-process origins; `a` is shutting down.
//! let balancer = tower::service_fn(|req: Request<ReplayBody<ClientBody>>| async move {
//!     let a = Authority::from_static("a.internal:80");
//!     let avoid_a = req.extensions().get::<AvoidBackends>().is_some_and(|l| l.contains(&a));
//!     let mut body = req.into_body();
//!     let res: Response<UnsyncBoxBody<Bytes, BoxError>> = if !avoid_a {
//!         // Origin `a` reads one frame and hands the request back: a 379 whose body echoes
//!         // every byte it received, then every further byte, until the proxy ends it.
//!         let first = body.frame().await.unwrap()?.into_data().unwrap();
//!         let (mut echo, echo_body) = Channel::<Bytes, BoxError>::new(8);
//!         echo.send_data(first).await?;
//!         tokio::spawn(async move {
//!             while let Some(Ok(frame)) = body.frame().await {
//!                 let Ok(data) = frame.into_data() else { continue };
//!                 if echo.send_data(data).await.is_err() { break }
//!             }
//!         });
//!         let mut res = Response::new(echo_body.boxed_unsync());
//!         *res.status_mut() = ppr::status();
//!         res.extensions_mut().insert(ServedBy(a));
//!         res
//!     } else {
//!         // Origin `b` gets the replay: the echo, then the rest of the client's body.
//!         assert_eq!(body.attempt(), 1);
//!         let all = body.collect().await?.to_bytes();
//!         Response::new(Full::new(all).map_err(|never| match never {}).boxed_unsync())
//!     };
//!     Ok::<_, BoxError>(res)
//! });
//!
//! let stats = ReplayStats::default();
//! let layer = ReplayLayer::new().stats(stats.clone());
//! let spool = layer.echo_spool_budget().clone();
//! let proxy = ServiceBuilder::new().layer(layer).service(balancer);
//!
//! // The client's upload arrives in two parts.
//! let (mut client, body) = ClientBody::new(2);
//! client.send_data(Bytes::from("hello ")).await.unwrap();
//! let res = tokio::spawn(proxy.oneshot(Request::post("http://app.internal/up").body(body).unwrap()));
//! client.send_data(Bytes::from("world")).await.unwrap();
//! drop(client);
//!
//! let res = res.await.unwrap().unwrap();
//! assert_eq!(res.status(), StatusCode::OK); // the 379 never reaches the client
//! assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello world");
//! assert_eq!(stats.replays(), 1);
//! assert_eq!(stats.echoed_bytes(), 6);
//! assert_eq!(stats.spooled_bytes(), 6, "`a`'s echo went through the spool");
//! assert_eq!(spool.used(), 0, "and the spool was released with the request");
//! # }
//! ```
//!
//! [`AvoidBackends`]: crate::backend::AvoidBackends
//! [`ServedBy`]: crate::backend::ServedBy

mod attempt;
mod body;
mod chain;
mod check;
mod error;
mod exchange;
mod future;
mod head;
mod layer;
pub mod policy;
mod prefetch;
mod response_body;
mod service;
mod settings;
mod stats;
mod verify;

pub use self::body::ReplayBody;
pub use self::error::ReplayError;
pub use self::future::ResponseFuture;
pub use self::layer::ReplayLayer;
pub use self::response_body::ReplayResponseBody;
pub use self::service::Replay;
pub use self::settings::{
    DEFAULT_ECHO_MEMORY_LIMIT, DEFAULT_MAX_ECHO_SPOOL_BYTES, DEFAULT_MAX_TOTAL_ECHO_SPOOL_BYTES,
};
pub use self::stats::ReplayStats;
/// The budget type of [`ReplayLayer::echo_spool_budget`], from `handoff-spool`.
pub use handoff_spool::SpoolBudget;
