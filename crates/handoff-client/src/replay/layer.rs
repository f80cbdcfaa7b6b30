use std::time::Duration;

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
    pub(super) stats: ReplayStats,
}

impl ReplayLayer {
    /// At most 3 replays per request, 30 s to wait for each echoed frame, private counters.
    pub fn new() -> Self {
        ReplayLayer {
            max_replays: 3,
            echo_timeout: Duration::from_secs(30),
            stats: ReplayStats::default(),
        }
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
