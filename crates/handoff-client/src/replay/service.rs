use handoff_proto::ppr;
use std::mem;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::body::ReplayBody;
use super::exchange::Exchange;
use super::future::ResponseFuture;
use super::layer::ReplayLayer;
use super::response_body::ReplayResponseBody;
use super::source::Source;
use crate::BoxError;

/// Replays requests answered with `379 Partial POST Replay` on another backend (part A,
/// intermediary side). See the [module docs](super).
///
/// ```
/// use bytes::Bytes;
/// use handoff_client::replay::{Replay, ReplayBody, ReplayLayer};
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let upstream = tower::service_fn(|req: Request<ReplayBody<Full<Bytes>>>| async move {
///     let body = req.into_body().collect().await?.to_bytes();
///     Ok::<_, tower::BoxError>(Response::new(Full::new(body)))
/// });
/// let svc = Replay::new(upstream, ReplayLayer::new().max_replays(1));
/// // Responses other than 379 pass through.
/// let res = svc.oneshot(Request::new(Full::new(Bytes::from("ping")))).await.unwrap();
/// assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ping");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Replay<S> {
    inner: S,
    config: ReplayLayer,
}

impl<S> Replay<S> {
    /// Wraps `inner` with the configuration of `config`.
    pub fn new(inner: S, config: ReplayLayer) -> Self {
        Replay { inner, config }
    }

    /// A [`ReplayLayer`] with the default configuration.
    pub fn layer() -> ReplayLayer {
        ReplayLayer::new()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResBody> Service<Request<B>> for Replay<S>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResBody>> + Clone + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ReplayResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The ready service serves the first attempt; replays use clones of it.
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let (mut parts, body) = req.into_parts();
        // The replay count is the proxy's to set (part A, intermediary 5): a client's own
        // `Partial-Post-Replay` would tell the origin this is a replay when it is not. `0`
        // on a first attempt tells the origin a proxy that understands `379` is in front
        // (the origin layer's default predicate asks for it, see `handoff_server::replay`).
        // With `max_replays(0)` every 379 would be a 502: do not invite one.
        if self.config.max_replays > 0 {
            parts
                .headers
                .insert(ppr::REPLAY_COUNT, ppr::replay_count_value(0));
        } else {
            parts.headers.remove(ppr::REPLAY_COUNT);
        }
        // Part A, intermediary 1: the body is shared, counted and hashed, never copied.
        let source = Source::new(body, self.config.stats.clone(), self.config.echo_timeout);
        let exchange = Exchange::new(&parts, source.clone(), &self.config);
        let future = inner.call(Request::from_parts(parts, ReplayBody::new(source, 0)));
        ResponseFuture::new(future, inner, exchange)
    }
}
