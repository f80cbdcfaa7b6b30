use std::mem;
use std::task::{Context, Poll};

use bytes::Bytes;
use handoff_proto::ppr;
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::body::ReplayBody;
use super::exchange::Exchange;
use super::future::ResponseFuture;
use super::layer::ReplayLayer;
use super::policy::{Balancer, Policy};
use super::response_body::ReplayResponseBody;
use super::settings::{settings_methods, Settings};
use crate::BoxError;

/// Replays requests answered with `379 Partial POST Replay` on another backend (part A,
/// intermediary side). See the [module docs](super).
///
/// # Errors and the layer's own answers
///
/// An error of the inner service comes back as `Err(S::Error)` only when nothing was
/// replayed: from `poll_ready`, or from the first attempt (the caller's usual error
/// handling applies, and the caller may still retry what it can). Once a `379` arrived, part
/// of the client's body exists nowhere but in the layer's echo, so nobody else could retry:
/// every failure from then on becomes the layer's own short plain-text answer, logged at
/// `warn`:
///
/// - `502 Bad Gateway` when the request cannot be saved: a wrong echo (too long, too short,
///   altered), an echo or replay that times out, more than
///   [`max_replays`](Self::max_replays), a `379` from a backend nobody can name, or an
///   upstream error during a replay;
/// - `503 Service Unavailable` when the proxy is out of room or of backends: the echo does
///   not fit the spool's bounds, or the [`Policy`] finds no backend left (also on a first
///   attempt, where the inner service is never called).
///
/// A replay's own answer, whatever its status, goes to the client as is once its echo is
/// verified.
///
/// ```
/// use bytes::Bytes;
/// use handoff_client::replay::{Replay, ReplayBody};
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
/// let svc = Replay::new(upstream).max_replays(1);
/// // Responses other than 379 pass through.
/// let res = svc.oneshot(Request::new(Full::new(Bytes::from("ping")))).await.unwrap();
/// assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ping");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Replay<S, P = Balancer> {
    inner: S,
    policy: P,
    settings: Settings,
}

impl<S> Replay<S> {
    /// Wraps `inner`, a balancer that chooses each backend, with the default settings (see
    /// [`ReplayLayer::new`]).
    pub fn new(inner: S) -> Self {
        Replay::with_policy(inner, Balancer)
    }

    /// A [`ReplayLayer`] with the default configuration.
    pub fn layer() -> ReplayLayer {
        ReplayLayer::new()
    }
}

impl<S, P> Replay<S, P> {
    /// Wraps `inner`, with `policy` choosing the upstream of each attempt (see
    /// [`policy`](super::policy)), and the default settings.
    pub fn with_policy(inner: S, policy: P) -> Self {
        Replay::from_parts(inner, policy, Settings::default())
    }

    pub(super) fn from_parts(inner: S, policy: P, settings: Settings) -> Self {
        Replay {
            inner,
            policy,
            settings,
        }
    }

    settings_methods!();

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

impl<S, P, B, ResBody> Service<Request<B>> for Replay<S, P>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResBody>> + Clone,
    P: Policy + Clone,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ReplayResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, P>;

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
        if self.settings.max_replays > 0 {
            parts
                .headers
                .insert(ppr::REPLAY_COUNT, ppr::replay_count_value(0));
        } else {
            parts.headers.remove(ppr::REPLAY_COUNT);
        }
        let policy = self.policy.clone();
        match Exchange::start(parts, body, &self.settings, policy) {
            (exchange, Ok(first)) => ResponseFuture::new(inner.call(first), inner, exchange),
            (exchange, Err(kind)) => ResponseFuture::refused(inner, exchange, kind),
        }
    }
}
