//! The request extension through which a handler withdraws its request from replay.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use super::HandedOff;

/// The request may still be handed back to the proxy.
const REPLAYABLE: u8 = 0;
/// The handler (or a bound) withdrew it: it drains and runs to completion.
const CLAIMED: u8 = 1;
/// A shutdown handed it back to the proxy: the handler must not start a side effect.
const HANDED_OFF: u8 = 2;

/// Lets a handler say that its request must no longer be handed to another server.
///
/// [`PartialPostReplay`](super::PartialPostReplay) inserts one into every request's
/// extensions. Call [`claim`](Self::claim) **before** an irreversible side effect (a payment
/// is captured, a message is sent): it atomically checks that the request was not handed
/// back to the proxy and withdraws it from replay, so from then on a shutdown lets it drain
/// and the handler runs to completion. If the request was already handed back, `claim`
/// returns [`HandedOff`] and the handler must not perform the effect: the replay on another
/// origin will.
///
/// ```
/// use axum::{routing::post, Extension, Router};
/// use handoff_server::replay::ReplayControl;
///
/// async fn charge(Extension(replay): Extension<ReplayControl>, body: String) -> &'static str {
///     if replay.claim().is_err() {
///         return "handed to another origin"; // nobody reads this: the 379 went out
///     }
///     // ... the side effect happens here, even across awaits ...
///     "charged"
/// }
///
/// let app: Router = Router::new().route("/charge", post(charge));
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
pub struct ReplayControl {
    state: Arc<AtomicU8>,
}

impl ReplayControl {
    pub(super) fn new(replayable: bool) -> Self {
        let state = if replayable { REPLAYABLE } else { CLAIMED };
        Self {
            state: Arc::new(AtomicU8::new(state)),
        }
    }

    /// Withdraws the request from Partial POST Replay before a side effect; fails with
    /// [`HandedOff`] if a shutdown already handed it back to the proxy. Claiming twice is
    /// fine.
    pub fn claim(&self) -> Result<(), HandedOff> {
        match self
            .state
            .compare_exchange(REPLAYABLE, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(CLAIMED) => Ok(()),
            Err(_) => Err(HandedOff),
        }
    }

    /// Withdraws the request from Partial POST Replay, if it was not handed back already.
    /// Prefer [`claim`](Self::claim), which says whether it was.
    pub fn disable(&self) {
        let _ = self.claim();
    }

    /// Whether a shutdown would still hand this request back to the proxy (as far as the
    /// handler is concerned; a complete body or the echo bound also rule it out).
    pub fn is_replayable(&self) -> bool {
        self.state.load(Ordering::Acquire) == REPLAYABLE
    }

    /// The layer's side of the race with [`claim`](Self::claim): marks the request handed
    /// off, unless the handler claimed it first.
    pub(super) fn hand_off(&self) -> bool {
        self.state
            .compare_exchange(REPLAYABLE, HANDED_OFF, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_state() {
        let control = ReplayControl::new(true);
        let seen_by_layer = control.clone();
        assert!(seen_by_layer.is_replayable());
        control.disable();
        assert!(!seen_by_layer.is_replayable());
        assert!(!ReplayControl::new(false).is_replayable());
    }

    #[test]
    fn claim_and_hand_off_exclude_each_other() {
        let claimed = ReplayControl::new(true);
        assert_eq!(claimed.claim(), Ok(()));
        assert_eq!(claimed.claim(), Ok(()));
        assert!(!claimed.hand_off(), "a claimed request is never handed off");

        let handed = ReplayControl::new(true);
        assert!(handed.hand_off());
        assert_eq!(handed.claim(), Err(HandedOff));
        assert!(!handed.is_replayable());
    }

    #[test]
    fn racing_threads_agree() {
        for _ in 0..200 {
            let control = ReplayControl::new(true);
            let other = control.clone();
            let handler = std::thread::spawn(move || other.claim().is_ok());
            let layer = control.hand_off();
            let claimed = handler.join().unwrap();
            assert!(claimed != layer, "exactly one of them wins");
        }
    }
}
