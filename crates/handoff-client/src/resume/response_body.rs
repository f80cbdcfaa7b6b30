//! [`ResponseBody`]: the response the caller gets: the original exchange's body, passed
//! through (a server without resume support), or the operation's response read whole. The
//! stored copy is released (`DELETE`) once the caller has taken the last bytes, or drops the
//! body, if so configured.

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::BoxError;

/// Runs once the body has been read to its end.
pub(crate) type OnEnd = Box<dyn FnOnce() + Send>;

pin_project! {
    /// The response body of a [`Resume`](super::Resume) request.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
        on_end: Option<OnEnd>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        /// A caller that drops the body is done with it too: release the stored copy.
        fn drop(this: Pin<&mut Self>) {
            if let Some(on_end) = this.project().on_end.take() {
                on_end();
            }
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        /// A server without resume support: its body, untouched.
        Live { #[pin] body: B },
        /// The operation's response, read whole (from the original exchange or the
        /// response-message resource).
        Stored { body: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn live(body: B) -> Self {
        Self {
            kind: Kind::Live { body },
            on_end: None,
        }
    }

    pub(crate) fn stored(body: Bytes, on_end: Option<OnEnd>) -> Self {
        Self {
            kind: Kind::Stored {
                body: (!body.is_empty()).then_some(body),
            },
            on_end,
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Live { body } => {
                Poll::Ready(ready!(body.poll_frame(cx)).map(|f| f.map_err(Into::into)))
            }
            KindProj::Stored { body } => {
                // The whole body goes in one frame: once it is taken (or there was none),
                // the stored copy is not needed (hyper stops polling at the end of stream).
                let frame = body.take().map(|data| Ok(Frame::data(data)));
                if let Some(on_end) = this.on_end.take() {
                    on_end();
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Live { body } => body.is_end_stream(),
            Kind::Stored { body } => body.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Live { body } => body.size_hint(),
            Kind::Stored { body } => {
                SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Live { .. } => "Live",
            Kind::Stored { .. } => "Stored",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}
