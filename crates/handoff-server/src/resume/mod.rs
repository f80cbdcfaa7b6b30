//! Resumable requests, the origin side (docs/PROTOCOL.md part B).
//!
//! A large upload that loses its connection normally fails, and a client that lost the
//! response cannot tell whether its `POST` ran. With [`ResumableLayer`], a request that
//! carries a body and `Prefer: resume` becomes an *operation* that outlives its connection:
//!
//! - the layer mints a 128-bit id and publishes three resources, in the HTTP/1.1
//!   `100 Continue` (through the [`interim`](crate::interim) hook) and in the final
//!   response, with `Preference-Applied: resume`:
//!   `Request-Content-Location` (`HEAD` the held length, `PATCH` the rest as
//!   `message/byterange`, `GET` the held bytes), `Response-Message-Location` (`GET` the
//!   final response as `message/http`, `DELETE` to release it) and `Content-Location` (the
//!   response body, with `Range`);
//! - the inner service (your axum router) runs on a task of its own, so a dropped
//!   connection cannot cancel it, and reads a [`ResumedBody`]: **one continuous body**,
//!   whatever happens to the connections that carry it. When the client's connection dies
//!   mid-upload the handler sees no error; it waits until a `PATCH` continues its body;
//! - its response is recorded in the [`Store`](store::Store) and served to the original
//!   connection, or later to a `GET` on the response-message resource, so the operation
//!   runs once. (After a crash during the handler itself, the handler runs again in the new
//!   process, over the whole body: a process cannot know how far a dead one got.)
//!
//! Requests without the preference pass straight through (their body is wrapped, not
//! copied). `Prefer: resume=ignore-incomplete` publishes the response resources only: an
//! interrupted body then ends the operation (the handler's body fails with
//! [`UploadAbandoned`]) instead of waiting. `Prefer: acknowledge` adds `100 Continue`
//! interim responses carrying `Acknowledge: N`, the bytes the store made durable, at most
//! one per [`Limits::ack_every_bytes`] and per [`Limits::ack_every`].
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use handoff_server::resume::{RequestBody, ResumableLayer};
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};
//!
//! async fn store(request: Request<RequestBody<Full<Bytes>>>) -> Result<Response<String>, BoxError> {
//!     let body = request.into_body().collect().await?.to_bytes();
//!     Ok(Response::new(format!("stored {} bytes", body.len())))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut service = ServiceBuilder::new()
//!     .layer(ResumableLayer::new())
//!     .service(service_fn(store));
//!
//! let upload = Request::post("/upload")
//!     .header("prefer", "resume")
//!     .body(Full::new(Bytes::from_static(b"hello")))
//!     .unwrap();
//! let response = service.ready().await.unwrap().call(upload).await.unwrap();
//! assert_eq!(response.headers()["preference-applied"], "resume");
//! let location = response.headers()["response-message-location"].to_str().unwrap().to_owned();
//! assert!(location.starts_with("/.resumable/"));
//! assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "stored 5 bytes");
//!
//! // A client that lost that response fetches it: the recorded message, not a second run.
//! let fetch = Request::get(&location).body(Full::new(Bytes::new())).unwrap();
//! let stored = service.ready().await.unwrap().call(fetch).await.unwrap();
//! assert_eq!(stored.headers()["content-type"], "message/http");
//! let document = stored.into_body().collect().await.unwrap().to_bytes();
//! assert!(document.starts_with(b"HTTP/1.1 200 OK\r\n"));
//! assert!(document.ends_with(b"stored 5 bytes"));
//! # }
//! ```
//!
//! # Serving it
//!
//! Wrap the **whole router**, not its routes (`Router::layer` would put one copy of the
//! layer around each route and the fallback): the resource paths (under
//! [`DEFAULT_PREFIX`], or [`ResumableLayer::prefix`]) must reach the layer, and an operation
//! resumed after a restart must run the router, whose route for the stored request is then
//! found. Serve it through the [`interim`](crate::interim) hook so that the
//! `100 Continue` carries the locations:
//!
//! ```no_run
//! use axum::response::IntoResponse;
//! use axum::extract::Request;
//! use axum::{routing::post, Router, ServiceExt};
//! use handoff_server::interim::{InterimListener, WithInterimHandle};
//! use handoff_server::resume::ResumableLayer;
//! use tower::ServiceBuilder;
//!
//! # async fn upload(body: axum::body::Bytes) -> String { body.len().to_string() }
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! let router = Router::new().route("/upload", post(upload));
//! let app = ServiceBuilder::new()
//!     .map_response(IntoResponse::into_response) // axum::serve wants axum's response type
//!     .layer(ResumableLayer::new())
//!     .service(router);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! let make_service = ServiceExt::<Request>::into_make_service(app);
//! axum::serve(InterimListener::new(listener), WithInterimHandle::new(make_service)).await
//! # }
//! ```
//!
//! Over HTTP/2, hyper offers no way to send a `100` with headers: the locations come in the
//! final response only (docs/PROTOCOL.md part C).
//!
//! # Storage and memory
//!
//! Everything an operation needs between connections lives behind the [`store::Store`]
//! trait. [`store::MemoryStore`] (the default) frees body bytes as soon as the handler has
//! read them, so an open upload costs the bytes its handler has not consumed yet plus its
//! recorded response, all within one byte budget; a writer whose bytes do not fit waits
//! for the handler (back-pressure) instead of failing. Such a store cannot serve `GET` on
//! the request content (`405`, part B.8) and does not survive the process.
//! [`store::DiskStore`] keeps the head, the bytes and the response in a directory: after a
//! restart, even `kill -9`, `HEAD` reports the bytes on disk, the upload can be completed,
//! and the first request that touches the operation runs its handler in the new process
//! over the whole body.
//!
//! A recorded response is held in full (up to [`Limits::max_response_bytes`]) before it is
//! sent, on the original connection too: one mechanism serves every reader, at the cost of
//! streaming. The original exchange lasts as long as the handler runs; bound handlers with
//! your own timeout layer if they can hang.
//!
//! # Security and bounds
//!
//! Each operation is bound to its [`Owner`] (by default the `Authorization` header, hashed;
//! see [`OwnerOf`]): any other party gets `404`, the same as an unknown id. Every size,
//! count and wait is bounded by [`Limits`]; past a bound the client gets a `4xx` with a
//! reason (logged once through `tracing`). Malformed `message/byterange`, `Content-Range` or
//! `Prefer` get `400` saying what is wrong.
//!
//! # With Partial POST Replay, and graceful shutdown
//!
//! Around one router, [`PartialPostReplayLayer`](crate::replay::PartialPostReplayLayer) goes
//! *outside*: `ServiceBuilder::new().layer(PartialPostReplayLayer::new(shutdown))
//! .layer(ResumableLayer::new()).service(router)`.
//! It then sees the client's body as the resumable layer reads it, and on shutdown hands an
//! unfinished upload back to the proxy with `379` like any other; the proxy replays the
//! whole request on another origin, where it becomes a new operation, and the client never
//! notices. (The other order is wrong: the replay layer would see the handler's
//! [`ResumedBody`], answer `379` to the handler's request, and that `379` would be recorded
//! as the operation's response.) The operation left behind is never run again: it is only
//! resumed by a request that names it, and none will, so it is swept after
//! [`Limits::idle_timeout`].
//!
//! Without Partial POST Replay (clients that reach the origin directly), a graceful
//! shutdown drains like any server: once the drain window closes, connections are cut and
//! clients resume. With a [`store::DiskStore`] they resume against the restarted process
//! (`HEAD` reports the bytes on disk, the handler runs again there over the whole body);
//! with the [`store::MemoryStore`] the operation dies with the process, and the client's
//! `HEAD` gets `404`: it must start over.

mod body;
mod core;
mod future;
mod hook;
mod id;
mod layer;
mod limits;
mod owner;
mod paths;
mod range;
mod record;
mod reply;
mod resource;
mod response_body;
mod runs;
mod service;
mod start;
pub mod store;
mod sweep;
mod writer;

pub use self::body::{RequestBody, ResumedBody, UploadAbandoned};
pub use self::future::ResponseFuture;
pub use self::id::{InvalidResourceId, ResourceId};
pub use self::layer::{ResumableLayer, DEFAULT_PREFIX};
pub use self::limits::Limits;
pub use self::owner::{Owner, OwnerOf};
pub use self::response_body::ResponseBody;
pub use self::service::Resumable;
