use std::path::PathBuf;
use std::time::Duration;

use handoff_spool::{SpoolBudget, SpoolConfig};
use tower::Layer;

use super::service::Replay;
use super::stats::ReplayStats;

/// Applies [`Replay`] to a reverse proxy's upstream service: requests answered with `379`
/// are replayed on another backend. See the [module docs](super).
///
/// ```
/// use std::time::Duration;
/// use handoff_client::replay::{ReplayLayer, ReplayStats};
///
/// let stats = ReplayStats::default();
/// let layer = ReplayLayer::new()
///     .max_replays(2)
///     .echo_timeout(Duration::from_secs(10))
///     .stats(stats.clone());
/// assert!(format!("{layer:?}").contains("max_replays: 2"));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ReplayLayer {
    pub(super) max_replays: u32,
    pub(super) echo_timeout: Duration,
    pub(super) replay_timeout: Duration,
    pub(super) spool: SpoolConfig,
    pub(super) stats: ReplayStats,
}

/// Echo bytes one request keeps in memory before its spool spills to a file: 256 KiB.
pub const DEFAULT_ECHO_MEMORY_LIMIT: usize = 256 * 1024;

/// The most echo bytes one request may spool: 4 GiB.
pub const DEFAULT_MAX_ECHO_SPOOL_BYTES: u64 = 4 << 30;

/// The most echo bytes all requests of a layer may spool together: 16 GiB.
pub const DEFAULT_MAX_TOTAL_ECHO_SPOOL_BYTES: u64 = 16 << 30;

impl ReplayLayer {
    /// At most 3 replays per request, 30 s to wait for each echoed frame, 10 s for an
    /// upstream to take a replay, echo spools of [`DEFAULT_ECHO_MEMORY_LIMIT`] in memory,
    /// [`DEFAULT_MAX_ECHO_SPOOL_BYTES`] per request and
    /// [`DEFAULT_MAX_TOTAL_ECHO_SPOOL_BYTES`] in all, private counters.
    pub fn new() -> Self {
        ReplayLayer {
            max_replays: 3,
            echo_timeout: Duration::from_secs(30),
            replay_timeout: Duration::from_secs(10),
            spool: SpoolConfig::new()
                .memory_limit(DEFAULT_ECHO_MEMORY_LIMIT)
                .max_bytes(DEFAULT_MAX_ECHO_SPOOL_BYTES)
                .budget(SpoolBudget::new(DEFAULT_MAX_TOTAL_ECHO_SPOOL_BYTES)),
            stats: ReplayStats::default(),
        }
    }

    /// The longest a replay may wait for an upstream to take it: for the inner service to
    /// become ready and connect, up to hyper writing the replay's head on a connection
    /// (when it asks the body's size) or reading its body, or an answer. Past it the client
    /// gets `502`. An HTTP/2 stream queued behind the peer's concurrency limit before its
    /// head is written counts as waiting. Once the upstream reads the body, only
    /// [`echo_timeout`](Self::echo_timeout) and the upstream's own timeouts apply, however
    /// long the upload. The echo is taken from the old origin meanwhile. Default 10 s.
    pub fn replay_timeout(mut self, timeout: Duration) -> Self {
        self.replay_timeout = timeout;
        self
    }

    /// Echo bytes one request keeps in memory; the rest of its echo goes to an unlinked
    /// temporary file (see the [module docs](super)). Default [`DEFAULT_ECHO_MEMORY_LIMIT`].
    pub fn echo_memory_limit(mut self, bytes: usize) -> Self {
        self.spool = self.spool.memory_limit(bytes);
        self
    }

    /// The most echo bytes one request may spool, memory and disk together. A `379` whose
    /// echo would be larger is answered `503`. Default [`DEFAULT_MAX_ECHO_SPOOL_BYTES`].
    pub fn max_echo_spool_bytes(mut self, bytes: u64) -> Self {
        self.spool = self.spool.max_bytes(bytes);
        self
    }

    /// The most echo bytes all requests of this layer (and its clones) may spool together.
    /// A `379` whose echo does not fit is answered `503`. Default
    /// [`DEFAULT_MAX_TOTAL_ECHO_SPOOL_BYTES`].
    pub fn max_total_echo_spool_bytes(mut self, bytes: u64) -> Self {
        self.spool = self.spool.budget(SpoolBudget::new(bytes));
        self
    }

    /// The largest frame a replay's body sends from an echo spool (default and most:
    /// 256 KiB). The spool copies echo bytes in, so the origin's frame boundaries are not
    /// kept.
    pub fn echo_frame_size(mut self, bytes: usize) -> Self {
        self.spool = self.spool.frame_size(bytes);
        self
    }

    /// Where echo spill files are created. Default: the system's temp dir.
    pub fn echo_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool = self.spool.dir(dir);
        self
    }

    /// The budget every echo spool of this layer draws from: its `used()` is what they
    /// hold (reserved for echoes in flight) right now.
    pub fn echo_spool_budget(&self) -> &SpoolBudget {
        self.spool.get_budget()
    }

    /// How many times one request may be replayed (part A, intermediary 5). A `379` beyond
    /// that is answered `502`; `0` answers every `379` with `502`. Default 3.
    pub fn max_replays(mut self, max: u32) -> Self {
        self.max_replays = max;
        self
    }

    /// The longest the layer waits for the next frame of an echo. Without it, an origin that
    /// stops echoing would hold the request (and its old connection) forever. On expiry the
    /// client gets `502`. Default 30 s.
    ///
    /// It is also how long a replay's answer is held while no echoed byte goes through the
    /// replay's body: after that the layer reads the rest of the echo itself (see the
    /// [module docs](super)).
    pub fn echo_timeout(mut self, timeout: Duration) -> Self {
        self.echo_timeout = timeout;
        self
    }

    /// Counts into `stats` (share it by cloning) instead of private counters.
    pub fn stats(mut self, stats: ReplayStats) -> Self {
        self.stats = stats;
        self
    }
}

impl Default for ReplayLayer {
    fn default() -> Self {
        ReplayLayer::new()
    }
}

impl<S> Layer<S> for ReplayLayer {
    type Service = Replay<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Replay::new(inner, self.clone())
    }
}
