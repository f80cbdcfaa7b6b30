use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of a [`ReplayLayer`](super::ReplayLayer), shared by every clone.
///
/// Create one, hand a clone to [`ReplayLayer::stats`](super::ReplayLayer::stats) and read
/// the other: for metrics, or to check in tests that the layer never buffers a request body
/// (`max_held_bytes` stays at one frame per request in flight). See the [module docs](super)
/// for a full example.
///
/// ```
/// use handoff_client::replay::{ReplayLayer, ReplayStats};
///
/// let stats = ReplayStats::default();
/// let _layer = ReplayLayer::new().stats(stats.clone());
/// assert_eq!(stats.replays(), 0);
/// assert_eq!(stats.echoed_bytes(), 0);
/// assert_eq!(stats.failed(), 0);
/// assert_eq!(stats.held_bytes(), 0);
/// assert_eq!(stats.max_held_bytes(), 0);
/// ```
#[derive(Clone, Default)]
pub struct ReplayStats {
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    replays: AtomicU64,
    echoed: AtomicU64,
    failed: AtomicU64,
    held: AtomicU64,
    max_held: AtomicU64,
    spooled: AtomicU64,
}

impl ReplayStats {
    /// Replayed requests sent to another backend (part A, intermediary 2).
    pub fn replays(&self) -> u64 {
        self.counters.replays.load(Ordering::Relaxed)
    }

    /// Bytes read from the bodies of `379` responses (the echoes, part A, server 4).
    pub fn echoed_bytes(&self) -> u64 {
        self.counters.echoed.load(Ordering::Relaxed)
    }

    /// Client requests that a replay could not save: the layer answered `502`, or a replay's
    /// answer, passed to the client, was a server error (`5xx`: the balancer's `503` when no
    /// backend is left, an upstream error it turned into a response, an origin failing the
    /// replayed request). Other answers to a replay, a `413` included, count as saved: the
    /// request reached an origin, which decided.
    pub fn failed(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }

    /// Body bytes the layer holds right now, all requests together: read from the client or
    /// an echo and not yet handed to the upstream connection.
    pub fn held_bytes(&self) -> u64 {
        self.counters.held.load(Ordering::Relaxed)
    }

    /// The peak of [`held_bytes`](Self::held_bytes): at most one frame per request in flight
    /// (a client's frames are as large as the connection delivers them, up to hyper's read
    /// buffer of a few hundred KiB; an echo's are read back from its spool, up to 256 KiB),
    /// since the layer keeps no copy of the client's body (part A, intermediary 1). Echoes
    /// are the exception: see [`spooled_bytes`](Self::spooled_bytes).
    pub fn max_held_bytes(&self) -> u64 {
        self.counters.max_held.load(Ordering::Relaxed)
    }

    /// Echoed bytes the layer wrote to its echo spools (memory, then temporary files): it
    /// takes each echo as fast as the origin sends it, and the replay reads the spool (see
    /// the [module docs](super)). What the spools hold right now is
    /// [`ReplayLayer::echo_spool_budget`](super::ReplayLayer::echo_spool_budget)'s `used()`.
    pub fn spooled_bytes(&self) -> u64 {
        self.counters.spooled.load(Ordering::Relaxed)
    }

    pub(super) fn add_spooled(&self, n: u64) {
        self.counters.spooled.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn add_replay(&self) {
        self.counters.replays.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn add_echoed(&self, n: u64) {
        self.counters.echoed.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn add_failed(&self) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` bytes as held until the returned guard drops. Once per forwarded frame,
    /// on counters every request shares: a borrow (no reference count to move) and a read
    /// before the rarely needed write of the peak keep it to two atomic writes.
    pub(super) fn hold(&self, n: u64) -> Held<'_> {
        let counters = &*self.counters;
        let now = counters.held.fetch_add(n, Ordering::Relaxed) + n;
        if now > counters.max_held.load(Ordering::Relaxed) {
            counters.max_held.fetch_max(now, Ordering::Relaxed);
        }
        Held { counters, n }
    }
}

impl fmt::Debug for ReplayStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayStats")
            .field("replays", &self.replays())
            .field("echoed_bytes", &self.echoed_bytes())
            .field("failed", &self.failed())
            .field("held_bytes", &self.held_bytes())
            .field("max_held_bytes", &self.max_held_bytes())
            .field("spooled_bytes", &self.spooled_bytes())
            .finish()
    }
}

/// Bytes counted in [`ReplayStats::held_bytes`] while this lives.
pub(super) struct Held<'a> {
    counters: &'a Counters,
    n: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.counters.held.fetch_sub(self.n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_tracks_the_peak() {
        let stats = ReplayStats::default();
        {
            let shared = stats.clone();
            let _a = stats.hold(10);
            let _b = shared.hold(5);
            assert_eq!(stats.held_bytes(), 15);
        }
        let _c = stats.hold(3);
        assert_eq!(stats.held_bytes(), 3);
        assert_eq!(stats.max_held_bytes(), 15);
        assert!(format!("{stats:?}").contains("max_held_bytes: 15"));
    }
}
