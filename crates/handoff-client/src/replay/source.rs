//! The state one client request shares between its upstream attempts.
//!
//! The logical request body is the client's body. Attempt `k` forwards a prefix of it,
//! bytes `[0, n_k)`; when it is answered with a `379` the origin echoes those bytes back
//! (part A, server 4). The bytes still to send are then "the echo, then whatever came after
//! `n_k`", which is exactly what `echoes` (a stack, top read first) followed by `client`
//! yields. A replay that is itself answered with a `379` while still sending an older echo
//! pushes its own echo on top, and the rest of the older echo follows it.
//!
//! Echo bodies are polled and dropped *outside* the lock: an in-process origin may build
//! its echo from the very `ReplayBody` it was sent, whose poll and drop take this lock. While
//! the active attempt polls the top echo it is checked out of the stack (`checked_out`), and
//! nobody else pulls.
//!
//! The active attempt's body is the only puller of the echoes until its upstream stops
//! pulling (its body was dropped, or is not polled while its response is held): the attempt
//! is then `TakenOver` and the response future reads the rest itself (see `drain`).

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};
use std::time::Duration;

use super::check::{EchoKey, StreamTag};
use http::uri::Authority;

use super::echo::{Echo, EchoBody};
use super::error::Kind;
use super::stats::ReplayStats;

pub(super) type SharedSource<B> = Arc<Mutex<Source<B>>>;

/// Locks a source. A panic in a body poll cannot leave the counters half-updated in a way
/// that matters more than failing the request, so a poisoned lock is used as is.
pub(super) fn lock<B>(source: &Mutex<Source<B>>) -> MutexGuard<'_, Source<B>> {
    source.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) struct Source<B> {
    pub(super) client: Client<B>,
    /// Echoes still to read, the last one first.
    pub(super) echoes: Vec<Echo>,
    /// The top echo is being polled outside the lock.
    pub(super) checked_out: bool,
    /// Every attempt of this request; the last one is the active one.
    pub(super) attempts: Vec<Attempt>,
    /// The client's trailers, once its body yielded them: a replay re-sends them after the
    /// echo and the rest of the body (a 379's echo never carries them).
    pub(super) trailers: Option<http::HeaderMap>,
    /// Set once the request failed: every attempt's body ends with this error.
    pub(super) failure: Option<Kind>,
    /// The response future, waiting for a replay's echo to be verified or for a failure.
    pub(super) head_waiter: Option<Waker>,
    /// Echoed bytes read so far, for the response future's hold timer.
    pub(super) echo_progress: u64,
    /// Echoed bytes the layer read itself and discarded (see `drain`): once there are any,
    /// the request can no longer be replayed.
    pub(super) discarded: u64,
    pub(super) stats: ReplayStats,
    pub(super) echo_timeout: Duration,
    /// This request's echo key (see `check`); `None` if no random key could be drawn.
    pub(super) key: Option<EchoKey>,
}

pub(super) enum Client<B> {
    Streaming(Pin<Box<B>>),
    Ended,
    Failed,
}

pub(super) struct Attempt {
    /// Bytes handed to this attempt's upstream connection (part A, intermediary 1).
    pub(super) forwarded: u64,
    /// Running keyed tag of those bytes (part A, intermediary 6, see `check`): no copy is
    /// kept. `None` without a key (the request is never replayed).
    pub(super) tag: Option<StreamTag>,
    pub(super) state: AttemptState,
    pub(super) waker: Option<Waker>,
    /// An upstream took this attempt: hyper wrote its head (asked the body's size or end)
    /// or polled its body.
    pub(super) polled: bool,
    /// It forwarded the client's trailers (or sent the kept copy, see `trailers`).
    pub(super) sent_trailers: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AttemptState {
    /// Pulls bytes from the source.
    Active,
    /// Answered with a 379: forwards nothing more and waits for its echo to complete.
    Detached,
    /// Its echo is complete: its body fails so that hyper ends the old exchange.
    Released,
    /// The active attempt whose upstream stopped pulling the echo (its body was dropped, or
    /// was not polled while its response was held): the response future reads the echo
    /// instead, and the body, if alive, forwards nothing more and stays pending.
    TakenOver,
    /// A taken-over attempt whose response is done (read to its end or dropped): its body
    /// fails so that hyper ends that exchange without ever completing the request.
    Closed,
}

impl Attempt {
    fn new(key: Option<&EchoKey>) -> Self {
        Attempt {
            forwarded: 0,
            tag: key.map(StreamTag::new),
            state: AttemptState::Active,
            waker: None,
            polled: false,
            sent_trailers: false,
        }
    }

    /// Keeps the waker of the task that polls this attempt's body.
    pub(super) fn park(&mut self, cx: &Context<'_>) {
        match &self.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl<B> Source<B> {
    pub(super) fn new(body: B, stats: ReplayStats, echo_timeout: Duration) -> SharedSource<B> {
        let key = EchoKey::random();
        Arc::new(Mutex::new(Source {
            client: Client::Streaming(Box::pin(body)),
            echoes: Vec::new(),
            checked_out: false,
            attempts: vec![Attempt::new(key.as_ref())],
            key,
            trailers: None,
            failure: None,
            head_waiter: None,
            echo_progress: 0,
            discarded: 0,
            stats,
            echo_timeout,
        }))
    }

    pub(super) fn active(&self) -> usize {
        self.attempts.len() - 1
    }

    /// The active attempt and the bytes it forwarded.
    pub(super) fn active_forwarded(&self) -> (usize, u64) {
        let active = self.active();
        (active, self.attempts[active].forwarded)
    }

    /// Whether `attempt` may pull bytes: the newest attempt of a request that has not failed.
    pub(super) fn is_active(&self, attempt: usize) -> bool {
        self.failure.is_none()
            && attempt == self.active()
            && self.attempts[attempt].state == AttemptState::Active
    }

    /// Whether echoed bytes are still to be sent (and verified).
    pub(super) fn echo_pending(&self) -> bool {
        self.checked_out || !self.echoes.is_empty()
    }

    /// Whether the response future reads the echoes itself: nobody else will pull them.
    pub(super) fn taken_over(&self) -> bool {
        self.failure.is_none() && self.attempts[self.active()].state == AttemptState::TakenOver
    }

    /// The active attempt's upstream no longer pulls the echo: it forwards nothing more, and
    /// the response future reads the rest of the echo itself (see `drain`).
    pub(super) fn take_over(&mut self) {
        let active = self.active();
        if self.is_active(active) && self.echo_pending() {
            self.attempts[active].state = AttemptState::TakenOver;
            self.wake_head();
        }
    }

    /// The response passed for a taken-over attempt is done: fail its body, so that hyper
    /// ends that exchange (the request can no longer be completed, its echo was discarded).
    pub(super) fn close(&mut self, index: usize) {
        let attempt = &mut self.attempts[index];
        if attempt.state == AttemptState::TakenOver {
            attempt.state = AttemptState::Closed;
            attempt.wake();
        }
    }

    /// The active attempt got a 379: stop it and queue its echo (part A, intermediary 2).
    ///
    /// Runs under the source lock, so the attempt cannot forward a byte between the count
    /// being read and the attempt being stopped. Returns the new active attempt, and the
    /// echo when there is nothing to verify: the caller drops it, outside the lock, which
    /// drops the old exchange at once (part A, intermediary 3).
    #[must_use]
    pub(super) fn detach(
        &mut self,
        echo: EchoBody,
        backend: Authority,
    ) -> (usize, Option<EchoBody>) {
        let index = self.active();
        let attempt = &mut self.attempts[index];
        attempt.state = AttemptState::Detached;
        let sent = attempt.forwarded;
        // The echo is checked against this attempt's own tag, under its own key (see
        // `check`). Without one (no key: the caller refuses to replay such a request) the
        // echo can only fail its check.
        let forwarded = attempt.tag.clone();
        let unused = if sent == 0 {
            self.release(index);
            Some(echo)
        } else {
            let timeout = self.echo_timeout;
            self.echoes
                .push(Echo::new(echo, sent, forwarded, index, backend, timeout));
            None
        };
        self.attempts.push(Attempt::new(self.key.as_ref()));
        (self.active(), unused)
    }

    /// A detached attempt's echo is complete: wake its body so it fails and hyper closes
    /// that connection (part A, intermediary 3).
    pub(super) fn release(&mut self, index: usize) {
        let attempt = &mut self.attempts[index];
        attempt.state = AttemptState::Released;
        attempt.wake();
    }

    /// Fails the whole request: every attempt's body fails (so no origin receives a
    /// complete request) and the response future wakes. Returns the echoes and the client's
    /// body for the caller to drop outside the lock.
    pub(super) fn fail(&mut self, kind: Kind) -> Garbage<B> {
        if self.failure.is_some() {
            return Garbage {
                _echoes: Vec::new(),
                _client: None,
            };
        }
        tracing::debug!(reason = %kind, "partial POST replay: stopping every upstream attempt");
        self.failure = Some(kind);
        let client = match std::mem::replace(&mut self.client, Client::Failed) {
            Client::Streaming(body) => Some(body),
            Client::Ended | Client::Failed => None,
        };
        for attempt in &mut self.attempts {
            attempt.wake();
        }
        self.wake_head();
        Garbage {
            _echoes: std::mem::take(&mut self.echoes),
            _client: client,
        }
    }

    /// Wakes the active attempt, which may wait for a checked-out echo.
    pub(super) fn wake_active(&mut self) {
        let active = self.active();
        self.attempts[active].wake();
    }

    pub(super) fn wait_head(&mut self, cx: &Context<'_>) {
        match &self.head_waiter {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => self.head_waiter = Some(cx.waker().clone()),
        }
    }

    pub(super) fn wake_head(&mut self) {
        if let Some(waker) = self.head_waiter.take() {
            waker.wake();
        }
    }
}

/// Bodies taken out of a failed source, to be dropped once the lock is released.
#[must_use = "drop it after releasing the lock"]
pub(super) struct Garbage<B> {
    _echoes: Vec<Echo>,
    _client: Option<Pin<Box<B>>>,
}
