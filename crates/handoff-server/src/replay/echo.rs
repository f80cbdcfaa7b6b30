//! The `379 Partial POST Replay` response (`PROTOCOL.md` part A, server 1-4).

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use handoff_proto::ppr;
use handoff_spool::SpoolReader;
use http::header::{HeaderValue, CONNECTION};
use http::{HeaderMap, Method, Response, Uri, Version};
use http_body::{Body, Frame};

use super::recorder::Handoff;
use crate::BoxError;

/// What the layer keeps of a request head to echo it (draft §2.1.1).
#[derive(Debug)]
pub(super) struct EchoHead {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) version: Version,
    pub(super) headers: HeaderMap,
}

impl EchoHead {
    /// The `379`: echo headers, no `Content-Length` (server 4), `Connection: close` on
    /// HTTP/1.x (HTTP/2 gets GOAWAY from the server's graceful shutdown instead), and a
    /// body that replays what the handler consumed, then everything still arriving.
    pub(super) fn into_response<B>(self, handoff: Handoff<B>) -> Response<EchoBody<B>> {
        let mut response = Response::new(EchoBody {
            consumed: Some(handoff.consumed),
            rest: handoff.rest,
            failed: false,
        });
        *response.status_mut() = ppr::status();
        *response.headers_mut() = ppr::echo_headers(&self.method, &self.uri, &self.headers);
        if self.version < Version::HTTP_2 {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(
                ppr::REASON_PHRASE.as_bytes(),
            ));
        response
    }
}

/// The body of a `379`: the consumed bytes (read back from their spool), then the rest of
/// the request body.
///
/// Request trailers are not echoed: the draft gives them no place in the `379`.
pub struct EchoBody<B> {
    /// `None` once read to its end: the spool, its file and its budget are released.
    consumed: Option<SpoolReader>,
    rest: Pin<Box<B>>,
    /// The echo failed: it yields nothing more (a gap must not follow an error).
    failed: bool,
}

impl<B> Body for EchoBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        if let Some(consumed) = self.consumed.as_mut() {
            match ready!(Pin::new(consumed).poll_frame(cx)) {
                Some(Ok(frame)) => return Poll::Ready(Some(Ok(frame))),
                Some(Err(err)) => {
                    // A spill file that cannot be read back: the echo is cut short, which
                    // the proxy sees (and answers 502) rather than a silent gap.
                    tracing::warn!(error = %err, "echo spool unreadable; cutting the 379 short");
                    self.consumed = None;
                    self.failed = true;
                    return Poll::Ready(Some(Err(err)));
                }
                None => self.consumed = None,
            }
        }
        loop {
            match ready!(self.rest.as_mut().poll_frame(cx)) {
                None => return Poll::Ready(None),
                Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                Some(Ok(frame)) if frame.is_data() => return Poll::Ready(Some(Ok(frame))),
                Some(Ok(_trailers)) => continue,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed
            || (self.consumed.as_ref().is_none_or(|c| c.is_end_stream())
                && self.rest.is_end_stream())
    }
}

impl<B> fmt::Debug for EchoBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EchoBody")
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}
