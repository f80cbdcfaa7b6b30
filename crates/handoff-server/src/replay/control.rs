//! The request extension through which a handler withdraws its request from replay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Lets a handler say that its request must no longer be handed to another server.
///
/// [`PartialPostReplay`](super::PartialPostReplay) inserts one into every request's
/// extensions. Call [`disable`](Self::disable) right after an irreversible side effect (a
/// payment was captured, a message was sent): from then on a shutdown no longer answers the
/// request with `379`, it drains like any other request and the handler runs to completion.
///
/// ```
/// use axum::{routing::post, Extension, Router};
/// use handoff_server::replay::ReplayControl;
///
/// async fn charge(Extension(replay): Extension<ReplayControl>, body: String) -> &'static str {
///     // ... the side effect happens here ...
///     replay.disable();
///     "charged"
/// }
///
/// let app: Router = Router::new().route("/charge", post(charge));
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
pub struct ReplayControl {
    replayable: Arc<AtomicBool>,
}

impl ReplayControl {
    pub(super) fn new(replayable: bool) -> Self {
        Self {
            replayable: Arc::new(AtomicBool::new(replayable)),
        }
    }

    /// Withdraws the request from Partial POST Replay for good.
    pub fn disable(&self) {
        self.replayable.store(false, Ordering::Release);
    }

    /// Whether a shutdown would still hand this request back to the proxy (as far as the
    /// handler is concerned; a complete body or the echo bound also rule it out).
    pub fn is_replayable(&self) -> bool {
        self.replayable.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let control = ReplayControl::new(true);
        let seen_by_layer = control.clone();
        assert!(seen_by_layer.is_replayable());
        control.disable();
        assert!(!seen_by_layer.is_replayable());
        assert!(!ReplayControl::new(false).is_replayable());
    }
}
