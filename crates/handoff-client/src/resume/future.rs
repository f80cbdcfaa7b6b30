//! [`ResponseFuture`]: the whole resumable exchange.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use super::{ResponseBody, ResumeError};

type Run<B> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, ResumeError>> + Send>>;

/// The response future of [`Resume`](super::Resume): every step of the protocol until the
/// operation's response is in hand.
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<B> {
    run: Run<B>,
}

impl<B> ResponseFuture<B> {
    pub(super) fn new(
        run: impl Future<Output = Result<Response<ResponseBody<B>>, ResumeError>> + Send + 'static,
    ) -> Self {
        Self { run: Box::pin(run) }
    }
}

impl<B> Future for ResponseFuture<B> {
    type Output = Result<Response<ResponseBody<B>>, ResumeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.run.as_mut().poll(cx)
    }
}

impl<B> fmt::Debug for ResponseFuture<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
