use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use super::error::Kind as ReplayKind;
use super::exchange::Release;
use crate::BoxError;

pin_project! {
    /// The response body of a [`Replay`](super::Replay) service: the upstream's body, passed
    /// through, or the short plain-text body of a `502` the layer answered itself (part A,
    /// intermediary 4 and 5). When the layer read a replay's echo itself, reading this body
    /// to its end or dropping it ends that replay's upload (see the [module docs](super)).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use handoff_client::replay::ReplayResponseBody;
    /// use http_body::Body;
    /// use http_body_util::Full;
    ///
    /// let body = ReplayResponseBody::new(Full::new(Bytes::from("ok")));
    /// assert_eq!(body.size_hint().exact(), Some(2));
    /// assert!(!body.is_error());
    /// ```
    #[derive(Debug)]
    pub struct ReplayResponseBody<B> {
        #[pin]
        kind: Kind<B>,
        // Dropped when this body is done: ends a replay whose echo the layer read itself.
        release: Option<Release>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner {
            #[pin]
            body: B,
        },
        // Yields the text once.
        Error {
            body: Full<Bytes>,
        },
    }
}

/// The text of the layer's `502`: short, and without the details (they go to the log).
const BAD_GATEWAY_TEXT: &str =
    "the upstream handed the request back and it could not be replayed\n";

/// The text of the layer's `503` when its spool cannot hold an echo.
const NO_ROOM_TEXT: &str =
    "the upstream handed the request back and the proxy has no room to replay it\n";

/// The text of the layer's `503` when its policy has no backend left.
const NO_BACKEND_TEXT: &str = "no upstream is available for this request\n";

impl<B> ReplayResponseBody<B> {
    /// Wraps an upstream response body, passed through unchanged.
    pub fn new(body: B) -> Self {
        ReplayResponseBody {
            kind: Kind::Inner { body },
            release: None,
        }
    }

    /// Holds `release` until this body is done (see `exchange`).
    pub(super) fn releasing(mut self, release: Option<Release>) -> Self {
        self.release = release;
        self
    }

    /// Whether this is the layer's own `502` text rather than an upstream's body.
    pub fn is_error(&self) -> bool {
        matches!(self.kind, Kind::Error { .. })
    }

    /// The layer's own answer: `503` when it had no room or no backend for the replay,
    /// `502` otherwise.
    pub(super) fn error(kind: &ReplayKind) -> Response<Self> {
        let text = match kind {
            ReplayKind::SpoolFull { .. } => NO_ROOM_TEXT,
            ReplayKind::NoBackendLeft => NO_BACKEND_TEXT,
            _ => BAD_GATEWAY_TEXT,
        };
        let status = kind.status();
        let mut res = Response::new(ReplayResponseBody {
            kind: Kind::Error {
                body: Full::new(Bytes::from_static(text.as_bytes())),
            },
            release: None,
        });
        *res.status_mut() = status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
        res
    }
}

impl<B> Body for ReplayResponseBody<B>
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
        let poll = match this.kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            KindProj::Error { body } => Pin::new(body)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        };
        if let Poll::Ready(None | Some(Err(_))) = poll {
            *this.release = None;
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Error { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Error { body } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http_body_util::{BodyExt, Empty};

    #[tokio::test]
    async fn bad_gateway_is_short_plain_text() {
        let res = ReplayResponseBody::<Empty<Bytes>>::error(&ReplayKind::Upstream);
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let body = res.into_body();
        assert!(body.is_error());
        assert_eq!(
            body.size_hint().exact(),
            Some(BAD_GATEWAY_TEXT.len() as u64)
        );
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, BAD_GATEWAY_TEXT);
    }

    #[tokio::test]
    async fn no_room_and_no_backend_are_503_with_their_own_text() {
        let full =
            ReplayResponseBody::<Empty<Bytes>>::error(&ReplayKind::SpoolFull { expected: 1 });
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = full.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(text, NO_ROOM_TEXT);
        let none = ReplayResponseBody::<Empty<Bytes>>::error(&ReplayKind::NoBackendLeft);
        assert_eq!(none.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = none.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(text, NO_BACKEND_TEXT);
    }

    #[tokio::test]
    async fn inner_forwards_frames_and_hints() {
        let body = ReplayResponseBody::new(Empty::<Bytes>::new());
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.collect().await.unwrap().to_bytes().is_empty());
    }
}
