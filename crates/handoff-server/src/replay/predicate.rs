//! Which requests may be answered with `379` (finer control over `PROTOCOL.md` part A, server 2).

use http::request::Parts;

/// Decides, when a request arrives, whether it may be handed back to the proxy later.
///
/// Adding [`PartialPostReplayLayer`](super::PartialPostReplayLayer) is the deployment's
/// statement of prior knowledge that the proxy in front understands `379`; a predicate
/// narrows that down, for example to requests that came through the proxy's network or
/// to upload routes only. Any `Fn(&Parts) -> bool + Clone` is a predicate.
///
/// ```
/// use handoff_server::replay::{PartialPostReplayLayer, ReplayPredicate};
/// use handoff_server::Shutdown;
/// use http::request::Parts;
///
/// let only_uploads = |head: &Parts| head.uri.path().starts_with("/upload");
/// let (upload, _) = http::Request::post("/upload/7").body(()).unwrap().into_parts();
/// let (other, _) = http::Request::post("/login").body(()).unwrap().into_parts();
/// assert!(only_uploads.should_replay(&upload));
/// assert!(!only_uploads.should_replay(&other));
///
/// let layer = PartialPostReplayLayer::new(Shutdown::new()).predicate(only_uploads);
/// # let _ = layer;
/// ```
pub trait ReplayPredicate: Clone {
    /// `true` if this request may be answered with `379` when shutdown begins.
    fn should_replay(&self, head: &Parts) -> bool;
}

/// The default predicate: every request with a body may be handed back.
///
/// ```
/// use handoff_server::replay::{Always, ReplayPredicate};
/// let (head, _) = http::Request::put("/").body(()).unwrap().into_parts();
/// assert!(Always.should_replay(&head));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Always;

impl ReplayPredicate for Always {
    fn should_replay(&self, _head: &Parts) -> bool {
        true
    }
}

impl<F> ReplayPredicate for F
where
    F: Fn(&Parts) -> bool + Clone,
{
    fn should_replay(&self, head: &Parts) -> bool {
        self(head)
    }
}
