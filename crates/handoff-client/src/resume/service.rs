//! [`Resume`]: the middleware.

use std::fmt;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::flow::Flow;
use super::layer::Config;
use super::{ResponseBody, ResponseFuture, ResumeError, ResumeLayer, Upload, UploadBody};
use crate::BoxError;

/// Sends requests so that they survive a cut connection. See the [module docs](super).
pub struct Resume<S> {
    pub(super) inner: S,
    pub(super) config: Config,
}

impl<S> Resume<S> {
    /// Wraps `inner` with the defaults of [`ResumeLayer::new`].
    pub fn new(inner: S) -> Self {
        tower::Layer::layer(&ResumeLayer::new(), inner)
    }

    /// A [`ResumeLayer`] with its defaults.
    pub fn layer() -> ResumeLayer {
        ResumeLayer::new()
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

impl<S: Clone> Clone for Resume<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Resume<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resume")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<Upload>> for Resume<S>
where
    S: Service<Request<UploadBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<B>>;
    type Error = ResumeError;
    type Future = ResponseFuture<B>;

    /// Always ready: every exchange drives a clone of the inner service to readiness itself
    /// (a resumable request makes several).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Upload>) -> Self::Future {
        let (head, upload) = request.into_parts();
        let flow = Flow::new(self.inner.clone(), self.config.clone(), head, upload.source);
        ResponseFuture::new(flow.run())
    }
}
