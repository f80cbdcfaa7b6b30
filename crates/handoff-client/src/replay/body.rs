use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::attempt::{Attempt, Stage};
use super::chain::Failure;
use super::error::ReplayError;
use crate::BoxError;

/// The request body the inner service sends upstream, one per attempt.
///
/// The first attempt sends the client's body; a replay sends the `379`'s echo, then the rest
/// of the client's body (part A, intermediary 2). It counts and tags the bytes it forwards
/// and keeps no copy of them (intermediary 1).
///
/// When its upstream answers `379`, the body stops forwarding and stays pending until the
/// layer holds the whole echo, then fails with [`ReplayError::is_detached`], so that hyper
/// closes that connection (intermediary 3). A replay's body fails when its echo is wrong,
/// before the frame that would complete the request is sent (intermediary 4 and 6).
///
/// Dropping a replay's body before its echo was sent on is fine: the layer then reads the
/// echo itself. When the layer reads it (see the [module docs](super)), a body still alive
/// forwards nothing more, stays pending while the answer passed for it may stream on its
/// connection, then fails.
///
/// It is `Send + Unpin + 'static` whenever `B: Send + 'static`, as hyper-util's client
/// requires. See the [module docs](super) for an example.
pub struct ReplayBody<B> {
    attempt: Arc<Attempt<B>>,
    number: usize,
    ended: bool,
}

impl<B> ReplayBody<B> {
    pub(super) fn new(attempt: Arc<Attempt<B>>, number: usize) -> Self {
        ReplayBody {
            attempt,
            number,
            ended: false,
        }
    }

    /// Which attempt of the client request this body belongs to: 0 for the first, `k` for
    /// replay `k`.
    pub fn attempt(&self) -> usize {
        self.number
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayBody")
            .field("attempt", &self.number)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<B> Body for ReplayBody<B>
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
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let attempt = &*this.attempt;
        attempt.set_taken();
        let mut stage = attempt.lock();
        let chain = match &mut *stage {
            Stage::Sending(chain) => chain,
            Stage::Parked => {
                attempt.body_waker.register(cx.waker());
                return Poll::Pending;
            }
            Stage::Ended(kind) => {
                return Poll::Ready(Some(Err(ReplayError::new(kind.clone()).into())))
            }
        };
        let echo_pending = chain.echo_pending();
        match chain.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                // The last echo was verified: a held answer may go (intermediary 6).
                if echo_pending && !chain.echo_pending() {
                    drop(stage);
                    attempt.future_waker.wake();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(Failure::Client(err)))) => Poll::Ready(Some(Err(err))),
            Poll::Ready(Some(Err(Failure::Echo(kind)))) => {
                // The request fails: the response future answers `502` and ends the others.
                let chain = std::mem::replace(&mut *stage, Stage::Ended(kind.clone()));
                drop(stage);
                drop(chain);
                attempt.future_waker.wake();
                Poll::Ready(Some(Err(ReplayError::new(kind).into())))
            }
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                // The chain registered `cx` with what it waits for; the response future
                // may also take it away meanwhile, then end this attempt.
                attempt.body_waker.register(cx.waker());
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.ended {
            return true;
        }
        // hyper asks when it writes the request head on a connection: the replay was taken
        // (an h2 stream then may wait for the peer's window before its body is polled).
        self.attempt.set_taken();
        match &*self.attempt.lock() {
            Stage::Sending(chain) => chain.is_end_stream(),
            Stage::Parked | Stage::Ended(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.ended {
            return SizeHint::with_exact(0);
        }
        self.attempt.set_taken();
        match &*self.attempt.lock() {
            Stage::Sending(chain) => chain.size_hint(),
            Stage::Parked | Stage::Ended(_) => SizeHint::default(),
        }
    }
}

impl<B> Drop for ReplayBody<B> {
    fn drop(&mut self) {
        // Nobody will pull the rest of the chain through this body: if an echo is still to
        // be verified, the response future reads it itself (see `future`).
        self.attempt.set_dropped();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::chain::Chain;
    use crate::replay::error::Kind;
    use crate::replay::ReplayStats;
    use http_body_util::channel::Channel;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    type Client = Channel<Bytes, Infallible>;

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn attempt() -> (
        http_body_util::channel::Sender<Bytes, Infallible>,
        Arc<Attempt<Client>>,
    ) {
        let (tx, client) = Client::new(4);
        let chain = Chain::new(client, None, ReplayStats::default());
        (tx, Attempt::new(chain))
    }

    fn poll(body: &mut ReplayBody<Client>, waker: &Waker) -> Poll<Option<Result<Bytes, String>>> {
        let mut cx = Context::from_waker(waker);
        Pin::new(body).poll_frame(&mut cx).map(|frame| {
            frame.map(|frame| {
                frame
                    .map(|f| f.into_data().unwrap_or_default())
                    .map_err(|e| e.to_string())
            })
        })
    }

    #[tokio::test]
    async fn a_parked_body_waits_until_its_attempt_ends_and_is_woken_then() {
        let (_tx, attempt) = attempt();
        let mut body = ReplayBody::new(attempt.clone(), 0);
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        // Waiting for the client: pending.
        assert!(poll(&mut body, &waker).is_pending());
        // A 379: the response future takes the chain away.
        let chain = attempt.take_chain();
        assert!(chain.is_ok());
        assert!(poll(&mut body, &waker).is_pending(), "parked, not ended");
        assert!(!body.is_end_stream());
        let before = wakes.0.load(Ordering::SeqCst);
        attempt.end_parked(Kind::Detached);
        assert!(
            wakes.0.load(Ordering::SeqCst) > before,
            "the body's task is woken"
        );
        let ended = poll(&mut body, &waker);
        assert!(
            matches!(&ended, Poll::Ready(Some(Err(e))) if e.contains("handed the request back")),
            "{ended:?}"
        );
    }

    #[tokio::test]
    async fn a_conditional_take_leaves_a_chain_that_fails_the_check() {
        let (mut tx, attempt) = attempt();
        let mut body = ReplayBody::new(attempt.clone(), 0);
        assert!(attempt.take_chain_if(|_| false).is_none());
        // Still sending.
        tx.send_data(Bytes::from("abc")).await.unwrap();
        let waker = Waker::from(Arc::new(Wakes::default()));
        assert_eq!(
            poll(&mut body, &waker),
            Poll::Ready(Some(Ok(Bytes::from("abc"))))
        );
        assert!(attempt
            .take_chain_if(|chain| !chain.echo_pending())
            .is_some());
        assert!(poll(&mut body, &waker).is_pending());
    }

    #[tokio::test]
    async fn the_first_end_wins_and_hands_back_the_chain() {
        let (_tx, attempt) = attempt();
        let mut body = ReplayBody::new(attempt.clone(), 0);
        assert!(
            attempt.end(Kind::Abandoned).is_some(),
            "the chain comes back"
        );
        assert!(attempt.end(Kind::Upstream).is_none());
        attempt.end_parked(Kind::Detached);
        let waker = Waker::from(Arc::new(Wakes::default()));
        let ended = poll(&mut body, &waker);
        assert!(
            matches!(&ended, Poll::Ready(Some(Err(e))) if e.contains("response future was dropped")),
            "{ended:?}"
        );
        // Dropping the body tells the response future.
        drop(body);
        assert!(attempt.is_dropped());
    }
}
