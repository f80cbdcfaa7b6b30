//! The response future of [`PartialPostReplay`](super::PartialPostReplay).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;

use super::echo::EchoHead;
use super::recorder::Recorder;
use super::ResponseBody;
use crate::shutdown::Signalled;
use crate::BoxError;

pin_project! {
    /// Runs the handler until it answers or, for a request that may be handed back, until
    /// shutdown begins while its body is still arriving.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, B> {
        #[pin]
        handler: Handler<F>,
        watch: Option<Watch<B>>,
    }
}

pin_project! {
    #[project = HandlerProj]
    enum Handler<F> {
        Running { #[pin] future: F },
        Abandoned,
    }
}

struct Watch<B> {
    recorder: Arc<Recorder<B>>,
    head: EchoHead,
    signalled: Pin<Box<Signalled>>,
}

impl<F, B> ResponseFuture<F, B> {
    pub(super) fn passthrough(future: F) -> Self {
        Self {
            handler: Handler::Running { future },
            watch: None,
        }
    }

    pub(super) fn watching(
        future: F,
        recorder: Arc<Recorder<B>>,
        head: EchoHead,
        signalled: Signalled,
    ) -> Self {
        Self {
            handler: Handler::Running { future },
            watch: Some(Watch {
                recorder,
                head,
                signalled: Box::pin(signalled),
            }),
        }
    }
}

impl<F, B, ResBody, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<ResBody, B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let HandlerProj::Running { future } = this.handler.as_mut().project() else {
            panic!("ResponseFuture polled after completion");
        };
        if let Poll::Ready(result) = future.poll(cx) {
            this.handler.set(Handler::Abandoned);
            return Poll::Ready(result.map(|response| response.map(ResponseBody::inner)));
        }

        let Some(watch) = this.watch.as_mut() else {
            return Poll::Pending;
        };
        if watch.signalled.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let watch = this.watch.take().expect("checked above");
        match watch.recorder.take_for_handoff() {
            Some(handoff) => {
                // Part A, server 1: after the 379 the server does nothing else with the
                // request, so the handler's future is dropped here and now.
                this.handler.set(Handler::Abandoned);
                tracing::debug!(
                    method = %watch.head.method,
                    uri = %watch.head.uri,
                    consumed = handoff.consumed_len(),
                    "shutdown: handing the request back to the proxy with 379"
                );
                let response = watch.head.into_response(handoff);
                Poll::Ready(Ok(response.map(ResponseBody::echo)))
            }
            // Complete body, replay disabled by the handler, or over the echo bound:
            // the request drains (part A, server 5).
            None => Poll::Pending,
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("watching_shutdown", &self.watch.is_some())
            .finish_non_exhaustive()
    }
}
