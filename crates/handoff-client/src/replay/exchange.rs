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
use super::prefetch::{self, OnComplete};
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
    /// The exchange and its first attempt, or the kind of the answer when the policy has
    /// no backend for it.
    #[allow(clippy::type_complexity)]
    pub(super) fn start(
        mut parts: Parts,
        body: B,
        settings: &Settings,
        policy: P,
    ) -> Result<(Self, Request<ReplayBody<B>>), (Self, Kind)> {
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
            Err(_) => return Err((exchange, Kind::NoBackendLeft)),
        }
        Ok((
            exchange,
            Request::from_parts(parts, ReplayBody::new(attempt, 0)),
        ))
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
        // "A different origin": the one that sent the 379 must be avoided. Without its
        // name, a replay could go right back to the origin that is shutting down: fail safe.
        let served_by = response.extensions().get::<ServedBy>().map(|s| s.0.clone());
        let backend = served_by
            .or_else(|| self.chosen.clone())
            .ok_or(Kind::NoBackend)?;
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
        if let Some(chain) = &mut self.taken_over {
            return match chain.poll_discard_echoes(cx) {
                Poll::Ready(Ok(())) => Verdict::Verified,
                Poll::Ready(Err(kind)) => Verdict::Failed(kind),
                Poll::Pending => Verdict::Draining,
            };
        }
        let active = self.active().clone();
        active.future_waker.register(cx.waker());
        let dropped = {
            let stage = active.lock();
            match &*stage {
                Stage::Ended(kind) => return Verdict::Failed(kind.clone()),
                Stage::Parked => return Verdict::Failed(Kind::TakenOver),
                Stage::Sending(chain) if !chain.echo_pending() => return Verdict::Verified,
                Stage::Sending(chain) if !active.is_dropped() => {
                    return Verdict::Waiting(chain.echo_progress())
                }
                Stage::Sending(_) => true,
            }
        };
        debug_assert!(dropped);
        // Nobody will pull the echo through the replay's body any more.
        self.take_over();
        self.verdict(cx)
    }

    /// The replay's upstream no longer pulls the echo (its body was dropped, or has not
    /// moved for `echo_timeout` while its answer is held): the layer reads the rest itself,
    /// and the attempt's body, if alive, stays pending until the answer is done.
    pub(super) fn take_over(&mut self) {
        tracing::debug!(
            replays = self.replays,
            "the replay's body is not read any more: the layer reads the echo itself"
        );
        // An attempt that ended keeps its chain: the verdict sees the failure.
        if let Ok(chain) = self.active().take_chain() {
            self.taken_over = Some(chain);
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
        self.done = true;
        self.settings.stats.add_failed();
        let status = kind.status();
        tracing::warn!(replays = self.replays, reason = %kind, status = status.as_u16(), "partial POST replay failed");
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

/// Ends the handed-back attempt once its echo is spooled in full (see `prefetch`): its
/// body fails, so hyper closes the old origin's connection (part A, intermediary 3).
fn release_when_spooled<B: Send + 'static>(attempt: &Arc<Attempt<B>>) -> OnComplete {
    let attempt = Arc::downgrade(attempt);
    Box::new(move || {
        if let Some(attempt) = Weak::upgrade(&attempt) {
            attempt.end_parked(Kind::Detached);
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
