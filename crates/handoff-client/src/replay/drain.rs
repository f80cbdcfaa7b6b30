//! The layer reading a replay's echo itself once nobody else will (part A, intermediary 3,
//! 4 and 6).
//!
//! An echo normally moves on only as the replay's request body is pulled by its upstream
//! connection. An upstream that answers without reading the whole body (the balancer's
//! `503` when no backend is left, an origin's early `413`, an origin that answers then
//! closes) stops pulling, yet its answer may reach the client only once the echo it carries
//! is verified. So the response future reads the rest of the echo here: frame by frame,
//! hashing and counting each one as the replay's body would, then dropping it. Nothing is
//! buffered (one frame at a time, counted in `held_bytes`), nothing past the forwarded count
//! is read (`EchoTooLong`), and each wait for a frame is bounded by the echo's own
//! `echo_timeout` timer. A detached attempt's body is released only when its echo is
//! complete, exactly as on the body's path.
//!
//! The taken-over attempt can never complete its request any more (its echo went nowhere).
//! If its body is still alive it stays pending, then fails once the response passed for it
//! is done ([`Release`]): failing it earlier would make hyper tear down the connection that
//! may still be streaming that response.

use std::fmt;
use std::sync::Mutex;
use std::task::{Context, Poll};

use super::echo_step::{poll_top_echo, EchoFrame, EchoStep};
use super::error::Kind;
use super::source::{lock, AttemptState, SharedSource, Source};

/// Reads every pending echo to its end, checking it, and discards the bytes. `Ok` once every
/// echo is verified; on a wrong echo the request fails (every attempt's body fails).
pub(super) fn poll_drain<B>(
    shared: &Mutex<Source<B>>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Kind>> {
    loop {
        let mut source = lock(shared);
        if let Some(kind) = &source.failure {
            return Poll::Ready(Err(kind.clone()));
        }
        // Registered for failures, and for a body handing back an echo it was polling.
        source.wait_head(cx);
        // Polled without the lock, like the body does (see `source`).
        let EchoFrame {
            mut source,
            echo,
            depth,
            data,
            complete,
            old_exchange,
            held: _held,
        } = match poll_top_echo(shared, source, cx, |_| {}) {
            EchoStep::Empty(_) => return Poll::Ready(Ok(())),
            EchoStep::CheckedOut(_) | EchoStep::Pending(_) => return Poll::Pending,
            EchoStep::Failed(kind) => return Poll::Ready(Err(kind)),
            EchoStep::Frame(frame) => frame,
        };
        source.discarded += data.len() as u64;
        if complete {
            tracing::debug!(backend = %echo.backend, "echo verified by the layer itself");
        } else {
            source.echoes.insert(depth, echo);
        }
        // Part A, intermediary 3: a complete echo ends the old exchange, outside the lock.
        drop(source);
        drop(old_exchange);
    }
}

/// Held by the response passed for a taken-over attempt: once that response is done (read
/// to its end, failed, or dropped), the attempt's body fails and hyper ends that exchange.
pub(super) struct Release {
    _close: Box<dyn Send + Sync>,
}

impl Release {
    /// A release for the active attempt, if the layer took its echo over.
    pub(super) fn taken_over<B: Send + 'static>(shared: &SharedSource<B>) -> Option<Self> {
        let source = lock(shared);
        let attempt = source.active();
        if source.attempts[attempt].state != AttemptState::TakenOver {
            return None;
        }
        let close = Close {
            source: shared.clone(),
            attempt,
        };
        Some(Release {
            _close: Box::new(close),
        })
    }
}

impl fmt::Debug for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Release").finish_non_exhaustive()
    }
}

struct Close<B> {
    source: SharedSource<B>,
    attempt: usize,
}

impl<B> Drop for Close<B> {
    fn drop(&mut self) {
        lock(&self.source).close(self.attempt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::body::ReplayBody;
    use crate::replay::echo::EchoBody;
    use crate::replay::ReplayStats;
    use crate::BoxError;
    use bytes::Bytes;
    use futures_util::FutureExt;
    use http::uri::Authority;
    use http_body::{Body, Frame};
    use http_body_util::channel::Channel;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;
    use std::future::poll_fn;
    use std::pin::Pin;
    use std::time::Duration;

    type Client = Channel<Bytes, Infallible>;

    fn echo(frames: &[&'static str]) -> EchoBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = frames
            .iter()
            .map(|f| Ok(Frame::data(Bytes::from_static(f.as_bytes()))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    fn now(body: &mut ReplayBody<Client>) -> Option<Result<Bytes, String>> {
        poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx))
            .now_or_never()
            .map(|frame| match frame {
                Some(Ok(frame)) => Ok(frame.into_data().unwrap()),
                Some(Err(err)) => Err(err.to_string()),
                None => Ok(Bytes::new()),
            })
    }

    /// Attempt 0 forwarded "abc" and was answered 379; attempt 1 forwarded "a" of that echo.
    async fn replaying(
        echoed: &[&'static str],
    ) -> (SharedSource<Client>, ReplayStats, ReplayBody<Client>) {
        let stats = ReplayStats::default();
        let (mut tx, client) = Client::new(8);
        let source = Source::new(client, stats.clone(), Duration::from_secs(30));
        tx.send_data(Bytes::from("abc")).await.unwrap();
        let mut first = ReplayBody::new(source.clone(), 0);
        assert_eq!(now(&mut first), Some(Ok(Bytes::from("abc"))));
        let (one, _) = lock(&source).detach(echo(echoed), Authority::from_static("a:1"));
        let mut second = ReplayBody::new(source.clone(), one);
        assert_eq!(now(&mut second), Some(Ok(Bytes::from("a"))));
        drop(tx);
        (source, stats, second)
    }

    #[tokio::test]
    async fn reads_the_rest_of_the_echo_and_releases_the_old_attempt() {
        let (source, stats, second) = replaying(&["a", "b", "c"]).await;
        // Nobody will pull the rest of the echo any more.
        drop(second);
        assert!(lock(&source).taken_over());
        assert!(lock(&source).failure.is_none());
        let done = poll_fn(|cx| poll_drain(&source, cx)).await;
        assert!(done.is_ok());
        let source = lock(&source);
        assert!(!source.echo_pending());
        assert_eq!(source.discarded, 2);
        assert_eq!(source.attempts[0].state, AttemptState::Released);
        // Only the replay's own bytes count as forwarded: the rest went nowhere.
        assert_eq!(source.attempts[1].forwarded, 1);
        assert_eq!(stats.echoed_bytes(), 3);
    }

    #[tokio::test]
    async fn an_altered_rest_fails_the_request() {
        let (source, _, _second) = replaying(&["a", "bC"]).await;
        lock(&source).take_over();
        let done = poll_fn(|cx| poll_drain(&source, cx)).await;
        assert!(matches!(done, Err(Kind::EchoMismatch { expected: 3 })));
        assert!(lock(&source).failure.is_some());
    }

    #[tokio::test]
    async fn a_live_taken_over_body_waits_for_its_release_then_fails() {
        let (source, _, mut second) = replaying(&["a", "bc"]).await;
        lock(&source).take_over();
        assert!(poll_fn(|cx| poll_drain(&source, cx)).await.is_ok());
        let release = Release::taken_over(&source).expect("taken over");
        // Neither ended nor failed while the response may still stream on its connection.
        assert_eq!(now(&mut second), None);
        assert!(!second.is_end_stream());
        drop(release);
        let err = now(&mut second).unwrap().unwrap_err();
        assert!(err.contains("the layer read the rest"), "{err}");
    }
}
