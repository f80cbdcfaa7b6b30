//! [`PartialPostReplayLayer`]: the configuration.

use std::fmt;
use std::path::PathBuf;

use handoff_spool::{SpoolBudget, SpoolConfig};
use tower::Layer;

use super::predicate::ViaReplayProxy;
use super::PartialPostReplay;
use crate::Shutdown;

/// The default bound on the bytes a request may have consumed and still be replayed: 4 GiB
/// (on disk past [`DEFAULT_ECHO_MEMORY_LIMIT`]).
pub const DEFAULT_MAX_ECHO_BYTES: u64 = 4 << 30;

/// The default bound on the bytes kept for echoes by all requests of a layer together,
/// memory and disk: 16 GiB.
pub const DEFAULT_MAX_TOTAL_ECHO_BYTES: u64 = 16 << 30;

/// The default bytes of consumed body one request keeps in memory for its echo; the rest
/// goes to a temporary file: 128 KiB.
pub const DEFAULT_ECHO_MEMORY_LIMIT: usize = handoff_spool::DEFAULT_MEMORY_LIMIT;

/// Applies [`PartialPostReplay`] to a service. See the [module docs](super) for an example.
#[must_use]
#[derive(Clone)]
pub struct PartialPostReplayLayer<P = ViaReplayProxy> {
    pub(super) shutdown: Shutdown,
    pub(super) spool: SpoolConfig,
    pub(super) predicate: P,
}

impl PartialPostReplayLayer {
    /// Once `shutdown` is triggered, hands back every request with an incomplete body that
    /// came through a proxy that understands `379` ([`ViaReplayProxy`](super::ViaReplayProxy)).
    pub fn new(shutdown: Shutdown) -> Self {
        Self {
            shutdown,
            spool: SpoolConfig::new()
                .memory_limit(DEFAULT_ECHO_MEMORY_LIMIT)
                .max_bytes(DEFAULT_MAX_ECHO_BYTES)
                .budget(SpoolBudget::new(DEFAULT_MAX_TOTAL_ECHO_BYTES)),
            predicate: ViaReplayProxy,
        }
    }
}

impl<P> PartialPostReplayLayer<P> {
    /// Caps the copy of consumed body bytes kept per request for the echo, memory and disk
    /// together (default [`DEFAULT_MAX_ECHO_BYTES`]). A request whose handler consumed more
    /// is no longer replayable: on shutdown it drains like any other request.
    pub fn max_echo_bytes(mut self, max: u64) -> Self {
        self.spool = self.spool.max_bytes(max);
        self
    }

    /// Caps the consumed body bytes kept for echoes by all in-flight requests together
    /// (default [`DEFAULT_MAX_TOTAL_ECHO_BYTES`]), so memory and disk use do not grow with
    /// the number of concurrent uploads. A request that would exceed it is no longer
    /// replayable. Every service made from this layer (and its clones) shares the one
    /// budget.
    pub fn max_total_echo_bytes(mut self, max: u64) -> Self {
        self.spool = self.spool.budget(SpoolBudget::new(max));
        self
    }

    /// How many consumed bytes one request keeps in memory for its echo (default
    /// [`DEFAULT_ECHO_MEMORY_LIMIT`], like nginx's `client_body_buffer_size`); the rest goes
    /// to an unlinked temporary file, so memory per request stays this plus two 256 KiB
    /// chunks whatever the body's size. Bytes are copied in, so a client sending tiny
    /// frames cannot make the server hold more than it counts.
    pub fn echo_memory_limit(mut self, bytes: usize) -> Self {
        self.spool = self.spool.memory_limit(bytes);
        self
    }

    /// Where echo spill files are created (default: the system's temp dir).
    pub fn echo_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool = self.spool.dir(dir);
        self
    }

    /// Only requests for which `predicate` returns `true` may be answered with `379`.
    pub fn predicate<Q>(self, predicate: Q) -> PartialPostReplayLayer<Q> {
        PartialPostReplayLayer {
            shutdown: self.shutdown,
            spool: self.spool,
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
            .field("echo_spool", &self.spool)
            .field("predicate", &std::any::type_name::<P>())
            .finish()
    }
}
