//! Client-side tower layers of tower-handoff, for reverse proxies.
//!
//! An origin server that restarts in the middle of an upload normally costs the client a
//! failed request. With Partial POST Replay (`PROTOCOL.md` part A) the origin hands every
//! unfinished request back to the proxy in front of it with a `379` status whose body echoes
//! the bytes it received; this crate's [`replay::ReplayLayer`] wraps the proxy's upstream
//! service and replays such requests on another backend, verifying the echo against a
//! running digest of what it forwarded, so the client never notices and never re-sends a
//! byte. [`backend`] holds the two extensions through which the layer and the balancer
//! beneath it agree on "another backend".
//!
//! ```no_run
//! use bytes::Bytes;
//! use handoff_client::backend::{AvoidBackends, ServedBy};
//! use handoff_client::replay::{ReplayBody, ReplayLayer};
//! use http::uri::{Authority, Uri};
//! use http::{Request, Response, StatusCode};
//! use http_body_util::combinators::UnsyncBoxBody;
//! use http_body_util::{BodyExt, Full};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{BoxError, ServiceBuilder, ServiceExt};
//!
//! type UpBody = UnsyncBoxBody<Bytes, BoxError>;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), BoxError> {
//! let backends = [Authority::from_static("10.0.0.1:8080"), Authority::from_static("10.0.0.2:8080")];
//! let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
//!
//! // A minimal balancer: the first backend the replay layer does not ask to avoid.
//! let balancer = tower::service_fn(move |mut req: Request<ReplayBody<Full<Bytes>>>| {
//!     let client = client.clone();
//!     let avoid = req.extensions().get::<AvoidBackends>().cloned().unwrap_or_default();
//!     // (A balancer with health checks may pick a listed backend that came up again after
//!     // `avoid.handed_back_at(b)`: see `backend`.)
//!     let backend = backends.iter().find(|b| !avoid.contains(b)).cloned();
//!     async move {
//!         let Some(backend) = backend else {
//!             // No backend left: the balancer answers 503 itself.
//!             let mut res = Response::new(Full::new(Bytes::new()).map_err(BoxError::from).boxed_unsync());
//!             *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
//!             return Ok::<Response<UpBody>, BoxError>(res);
//!         };
//!         let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
//!         *req.uri_mut() = Uri::builder().scheme("http").authority(backend.clone())
//!             .path_and_query(path).build()?;
//!         let mut res = client.request(req).await?;
//!         res.extensions_mut().insert(ServedBy(backend));
//!         Ok(res.map(|body| body.map_err(BoxError::from).boxed_unsync()))
//!     }
//! });
//!
//! let proxy = ServiceBuilder::new().layer(ReplayLayer::new()).service(balancer);
//! let res = proxy
//!     .oneshot(Request::post("/upload").body(Full::new(Bytes::from("payload")))?)
//!     .await?;
//! println!("{}", res.status());
//! # Ok(())
//! # }
//! ```
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
