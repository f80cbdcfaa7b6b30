//! Interim responses with headers: `100 Continue` that carries `Acknowledge`, locations, ...
//!
//! Resumable requests (docs/PROTOCOL.md part C) need the server's HTTP/1.1 `100 Continue` to
//! carry headers (`Request-Content-Location`, `Response-Message-Location`,
//! `Content-Location`, `Preference-Applied: resume`), and more `100 Continue` responses
//! carrying `Acknowledge: N` while the upload runs. hyper 1.x writes the `100` itself, bare
//! (`HTTP/1.1 100 Continue\r\n\r\n`, when the handler first polls the body of a request
//! with `Expect: 100-continue`), and has no API to add headers or send another. This module
//! hooks the connection's I/O instead:
//!
//! - [`InterimStream`] wraps the accepted connection. Until something is armed it is
//!   transparent, byte for byte.
//! - Its [`InterimHandle`] (in every request's extensions, through [`AddInterimHandle`])
//!   [arms](InterimHandle::arm_continue) headers: the next bare `100 Continue` hyper writes
//!   is rewritten to carry them. [`send_continue`](InterimHandle::send_continue) queues one
//!   more `100` with other headers; it is written after the armed one and before the first
//!   byte of the final response, never inside hyper's bytes, and refused once the final
//!   response has begun.
//!
//! The bytes are bounded: at most [`MAX_INTERIM_BYTES`] of interim responses wait on a
//! connection; arming or queueing beyond that is refused.
//!
//! # Example
//!
//! A handler arms, reads the body (which makes hyper write the `100`, rewritten), and
//! acknowledges what it received before answering:
//!
//! ```
//! use bytes::Bytes;
//! use handoff_server::interim::{self, InterimHandle};
//! use http::{HeaderMap, HeaderValue, Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use hyper::body::Incoming;
//! use hyper_util::rt::TokioIo;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! async fn upload(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
//!     let interim = request.extensions().get::<InterimHandle>().unwrap().clone();
//!     let mut headers = HeaderMap::new();
//!     headers.insert("preference-applied", HeaderValue::from_static("resume"));
//!     assert!(interim.arm_continue(&headers));
//!
//!     let mut body = request.into_body();
//!     let mut received = 0;
//!     while let Some(frame) = body.frame().await {
//!         received += frame?.data_ref().map_or(0, Bytes::len);
//!         let mut ack = HeaderMap::new();
//!         ack.insert("acknowledge", received.into());
//!         assert!(interim.send_continue(&ack));
//!     }
//!     Ok(Response::new(Full::new(Bytes::from(format!("stored {received}")))))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (mut client, server) = tokio::io::duplex(4096);
//! let (io, service) = interim::wrap(server, hyper::service::service_fn(upload));
//! tokio::spawn(
//!     hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service),
//! );
//!
//! client
//!     .write_all(b"POST /upload HTTP/1.1\r\nhost: origin\r\ncontent-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n")
//!     .await
//!     .unwrap();
//! let armed = b"HTTP/1.1 100 Continue\r\npreference-applied: resume\r\n\r\n";
//! let mut interim = vec![0; armed.len()];
//! client.read_exact(&mut interim).await.unwrap();
//! assert_eq!(interim, armed);
//!
//! client.write_all(b"hello").await.unwrap();
//! let mut rest = String::new();
//! client.read_to_string(&mut rest).await.unwrap();
//! assert!(rest.starts_with("HTTP/1.1 100 Continue\r\nacknowledge: 5\r\n\r\nHTTP/1.1 200 OK\r\n"));
//! assert!(rest.ends_with("\r\n\r\nstored 5"));
//! # }
//! ```
//!
//! # With axum
//!
//! Wrap the listener in `InterimListener` and the app in `WithInterimHandle`; handlers
//! take the handle as `Extension<InterimHandle>` (requires the `axum` feature, on by
//! default):
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # async fn run(app: axum::Router) -> std::io::Result<()> {
//! use handoff_server::interim::{InterimListener, WithInterimHandle};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(InterimListener::new(listener), WithInterimHandle::new(app)).await
//! # }
//! ```
//!
//! # With hyper-util
//!
//! [`wrap`] takes the accepted stream and the connection's service (a `hyper` service, or a
//! `tower` one to put in `TowerToHyperService`):
//!
//! ```no_run
//! # use std::convert::Infallible;
//! # async fn hello(_: http::Request<hyper::body::Incoming>) -> Result<http::Response<String>, Infallible> { Ok(http::Response::new(String::new())) }
//! # async fn run() -> std::io::Result<()> {
//! use handoff_server::interim;
//! use hyper_util::rt::{TokioExecutor, TokioIo};
//! use hyper_util::server::conn::auto::Builder;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let (io, service) = interim::wrap(tcp, hyper::service::service_fn(hello));
//!     tokio::spawn(async move {
//!         Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(io), service).await
//!     });
//! }
//! # }
//! ```
//!
//! # Arming and disarming
//!
//! Arm only for a request that carries `Expect: 100-continue`, before its body is polled.
//! hyper writes no `100` for a request whose body is never polled, so an arm left behind
//! would rewrite the `100` of a later request on the same keep-alive connection: a layer
//! that arms on behalf of handlers calls [`InterimHandle::disarm`] when such a request
//! ends. Requests pipelined on one connection are told apart that way: only the `100`
//! following the arm is rewritten, the others stay bare.
//!
//! # Limits
//!
//! - HTTP/1.1 only. Over HTTP/2 hyper has no interim-response API and the connection's
//!   bytes are frames: [`AddInterimHandle`] sees the first HTTP/2 request and turns the
//!   handle off for good (arming and sending return false, nothing is rewritten). Insert
//!   the handle through it ([`wrap`], `WithInterimHandle`), not by hand.
//! - The hook recognises hyper's `100` by its bytes: an arm applies to the first
//!   `HTTP/1.1 100 Continue\r\n\r\n` hyper hands the stream after the arm. That is the
//!   armed request's own unless hyper still holds earlier output when the handler arms:
//!   the tail of earlier responses when the client reads slower than it sends pipelined
//!   requests, or several pipelined responses with hyper's `pipeline_flush(true)` (which
//!   `axum::serve` does not set). If that held output contains those 25 bytes (the bare
//!   `100` of an earlier pipelined request, or a response body that happens to contain
//!   them), that occurrence is the one rewritten.
//! - A writer that flushes in the middle of the 25 bytes means them as they are: they go
//!   out unchanged and the arm stays for the next `100` (hyper always hands over the `100`
//!   whole).

mod handle;
mod head;
#[cfg(feature = "axum")]
mod listener;
#[cfg(feature = "axum")]
mod make_service;
mod service;
mod splice;
mod stream;

pub use self::handle::InterimHandle;
pub use self::head::MAX_INTERIM_BYTES;
#[cfg(feature = "axum")]
pub use self::listener::InterimListener;
#[cfg(feature = "axum")]
pub use self::make_service::{MakeFuture, WithInterimHandle};
pub use self::service::{wrap, AddInterimHandle};
pub use self::stream::InterimStream;
