//! Reading and checking a `379`'s echo (part A, server 4 and intermediary 4 and 6).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::time::{Instant, Sleep};

use super::check::{StreamTag, Tag};
use super::error::Kind;
use super::prefetch::{EchoOverflow, EchoStalled};
use super::stats::ReplayStats;
use crate::BoxError;

/// The body of a `379`, boxed so the request body type does not depend on the response's.
pub(super) type EchoBody = UnsyncBoxBody<Bytes, BoxError>;

/// One origin's echo: the `sent` bytes it was forwarded, to be checked before the frame that
/// completes them is forwarded to the next origin.
pub(super) struct Echo {
    /// `None` once the echo is complete: the old exchange is dropped.
    body: Option<EchoBody>,
    /// A frame read (and checked) for an attempt that was detached meanwhile: it goes to
    /// the next attempt before anything else of this echo.
    stash: Option<Bytes>,
    sent: u64,
    /// The tag of the forwarded bytes; `None` (no key) fails every check.
    digest: Option<Tag>,
    received: u64,
    hasher: Option<StreamTag>,
    /// The detached attempt to release once the echo is complete.
    pub(super) attempt: usize,
    pub(super) backend: Authority,
    timeout: Duration,
    /// Armed when the echo body first returns `Pending` after a frame.
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

/// A frame of echo; `complete` when it holds the last forwarded byte (already verified).
pub(super) struct EchoData {
    pub(super) data: Bytes,
    pub(super) complete: bool,
}

impl Echo {
    pub(super) fn new(
        body: EchoBody,
        sent: u64,
        forwarded: Option<StreamTag>,
        attempt: usize,
        backend: Authority,
        timeout: Duration,
    ) -> Self {
        Echo {
            body: Some(body),
            stash: None,
            sent,
            digest: forwarded.clone().map(StreamTag::finalize),
            received: 0,
            hasher: forwarded.as_ref().map(StreamTag::fresh),
            attempt,
            backend,
            timeout,
            sleep: None,
            waiting: false,
        }
    }

    /// Echoed bytes not yet sent on.
    pub(super) fn remaining(&self) -> u64 {
        self.sent - self.received + self.stash.as_ref().map_or(0, |s| s.len() as u64)
    }

    /// Keeps `data`, the last frame this echo yielded, for the next attempt.
    pub(super) fn stash(&mut self, data: Bytes) {
        debug_assert!(self.stash.is_none());
        self.stash = Some(data);
    }

    /// Once complete, the `379`'s body is no longer needed (part A, intermediary 3).
    pub(super) fn take_body(&mut self) -> Option<EchoBody> {
        if self.received == self.sent {
            self.body.take()
        } else {
            None
        }
    }

    pub(super) fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
        stats: &ReplayStats,
    ) -> Poll<Result<EchoData, Kind>> {
        let complete = self.received == self.sent;
        if let Some(data) = self.stash.take() {
            return Poll::Ready(Ok(EchoData { data, complete }));
        }
        let Some(body) = self.body.as_mut().filter(|_| !complete) else {
            // Nothing left: only a complete echo without a stash, which is never kept.
            return Poll::Ready(Err(Kind::EchoTooLong {
                expected: self.sent,
            }));
        };
        loop {
            let frame = match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(Some(Err(err))) => {
                    // The echo's task saw the origin stall (see `prefetch`).
                    if let Some(stalled) = err.downcast_ref::<EchoStalled>() {
                        return Poll::Ready(Err(Kind::EchoTimeout {
                            timeout: stalled.timeout,
                        }));
                    }
                    if err.is::<EchoOverflow>() {
                        return Poll::Ready(Err(Kind::EchoTooLong {
                            expected: self.sent,
                        }));
                    }
                    return Poll::Ready(Err(self.short(Some(err))));
                }
                Poll::Ready(None) => return Poll::Ready(Err(self.short(None))),
                Poll::Pending => return self.poll_timeout(cx),
            };
            // Trailers of a 379 carry nothing to replay.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            self.waiting = false;
            let len = data.len() as u64;
            stats.add_echoed(len);
            // Part A, intermediary 4: more echoed bytes than were forwarded.
            if len > self.sent - self.received {
                return Poll::Ready(Err(Kind::EchoTooLong {
                    expected: self.sent,
                }));
            }
            if let Some(hasher) = &mut self.hasher {
                hasher.update(&data);
            }
            self.received += len;
            let complete = self.received == self.sent;
            // Part A, intermediary 6: check the digest before the frame that completes the
            // echo goes anywhere, so no origin ever receives a complete, altered body.
            if complete && !self.passes() {
                return Poll::Ready(Err(Kind::EchoMismatch {
                    expected: self.sent,
                }));
            }
            return Poll::Ready(Ok(EchoData { data, complete }));
        }
    }

    /// Whether the echo's tag equals the forwarded bytes' (only asked at the same length).
    fn passes(&self) -> bool {
        match (&self.hasher, &self.digest) {
            (Some(hasher), Some(digest)) => hasher.clone().finalize() == *digest,
            _ => false,
        }
    }

    fn short(&self, source: Option<BoxError>) -> Kind {
        Kind::EchoTooShort {
            expected: self.sent,
            received: self.received,
            source: source.map(Arc::from),
        }
    }

    /// `echo_timeout` bounds each wait for the next echoed frame, counted from the first
    /// `Pending`, so time spent while hyper was not polling the body does not count.
    fn poll_timeout(&mut self, cx: &mut Context<'_>) -> Poll<Result<EchoData, Kind>> {
        let timeout = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if !self.waiting {
            self.waiting = true;
            sleep.as_mut().reset(deadline(timeout));
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Kind::EchoTimeout { timeout })),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// `now + timeout`, or about thirty years from now for a timeout too large to add.
pub(super) fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::check::EchoKey;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;
    use std::future::poll_fn;

    fn echo_of(frames: &[&'static [u8]], sent: &[u8]) -> Echo {
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = frames
            .iter()
            .map(|f| Ok(Frame::data(Bytes::from_static(f))))
            .collect();
        let body = StreamBody::new(futures_util::stream::iter(frames))
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut forwarded = StreamTag::new(&EchoKey::fixed([7; 16]));
        forwarded.update(sent);
        Echo::new(
            body,
            sent.len() as u64,
            Some(forwarded),
            0,
            Authority::from_static("a:1"),
            Duration::from_secs(1),
        )
    }

    async fn next(echo: &mut Echo) -> Result<(Bytes, bool), Kind> {
        let stats = ReplayStats::default();
        poll_fn(|cx| echo.poll_data(cx, &stats))
            .await
            .map(|d| (d.data, d.complete))
    }

    #[tokio::test]
    async fn without_a_forwarded_tag_even_an_exact_echo_fails() {
        let mut echo = echo_of(&[b"hello"], b"hello");
        echo.digest = None;
        echo.hasher = None;
        assert!(matches!(
            next(&mut echo).await,
            Err(Kind::EchoMismatch { expected: 5 })
        ));
    }

    #[tokio::test]
    async fn exact_echo_completes_on_the_last_frame() {
        let mut echo = echo_of(&[b"hel", b"", b"lo"], b"hello");
        assert_eq!(next(&mut echo).await.unwrap(), (Bytes::from("hel"), false));
        assert_eq!(echo.remaining(), 2);
        assert_eq!(next(&mut echo).await.unwrap(), (Bytes::from("lo"), true));
    }

    #[tokio::test]
    async fn a_frame_past_the_count_is_too_long() {
        let mut echo = echo_of(&[b"hel", b"lo!"], b"hello");
        next(&mut echo).await.unwrap();
        assert!(matches!(
            next(&mut echo).await,
            Err(Kind::EchoTooLong { expected: 5 })
        ));
    }

    #[tokio::test]
    async fn an_early_end_is_too_short() {
        let mut echo = echo_of(&[b"hel"], b"hello");
        next(&mut echo).await.unwrap();
        assert!(matches!(
            next(&mut echo).await,
            Err(Kind::EchoTooShort {
                expected: 5,
                received: 3,
                source: None
            })
        ));
    }

    #[tokio::test]
    async fn altered_bytes_fail_before_the_last_frame_is_yielded() {
        let mut echo = echo_of(&[b"hel", b"LO"], b"hello");
        next(&mut echo).await.unwrap();
        assert!(matches!(
            next(&mut echo).await,
            Err(Kind::EchoMismatch { expected: 5 })
        ));
    }

    #[test]
    fn huge_timeouts_do_not_overflow() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(deadline(Duration::MAX) > Instant::now());
        });
    }
}
