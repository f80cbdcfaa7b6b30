//! The resumable layer's use of the connection's [`InterimHandle`]: the locations in the
//! `100 Continue`, and `Acknowledge` interim responses (docs/PROTOCOL.md parts B.2, B.9).

use http::header::EXPECT;
use http::{HeaderMap, HeaderName, HeaderValue, Version};

use super::writer::Acks;
use crate::interim::InterimHandle;

/// The `Acknowledge` interim-response header (docs/PROTOCOL.md part B.9).
pub(crate) const ACKNOWLEDGE: HeaderName = HeaderName::from_static("acknowledge");

/// The interim responses of one request, when its connection can carry them: HTTP/1.1,
/// `Expect: 100-continue`, and the connection served through the `interim` hook.
#[derive(Debug)]
pub(crate) struct Hook {
    handle: InterimHandle,
}

impl Hook {
    pub(crate) fn of(parts: &http::request::Parts) -> Option<Self> {
        let expects = parts
            .headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if parts.version != Version::HTTP_11 || !expects {
            return None;
        }
        let handle = parts.extensions.get::<InterimHandle>()?.clone();
        Some(Self { handle })
    }

    /// Puts `headers` into the `100 Continue` that hyper writes when the body is first read.
    /// The resumable request reads its body at once, so the arm is always used: it is not
    /// cancelled when the request ends, because hyper may still hold that `100` unwritten
    /// (an early answer), and cancelling would send it bare.
    pub(crate) fn arm(&self, headers: &HeaderMap) {
        if !self.handle.arm_continue(headers) {
            tracing::debug!("the 100 Continue cannot carry the locations");
        }
    }

    /// Sends `Acknowledge: N` interim responses while the body arrives.
    pub(crate) fn acks(&self) -> Acks {
        let handle = self.handle.clone();
        Acks::new(move |durable| {
            let mut headers = HeaderMap::new();
            headers.insert(ACKNOWLEDGE, HeaderValue::from(durable));
            handle.send_continue(&headers)
        })
    }
}
