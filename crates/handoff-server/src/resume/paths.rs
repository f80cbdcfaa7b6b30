//! Where the resources of an operation live: `<prefix><id>/request`, `/response` and
//! `/content`, on the authority of the request that created them.

use http::HeaderValue;

use super::ResourceId;

/// Which of an operation's three resources a path names (docs/PROTOCOL.md parts B.2, B.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `Request-Content-Location`: `HEAD`, `GET`, `PATCH`.
    Request,
    /// `Response-Message-Location`: `GET`, `DELETE`.
    Response,
    /// `Content-Location`: the recorded response's content, `GET` with `Range`.
    Content,
}

impl Resource {
    fn segment(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
            Self::Content => "content",
        }
    }
}

/// The path prefix under which the layer serves its resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Paths {
    prefix: String,
}

/// What [`Paths::parse`] found under the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// One of an operation's resources.
    Resource(ResourceId, Resource),
    /// Under the prefix, but no resource: answered `404` like an unknown id.
    Unknown,
}

impl Paths {
    /// `prefix` is normalised to start and end with `/`.
    pub(crate) fn new(prefix: &str) -> Self {
        let trimmed = prefix.trim_matches('/');
        let prefix = if trimmed.is_empty() {
            "/".to_owned()
        } else {
            format!("/{trimmed}/")
        };
        Self { prefix }
    }

    #[cfg(test)]
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `None` when `path` is not under the prefix (the request is the application's).
    pub(crate) fn parse(&self, path: &str) -> Option<Target> {
        let rest = path.strip_prefix(&self.prefix)?;
        let target = rest
            .split_once('/')
            .and_then(|(id, which)| {
                let id = id.parse().ok()?;
                let which = [Resource::Request, Resource::Response, Resource::Content]
                    .into_iter()
                    .find(|r| r.segment() == which)?;
                Some(Target::Resource(id, which))
            })
            .unwrap_or(Target::Unknown);
        Some(target)
    }

    /// The path-absolute reference of one resource; clients resolve it against the request
    /// URI (docs/PROTOCOL.md part B.2), so it stays on the request's authority.
    pub(crate) fn location(&self, id: ResourceId, which: Resource) -> HeaderValue {
        let path = format!("{}{id}/{}", self.prefix, which.segment());
        HeaderValue::try_from(path).expect("a prefix and hex digits make a valid header value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_back() {
        let paths = Paths::new("resumable");
        assert_eq!(paths.prefix(), "/resumable/");
        let id = ResourceId::mint().unwrap();
        for which in [Resource::Request, Resource::Response, Resource::Content] {
            let location = paths.location(id, which);
            assert_eq!(
                paths.parse(location.to_str().unwrap()),
                Some(Target::Resource(id, which))
            );
        }
        assert_eq!(paths.parse("/upload"), None);
        assert_eq!(paths.parse("/resumable/xyz/request"), Some(Target::Unknown));
        assert_eq!(
            paths.parse(&format!("/resumable/{id}/other")),
            Some(Target::Unknown)
        );
        assert_eq!(
            paths.parse(&format!("/resumable/{id}/request/x")),
            Some(Target::Unknown)
        );
    }
}
