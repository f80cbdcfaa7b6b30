//! Resumable requests, the client side (docs/PROTOCOL.md part B).
//!
//! A large upload through a plain client fails when its connection drops, and a client
//! that loses the response cannot tell whether its `POST` ran. [`Resume`] wraps any HTTP
//! service (hyper-util's legacy `Client` first) and, against a server that speaks the
//! protocol (`handoff_server::resume`), turns both into a delay:
//!
//! - it sends the request with `Expect: 100-continue` and `Prefer: resume` (keeping the
//!   caller's other preferences), and waits for the `100 Continue` (at most
//!   [`ResumeLayer::expect_timeout`]) before the first body byte, so the server's locations
//!   are known before a cut could need them;
//! - cut before any location arrived, it sends the request again from the start, within
//!   the retry budget (the server has no state the client could name);
//! - cut mid-upload, it asks the request-content location how much arrived (`HEAD`) and
//!   sends the rest from there (`PATCH`, `message/byterange`), again after every failure;
//! - cut after the upload, before or during the response, it fetches the recorded response
//!   (`GET` on the response-message location, `Prefer: wait`) and decodes the
//!   `message/http` document;
//! - it returns the operation's one response (status, headers, body), with a
//!   [`ResumeReport`] in its extensions, and releases the stored copy with `DELETE` once
//!   the body has been read ([`Release`]).
//!
//! The body must be readable again from an offset: [`Upload`] holds a [`Source`], such as
//! [`Bytes`](bytes::Bytes), a [`FileSource`] (streamed from the offset, never loaded whole)
//! or a [`StreamSource`] (any body, with a bounded replay buffer that the server's
//! `Acknowledge` interim responses release). Retries back off exponentially with jitter
//! (tower's `ExponentialBackoffMaker`) within an overall [`deadline`](ResumeLayer::deadline);
//! errors are a [`ResumeError`] that names the failing [`Step`] and what the server
//! answered. A server without resume support (no locations) gets a plain request and its
//! answer comes back untouched.
//!
//! The client is lenient with the servers that exist (docs/PROTOCOL.md part C): unknown
//! `1xx` codes are skipped, a `HEAD` offset may come with `299` or another `2xx`, a `PATCH`
//! refused with `400` is retried once with the unit-less `Content-Range: a-b/len`, and a
//! `message/http` document may lack `Content-Length` or carry extra header lines.
//!
//! A resumable response is read whole before it is returned (up to
//! [`ResumeLayer::max_response_bytes`]), so that a cut during the response can be completed
//! from the stored copy. Bytes re-sent after a cut are the ones in flight: hyper's buffer
//! and the sockets' ([`HttpConnector::set_send_buffer_size`] bounds the latter).
//!
//! [`HttpConnector::set_send_buffer_size`]: https://docs.rs/hyper-util/latest/hyper_util/client/legacy/connect/struct.HttpConnector.html#method.set_send_buffer_size
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use handoff_client::resume::{ResumeLayer, ResumeReport, Upload, UploadBody};
//! use http_body_util::BodyExt;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # // A resumable origin on an ephemeral port.
//! # let router = axum::Router::new().route("/upload", axum::routing::post(|body: Bytes| async move { format!("stored {}", body.len()) }));
//! # let app = tower::ServiceBuilder::new()
//! #     .map_response(axum::response::IntoResponse::into_response)
//! #     .layer(handoff_server::resume::ResumableLayer::new())
//! #     .service(router);
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # let make = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
//! # let serve = axum::serve(handoff_server::interim::InterimListener::new(listener), handoff_server::interim::WithInterimHandle::new(make));
//! # tokio::spawn(async move { serve.await });
//! let client = Client::builder(TokioExecutor::new()).build_http::<UploadBody>();
//! let resumable = ResumeLayer::new().layer(client);
//!
//! let request = http::Request::post(format!("http://{addr}/upload"))
//!     .body(Upload::from(Bytes::from_static(b"hello")))?;
//! let response = resumable.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! let report = *response.extensions().get::<ResumeReport>().unwrap();
//! assert_eq!((report.attempts, report.resumes), (1, 0));
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "stored 5");
//! # Ok(())
//! # }
//! ```

mod body;
mod error;
mod event;
mod flow;
mod future;
mod gate;
mod layer;
mod locations;
mod report;
mod response_body;
mod service;
mod source;
mod upload;

pub use self::body::UploadBody;
pub use self::error::{ResumeError, Step};
pub use self::event::ResumeEvent;
pub use self::future::ResponseFuture;
pub use self::layer::{Release, ResumeLayer};
pub use self::report::ResumeReport;
pub use self::response_body::ResponseBody;
pub use self::service::Resume;
pub use self::source::{FileSource, Source, SourceStream, StreamSource};
pub use self::upload::Upload;
