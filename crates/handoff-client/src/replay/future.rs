use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use handoff_proto::ppr;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::util::Oneshot;
use tower::Service;

use super::body::ReplayBody;
use super::error::Kind;
use super::exchange::{Exchange, Verdict};
use super::policy::Policy;
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
    pub struct ResponseFuture<S, B, P>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        state: State<S::Future, Oneshot<S, Request<ReplayBody<B>>>, S::Response>,
        service: S,
        exchange: Exchange<B, P>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, O, R> {
        // An attempt is in flight: the first through the ready service, each replay through
        // a `Oneshot` on a clone. For a replay, `timer` bounds first the wait for an
        // upstream to take it (`replay_timeout`: the inner service never ready, a connect
        // that never completes), then each wait for the upstream to read more of the echo
        // (`echo_timeout`; `progress` is the echoed byte count when it was last armed).
        Calling {
            #[pin]
            future: Either<F, O>,
            #[pin]
            timer: Option<Sleep>,
            progress: Option<u64>,
        },
        // A replay's response head (any status), held until its echo is verified (part A,
        // intermediary 6). `progress` is the echoed byte count when `sleep` was last reset;
        // when `sleep` fires without progress the layer takes the echo over.
        Holding {
            response: Option<R>,
            #[pin]
            sleep: Sleep,
            progress: u64,
        },
        // The layer answers itself without calling the inner service (the policy has no
        // backend for the first attempt).
        Refused {
            kind: Option<Kind>,
        },
        Done,
    }
}

impl<S, B, P> ResponseFuture<S, B, P>
where
    S: Service<Request<ReplayBody<B>>>,
{
    pub(super) fn new(future: S::Future, service: S, exchange: Exchange<B, P>) -> Self {
        ResponseFuture {
            state: State::Calling {
                future: Either::Left(future),
                timer: None,
                progress: None,
            },
            service,
            exchange,
        }
    }

    pub(super) fn refused(service: S, exchange: Exchange<B, P>, kind: Kind) -> Self {
        ResponseFuture {
            state: State::Refused { kind: Some(kind) },
            service,
            exchange,
        }
    }
}

impl<S, B, P> fmt::Debug for ResponseFuture<S, B, P>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Calling { .. } => "calling the upstream",
            State::Holding { .. } => "holding the response until the echo is verified",
            State::Refused { .. } => "refused",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<S, B, P, ResBody> Future for ResponseFuture<S, B, P>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResBody>> + Clone,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    P: Policy,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<ReplayResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let first = this.exchange.replays() == 0;
            let response = match this.state.as_mut().project() {
                StateProj::Calling {
                    future,
                    mut timer,
                    progress,
                } => match future.poll(cx) {
                    Poll::Ready(Ok(response)) => response,
                    // Nothing was replayed: the caller may still retry, so the error is
                    // its to see.
                    Poll::Ready(Err(err)) if first => {
                        this.exchange.finish();
                        this.state.set(State::Done);
                        return Poll::Ready(Err(err));
                    }
                    // Part of the client's body is gone: nobody can retry any more, so the
                    // failure becomes a response (part A, intermediary 4).
                    Poll::Ready(Err(_)) => {
                        let kind = this.exchange.failure(cx).unwrap_or(Kind::Upstream);
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(this.exchange.bad_gateway(kind)));
                    }
                    Poll::Pending if first => return Poll::Pending,
                    Poll::Pending => {
                        let failure = match this.exchange.failure(cx) {
                            Some(kind) => kind,
                            None => {
                                let Some(sleep) = timer.as_mut().as_pin_mut() else {
                                    return Poll::Pending;
                                };
                                ready!(sleep.poll(cx));
                                let settings = this.exchange.settings();
                                let (replay_timeout, echo_timeout) =
                                    (settings.replay_timeout, settings.echo_timeout);
                                if !this.exchange.replay_taken() {
                                    Kind::ReplayNotTaken {
                                        timeout: replay_timeout,
                                    }
                                } else {
                                    match (this.exchange.echo_progress(), *progress) {
                                        // The echo is sent: only the upstream's own timeouts
                                        // apply, however long the upload.
                                        (None, _) => {
                                            timer.set(None);
                                            return Poll::Pending;
                                        }
                                        // Taken, then no more of the echo read.
                                        (Some(now), Some(then)) if now == then => {
                                            Kind::EchoTimeout {
                                                timeout: echo_timeout,
                                            }
                                        }
                                        (Some(now), _) => {
                                            *progress = Some(now);
                                            if let Some(sleep) = timer.as_mut().as_pin_mut() {
                                                sleep.reset(deadline(echo_timeout));
                                            }
                                            continue;
                                        }
                                    }
                                }
                            }
                        };
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(this.exchange.bad_gateway(failure)));
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
                    // for each frame, and its spool or a failure wakes this task.
                    Verdict::Draining => return Poll::Pending,
                    Verdict::Waiting(now) => {
                        if now != *progress {
                            *progress = now;
                            let timeout = this.exchange.settings().echo_timeout;
                            sleep.as_mut().reset(deadline(timeout));
                        }
                        ready!(sleep.poll(cx));
                        // No echoed byte went through the replay's body for `echo_timeout`:
                        // its upstream, which has answered, no longer pulls it. Read the rest
                        // of the echo here instead (unless it moved on meanwhile).
                        this.exchange.take_over(Some(*progress));
                        continue;
                    }
                },
                StateProj::Refused { kind } => {
                    let kind = kind.take().expect("refused once");
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(this.exchange.refused(kind)));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            };

            // Part A, intermediary 2: a 379 never reaches the client.
            if ppr::is_replay_status(response.status()) {
                match this.exchange.replay(response) {
                    Ok(request) => {
                        let future = Either::Right(Oneshot::new(this.service.clone(), request));
                        let timeout = this.exchange.settings().replay_timeout;
                        let timer = Some(tokio::time::sleep_until(deadline(timeout)));
                        this.state.set(State::Calling {
                            future,
                            timer,
                            progress: None,
                        });
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
            let timeout = this.exchange.settings().echo_timeout;
            this.state.set(State::Holding {
                response: Some(response),
                sleep: tokio::time::sleep_until(deadline(timeout)),
                progress: 0,
            });
        }
    }
}

/// `now + timeout`, or about thirty years from now for a timeout too large to add.
fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

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
