//! [`ResponseFuture`]: the inner service's future, or the layer's own work.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use http_body_util::Either;

use super::response_body::{OwnBody, ResponseBody};

type Own = Pin<Box<dyn Future<Output = Response<OwnBody>> + Send>>;

pin_project! {
    /// The response future of [`Resumable`](super::Resumable).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        /// A request the layer passed through.
        Inner { #[pin] future: F },
        /// A resumable request or a resource request: the layer answers it.
        Own { future: Own },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn own(future: impl Future<Output = Response<OwnBody>> + Send + 'static) -> Self {
        Self {
            kind: Kind::Own {
                future: Box::pin(future),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(Either::Left)))
            }
            KindProj::Own { future } => {
                let mut response = ready!(future.as_mut().poll(cx));
                give_reason_phrase(&mut response);
                Poll::Ready(Ok(response.map(Either::Right)))
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "Inner",
            Kind::Own { .. } => "Own",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

/// hyper writes `<none>` as the reason phrase of a status it does not know: give the ones the
/// protocol defines theirs (`299 Incomplete Content`, docs/PROTOCOL.md part C), on the layer's
/// own responses and on recorded ones.
fn give_reason_phrase<B>(response: &mut Response<B>) {
    let status = response.status();
    if status.canonical_reason().is_some() {
        return;
    }
    let reason = handoff_proto::message_http::reason_phrase(status);
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes()) {
        if !reason.as_bytes().is_empty() {
            response.extensions_mut().insert(reason);
        }
    }
}
