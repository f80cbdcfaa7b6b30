//! [`Resumable`]: the middleware.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Either;
use tower::Service;

use handoff_proto::prefer::{Preferences, Resume};

use super::body::RequestBody;
use super::core::Core;
use super::record::launcher;
use super::reply::refuse;
use super::resource;
use super::start::{start, Asked};
use super::sweep::Sweeper;
use super::{ResponseBody, ResponseFuture, ResumableLayer};
use crate::BoxError;

/// Makes requests that ask for it resumable, and serves their resources. See the
/// [module docs](super).
pub struct Resumable<S> {
    inner: S,
    core: Arc<Core>,
}

impl<S> Resumable<S> {
    /// Wraps `inner` with a [`MemoryStore`](super::store::MemoryStore) and default limits.
    pub fn new(inner: S) -> Self {
        Self::from_core(inner, ResumableLayer::new().core())
    }

    /// A [`ResumableLayer`] with a [`MemoryStore`](super::store::MemoryStore).
    pub fn layer() -> ResumableLayer {
        ResumableLayer::new()
    }

    pub(crate) fn from_core(inner: S, core: Arc<Core>) -> Self {
        Self { inner, core }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for Resumable<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            core: self.core.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Resumable<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resumable")
            .field("inner", &self.inner)
            .field("core", &self.core)
            .finish()
    }
}

/// What a request is to the layer.
enum Kind {
    /// Not ours: the inner service answers it untouched.
    PassThrough,
    /// A request with a body and `Prefer: resume`.
    Resumable(Asked),
    /// A request with a body whose `Prefer` could not be parsed.
    BadPrefer(String),
}

fn classify<B: Body>(request: &Request<B>) -> Kind {
    let headers = request.headers();
    if !headers.contains_key(handoff_proto::prefer::PREFER) || request.body().is_end_stream() {
        return Kind::PassThrough;
    }
    match Preferences::from_headers(headers) {
        // `Prefer: resume` with any value (docs/PROTOCOL.md part B.1): an unknown value is
        // read as the default, save-incomplete.
        Ok(preferences) if preferences.get("resume").is_some() => Kind::Resumable(Asked {
            resume: preferences.resume().unwrap_or(Resume::SaveIncomplete),
            acknowledge: preferences.get("acknowledge").is_some(),
        }),
        Ok(_) => Kind::PassThrough,
        // A preference list we cannot parse is refused only if it asks for `resume`;
        // anything else is the application's business.
        Err(error) if mentions_resume(headers) => Kind::BadPrefer(error.to_string()),
        Err(_) => Kind::PassThrough,
    }
}

fn mentions_resume(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(handoff_proto::prefer::PREFER)
        .iter()
        .any(|value| {
            value
                .as_bytes()
                .to_ascii_lowercase()
                .windows(6)
                .any(|w| w == b"resume")
        })
}

impl<S, B, ResBody> Service<Request<B>> for Resumable<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: fmt::Display,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        Sweeper::maybe_sweep(&self.core);
        // The ready service answers this request; its clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let core = self.core.clone();
        if let Some(target) = core.paths.parse(request.uri().path()) {
            let launch = launcher(core.clone(), inner);
            return ResponseFuture::own(resource::serve(core, launch, request, target));
        }
        match classify(&request) {
            Kind::PassThrough => ResponseFuture::inner(inner.call(request.map(Either::Left))),
            Kind::Resumable(asked) => {
                let launch = launcher(core.clone(), inner);
                ResponseFuture::own(start(core, launch, request, asked))
            }
            Kind::BadPrefer(error) => {
                let response = refuse(
                    StatusCode::BAD_REQUEST,
                    format_args!("malformed Prefer: {error}"),
                );
                ResponseFuture::own(std::future::ready(response))
            }
        }
    }
}
