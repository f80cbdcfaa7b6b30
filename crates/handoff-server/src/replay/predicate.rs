//! Which requests may be answered with `379` (finer control over `PROTOCOL.md` part A, server 2).

use handoff_proto::ppr;
use http::request::Parts;

/// Decides, when a request arrives, whether it may be handed back to the proxy later.
///
/// The default, [`ViaReplayProxy`], accepts requests a replay proxy marked; a predicate
/// replaces it, for example to narrow it down to upload routes, or with [`Always`] where
/// every request comes through a proxy that understands `379` without marking them. Any
/// `Fn(&Parts) -> bool + Clone` is a predicate.
///
/// ```
/// use handoff_server::replay::{PartialPostReplayLayer, ReplayPredicate, ViaReplayProxy};
/// use handoff_server::Shutdown;
/// use http::request::Parts;
///
/// // Keep the default's check, and narrow it to uploads.
/// let only_uploads =
///     |head: &Parts| ViaReplayProxy.should_replay(head) && head.uri.path().starts_with("/upload");
/// let proxied = |path| {
///     let req = http::Request::post(path).header("partial-post-replay", "0");
///     req.body(()).unwrap().into_parts().0
/// };
/// assert!(only_uploads.should_replay(&proxied("/upload/7")));
/// assert!(!only_uploads.should_replay(&proxied("/login")));
/// let (direct, _) = http::Request::post("/upload/7").body(()).unwrap().into_parts();
/// assert!(!only_uploads.should_replay(&direct));
///
/// let layer = PartialPostReplayLayer::new(Shutdown::new()).predicate(only_uploads);
/// # let _ = layer;
/// ```
pub trait ReplayPredicate: Clone {
    /// `true` if this request may be answered with `379` when shutdown begins.
    fn should_replay(&self, head: &Parts) -> bool;
}

/// The default predicate: requests that came through a proxy that understands `379`.
///
/// `handoff-client`'s replay layer sends `Partial-Post-Replay: 0` on every first attempt
/// (and the replay count on replays), and strips the header from its clients. A request
/// without a valid `Partial-Post-Replay` did not come through such a proxy (an end client
/// reaching the origin directly, a health check, another proxy), so it is never answered
/// `379` (part A, server 2): it drains on shutdown like any request. Combine it with your
/// own rule in a closure: `|h: &Parts| ViaReplayProxy.should_replay(h) && ...`.
///
/// ```
/// use handoff_server::replay::{ReplayPredicate, ViaReplayProxy};
/// let (direct, _) = http::Request::put("/").body(()).unwrap().into_parts();
/// let (proxied, _) = http::Request::put("/")
///     .header("partial-post-replay", "0")
///     .body(())
///     .unwrap()
///     .into_parts();
/// assert!(!ViaReplayProxy.should_replay(&direct));
/// assert!(ViaReplayProxy.should_replay(&proxied));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ViaReplayProxy;

impl ReplayPredicate for ViaReplayProxy {
    fn should_replay(&self, head: &Parts) -> bool {
        matches!(ppr::replay_count(&head.headers), Ok(Some(_)))
    }
}

/// Every request with a body may be handed back, marked by a proxy or not: the explicit
/// opt-out of [`ViaReplayProxy`], for deployments where *every* request reaches the origin
/// through a proxy that understands `379` but does not mark them.
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
