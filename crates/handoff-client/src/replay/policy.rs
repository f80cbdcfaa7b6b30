//! Where each attempt goes: the retargeting policy of [`Replay`](super::Replay).
//!
//! A `379` asks for a replay on a *different* origin (part A, intermediary 2). Before each
//! attempt, the first one included, the layer asks its [`Policy`] to point the request at
//! an upstream, given the backends that handed this request back so far
//! ([`AvoidBackends`]). A policy either chooses itself, by rewriting the request's URI for a
//! plain `hyper_util::client::legacy::Client` ([`Backends`]), or leaves the choice to a
//! balancer beneath the layer, which reads the [`AvoidBackends`] extension and names the
//! backend that answered with [`ServedBy`](crate::backend::ServedBy) ([`Balancer`], the
//! default).
//!
//! To know which origin to avoid next, the layer takes the `ServedBy` extension of a `379`
//! if it has one, else the backend the policy chose for that attempt. Without either it
//! answers `502`: a replay could go right back to the origin that is shutting down.
//!
//! ```
//! use handoff_client::backend::AvoidBackends;
//! use handoff_client::replay::policy::{Backends, NoBackend, Policy};
//! use http::uri::Authority;
//! use http::Request;
//!
//! let mut backends = Backends::new(["http://10.0.0.1:8080", "http://10.0.0.2:8080"]).unwrap();
//! let (mut parts, ()) = Request::post("/upload?id=7").body(()).unwrap().into_parts();
//!
//! // A replay away from 10.0.0.1, which handed the request back.
//! let mut avoid = AvoidBackends::new();
//! avoid.push(Authority::from_static("10.0.0.1:8080"));
//! let chosen = backends.retarget(&mut parts, &avoid).unwrap();
//! assert_eq!(chosen, Some(Authority::from_static("10.0.0.2:8080")));
//! assert_eq!(parts.uri, "http://10.0.0.2:8080/upload?id=7");
//!
//! // A policy can be a closure too.
//! let mut only_b = |parts: &mut http::request::Parts, avoid: &AvoidBackends| {
//!     let b = Authority::from_static("b.internal:80");
//!     if avoid.contains(&b) {
//!         return Err(NoBackend);
//!     }
//!     parts.uri = format!("http://{b}{}", parts.uri.path()).parse().unwrap();
//!     Ok(Some(b))
//! };
//! assert!(only_b.retarget(&mut parts, &AvoidBackends::new()).is_ok());
//! ```

use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::HOST;
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::HeaderValue;

use crate::backend::AvoidBackends;

/// Chooses the upstream of each attempt. See the [module docs](self).
///
/// The layer clones its policy for each client request (as tower-http's `FollowRedirect`
/// does), so state a policy changes in `retarget` lives for that request only: state shared
/// between requests belongs behind an `Arc`, as [`Backends`] keeps its rotation.
pub trait Policy {
    /// Points `parts` (the head of the attempt about to be sent) at an upstream that is not
    /// in `avoid`, the backends that handed this request back and the caller's own list.
    ///
    /// - `Ok(Some(backend))`: the policy chose `backend` (and rewrote the URI or set
    ///   whatever the inner service reads);
    /// - `Ok(None)`: the inner service chooses, and names the backend with
    ///   [`ServedBy`](crate::backend::ServedBy) on its responses;
    /// - `Err(NoBackend)`: no backend is left; the client gets `503`.
    fn retarget(
        &mut self,
        parts: &mut Parts,
        avoid: &AvoidBackends,
    ) -> Result<Option<Authority>, NoBackend>;
}

impl<F> Policy for F
where
    F: FnMut(&mut Parts, &AvoidBackends) -> Result<Option<Authority>, NoBackend>,
{
    fn retarget(
        &mut self,
        parts: &mut Parts,
        avoid: &AvoidBackends,
    ) -> Result<Option<Authority>, NoBackend> {
        self(parts, avoid)
    }
}

/// No backend is left for this attempt: every one is to be avoided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoBackend;

impl fmt::Display for NoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no backend left that did not hand the request back")
    }
}

impl Error for NoBackend {}

/// The default policy: the inner service is a balancer that chooses.
///
/// It must skip the backends in the request's [`AvoidBackends`] extension, tag its
/// responses with [`ServedBy`](crate::backend::ServedBy), and answer `503` itself when no
/// backend is left (see [`backend`](crate::backend)). The request is left as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Balancer;

impl Policy for Balancer {
    fn retarget(
        &mut self,
        _: &mut Parts,
        _: &AvoidBackends,
    ) -> Result<Option<Authority>, NoBackend> {
        Ok(None)
    }
}

/// A fixed list of backends for a plain `hyper_util::client::legacy::Client`: each attempt
/// goes to the next backend in turn that it need not avoid, by rewriting the request's
/// scheme and authority. Path and query are kept, and so is the client's host: its `Host`
/// header, or, for an HTTP/2 client whose request names its authority in the URI only, a
/// `Host` header made from that authority (vhost routing and signatures depend on it).
///
/// With no health state to tell a restarted origin from one still shutting down, a
/// backend that handed the request back is skipped, unless every backend is to be avoided:
/// then the one that handed it back longest ago, at least
/// [`revisit_after`](Self::revisit_after) ago (1 s by default), is tried again, since a
/// rolling restart has usually brought it back by then. Backends the caller listed in its
/// own [`AvoidBackends`] are never chosen. Clones share the rotation.
#[derive(Debug, Clone)]
pub struct Backends {
    backends: Arc<[Backend]>,
    next: Arc<AtomicUsize>,
    revisit_after: Duration,
}

#[derive(Debug)]
struct Backend {
    scheme: Scheme,
    authority: Authority,
}

/// A backend URI without a scheme or an authority, or no backend at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidBackend(String);

impl fmt::Display for InvalidBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid backend: {}", self.0)
    }
}

impl Error for InvalidBackend {}

impl Backends {
    /// Backends given as base URIs such as `http://10.0.0.1:8080`; at least one. A URI with
    /// a path (other than `/`) or a query is refused: the request's own path is sent as is.
    pub fn new<I>(uris: I) -> Result<Self, InvalidBackend>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let backends = uris
            .into_iter()
            .map(|uri| {
                let uri = uri.as_ref();
                let parsed: Uri = uri
                    .parse()
                    .map_err(|err| InvalidBackend(format!("{uri:?}: {err}")))?;
                let parts = parsed.into_parts();
                if parts
                    .path_and_query
                    .as_ref()
                    .is_some_and(|p| p.as_str() != "/")
                {
                    return Err(InvalidBackend(format!("{uri:?} has a path or query")));
                }
                match (parts.scheme, parts.authority) {
                    (Some(scheme), Some(authority)) => Ok(Backend { scheme, authority }),
                    _ => Err(InvalidBackend(format!(
                        "{uri:?} has no scheme or authority"
                    ))),
                }
            })
            .collect::<Result<Arc<[Backend]>, _>>()?;
        if backends.is_empty() {
            return Err(InvalidBackend("the list is empty".to_owned()));
        }
        Ok(Backends {
            backends,
            next: Arc::new(AtomicUsize::new(0)),
            revisit_after: Duration::from_secs(1),
        })
    }

    /// How long after handing a request back a backend may get it again, when every other
    /// backend is to be avoided too. Default 1 s; `Duration::MAX` never tries it again.
    pub fn revisit_after(mut self, after: Duration) -> Self {
        self.revisit_after = after;
        self
    }

    fn choose(&self, avoid: &AvoidBackends) -> Option<&Backend> {
        let count = self.backends.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
        let in_turn = (0..count).map(|i| &self.backends[(start + i) % count]);
        if let Some(free) = in_turn.clone().find(|b| !avoid.contains(&b.authority)) {
            return Some(free);
        }
        // Every backend handed it back (or was listed): the one that did longest ago, if
        // long enough ago; never one the caller listed (no time).
        in_turn
            .filter_map(|b| avoid.handed_back_at(&b.authority).map(|at| (at, b)))
            .filter(|(at, _)| at.elapsed() >= self.revisit_after)
            .min_by_key(|(at, _)| *at)
            .map(|(_, b)| b)
    }
}

impl Policy for Backends {
    fn retarget(
        &mut self,
        parts: &mut Parts,
        avoid: &AvoidBackends,
    ) -> Result<Option<Authority>, NoBackend> {
        let backend = self.choose(avoid).ok_or(NoBackend)?;
        if !parts.headers.contains_key(HOST) {
            if let Some(host) = parts.uri.authority() {
                if let Ok(value) = HeaderValue::from_str(host.as_str()) {
                    parts.headers.insert(HOST, value);
                }
            }
        }
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(backend.scheme.clone());
        uri.authority = Some(backend.authority.clone());
        uri.path_and_query = Some(path);
        parts.uri = Uri::from_parts(uri).expect("scheme, authority and path make a URI");
        Ok(Some(backend.authority.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn parts(uri: &str) -> Parts {
        http::Request::post(uri).body(()).unwrap().into_parts().0
    }

    fn a(s: &'static str) -> Authority {
        Authority::from_static(s)
    }

    #[test]
    fn first_attempts_go_round_robin_and_keep_the_path() {
        let mut policy = Backends::new(["http://a:1", "http://b:2"]).unwrap();
        let mut chosen = Vec::new();
        for _ in 0..4 {
            let mut head = parts("/up?x=1");
            let backend = policy.retarget(&mut head, &AvoidBackends::new()).unwrap();
            assert_eq!(head.uri.path_and_query().unwrap(), "/up?x=1");
            assert_eq!(head.uri.authority(), backend.as_ref());
            chosen.push(backend.unwrap().to_string());
        }
        assert_eq!(chosen, ["a:1", "b:2", "a:1", "b:2"]);
    }

    #[test]
    fn a_backend_that_handed_back_is_skipped_then_revisited() {
        let mut policy = Backends::new(["http://a:1", "http://b:2"]).unwrap();
        let mut avoid = AvoidBackends::new();
        avoid.push_handed_back(a("a:1"), Instant::now());
        for _ in 0..3 {
            let chosen = policy.retarget(&mut parts("/"), &avoid).unwrap();
            assert_eq!(chosen, Some(a("b:2")));
        }
        // Both handed it back just now: none is left.
        avoid.push_handed_back(a("b:2"), Instant::now());
        assert_eq!(policy.retarget(&mut parts("/"), &avoid), Err(NoBackend));
        // Long enough ago: the older one is tried again.
        let mut policy = policy.revisit_after(Duration::ZERO);
        assert_eq!(policy.retarget(&mut parts("/"), &avoid), Ok(Some(a("a:1"))));
    }

    #[test]
    fn a_backend_the_caller_listed_is_never_chosen() {
        let mut policy = Backends::new(["http://a:1"])
            .unwrap()
            .revisit_after(Duration::ZERO);
        let avoid = AvoidBackends::from(vec![a("a:1")]);
        assert_eq!(policy.retarget(&mut parts("/"), &avoid), Err(NoBackend));
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(Backends::new(Vec::<String>::new()).is_err());
        assert!(Backends::new(["/no-authority"]).is_err());
        assert!(Backends::new(["http://a:1", "not a uri"]).is_err());
        assert!(Backends::new(["http://a:1/api"]).is_err());
        assert!(Backends::new(["http://a:1/"]).is_ok());
    }

    #[test]
    fn the_clients_host_is_kept_or_made_from_its_uri() {
        let mut policy = Backends::new(["http://a:1"]).unwrap();
        // HTTP/1.1: the client's own Host header stays.
        let mut head = parts("/up");
        head.headers
            .insert(HOST, HeaderValue::from_static("app.example"));
        policy.retarget(&mut head, &AvoidBackends::new()).unwrap();
        assert_eq!(head.headers[HOST], "app.example");
        // HTTP/2: the authority was in the URI only.
        let mut head = parts("https://app.example/up");
        policy.retarget(&mut head, &AvoidBackends::new()).unwrap();
        assert_eq!(head.headers[HOST], "app.example");
        assert_eq!(head.uri, "http://a:1/up");
    }
}
