//! The axum make-service wrapper that gives each connection's service its handle.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::serve::{IncomingStream, Listener};
use pin_project_lite::pin_project;
use tower::Service;

use super::{AddInterimHandle, InterimHandle, InterimStream};

/// Turns a make-service for `axum::serve` (a `Router`, `IntoMakeService`, ...) into one
/// whose per-connection services insert the connection's [`InterimHandle`] into every
/// request ([`AddInterimHandle`]).
///
/// Works with any listener whose connections are [`InterimStream`]s, such as
/// [`InterimListener`](super::InterimListener). See the [module docs](super).
#[derive(Debug, Clone)]
#[must_use]
pub struct WithInterimHandle<M> {
    inner: M,
}

impl<M> WithInterimHandle<M> {
    /// Wraps `make_service`.
    pub fn new(make_service: M) -> Self {
        Self {
            inner: make_service,
        }
    }

    /// The wrapped make-service.
    pub fn get_ref(&self) -> &M {
        &self.inner
    }

    /// The wrapped make-service.
    pub fn get_mut(&mut self) -> &mut M {
        &mut self.inner
    }

    /// The wrapped make-service.
    pub fn into_inner(self) -> M {
        self.inner
    }
}

impl<'a, M, L, IO> Service<IncomingStream<'a, L>> for WithInterimHandle<M>
where
    L: Listener<Io = InterimStream<IO>>,
    M: Service<IncomingStream<'a, L>>,
{
    type Response = AddInterimHandle<M::Response>;
    type Error = M::Error;
    type Future = MakeFuture<M::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, stream: IncomingStream<'a, L>) -> Self::Future {
        let handle = stream.io().handle();
        MakeFuture {
            inner: self.inner.call(stream),
            handle: Some(handle),
        }
    }
}

pin_project! {
    /// The future of [`WithInterimHandle`]: the inner make-service's, with the handle added.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct MakeFuture<F> {
        #[pin]
        inner: F,
        handle: Option<InterimHandle>,
    }
}

impl<F, S, E> Future for MakeFuture<F>
where
    F: Future<Output = Result<S, E>>,
{
    type Output = Result<AddInterimHandle<S>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let service = ready!(this.inner.poll(cx))?;
        let handle = this
            .handle
            .take()
            .expect("MakeFuture polled after completion");
        Poll::Ready(Ok(AddInterimHandle::new(service, handle)))
    }
}
