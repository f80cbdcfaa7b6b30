//! The response body of [`PartialPostReplay`](super::PartialPostReplay).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::echo::EchoBody;
use crate::BoxError;

pin_project! {
    /// Either the handler's own response body or the echo of a `379 Partial POST Replay`
    /// ([`EchoBody`]).
    pub struct ResponseBody<ResBody, ReqBody> {
        #[pin]
        kind: Kind<ResBody, ReqBody>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<ResBody, ReqBody> {
        // The handler answered: its body, untouched.
        Inner { #[pin] body: ResBody },
        // The request was handed back to the proxy: the echoed request body.
        Echo { #[pin] body: EchoBody<ReqBody> },
    }
}

impl<ResBody, ReqBody> ResponseBody<ResBody, ReqBody> {
    pub(super) fn inner(body: ResBody) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    pub(super) fn echo(body: EchoBody<ReqBody>) -> Self {
        Self {
            kind: Kind::Echo { body },
        }
    }
}

impl<ResBody, ReqBody> Body for ResponseBody<ResBody, ReqBody>
where
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
    ReqBody: Body<Data = Bytes>,
    ReqBody::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            KindProj::Echo { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Echo { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            // Part A, server 4: the echo's length is unknown until the proxy ends the request.
            Kind::Echo { .. } => SizeHint::default(),
        }
    }
}

impl<ResBody, ReqBody> fmt::Debug for ResponseBody<ResBody, ReqBody> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("ResponseBody::Inner"),
            Kind::Echo { body } => f.debug_tuple("ResponseBody::Echo").field(body).finish(),
        }
    }
}
