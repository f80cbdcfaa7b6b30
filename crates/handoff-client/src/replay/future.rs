use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use handoff_proto::ppr;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::util::Oneshot;
use tower::Service;

use super::body::ReplayBody;
use super::echo::deadline;
use super::error::Kind;
use super::exchange::{Exchange, Verdict};
use super::response_body::ReplayResponseBody;
use crate::BoxError;

pin_project! {
    /// Response future of [`Replay`](super::Replay).
    ///
    /// Drives the first attempt, then each replay through a [`Oneshot`] on a clone of the
    /// inner service, and holds a replay's response head until its echo is verified,
    /// reading the echo itself when the replay's upstream stops pulling it (see the
    /// [module docs](super)).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        state: State<S::Future, Oneshot<S, Request<ReplayBody<B>>>, S::Response>,
        service: S,
        exchange: Exchange<B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, O, R> {
        First {
            #[pin]
            future: F,
        },
        // `taken_by` bounds the wait for an upstream to take the replay (item: the inner
        // service never ready, a connect that never completes).
        Replaying {
            #[pin]
            future: O,
            #[pin]
            taken_by: Sleep,
        },
        // A replay's response head (any status), held until its echo is verified (part A,
        // intermediary 6). `progress` is the echoed byte count when `sleep` was last reset;
        // when `sleep` fires the layer takes the echo over from the replay's body.
        Holding {
            response: Option<R>,
            #[pin]
            sleep: Sleep,
            progress: u64,
        },
        Done,
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    pub(super) fn new(future: S::Future, service: S, exchange: Exchange<B>) -> Self {
        ResponseFuture {
            state: State::First { future },
            service,
            exchange,
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::First { .. } => "first attempt",
            State::Replaying { .. } => "replaying",
            State::Holding { .. } => "holding the response until the echo is verified",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("replays", &self.exchange.replays())
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResBody>> + Clone,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<ReplayResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let response = match this.state.as_mut().project() {
                StateProj::First { future } => match ready!(future.poll(cx)) {
                    Ok(response) => response,
                    // Nothing was replayed: the caller may still retry, so the error is
                    // its to see.
                    Err(err) => {
                        this.exchange.finish();
                        this.state.set(State::Done);
                        return Poll::Ready(Err(err));
                    }
                },
                StateProj::Replaying { future, taken_by } => match future.poll(cx) {
                    Poll::Ready(Ok(response)) => response,
                    // Part of the client's body is gone: nobody can retry any more, so the
                    // failure becomes a response (part A, intermediary 4).
                    Poll::Ready(Err(_)) => {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(this.exchange.bad_gateway(Kind::Upstream)));
                    }
                    Poll::Pending => {
                        let failure = this.exchange.poll_echo(cx).or_else(|| {
                            let taken = this.exchange.replay_taken();
                            let late = !taken && taken_by.poll(cx).is_ready();
                            late.then_some(Kind::ReplayNotTaken {
                                timeout: this.exchange.config().replay_timeout,
                            })
                        });
                        match failure {
                            Some(kind) => {
                                this.state.set(State::Done);
                                return Poll::Ready(Ok(this.exchange.bad_gateway(kind)));
                            }
                            None => return Poll::Pending,
                        }
                    }
                },
                StateProj::Holding {
                    response,
                    mut sleep,
                    progress,
                } => match this.exchange.verdict(cx) {
                    Verdict::Verified => {
                        let response = response.take().expect("held until verified");
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(this.exchange.pass(response)));
                    }
                    Verdict::Failed(kind) => {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(this.exchange.bad_gateway(kind)));
                    }
                    // The layer reads the echo itself; the echo's own timer bounds the wait
                    // for each frame, and its waker or a failure wakes this task.
                    Verdict::Draining => return Poll::Pending,
                    Verdict::Waiting(now) => {
                        let timeout = this.exchange.config().echo_timeout;
                        if now != *progress {
                            *progress = now;
                            sleep.as_mut().reset(deadline(timeout));
                        }
                        ready!(sleep.poll(cx));
                        // No echoed byte went through the replay's body for `echo_timeout`:
                        // its upstream, which has answered, no longer pulls it. Read the rest
                        // of the echo here instead, each frame bounded by the echo's own
                        // timer.
                        this.exchange.take_over();
                        continue;
                    }
                },
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            };

            // Part A, intermediary 2: a 379 never reaches the client.
            if ppr::is_replay_status(response.status()) {
                match this.exchange.replay(response) {
                    Ok(request) => {
                        let future = Oneshot::new(this.service.clone(), request);
                        let timeout = this.exchange.config().replay_timeout;
                        let taken_by = tokio::time::sleep_until(deadline(timeout));
                        this.state.set(State::Replaying { future, taken_by });
                        continue;
                    }
                    Err(kind) => {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(this.exchange.bad_gateway(kind)));
                    }
                }
            }
            // A first attempt has no echo to verify.
            if this.exchange.replays() == 0 {
                this.state.set(State::Done);
                return Poll::Ready(Ok(this.exchange.pass(response)));
            }
            // Part A, intermediary 6: whatever its status, a replay's answer waits until the
            // echo it carries is verified, even an answer sent without reading the body (the
            // balancer's 503, an origin's early 413): the layer then reads the echo itself.
            let timeout = this.exchange.config().echo_timeout;
            this.state.set(State::Holding {
                response: Some(response),
                sleep: tokio::time::sleep_until(deadline(timeout)),
                progress: 0,
            });
        }
    }
}
