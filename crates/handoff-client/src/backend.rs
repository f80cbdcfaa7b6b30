//! Routing extensions shared by the replay layer and the balancer beneath it.
//!
//! A `379` asks the proxy to replay the request on a *different* origin (`PROTOCOL.md`
//! part A, intermediary 2). tower's balancers pick a backend in `poll_ready`, before they see
//! the request, so the layer cannot choose the backend itself: it tells the balancer which
//! backends to skip with the [`AvoidBackends`] request extension, and the balancer tells the
//! layer which backend answered with the [`ServedBy`] response extension.
//!
//! The balancer's side of the contract:
//!
//! - never send a request to a backend listed in its [`AvoidBackends`] extension, except
//!   one that handed the request back ([`AvoidBackends::handed_back_at`]) and that its
//!   health state saw come up again since (a new instance at the same address);
//! - put [`ServedBy`] on every response it got from a backend;
//! - when every backend is avoided, answer `503 Service Unavailable` itself. It may drop the
//!   request body unread: the replay layer then reads the rest of the echo it carried itself
//!   and hands the 503 to the client as the final answer once that echo is verified (part A,
//!   intermediary 3 and 6), or answers `502` if the echo is wrong.
//!
//! ```
//! use handoff_client::backend::{AvoidBackends, ServedBy};
//! use http::uri::Authority;
//!
//! let backends = [Authority::from_static("10.0.0.1:8080"), Authority::from_static("10.0.0.2:8080")];
//!
//! // What a balancer does with a request's extensions.
//! fn pick<'a>(backends: &'a [Authority], ext: &http::Extensions) -> Option<&'a Authority> {
//!     let avoid = ext.get::<AvoidBackends>();
//!     backends.iter().find(|b| !avoid.is_some_and(|a| a.contains(b)))
//! }
//!
//! let mut req = http::Request::new(());
//! assert_eq!(pick(&backends, req.extensions()), Some(&backends[0]));
//!
//! req.extensions_mut().insert(AvoidBackends::from(vec![backends[0].clone()]));
//! let chosen = pick(&backends, req.extensions()).unwrap();
//! assert_eq!(chosen, &backends[1]);
//!
//! let mut res = http::Response::new(());
//! res.extensions_mut().insert(ServedBy(chosen.clone()));
//! assert_eq!(res.extensions().get::<ServedBy>().unwrap().0, backends[1]);
//! ```

use std::slice;
use std::time::Instant;

use http::uri::Authority;

/// Request extension: backends the balancer must not pick for this request.
///
/// Before each replay, the replay layer adds the backend that just answered `379`, with the
/// time of that `379` ([`handed_back_at`](Self::handed_back_at)), to any list the caller put
/// on the original request. Every backend that handed this request back stays listed, so a
/// request never goes back and forth between two origins that are shutting down.
///
/// A backend that handed the request back may be up again at the same address, as a new
/// instance, in a rolling restart. The balancer knows that better than the layer: it should
/// skip a listed backend unless its health state shows it came back up *after*
/// `handed_back_at` (a backend listed by the caller, without a time, is always skipped). A
/// balancer that finds every usable backend listed answers `503`. See the
/// [module docs](self).
///
/// ```
/// use handoff_client::backend::AvoidBackends;
/// use http::uri::Authority;
///
/// let mut avoid = AvoidBackends::new();
/// assert!(avoid.is_empty());
/// avoid.push(Authority::from_static("a.internal:80"));
/// avoid.push(Authority::from_static("A.INTERNAL:80")); // authorities compare case-insensitively
/// assert_eq!(avoid.len(), 1);
/// assert!(avoid.contains(&Authority::from_static("a.internal:80")));
/// assert_eq!(avoid.iter().count(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AvoidBackends {
    backends: Vec<Authority>,
    /// When each listed backend last handed the request back (`None`: listed by the caller).
    handed_back: Vec<Option<Instant>>,
}

impl AvoidBackends {
    /// An empty list.
    ///
    /// ```
    /// assert!(handoff_client::backend::AvoidBackends::new().is_empty());
    /// ```
    pub fn new() -> Self {
        AvoidBackends::default()
    }

    /// Lists `backend` as having handed the request back `at` (or moves its time to `at`). A
    /// backend the caller listed (without a time) stays listed without one: always skipped.
    ///
    /// ```
    /// use handoff_client::backend::AvoidBackends;
    /// use http::uri::Authority;
    /// use std::time::Instant;
    ///
    /// let a = Authority::from_static("a:1");
    /// let mut avoid = AvoidBackends::new();
    /// avoid.push(Authority::from_static("b:1"));
    /// let at = Instant::now();
    /// avoid.push_handed_back(a.clone(), at);
    /// assert_eq!(avoid.handed_back_at(&a), Some(at));
    /// assert_eq!(avoid.handed_back_at(&Authority::from_static("b:1")), None);
    /// assert_eq!(avoid.len(), 2);
    /// ```
    pub fn push_handed_back(&mut self, backend: Authority, at: Instant) {
        match self.backends.iter().position(|b| *b == backend) {
            Some(i) => {
                if let Some(listed) = &mut self.handed_back[i] {
                    *listed = at;
                }
            }
            None => {
                self.backends.push(backend);
                self.handed_back.push(Some(at));
            }
        }
    }

    /// When `backend` last handed the request back; `None` if it did not (or is not listed).
    pub fn handed_back_at(&self, backend: &Authority) -> Option<Instant> {
        let i = self.backends.iter().position(|b| b == backend)?;
        self.handed_back[i]
    }

    /// Whether `backend` is in the list.
    ///
    /// ```
    /// use handoff_client::backend::AvoidBackends;
    /// use http::uri::Authority;
    ///
    /// let avoid = AvoidBackends::from(vec![Authority::from_static("a:1")]);
    /// assert!(avoid.contains(&Authority::from_static("a:1")));
    /// assert!(!avoid.contains(&Authority::from_static("a:2")));
    /// ```
    pub fn contains(&self, backend: &Authority) -> bool {
        self.backends.iter().any(|b| b == backend)
    }

    /// The listed backends, oldest first.
    ///
    /// ```
    /// use handoff_client::backend::AvoidBackends;
    /// use http::uri::Authority;
    ///
    /// let avoid = AvoidBackends::from(vec![Authority::from_static("a:1"), Authority::from_static("b:1")]);
    /// let hosts: Vec<&str> = avoid.iter().map(|a| a.host()).collect();
    /// assert_eq!(hosts, ["a", "b"]);
    /// ```
    pub fn iter(&self) -> slice::Iter<'_, Authority> {
        self.backends.iter()
    }

    /// Adds `backend` unless it is already listed.
    ///
    /// ```
    /// use handoff_client::backend::AvoidBackends;
    /// use http::uri::Authority;
    ///
    /// let mut avoid = AvoidBackends::new();
    /// avoid.push(Authority::from_static("a:1"));
    /// avoid.push(Authority::from_static("a:1"));
    /// assert_eq!(avoid.len(), 1);
    /// ```
    pub fn push(&mut self, backend: Authority) {
        if !self.contains(&backend) {
            self.backends.push(backend);
            self.handed_back.push(None);
        }
    }

    /// How many backends are listed.
    ///
    /// ```
    /// assert_eq!(handoff_client::backend::AvoidBackends::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether the list is empty.
    ///
    /// ```
    /// assert!(handoff_client::backend::AvoidBackends::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }
}

impl From<Vec<Authority>> for AvoidBackends {
    /// Builds a list, dropping repeated backends.
    fn from(backends: Vec<Authority>) -> Self {
        let mut avoid = AvoidBackends::new();
        backends.into_iter().for_each(|b| avoid.push(b));
        avoid
    }
}

impl Extend<Authority> for AvoidBackends {
    fn extend<I: IntoIterator<Item = Authority>>(&mut self, iter: I) {
        iter.into_iter().for_each(|b| self.push(b));
    }
}

impl<'a> IntoIterator for &'a AvoidBackends {
    type Item = &'a Authority;
    type IntoIter = slice::Iter<'a, Authority>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Response extension: the backend that produced this response, set by the balancer.
///
/// A `379` without `ServedBy` is answered `502`: without knowing which origin is shutting
/// down, a replay could go right back to it. See the [module docs](self).
///
/// ```
/// use handoff_client::backend::ServedBy;
/// use http::uri::Authority;
///
/// let mut res = http::Response::new(());
/// res.extensions_mut().insert(ServedBy(Authority::from_static("10.0.0.7:8080")));
/// assert_eq!(res.extensions().get::<ServedBy>().unwrap().0.port_u16(), Some(8080));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedBy(pub Authority);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_and_from_deduplicate() {
        let a = Authority::from_static("a:1");
        let b = Authority::from_static("b:1");
        let mut avoid = AvoidBackends::from(vec![a.clone(), a.clone()]);
        avoid.extend([b.clone(), a.clone()]);
        let listed: Vec<_> = (&avoid).into_iter().cloned().collect();
        assert_eq!(listed, [a, b]);
    }

    #[test]
    fn extensions_are_clone_and_send() {
        fn assert_ext<T: Clone + Send + Sync + 'static>() {}
        assert_ext::<AvoidBackends>();
        assert_ext::<ServedBy>();
    }
}
