use std::fmt;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::echo_step::{poll_top_echo, EchoFrame, EchoStep};
use super::error::{Kind, ReplayError};
use super::source::{lock, AttemptState, Client, SharedSource, Source};
use crate::BoxError;

/// The request body the inner service sends upstream, one per attempt.
///
/// Every attempt of a client request pulls from one shared source: the first attempt from
/// the client's body, a replay first from the `379`'s echo and then from the rest of the
/// client's body (part A, intermediary 2). It counts and hashes the bytes it forwards and
/// keeps no copy of them (intermediary 1).
///
/// When its upstream answers `379`, the body stops forwarding and stays pending until the
/// echo is complete, then fails with [`ReplayError::is_detached`], so that hyper closes that
/// connection (intermediary 3). A replay's body fails when its echo is wrong, so the new
/// origin never receives a complete request (intermediary 4 and 6).
///
/// Dropping a replay's body before its echo was sent on is fine: the layer then reads the
/// echo itself. When the layer reads it (see the [module docs](super)), a body still alive
/// forwards nothing more, stays pending while the answer passed for it may stream on its
/// connection, then fails.
///
/// It is `Send + Unpin + 'static` whenever `B: Send + 'static`, as hyper-util's client
/// requires. See the [module docs](super) for an example.
pub struct ReplayBody<B> {
    source: SharedSource<B>,
    attempt: usize,
    ended: bool,
}

impl<B> ReplayBody<B> {
    pub(super) fn new(source: SharedSource<B>, attempt: usize) -> Self {
        ReplayBody {
            source,
            attempt,
            ended: false,
        }
    }

    /// Which attempt of the client request this body belongs to: 0 for the first, `k` for
    /// replay `k`.
    pub fn attempt(&self) -> usize {
        self.attempt
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayBody")
            .field("attempt", &self.attempt)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let poll = poll_attempt(&this.source, this.attempt, cx);
        if let Poll::Ready(None) = poll {
            this.ended = true;
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        if self.ended {
            return true;
        }
        let mut source = lock(&self.source);
        // hyper asks when it writes the request head on a connection: the replay was taken
        // (an h2 stream then may wait for the peer's window before its body is polled).
        source.attempts[self.attempt].polled = true;
        source.is_active(self.attempt)
            && !source.echo_pending()
            // Not while kept trailers are still to be re-sent.
            && (source.trailers.is_none() || source.attempts[self.attempt].sent_trailers)
            && match &source.client {
                Client::Streaming(body) => body.is_end_stream(),
                Client::Ended => true,
                Client::Failed => false,
            }
    }

    fn size_hint(&self) -> SizeHint {
        if self.ended {
            return SizeHint::with_exact(0);
        }
        let mut source = lock(&self.source);
        source.attempts[self.attempt].polled = true;
        if !source.is_active(self.attempt) || source.checked_out {
            return SizeHint::default();
        }
        // What is left: the unread echoes, then the rest of the client's body.
        let echoed: u64 = source.echoes.iter().map(|e| e.remaining()).sum();
        let client = match &source.client {
            Client::Streaming(body) => body.size_hint(),
            Client::Ended => SizeHint::with_exact(0),
            Client::Failed => return SizeHint::default(),
        };
        let mut hint = SizeHint::new();
        hint.set_lower(client.lower().saturating_add(echoed));
        if let Some(upper) = client.upper() {
            hint.set_upper(upper.saturating_add(echoed));
        }
        hint
    }
}

impl<B> Drop for ReplayBody<B> {
    fn drop(&mut self) {
        let mut source = lock(&self.source);
        source.attempts[self.attempt].waker = None;
        // Nobody will pull the rest of the echo through this body: the response future reads
        // it itself (see `drain`), so the old connections are released (part A,
        // intermediary 3) and the replay's answer can be verified (intermediary 6).
        if !self.ended && source.is_active(self.attempt) {
            source.take_over();
        }
    }
}

type PollFrame = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

fn poll_attempt<B>(shared: &Mutex<Source<B>>, attempt: usize, cx: &mut Context<'_>) -> PollFrame
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut source = lock(shared);
    if let Some(kind) = &source.failure {
        return Poll::Ready(Some(Err(ReplayError::new(kind.clone()).into())));
    }
    source.attempts[attempt].polled = true;
    match source.attempts[attempt].state {
        AttemptState::Active => {}
        // Part A, intermediary 2: stop forwarding client bytes to that origin. Neither end
        // the body (a short Content-Length body would be refused) nor leave it pending for
        // ever (the connection would leak): wait for the echo to be complete.
        AttemptState::Detached => {
            source.attempts[attempt].park(cx);
            return Poll::Pending;
        }
        // Part A, intermediary 3: the echo is complete, end the old exchange.
        AttemptState::Released => {
            return Poll::Ready(Some(Err(ReplayError::new(Kind::Detached).into())));
        }
        // The layer reads the rest of the echo itself (see `drain`): forward nothing more,
        // and stay pending while the response passed for this attempt may still stream on
        // its connection.
        AttemptState::TakenOver => {
            source.attempts[attempt].park(cx);
            return Poll::Pending;
        }
        // That response is done: end this exchange, which can never complete its request.
        AttemptState::Closed => {
            return Poll::Ready(Some(Err(ReplayError::new(Kind::TakenOver).into())));
        }
    }
    let step = poll_top_echo(shared, source, cx, |source| {
        if source.active() != attempt {
            source.wake_active();
        }
        if !source.is_active(attempt) {
            // Taken over meanwhile: the response future may wait for this echo to read it.
            source.wake_head();
        }
    });
    let EchoFrame {
        mut source,
        mut echo,
        depth,
        data,
        complete,
        old_exchange,
        held: _held,
    } = match step {
        EchoStep::Empty(mut source) => return poll_client(&mut source, attempt, cx),
        // The previous active attempt is polling an echo and wakes us when it is back, or
        // the echo has no frame yet and wakes us itself.
        EchoStep::CheckedOut(mut source) | EchoStep::Pending(mut source) => {
            source.attempts[attempt].park(cx);
            return Poll::Pending;
        }
        EchoStep::Failed(kind) => return Poll::Ready(Some(Err(ReplayError::new(kind).into()))),
        EchoStep::Frame(frame) => frame,
    };
    source.wake_head();
    if complete {
        tracing::debug!(backend = %echo.backend, "echo verified");
    }
    let poll = if source.is_active(attempt) {
        forward(&mut source, attempt, &data);
        if !complete {
            source.echoes.insert(depth, echo);
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    } else {
        // Detached while the echo was polled: the frame goes to the next attempt.
        echo.stash(data);
        source.echoes.insert(depth, echo);
        source.attempts[attempt].park(cx);
        Poll::Pending
    };
    // Part A, intermediary 3: the old exchange ends outside the lock.
    drop(source);
    drop(old_exchange);
    poll
}

/// The rest of the client's body, once every echo was sent on.
fn poll_client<B>(source: &mut Source<B>, attempt: usize, cx: &mut Context<'_>) -> PollFrame
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let polled = match &mut source.client {
        Client::Streaming(body) => body.as_mut().poll_frame(cx),
        Client::Ended => return Poll::Ready(resend_trailers(source, attempt)),
        Client::Failed => {
            return Poll::Ready(Some(Err(ReplayError::new(Kind::ClientBody).into())));
        }
    };
    match polled {
        Poll::Ready(Some(Ok(frame))) => {
            if let Some(data) = frame.data_ref() {
                let _held = source.stats.hold(data.len() as u64);
                forward(source, attempt, data);
            }
            if let Some(trailers) = frame.trailers_ref() {
                // Kept for a replay: the origin may hand the request back after it got
                // them, and its echo carries body bytes only.
                source.trailers = Some(trailers.clone());
                source.attempts[attempt].sent_trailers = true;
            }
            Poll::Ready(Some(Ok(frame)))
        }
        Poll::Ready(Some(Err(err))) => {
            source.client = Client::Failed;
            Poll::Ready(Some(Err(err.into())))
        }
        // A replay whose client ended (hyper stops polling after the trailers, so this is
        // where a replay sees the end) still sends the kept trailers.
        Poll::Ready(None) => {
            source.client = Client::Ended;
            Poll::Ready(resend_trailers(source, attempt))
        }
        Poll::Pending => {
            source.attempts[attempt].park(cx);
            Poll::Pending
        }
    }
}

/// The end of a replay's body: the client's trailers first, if an earlier attempt
/// forwarded them, then the end.
fn resend_trailers<B>(
    source: &mut Source<B>,
    attempt: usize,
) -> Option<Result<Frame<Bytes>, BoxError>> {
    let attempt = &mut source.attempts[attempt];
    if attempt.sent_trailers {
        return None;
    }
    attempt.sent_trailers = true;
    source.trailers.clone().map(|t| Ok(Frame::trailers(t)))
}

/// Counts and hashes what an attempt hands to its connection (part A, intermediary 1 and 6).
fn forward<B>(source: &mut Source<B>, attempt: usize, data: &Bytes) {
    let attempt = &mut source.attempts[attempt];
    attempt.forwarded += data.len() as u64;
    if let Some(tag) = &mut attempt.tag {
        tag.update(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::echo::EchoBody;
    use crate::replay::source::SharedSource;
    use crate::replay::ReplayStats;
    use futures_util::FutureExt;
    use http::uri::Authority;
    use http_body_util::channel::Channel;
    use http_body_util::BodyExt;
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::future::poll_fn;
    use std::time::Duration;

    type Client = Channel<Bytes, Infallible>;

    /// An echo whose poll runs `hook` once, before yielding its second frame.
    struct Hooked {
        frames: VecDeque<Bytes>,
        hook: Option<Box<dyn FnOnce() + Send>>,
    }

    impl Body for Hooked {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> PollFrame {
            let this = &mut *self;
            if this.frames.len() == 1 {
                if let Some(hook) = this.hook.take() {
                    hook();
                }
            }
            match this.frames.pop_front() {
                Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                None => Poll::Pending,
            }
        }
    }

    fn echo(frames: &[&'static str], hook: Option<Box<dyn FnOnce() + Send>>) -> EchoBody {
        Hooked {
            frames: frames
                .iter()
                .map(|f| Bytes::from_static(f.as_bytes()))
                .collect(),
            hook,
        }
        .boxed_unsync()
    }

    fn backend() -> Authority {
        Authority::from_static("a:1")
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

    fn setup() -> (
        http_body_util::channel::Sender<Bytes, Infallible>,
        SharedSource<Client>,
    ) {
        let (tx, client) = Client::new(8);
        let source = Source::new(client, ReplayStats::default(), Duration::from_secs(30));
        (tx, source)
    }

    #[tokio::test]
    async fn a_frame_read_while_its_attempt_is_detached_goes_to_the_next() {
        let (mut tx, source) = setup();
        tx.send_data(Bytes::from("abc")).await.unwrap();
        let mut first = ReplayBody::new(source.clone(), 0);
        assert_eq!(now(&mut first), Some(Ok(Bytes::from("abc"))));

        // Attempt 0 is answered 379. While attempt 1 polls the second frame of that echo,
        // attempt 1 is itself answered 379 (after forwarding "a").
        let shared = source.clone();
        let hook: Box<dyn FnOnce() + Send> = Box::new(move || {
            let (_, unused) = lock(&shared).detach(echo(&["a"], None), backend());
            assert!(unused.is_none());
        });
        let (one, unused) = lock(&source).detach(echo(&["a", "bc"], Some(hook)), backend());
        assert!(unused.is_none());
        let mut second = ReplayBody::new(source.clone(), one);
        assert_eq!(now(&mut second), Some(Ok(Bytes::from("a"))));
        // "bc" was read and checked, but attempt 1 is detached now: it is kept.
        assert_eq!(now(&mut second), None);

        let mut third = ReplayBody::new(source.clone(), 2);
        assert_eq!(third.size_hint().lower(), 3);
        assert!(!third.is_end_stream());
        assert_eq!(now(&mut third), Some(Ok(Bytes::from("a"))));
        assert_eq!(now(&mut third), Some(Ok(Bytes::from("bc"))));
        tx.send_data(Bytes::from("d")).await.unwrap();
        drop(tx);
        assert_eq!(now(&mut third), Some(Ok(Bytes::from("d"))));
        assert_eq!(now(&mut third), Some(Ok(Bytes::new())));
        assert!(third.is_end_stream());

        // Both old exchanges are released: their bodies fail.
        let detached = "partial POST replay: the origin handed the request back (379)";
        assert_eq!(now(&mut second), Some(Err(detached.to_owned())));
        assert_eq!(now(&mut first), Some(Err(detached.to_owned())));
        assert_eq!(lock(&source).attempts[2].forwarded, 4);
    }

    #[tokio::test]
    async fn a_detached_attempt_waits_for_its_echo() {
        let (mut tx, source) = setup();
        tx.send_data(Bytes::from("abc")).await.unwrap();
        let mut first = ReplayBody::new(source.clone(), 0);
        assert_eq!(now(&mut first), Some(Ok(Bytes::from("abc"))));
        let (one, _) = lock(&source).detach(echo(&["ab", "c"], None), backend());
        // Pending, not ended: a short body would be refused, an ended one reused.
        assert_eq!(now(&mut first), None);
        assert!(!first.is_end_stream());
        let mut second = ReplayBody::new(source.clone(), one);
        assert_eq!(second.size_hint().lower(), 3);
        assert_eq!(now(&mut second), Some(Ok(Bytes::from("ab"))));
        assert_eq!(now(&mut first), None);
        assert_eq!(now(&mut second), Some(Ok(Bytes::from("c"))));
        assert!(matches!(now(&mut first), Some(Err(_))));
    }

    #[tokio::test]
    async fn dropping_the_active_body_with_an_echo_pending_hands_the_echo_to_the_layer() {
        let (mut tx, source) = setup();
        tx.send_data(Bytes::from("abc")).await.unwrap();
        let mut first = ReplayBody::new(source.clone(), 0);
        now(&mut first);
        let (one, _) = lock(&source).detach(echo(&["abc"], None), backend());
        drop(ReplayBody::new(source.clone(), one));
        // Not a failure: the response future reads the echo itself (see `drain`).
        assert!(lock(&source).failure.is_none());
        assert!(lock(&source).taken_over());
        // The old attempt still waits for its echo to be complete.
        assert_eq!(now(&mut first), None);
    }

    #[tokio::test]
    async fn a_body_taken_over_mid_poll_keeps_its_frame_for_the_layer() {
        let (mut tx, source) = setup();
        tx.send_data(Bytes::from("abc")).await.unwrap();
        let mut first = ReplayBody::new(source.clone(), 0);
        now(&mut first);
        // While attempt 1 polls the second frame of the echo, the layer takes it over.
        let shared = source.clone();
        let hook: Box<dyn FnOnce() + Send> = Box::new(move || lock(&shared).take_over());
        let (one, _) = lock(&source).detach(echo(&["a", "bc"], Some(hook)), backend());
        let mut second = ReplayBody::new(source.clone(), one);
        assert_eq!(now(&mut second), Some(Ok(Bytes::from("a"))));
        assert_eq!(now(&mut second), None);
        // "bc" was checked and kept; the layer gets it, and the old attempt is released.
        let verified = poll_fn(|cx| crate::replay::drain::poll_drain(&source, cx)).await;
        assert!(verified.is_ok());
        assert_eq!(lock(&source).discarded, 2);
        assert_eq!(lock(&source).attempts[one].forwarded, 1);
        assert!(matches!(now(&mut first), Some(Err(_))));
        assert_eq!(now(&mut second), None);
    }
}
