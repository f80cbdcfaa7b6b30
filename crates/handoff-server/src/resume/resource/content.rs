//! The content resource (`Content-Location`, docs/PROTOCOL.md part B.8): the recorded
//! response's body, with `Range`, so that an interrupted download of a large response
//! resumes.

use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use http::{HeaderValue, Method, Response, StatusCode};

use super::super::core::Core;
use super::super::range::{wanted, Wanted};
use super::super::record::Launch;
use super::super::reply::full;
use super::super::response_body::OwnBody;
use super::super::store::Resource;
use super::request::{content_range, unsatisfiable};
use super::response::{accepted, recorded};

/// `GET` (or `HEAD`): `200` with the whole body or `206` with one range, once the response
/// is recorded; `202` before that (after any `Prefer: wait`).
pub(super) async fn get(
    core: &Core,
    launch: Launch,
    resource: Resource,
    parts: &http::request::Parts,
) -> Response<OwnBody> {
    let recorded = match recorded(core, launch, resource, parts).await {
        Ok(Some(recorded)) => recorded,
        Ok(None) => return accepted(),
        Err(response) => return response,
    };
    let len = recorded.body.len() as u64;
    let (status, range) = match wanted(parts.headers.get(RANGE).map(|v| v.as_bytes()), len) {
        Wanted::All => (StatusCode::OK, 0..len),
        Wanted::Part(range) => (StatusCode::PARTIAL_CONTENT, range),
        Wanted::Unsatisfiable => return unsatisfiable(len),
    };
    let body = if parts.method == Method::HEAD {
        bytes::Bytes::new()
    } else {
        recorded
            .body
            .slice(range.start as usize..range.end as usize)
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(content_type) = recorded.headers.get(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, content_type.clone());
    }
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
    if status == StatusCode::PARTIAL_CONTENT {
        headers.insert(CONTENT_RANGE, content_range(&range, len));
    }
    response
}
