//! [`PartialPostReplayLayer`]: the configuration.

use std::fmt;

use tower::Layer;

use super::budget::EchoBudget;
use super::predicate::Always;
use super::PartialPostReplay;
use crate::Shutdown;

/// The default bound on the bytes a request may have consumed and still be replayed: 64 MiB.
pub const DEFAULT_MAX_ECHO_BYTES: usize = 64 * 1024 * 1024;

/// The default bound on the bytes kept for echoes by all requests of a layer together: 1 GiB.
pub const DEFAULT_MAX_TOTAL_ECHO_BYTES: usize = 1024 * 1024 * 1024;

/// Applies [`PartialPostReplay`] to a service. See the [module docs](super) for an example.
#[must_use]
#[derive(Clone)]
pub struct PartialPostReplayLayer<P = Always> {
    pub(super) shutdown: Shutdown,
    pub(super) max_echo_bytes: usize,
    pub(super) budget: EchoBudget,
    pub(super) predicate: P,
}

impl PartialPostReplayLayer {
    /// Replays every request with an incomplete body once `shutdown` is triggered.
    pub fn new(shutdown: Shutdown) -> Self {
        Self {
            shutdown,
            max_echo_bytes: DEFAULT_MAX_ECHO_BYTES,
            budget: EchoBudget::new(DEFAULT_MAX_TOTAL_ECHO_BYTES),
            predicate: Always,
        }
    }
}

impl<P> PartialPostReplayLayer<P> {
    /// Caps the copy of consumed body bytes kept per request for the echo (default
    /// [`DEFAULT_MAX_ECHO_BYTES`]). A request whose handler consumed more is no longer
    /// replayable: on shutdown it drains like any other request.
    pub fn max_echo_bytes(mut self, max: usize) -> Self {
        self.max_echo_bytes = max;
        self
    }

    /// Caps the consumed body bytes kept for echoes by all in-flight requests together
    /// (default [`DEFAULT_MAX_TOTAL_ECHO_BYTES`]), so memory does not grow with the number
    /// of concurrent uploads. A request that would exceed it is no longer replayable. Every
    /// service made from this layer (and its clones) shares the one budget.
    pub fn max_total_echo_bytes(mut self, max: usize) -> Self {
        self.budget = EchoBudget::new(max);
        self
    }

    /// Only requests for which `predicate` returns `true` may be answered with `379`.
    pub fn predicate<Q>(self, predicate: Q) -> PartialPostReplayLayer<Q> {
        PartialPostReplayLayer {
            shutdown: self.shutdown,
            max_echo_bytes: self.max_echo_bytes,
            budget: self.budget,
            predicate,
        }
    }
}

impl<S, P: Clone> Layer<S> for PartialPostReplayLayer<P> {
    type Service = PartialPostReplay<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        PartialPostReplay::from_layer(inner, self.clone())
    }
}

impl<P> fmt::Debug for PartialPostReplayLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartialPostReplayLayer")
            .field("shutdown", &self.shutdown)
            .field("max_echo_bytes", &self.max_echo_bytes)
            .field("echo_budget", &self.budget)
            .field("predicate", &std::any::type_name::<P>())
            .finish()
    }
}
