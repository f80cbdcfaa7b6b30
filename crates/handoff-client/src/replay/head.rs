//! The proxy's own copy of the request head, replayed instead of the `379`'s `Echo-`
//! headers, which the origin could forge (part A, intermediary 2 and 6).

use handoff_proto::ppr;
use http::request::Parts;
use http::uri::Authority;
use http::{Extensions, HeaderMap, Method, Request, Uri, Version};

use crate::backend::AvoidBackends;

pub(super) struct Head {
    method: Method,
    pub(super) uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
}

impl Head {
    pub(super) fn snapshot(parts: &Parts) -> Self {
        Head {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            extensions: parts.extensions.clone(),
        }
    }

    /// The head of replay number `count` (1-based), to be sent away from `backend`, the one
    /// that answered the last `379`.
    ///
    /// The head is the one the first attempt went with, `Host` included (vhost routing and
    /// request signatures depend on it; the layer does not change the URI), plus the replay
    /// count (part A, intermediary 5). Only the last backend is added to the caller's own
    /// [`AvoidBackends`] (if any), not the ones that handed the request back earlier: in a
    /// rolling restart of two origins those are up again at the same address, and avoiding
    /// them would leave no backend. `max_replays` bounds the loops.
    pub(super) fn replay<T>(&self, count: u32, backend: Authority, body: T) -> Request<T> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        let headers = req.headers_mut();
        *headers = self.headers.clone();
        headers.insert(ppr::REPLAY_COUNT, ppr::replay_count_value(count));
        let extensions = req.extensions_mut();
        *extensions = self.extensions.clone();
        let mut avoid = extensions.remove::<AvoidBackends>().unwrap_or_default();
        avoid.push(backend);
        extensions.insert(avoid);
        req
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
        let head = Head::snapshot(&parts);

        let avoid = AvoidBackends::from(vec![Authority::from_static("a:1")]);
        let replay = head.replay(2, Authority::from_static("a:1"), ());
        assert_eq!(replay.method(), Method::POST);
        assert_eq!(replay.uri(), "http://svc.internal/upload?x=1");
        assert_eq!(replay.headers()[HOST], "svc.internal");
        assert_eq!(replay.headers()["content-length"], "10");
        assert_eq!(replay.headers()[ppr::REPLAY_COUNT], "2");
        assert_eq!(replay.extensions().get::<u8>(), Some(&42));
        assert_eq!(replay.extensions().get::<AvoidBackends>(), Some(&avoid));
    }

    #[test]
    fn replay_adds_the_last_backend_to_the_callers_list() {
        let mut req = Request::post("http://svc.internal/upload")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(AvoidBackends::from(vec![Authority::from_static("c:1")]));
        let (parts, ()) = req.into_parts();
        let head = Head::snapshot(&parts);
        let first = head.replay(1, Authority::from_static("a:1"), ());
        let second = head.replay(2, Authority::from_static("b:1"), ());
        let listed = |r: &Request<()>| {
            let avoid = r.extensions().get::<AvoidBackends>().unwrap();
            avoid.iter().map(|a| a.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(listed(&first), ["c:1", "a:1"]);
        assert_eq!(listed(&second), ["c:1", "b:1"]);
    }
}
