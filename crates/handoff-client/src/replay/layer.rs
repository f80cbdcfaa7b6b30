use tower::Layer;

use super::policy::Balancer;
use super::service::Replay;
use super::settings::{settings_methods, Settings};

/// Applies [`Replay`] to a reverse proxy's upstream service: requests answered with `379`
/// are replayed on another backend. See the [module docs](super).
///
/// ```
/// use std::time::Duration;
/// use handoff_client::replay::policy::Backends;
/// use handoff_client::replay::{ReplayLayer, ReplayStats};
///
/// let stats = ReplayStats::default();
/// let backends = Backends::new(["http://10.0.0.1:8080", "http://10.0.0.2:8080"]).unwrap();
/// let layer = ReplayLayer::with_policy(backends)
///     .max_replays(2)
///     .echo_timeout(Duration::from_secs(10))
///     .stats(stats.clone());
/// assert!(format!("{layer:?}").contains("max_replays: 2"));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ReplayLayer<P = Balancer> {
    settings: Settings,
    policy: P,
}

impl ReplayLayer {
    /// At most 3 replays per request, 30 s to wait for each echoed frame, 10 s for an
    /// upstream to take a replay, echo spools of [`DEFAULT_ECHO_MEMORY_LIMIT`] in memory,
    /// [`DEFAULT_MAX_ECHO_SPOOL_BYTES`] per request and
    /// [`DEFAULT_MAX_TOTAL_ECHO_SPOOL_BYTES`] in all, private counters; the inner service
    /// is a balancer that chooses each backend ([`Balancer`]).
    ///
    /// [`DEFAULT_ECHO_MEMORY_LIMIT`]: super::DEFAULT_ECHO_MEMORY_LIMIT
    /// [`DEFAULT_MAX_ECHO_SPOOL_BYTES`]: super::DEFAULT_MAX_ECHO_SPOOL_BYTES
    /// [`DEFAULT_MAX_TOTAL_ECHO_SPOOL_BYTES`]: super::DEFAULT_MAX_TOTAL_ECHO_SPOOL_BYTES
    pub fn new() -> Self {
        ReplayLayer::with_policy(Balancer)
    }
}

impl<P> ReplayLayer<P> {
    /// The defaults of [`new`](ReplayLayer::new), with `policy` choosing the upstream of
    /// each attempt (see [`policy`](super::policy)).
    pub fn with_policy(policy: P) -> Self {
        ReplayLayer {
            settings: Settings::default(),
            policy,
        }
    }

    settings_methods!();
}

impl Default for ReplayLayer {
    fn default() -> Self {
        ReplayLayer::new()
    }
}

impl<S, P: Clone> Layer<S> for ReplayLayer<P> {
    type Service = Replay<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Replay::from_parts(inner, self.policy.clone(), self.settings.clone())
    }
}
