//! The configuration [`Replay`](super::Replay) and [`ReplayLayer`](super::ReplayLayer)
//! share, and the builder methods both offer (in the manner of tower-http's services and
//! layers, which take the same settings).

use std::time::Duration;

use handoff_spool::{SpoolBudget, SpoolConfig};

use super::stats::ReplayStats;

/// Echo bytes one request keeps in memory before its spool spills to a file: 256 KiB.
pub const DEFAULT_ECHO_MEMORY_LIMIT: usize = 256 * 1024;

/// The most echo bytes one request may spool: 4 GiB.
pub const DEFAULT_MAX_ECHO_SPOOL_BYTES: u64 = 4 << 30;

/// The most echo bytes all requests of a layer may spool together: 16 GiB.
pub const DEFAULT_MAX_TOTAL_ECHO_SPOOL_BYTES: u64 = 16 << 30;

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) max_replays: u32,
    pub(super) echo_timeout: Duration,
    pub(super) replay_timeout: Duration,
    pub(super) spool: SpoolConfig,
    pub(super) stats: ReplayStats,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
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
}

/// The builder methods of a type with a `settings: Settings` field.
macro_rules! settings_methods {
    () => {
        /// How many times one request may be replayed (part A, intermediary 5). A `379`
        /// beyond that is answered `502`; `0` answers every `379` with `502`. Default 3.
        pub fn max_replays(mut self, max: u32) -> Self {
            self.settings.max_replays = max;
            self
        }

        /// The longest the layer waits for the next frame of an echo from the origin that
        /// handed the request back. Without it, an origin that stops echoing would hold the
        /// request (and its old connection) forever. On expiry the client gets `502`.
        /// Default 30 s.
        ///
        /// It also bounds, between once and twice over, how long a replay may read none of
        /// its echo: before its answer, the client then gets `502`; after it, the layer
        /// reads the rest of the echo itself (see the [module docs](crate::replay)).
        pub fn echo_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.echo_timeout = timeout;
            self
        }

        /// The longest a replay may wait for an upstream to take it: for the inner service
        /// to become ready and connect, up to hyper writing the replay's head on a
        /// connection (when it asks the body's size) or reading its body, or an answer.
        /// Past it the client gets `502`. An HTTP/2 stream queued behind the peer's
        /// concurrency limit before its head is written counts as waiting. Once the
        /// upstream took it, [`echo_timeout`](Self::echo_timeout) bounds each wait for it
        /// to read more of the echo; once the echo is sent, only the upstream's own
        /// timeouts apply, however long the upload. The echo is taken from the old origin
        /// meanwhile. Default 10 s.
        pub fn replay_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.replay_timeout = timeout;
            self
        }

        /// Echo bytes one request keeps in memory; the rest of its echo goes to an
        /// unlinked temporary file (see the [module docs](crate::replay)). Default
        /// [`DEFAULT_ECHO_MEMORY_LIMIT`](crate::replay::DEFAULT_ECHO_MEMORY_LIMIT).
        pub fn echo_memory_limit(mut self, bytes: usize) -> Self {
            self.settings.spool = self.settings.spool.memory_limit(bytes);
            self
        }

        /// The most echo bytes one request may spool, memory and disk together. A `379`
        /// whose echo would be larger is answered `503`. Default
        /// [`DEFAULT_MAX_ECHO_SPOOL_BYTES`](crate::replay::DEFAULT_MAX_ECHO_SPOOL_BYTES).
        pub fn max_echo_spool_bytes(mut self, bytes: u64) -> Self {
            self.settings.spool = self.settings.spool.max_bytes(bytes);
            self
        }

        /// The most echo bytes all requests of this value (and its clones) may spool
        /// together. A `379` whose echo does not fit is answered `503`. Default
        /// [`DEFAULT_MAX_TOTAL_ECHO_SPOOL_BYTES`](crate::replay::DEFAULT_MAX_TOTAL_ECHO_SPOOL_BYTES).
        pub fn max_total_echo_spool_bytes(mut self, bytes: u64) -> Self {
            let budget = handoff_spool::SpoolBudget::new(bytes);
            self.settings.spool = self.settings.spool.budget(budget);
            self
        }

        /// The largest frame a replay's body sends from an echo spool (default and most:
        /// 256 KiB). The spool copies echo bytes in, so the origin's frame boundaries are
        /// not kept.
        pub fn echo_frame_size(mut self, bytes: usize) -> Self {
            self.settings.spool = self.settings.spool.frame_size(bytes);
            self
        }

        /// Where echo spill files are created. Default: the system's temp dir.
        pub fn echo_spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
            self.settings.spool = self.settings.spool.dir(dir);
            self
        }

        /// The budget every echo spool of this value draws from: its `used()` is what they
        /// hold (reserved for echoes in flight) right now.
        pub fn echo_spool_budget(&self) -> &crate::replay::SpoolBudget {
            self.settings.spool.get_budget()
        }

        /// Counts into `stats` (share it by cloning) instead of private counters.
        pub fn stats(mut self, stats: crate::replay::ReplayStats) -> Self {
            self.settings.stats = stats;
            self
        }
    };
}

pub(super) use settings_methods;
