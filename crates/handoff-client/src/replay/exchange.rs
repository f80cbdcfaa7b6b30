//! What the response future knows about one client request: its attempts (the last one is
//! active), its retained head (which carries the backends to avoid), its policy and the
//! replay count.

use std::fmt;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::uri::Authority;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;

use super::attempt::{Attempt, Stage};
use super::body::ReplayBody;
use super::chain::{Chain, PendingEcho};
use super::check::EchoKey;
use super::error::Kind;
use super::head::Head;
use super::policy::Policy;
use super::prefetch::{self, OnDone};
use super::response_body::ReplayResponseBody;
use super::settings::Settings;
use super::verify::EchoCheck;
use crate::backend::ServedBy;
use crate::BoxError;

pub(super) struct Exchange<B, P> {
    /// Every attempt so far (at most `max_replays + 1`); the last one is active.
    attempts: Vec<Arc<Attempt<B>>>,
    head: Head,
    /// The backend the policy chose for the active attempt, if it chose one.
    chosen: Option<Authority>,
    /// This request's echo key (see `check`); `None` if no random key could be drawn.
    key: Option<EchoKey>,
    replays: u32,
    settings: Settings,
    policy: P,
    /// The active attempt's chain, once the layer reads its echo itself.
    taken_over: Option<Chain<B>>,
    done: bool,
}

/// Whether a replay's response may go to the client.
pub(super) enum Verdict {
    /// Every echo was verified.
    Verified,
    /// The request failed.
    Failed(Kind),
    /// An echo is still being sent through the replay's body; the number is the echoed
    /// bytes sent so far.
    Waiting(u64),
    /// The layer reads the rest of the echo itself.
    Draining,
}

impl<B, P> Exchange<B, P>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    P: Policy,
{
    /// The exchange and its first attempt's request, or the kind of the layer's answer when
    /// the policy has no backend for it.
    pub(super) fn start(
        mut parts: Parts,
        body: B,
        settings: &Settings,
        policy: P,
    ) -> (Self, Result<Request<ReplayBody<B>>, Kind>) {
        let key = EchoKey::random();
        let head = Head::snapshot(&parts);
        let chain = Chain::new(body, key.as_ref(), settings.stats.clone());
        let attempt = Attempt::new(chain);
        let mut exchange = Exchange {
            attempts: vec![attempt.clone()],
            head,
            chosen: None,
            key,
            replays: 0,
            settings: settings.clone(),
            policy,
            taken_over: None,
            done: false,
        };
        match exchange.policy.retarget(&mut parts, exchange.head.avoid()) {
            Ok(chosen) => exchange.chosen = chosen,
            Err(_) => return (exchange, Err(Kind::NoBackendLeft)),
        }
        let first = Request::from_parts(parts, ReplayBody::new(attempt, 0));
        (exchange, Ok(first))
    }

    /// A `379` arrived: move what remains to send to a new attempt, its echo first (part A,
    /// intermediary 2), and build that attempt's request.
    pub(super) fn replay<R>(
        &mut self,
        response: Response<R>,
    ) -> Result<Request<ReplayBody<B>>, Kind>
    where
        R: Body<Data = Bytes> + Send + 'static,
        R::Error: Into<BoxError>,
    {
        // The attempt failed meanwhile (its echo was wrong): that is the answer.
        if let Some(kind) = self.active().failure() {
            return Err(kind);
        }
        // "A different origin": the one that sent the 379 must be avoided. Without its
        // name, a replay could go right back to the origin that is shutting down: fail safe.
        let served_by = response.extensions().get::<ServedBy>().map(|s| s.0.clone());
        let backend = served_by
            .or_else(|| self.chosen.clone())
            .ok_or(Kind::UnnamedBackend)?;
        // Part A, intermediary 5: loops end after the configured number of replays.
        if self.replays >= self.settings.max_replays {
            return Err(Kind::TooManyReplays {
                max: self.settings.max_replays,
            });
        }
        // No key, no way to check the echo (see `check`): never replayed.
        let key = self.key.ok_or(Kind::NoEchoKey)?;
        let mut parts = self.head.replay(self.replays + 1, backend.clone());
        self.chosen = self
            .policy
            .retarget(&mut parts, self.head.avoid())
            .map_err(|_| Kind::NoBackendLeft)?;

        let echo = response.into_body().map_err(Into::into).boxed_unsync();
        let active = self.active().clone();
        let mut chain = active.take_chain()?;
        let sent = chain.take_sent(Some(&key));
        if sent.bytes == 0 {
            // Nothing to echo: the old exchange ends at once (part A, intermediary 3).
            active.end_parked(Kind::Detached);
            drop(echo);
        } else {
            let release = release_when_spooled(&active);
            let settings = &self.settings;
            match prefetch::spawn(
                echo,
                sent.bytes,
                &settings.spool,
                settings.echo_timeout,
                settings.stats.clone(),
                release,
            ) {
                Ok(reader) => {
                    let check = EchoCheck::new(sent.bytes, sent.tag);
                    chain.push_echo(PendingEcho::new(reader, check, backend.clone()));
                }
                Err((echo, err)) => {
                    tracing::warn!(error = %err, bytes = sent.bytes, "no room to spool the echo");
                    drop(echo);
                    return Err(Kind::SpoolFull {
                        expected: sent.bytes,
                    });
                }
            }
        }
        self.replays += 1;
        self.settings.stats.add_replay();
        tracing::debug!(replay = self.replays, backend = %backend, "379: replaying on another backend");
        let attempt = Attempt::new(chain);
        self.attempts.push(attempt.clone());
        let body = ReplayBody::new(attempt, self.replays as usize);
        Ok(Request::from_parts(parts, body))
    }

    /// Whether a replay's response may go to the client: only once every echo was
    /// verified (part A, intermediary 6). Reads the echo itself once the replay's body is
    /// gone; registers the task otherwise.
    pub(super) fn verdict(&mut self, cx: &mut Context<'_>) -> Verdict {
        loop {
            if let Some(chain) = &mut self.taken_over {
                return match chain.poll_discard_echoes(cx) {
                    Poll::Ready(Ok(())) => Verdict::Verified,
                    Poll::Ready(Err(kind)) => Verdict::Failed(kind),
                    Poll::Pending => Verdict::Draining,
                };
            }
            let active = self.active();
            active.future_waker.register(cx.waker());
            match &*active.lock() {
                Stage::Ended(kind) => return Verdict::Failed(kind.clone()),
                Stage::Parked => return Verdict::Failed(Kind::TakenOver),
                Stage::Sending(chain) if !chain.echo_pending() => return Verdict::Verified,
                Stage::Sending(chain) if !active.is_dropped() => {
                    return Verdict::Waiting(chain.echo_progress())
                }
                // Nobody will pull the echo through the replay's body any more.
                Stage::Sending(_) => {}
            }
            self.take_over(None);
        }
    }

    /// The replay's upstream no longer pulls the echo: its body was dropped (`stalled_at`
    /// is `None`), or has not moved past `stalled_at` echoed bytes for `echo_timeout` while
    /// its answer is held. The layer then reads the rest itself, and the attempt's body, if
    /// alive, stays pending until the answer is done. Checked under the stage's lock: a
    /// body that moved on meanwhile keeps its chain.
    pub(super) fn take_over(&mut self, stalled_at: Option<u64>) {
        let taken = self.active().take_chain_if(|chain| {
            chain.echo_pending() && stalled_at.is_none_or(|at| chain.echo_progress() == at)
        });
        if let Some(chain) = taken {
            tracing::debug!(
                replays = self.replays,
                "the replay's body is not read any more: the layer reads the echo itself"
            );
            self.taken_over = Some(chain);
        }
    }

    /// Echoed bytes the active replay has sent so far, while an echo is still to be sent.
    pub(super) fn echo_progress(&self) -> Option<u64> {
        match &*self.active().lock() {
            Stage::Sending(chain) if chain.echo_pending() => Some(chain.echo_progress()),
            Stage::Sending(_) | Stage::Parked | Stage::Ended(_) => None,
        }
    }

    /// While a replay is in flight: the failure, if its body failed. Registers the task.
    pub(super) fn failure(&self, cx: &mut Context<'_>) -> Option<Kind> {
        let active = self.active();
        active.future_waker.register(cx.waker());
        active.failure()
    }

    /// Whether an upstream started to take the active replay.
    pub(super) fn replay_taken(&self) -> bool {
        self.active().is_taken()
    }

    /// The response goes to the client as is.
    pub(super) fn pass<R>(&mut self, response: Response<R>) -> Response<ReplayResponseBody<R>> {
        self.done = true;
        let status = response.status();
        if self.replays > 0 && status.is_server_error() {
            // A balancer's own 503 "no backend left" (see `backend`), an upstream error it
            // turned into a response, or an origin failing the replayed request: the replay
            // did not save the request (see `ReplayStats::failed`).
            self.settings.stats.add_failed();
            tracing::warn!(
                replays = self.replays,
                status = status.as_u16(),
                "the replayed request was answered with a server error"
            );
        }
        // If the layer read this replay's echo itself, its upload ends once this response
        // is done.
        let release = self
            .taken_over
            .is_some()
            .then(|| Release::new(self.active().clone()));
        response.map(|body| ReplayResponseBody::new(body).releasing(release))
    }

    /// The request cannot be saved: fail every attempt and answer `502` (`503` when out of
    /// room or backends; part A, intermediary 4 and 5).
    pub(super) fn bad_gateway<R>(&mut self, kind: Kind) -> Response<ReplayResponseBody<R>> {
        self.settings.stats.add_failed();
        let status = kind.status();
        tracing::warn!(replays = self.replays, reason = %kind, status = status.as_u16(), "partial POST replay failed");
        self.answer(kind)
    }

    /// The policy had no backend for the first attempt: nothing was sent, so no replay
    /// failed; the client gets the layer's `503`.
    pub(super) fn refused<R>(&mut self, kind: Kind) -> Response<ReplayResponseBody<R>> {
        tracing::warn!(reason = %kind, "no backend for the request");
        self.answer(kind)
    }

    fn answer<R>(&mut self, kind: Kind) -> Response<ReplayResponseBody<R>> {
        self.done = true;
        let response = ReplayResponseBody::error(&kind);
        self.fail_all(kind);
        response
    }

    /// The first attempt failed before any replay: its error goes to the caller as is.
    pub(super) fn finish(&mut self) {
        self.done = true;
    }

    pub(super) fn replays(&self) -> u32 {
        self.replays
    }

    pub(super) fn settings(&self) -> &Settings {
        &self.settings
    }
}

impl<B, P> Exchange<B, P> {
    fn active(&self) -> &Arc<Attempt<B>> {
        self.attempts.last().expect("an exchange has an attempt")
    }

    /// Every attempt's body fails, so that no origin receives a complete request and the
    /// old exchanges end (part A, intermediary 3 and 4).
    fn fail_all(&mut self, kind: Kind) {
        let chains: Vec<Chain<B>> = self
            .attempts
            .iter()
            .filter_map(|attempt| attempt.end(kind.clone()))
            .collect();
        drop(chains);
        self.taken_over = None;
    }
}

impl<B, P> Drop for Exchange<B, P> {
    fn drop(&mut self) {
        // The caller went away mid-replay: release the old exchanges (part A,
        // intermediary 3) and stop the replay.
        if !self.done {
            self.fail_all(Kind::Abandoned);
        }
    }
}

/// Ends the handed-back attempt once its echo task is done (see `prefetch`): its body
/// fails, so hyper closes the old origin's connection (part A, intermediary 3), as soon as
/// the echo is spooled in full, or as soon as it cannot be.
fn release_when_spooled<B: Send + 'static>(attempt: &Arc<Attempt<B>>) -> OnDone {
    let attempt = Arc::downgrade(attempt);
    Box::new(move |outcome| {
        if let Some(attempt) = Weak::upgrade(&attempt) {
            attempt.end_parked(outcome.err().unwrap_or(Kind::Detached));
        }
    })
}

/// Held by the response passed for a taken-over attempt: once that response is done (read
/// to its end, failed, or dropped), the attempt's body fails and hyper ends that exchange.
pub(super) struct Release {
    _close: Box<dyn Send + Sync>,
}

impl Release {
    fn new<B: Send + 'static>(attempt: Arc<Attempt<B>>) -> Self {
        Release {
            _close: Box::new(Close(attempt)),
        }
    }
}

impl fmt::Debug for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Release").finish_non_exhaustive()
    }
}

struct Close<B>(Arc<Attempt<B>>);

impl<B> Drop for Close<B> {
    fn drop(&mut self) {
        self.0.end_parked(Kind::TakenOver);
    }
}
