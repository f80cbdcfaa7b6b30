//! [`ResumeLayer`]: the configuration.

use std::fmt;
use std::time::Duration;

use tower::retry::backoff::ExponentialBackoffMaker;
use tower::util::rng::HasherRng;
use tower::Layer;

use super::event::{Observer, ResumeEvent};
use super::Resume;

/// When the stored response is released with `DELETE` (docs/PROTOCOL.md part B.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Release {
    /// Once the caller has read the response body to its end (the default).
    #[default]
    AfterBody,
    /// As soon as the response is in hand.
    Immediately,
    /// Never: the server forgets it when it expires.
    Never,
}

/// Applies [`Resume`] to a service. See the [module docs](super) for an example.
#[must_use]
#[derive(Clone)]
pub struct ResumeLayer {
    pub(super) config: Config,
}

#[derive(Clone)]
pub(super) struct Config {
    pub(super) max_retries: u32,
    pub(super) deadline: Duration,
    pub(super) backoff_min: Duration,
    pub(super) backoff_max: Duration,
    pub(super) wait: Duration,
    pub(super) release: Release,
    pub(super) max_response_bytes: usize,
    pub(super) expect_timeout: Duration,
    pub(super) observer: Option<Observer>,
}

impl ResumeLayer {
    /// Defaults: 10 retries, a 1 hour deadline, backoff from 50 ms to 5 s with 50% jitter,
    /// `Prefer: wait=10` on the response message, release after the body.
    pub fn new() -> Self {
        Self {
            config: Config {
                max_retries: 10,
                deadline: Duration::from_secs(3600),
                backoff_min: Duration::from_millis(50),
                backoff_max: Duration::from_secs(5),
                wait: Duration::from_secs(10),
                release: Release::AfterBody,
                max_response_bytes: 64 * 1024 * 1024,
                expect_timeout: Duration::from_secs(1),
                observer: None,
            },
        }
    }

    /// How many failed exchanges (connection errors, `5xx`, conflicts) the whole operation
    /// may meet before it fails with [`ResumeError::is_exhausted`](super::ResumeError::is_exhausted).
    pub fn max_retries(mut self, max: u32) -> Self {
        self.config.max_retries = max;
        self
    }

    /// The time the whole operation may take, every retry included.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.config.deadline = deadline;
        self
    }

    /// The delays between retries: exponential from `min` to `max`, with jitter (tower's
    /// `ExponentialBackoffMaker`). `max` is raised to `min` and to at least 1 ms.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.backoff_min = min;
        self.config.backoff_max = max.max(min).max(Duration::from_millis(1));
        self
    }

    /// How long the server may hold a `GET` of the response message (`Prefer: wait`).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.config.wait = wait;
        self
    }

    /// When the stored response is released.
    pub fn release(mut self, release: Release) -> Self {
        self.config.release = release;
        self
    }

    /// How long the body waits for the server's `100 Continue` before its first byte
    /// (default 1 s, as curl does). A resumable server publishes its locations in that
    /// `100`, so waiting for it makes every later cut resumable; a server that ignores
    /// `Expect` costs this delay once per request.
    pub fn expect_timeout(mut self, timeout: Duration) -> Self {
        self.config.expect_timeout = timeout;
        self
    }

    /// Calls `f` with every [`ResumeEvent`] of every request (progress bars, logs). It runs
    /// on the request's task: keep it quick.
    pub fn on_event(mut self, f: impl Fn(&ResumeEvent) + Send + Sync + 'static) -> Self {
        self.config.observer = Some(Observer::new(f));
        self
    }

    /// The largest response body read whole (default 64 MiB). A resumable response is read
    /// whole so that a cut during the response can be completed from the stored copy; a
    /// larger one fails the request.
    pub fn max_response_bytes(mut self, max: usize) -> Self {
        self.config.max_response_bytes = max;
        self
    }
}

impl Config {
    /// A backoff of its own for each request: its random source is seeded afresh, so that
    /// requests cut together do not retry together.
    pub(super) fn backoff(&self) -> ExponentialBackoffMaker {
        ExponentialBackoffMaker::new(
            self.backoff_min,
            self.backoff_max,
            0.5,
            HasherRng::default(),
        )
        .expect("min <= max, max > 0 and a positive jitter are valid")
    }
}

impl Default for ResumeLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ResumeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumeLayer")
            .field("max_retries", &self.config.max_retries)
            .field("deadline", &self.config.deadline)
            .field("wait", &self.config.wait)
            .field("release", &self.config.release)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ResumeLayer {
    type Service = Resume<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Resume {
            inner,
            config: self.config.clone(),
        }
    }
}
