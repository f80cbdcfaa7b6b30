//! The proxy's own copy of the request head, replayed instead of the `379`'s `Echo-`
//! headers, which the origin could forge (part A, intermediary 2 and 6).

use handoff_proto::ppr;
use http::request::Parts;
use std::time::Instant;

use http::uri::Authority;
use http::{Extensions, HeaderMap, Method, Request, Uri, Version};

use crate::backend::AvoidBackends;

pub(super) struct Head {
    method: Method,
    pub(super) uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
    /// The caller's list, plus every backend that handed this request back so far.
    avoid: AvoidBackends,
}

impl Head {
    pub(super) fn snapshot(parts: &Parts) -> Self {
        Head {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            extensions: parts.extensions.clone(),
            avoid: parts
                .extensions
                .get::<AvoidBackends>()
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The head of replay number `count` (1-based), to be sent away from `backend`, the one
    /// that answered the last `379`.
    ///
    /// The head is the one the first attempt went with, `Host` included (vhost routing and
    /// request signatures depend on it; only the policy may change the URI), plus the replay
    /// count (part A, intermediary 5). `backend` joins the [`AvoidBackends`] list with the
    /// time of its `379`, after the caller's own and every earlier one (see its docs for how
    /// a balancer tells a restarted origin from one still shutting down). `max_replays`
    /// bounds the loops. The policy then points it at an upstream (see `policy`).
    pub(super) fn replay(&mut self, count: u32, backend: Authority) -> Parts {
        let mut req = Request::new(());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        let headers = req.headers_mut();
        *headers = self.headers.clone();
        headers.insert(ppr::REPLAY_COUNT, ppr::replay_count_value(count));
        let extensions = req.extensions_mut();
        *extensions = self.extensions.clone();
        self.avoid.push_handed_back(backend, Instant::now());
        extensions.insert(self.avoid.clone());
        req.into_parts().0
    }

    /// The caller's list, plus every backend that handed this request back so far.
    pub(super) fn avoid(&self) -> &AvoidBackends {
        &self.avoid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HOST;

    #[test]
    fn replay_keeps_the_head_host_included_and_marks_the_count() {
        let mut req = Request::post("http://svc.internal/upload?x=1")
            .version(Version::HTTP_11)
            .header(HOST, "svc.internal")
            .header("content-length", "10")
            .header(ppr::REPLAY_COUNT, "7")
            .body(())
            .unwrap();
        req.extensions_mut().insert(42u8);
        let (parts, ()) = req.into_parts();
        let mut head = Head::snapshot(&parts);

        let replay = Request::from_parts(head.replay(2, Authority::from_static("a:1")), ());
        assert_eq!(replay.method(), Method::POST);
        assert_eq!(replay.uri(), "http://svc.internal/upload?x=1");
        assert_eq!(replay.headers()[HOST], "svc.internal");
        assert_eq!(replay.headers()["content-length"], "10");
        assert_eq!(replay.headers()[ppr::REPLAY_COUNT], "2");
        assert_eq!(replay.extensions().get::<u8>(), Some(&42));
        let avoid = replay.extensions().get::<AvoidBackends>().unwrap();
        assert!(avoid.contains(&Authority::from_static("a:1")));
        assert!(avoid
            .handed_back_at(&Authority::from_static("a:1"))
            .is_some());
    }

    #[test]
    fn replay_adds_every_backend_that_handed_back_to_the_callers_list() {
        let mut req = Request::post("http://svc.internal/upload")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(AvoidBackends::from(vec![Authority::from_static("c:1")]));
        let (parts, ()) = req.into_parts();
        let mut head = Head::snapshot(&parts);
        let mut replay = |count, backend| Request::from_parts(head.replay(count, backend), ());
        let first = replay(1, Authority::from_static("a:1"));
        let second = replay(2, Authority::from_static("b:1"));
        let third = replay(3, Authority::from_static("a:1"));
        let listed = |r: &Request<()>| {
            let avoid = r.extensions().get::<AvoidBackends>().unwrap();
            avoid.iter().map(|a| a.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(listed(&first), ["c:1", "a:1"]);
        // No A -> B -> A: `a` stays listed.
        assert_eq!(listed(&second), ["c:1", "a:1", "b:1"]);
        let at = |r: &Request<()>, b| {
            let avoid = r.extensions().get::<AvoidBackends>().unwrap();
            avoid.handed_back_at(&Authority::from_static(b))
        };
        assert_eq!(at(&second, "c:1"), None, "the caller's entry has no time");
        // `a` handed it back again (a new instance at the same address): its time moves on.
        assert!(at(&third, "a:1") > at(&second, "a:1"));
    }
}
