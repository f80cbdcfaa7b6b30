//! What the response future knows about one client request: its retained head (which
//! carries the backends to avoid), the replay count, and its handle on the shared body source.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;

use super::body::ReplayBody;
use super::drain::{poll_drain, Release};
use super::error::Kind;
use super::head::Head;
use super::layer::ReplayLayer;
use super::prefetch::{self, OnComplete};
use super::response_body::ReplayResponseBody;
use super::source::{lock, SharedSource};
use crate::backend::ServedBy;
use crate::BoxError;

pub(super) struct Exchange<B> {
    source: SharedSource<B>,
    head: Head,
    replays: u32,
    config: ReplayLayer,
    done: bool,
}

/// Whether a replay's response may go to the client.
pub(super) enum Verdict {
    /// Every echo was verified.
    Verified,
    /// The request failed.
    Failed(Kind),
    /// An echo is still being read through the replay's body; the number is the echoed
    /// bytes read so far.
    Waiting(u64),
    /// The layer reads the rest of the echo itself (see `drain`).
    Draining,
}

impl<B> Exchange<B> {
    pub(super) fn new(parts: &Parts, source: SharedSource<B>, config: &ReplayLayer) -> Self {
        Exchange {
            source,
            head: Head::snapshot(parts),
            replays: 0,
            config: config.clone(),
            done: false,
        }
    }

    pub(super) fn replays(&self) -> u32 {
        self.replays
    }

    pub(super) fn config(&self) -> &ReplayLayer {
        &self.config
    }

    /// A `379` arrived: detach the attempt and build the replay (part A, intermediary 2).
    pub(super) fn replay<R>(
        &mut self,
        response: Response<R>,
    ) -> Result<Request<ReplayBody<B>>, Kind>
    where
        B: Send + 'static,
        R: Body<Data = Bytes> + Send + 'static,
        R::Error: Into<BoxError>,
    {
        // "A different origin": the balancer must skip the one that sent the 379.
        // Without the backend's name, a replay could go right back to the origin that is
        // shutting down: fail safe.
        let Some(ServedBy(backend)) = response.extensions().get::<ServedBy>().cloned() else {
            return Err(Kind::NoBackend);
        };
        // Part A, intermediary 5: loops end after the configured number of replays.
        if self.replays >= self.config.max_replays {
            return Err(Kind::TooManyReplays {
                max: self.config.max_replays,
            });
        }
        let echo = response.into_body().map_err(Into::into).boxed_unsync();
        let (attempt, unused) = 'detach: {
            let mut source = lock(&self.source);
            if let Some(kind) = &source.failure {
                return Err(kind.clone());
            }
            // The layer read part of an echo itself and dropped it (see `drain`): a replay
            // would lack those bytes.
            if source.discarded > 0 {
                return Err(Kind::EchoDiscarded);
            }
            // No key, no way to check the echo (see `check`): never replayed.
            if source.key.is_none() {
                return Err(Kind::NoEchoKey);
            }
            // Under the lock, so the attempt cannot forward a byte between the count being
            // read and the attempt being detached.
            let (detached, sent) = source.active_forwarded();
            let echo = if sent == 0 {
                echo
            } else {
                let release = release_when_echoed(&self.source, detached);
                let spool = &self.config.spool;
                let timeout = self.config.echo_timeout;
                let stats = self.config.stats.clone();
                match prefetch::spawn(echo, sent, spool, timeout, stats, release) {
                    Ok(spooled) => spooled,
                    Err((echo, err)) => {
                        tracing::warn!(error = %err, bytes = sent, "no room to spool the echo");
                        break 'detach (Err(Kind::SpoolFull { expected: sent }), Some(echo));
                    }
                }
            };
            let (attempt, unused) = source.detach(echo, backend.clone());
            (Ok(attempt), unused)
        };
        // Nothing was forwarded, or no room to spool: drop the old exchange at once, outside
        // the lock.
        drop(unused);
        let attempt = attempt?;
        self.replays += 1;
        self.config.stats.add_replay();
        tracing::debug!(replay = self.replays, backend = %backend, "379: replaying on another backend");
        let body = ReplayBody::new(self.source.clone(), attempt);
        Ok(self.head.replay(self.replays, backend, body))
    }

    /// Whether a replay's response head may go to the client: only once every echo was
    /// verified (part A, intermediary 6). Reads the echo itself when the replay's upstream
    /// no longer pulls it; registers the task otherwise.
    pub(super) fn verdict(&mut self, cx: &mut Context<'_>) -> Verdict {
        let mut source = lock(&self.source);
        if let Some(kind) = &source.failure {
            return Verdict::Failed(kind.clone());
        }
        if !source.echo_pending() {
            return Verdict::Verified;
        }
        if source.taken_over() {
            drop(source);
            return match poll_drain(&self.source, cx) {
                Poll::Ready(Ok(())) => Verdict::Verified,
                Poll::Ready(Err(kind)) => Verdict::Failed(kind),
                Poll::Pending => Verdict::Draining,
            };
        }
        source.wait_head(cx);
        Verdict::Waiting(source.echo_progress)
    }

    /// While a replay is in flight: the failure, if the request failed. When the replay's
    /// body was dropped, reads the echo itself meanwhile (see `drain`), which releases the
    /// old exchanges early. Registers the task otherwise.
    pub(super) fn poll_echo(&mut self, cx: &mut Context<'_>) -> Option<Kind> {
        let mut source = lock(&self.source);
        if let Some(kind) = &source.failure {
            return Some(kind.clone());
        }
        if source.taken_over() {
            drop(source);
            return match poll_drain(&self.source, cx) {
                Poll::Ready(Err(kind)) => Some(kind),
                Poll::Ready(Ok(())) | Poll::Pending => None,
            };
        }
        source.wait_head(cx);
        None
    }

    /// A held replay's response saw no echo progress for `echo_timeout`: its upstream no
    /// longer pulls the replay's body, so the layer reads the rest of the echo itself.
    pub(super) fn take_over(&mut self) {
        tracing::debug!(
            replays = self.replays,
            "the replay's body is not read any more: the layer reads the echo itself"
        );
        lock(&self.source).take_over();
    }

    /// Whether an upstream started to read the active replay's body.
    pub(super) fn replay_taken(&self) -> bool {
        let source = lock(&self.source);
        source.attempts[source.active()].polled
    }

    /// The response goes to the client as is.
    pub(super) fn pass<R>(&mut self, response: Response<R>) -> Response<ReplayResponseBody<R>>
    where
        B: Send + 'static,
    {
        self.done = true;
        let status = response.status();
        if self.replays > 0 && status.is_server_error() {
            // The balancer's own 503 "no backend left" (see `backend`), an upstream error it
            // turned into a response, or an origin failing the replayed request: the replay
            // did not save the request (see `ReplayStats::failed`).
            self.config.stats.add_failed();
            tracing::warn!(
                replays = self.replays,
                status = status.as_u16(),
                "the replayed request was answered with a server error"
            );
        }
        // If the layer read this replay's echo itself, its upload ends once this response
        // is done (see `drain`).
        let release = match self.replays {
            0 => None,
            _ => Release::taken_over(&self.source),
        };
        response.map(|body| ReplayResponseBody::new(body).releasing(release))
    }

    /// The request cannot be saved: fail every attempt and answer `502` (part A,
    /// intermediary 4 and 5).
    pub(super) fn bad_gateway<R>(&mut self, kind: Kind) -> Response<ReplayResponseBody<R>> {
        self.done = true;
        self.config.stats.add_failed();
        let status = kind.status();
        tracing::warn!(replays = self.replays, reason = %kind, status = status.as_u16(), "partial POST replay failed");
        let garbage = lock(&self.source).fail(kind);
        drop(garbage);
        ReplayResponseBody::error(status)
    }

    /// The first attempt failed before any replay: its error goes to the caller as is.
    pub(super) fn finish(&mut self) {
        self.done = true;
    }
}

/// Releases the detached attempt once its echo is held in full (see `prefetch`): its body
/// fails, so hyper closes the old origin's connection (part A, intermediary 3).
fn release_when_echoed<B: Send + 'static>(source: &SharedSource<B>, attempt: usize) -> OnComplete {
    let source = std::sync::Arc::downgrade(source);
    Box::new(move || {
        if let Some(source) = source.upgrade() {
            lock(&source).release(attempt);
        }
    })
}

impl<B> Drop for Exchange<B> {
    fn drop(&mut self) {
        // The caller went away mid-replay: release the old exchanges (part A,
        // intermediary 3) and stop the replay.
        if !self.done {
            let garbage = lock(&self.source).fail(Kind::Abandoned);
            drop(garbage);
        }
    }
}
