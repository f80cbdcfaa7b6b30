//! The proxy's upstream service: round robin over hyper-util's client.
//!
//! Skips backends that are down and backends named in the request's `AvoidBackends` (the
//! replay layer's way of asking for "a different origin", PROTOCOL.md part A, intermediary
//! 2), points the request at the chosen backend, and tags the response with `ServedBy`.
//! It never fails: no usable backend is a `503`, an upstream error a `502`.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use handoff_client::backend::{AvoidBackends, ServedBy};
use handoff_proto::ppr;
use http::header::{self, HeaderMap, HeaderName};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::Service;

use super::backends::Backends;
use super::BoxError;

/// The balancer's response body: the upstream body, or its own short error text.
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Round-robin balancer over `backends`; generic over the request body so that it can sit
/// under the replay layer (`ReplayBody<_>`) or directly under the server (replay off).
pub(crate) struct Balancer<B> {
    client: Client<HttpConnector, B>,
    backends: Arc<Backends>,
    version: Version,
}

impl<B> Clone for Balancer<B> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            backends: Arc::clone(&self.backends),
            version: self.version,
        }
    }
}

impl<B> fmt::Debug for Balancer<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balancer")
            .field("backends", &self.backends)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl<B> Balancer<B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// A balancer speaking HTTP/1.1 to the backends, or h2c (prior knowledge) with `h2`.
    pub(crate) fn new(backends: Arc<Backends>, h2: bool) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .http2_only(h2)
            .build_http();
        Self {
            client,
            backends,
            version: if h2 {
                Version::HTTP_2
            } else {
                Version::HTTP_11
            },
        }
    }
}

impl<B> Balancer<B> {
    /// The backend set.
    pub(crate) fn backends(&self) -> &Arc<Backends> {
        &self.backends
    }
}

impl<B> Service<Request<B>> for Balancer<B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // hyper-util's client queues internally and is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let avoid = request.extensions().get::<AvoidBackends>();
        // Skip every backend that handed this request back, unless it came up again since
        // (a new instance at the same address, in a rolling restart).
        let backends = &self.backends;
        let picked = backends.pick(|authority| {
            let Some(avoid) = avoid.filter(|avoid| avoid.contains(authority)) else {
                return false;
            };
            let came_back = match (
                avoid.handed_back_at(authority),
                backends.up_since(authority),
            ) {
                (Some(handed_back), Some(up)) => up > handed_back,
                _ => false,
            };
            !came_back
        });
        let Some(index) = picked else {
            tracing::debug!(uri = %request.uri(), "no usable backend");
            return Box::pin(std::future::ready(Ok(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "no backend available\n",
            ))));
        };

        let backend = self.backends.get(index);
        let authority = backend.authority().clone();
        let uri = Uri::builder()
            .scheme(backend.scheme().clone())
            .authority(authority.clone())
            .path_and_query(
                request
                    .uri()
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/")),
            )
            .build();
        match uri {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => {
                return Box::pin(std::future::ready(Ok(plain(
                    StatusCode::BAD_REQUEST,
                    "bad request target\n",
                ))))
            }
        }
        *request.version_mut() = self.version;
        // The client sets Host (HTTP/1.1) or :authority (h2) from the new URI.
        request.headers_mut().remove(header::HOST);
        strip_hop_by_hop(request.headers_mut());

        let upstream = self.client.request(request);
        let backends = Arc::clone(&self.backends);
        Box::pin(async move {
            let mut response = match upstream.await {
                Ok(response) => {
                    if ppr::is_replay_status(response.status()) {
                        // PROTOCOL.md part A: the origin is shutting down.
                        backends.mark_down(index, "answered 379");
                    }
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync())
                }
                Err(error) => {
                    if error.is_connect() {
                        backends.mark_down(index, "connection failed");
                    }
                    tracing::debug!(backend = %authority, error = %error_chain(&error), "upstream error");
                    plain(StatusCode::BAD_GATEWAY, "upstream error\n")
                }
            };
            response.extensions_mut().insert(ServedBy(authority));
            Ok(response)
        })
    }
}

/// A short text response from the proxy itself.
pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Removes the connection-specific headers (RFC 9110 §7.6.1), including those that the
/// `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
