//! The request-content resource, read side: `HEAD` answers the held length, `GET` the held
//! bytes (docs/PROTOCOL.md parts B.3, B.8).

use futures_util::stream;
use http::header::{ACCEPT_RANGES, ALLOW, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use http::{HeaderValue, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use super::super::core::Core;
use super::super::range::{wanted, Wanted};
use super::super::record::Launch;
use super::super::reply::{full, not_found, refuse};
use super::super::response_body::OwnBody;
use super::super::store::Resource;
use super::adopt;
use crate::BoxError;
use handoff_proto::message_http::incomplete_content;

/// The most bytes one frame of a `GET` carries.
const FRAME_BYTES: usize = 256 * 1024;

/// `HEAD`: `Content-Length` is the held length; `299 Incomplete Content` while bytes are
/// missing, `200` once complete.
pub(super) fn head(_core: &Core, launch: Launch, resource: Resource) -> Response<OwnBody> {
    if resource.abandoned {
        return not_found();
    }
    adopt(launch, &resource);
    let mut response = Response::new(full(""));
    *response.status_mut() = if resource.is_complete() {
        StatusCode::OK
    } else {
        incomplete_content()
    };
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(resource.length));
    response
}

/// `GET`: the held bytes (honouring a single `Range`), or `405` where the store does not
/// keep them.
pub(super) async fn get(
    core: &Core,
    resource: Resource,
    parts: &http::request::Parts,
) -> Response<OwnBody> {
    if resource.abandoned {
        return not_found();
    }
    if !core.store.keeps_content() {
        let mut response = refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "this server does not keep request content once consumed",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("HEAD, PATCH"));
        return response;
    }
    let held = resource.length;
    let (status, range) = match wanted(parts.headers.get(RANGE).map(|v| v.as_bytes()), held) {
        Wanted::All => (StatusCode::OK, 0..held),
        Wanted::Part(range) => (StatusCode::PARTIAL_CONTENT, range),
        Wanted::Unsatisfiable => return unsatisfiable(held),
    };
    let mut response = Response::new(stream_bytes(core, resource.id, range.clone()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
    if status == StatusCode::PARTIAL_CONTENT {
        headers.insert(CONTENT_RANGE, content_range(&range, held));
    }
    response
}

pub(super) fn unsatisfiable(len: u64) -> Response<OwnBody> {
    let mut response = refuse(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "the range is past the end",
    );
    response.headers_mut().insert(
        CONTENT_RANGE,
        HeaderValue::try_from(format!("bytes */{len}")).expect("digits"),
    );
    response
}

pub(super) fn content_range(range: &std::ops::Range<u64>, len: u64) -> HeaderValue {
    HeaderValue::try_from(format!("bytes {}-{}/{len}", range.start, range.end - 1)).expect("digits")
}

/// The bytes of `range`, read from the store frame by frame (never loaded whole).
fn stream_bytes(core: &Core, id: super::super::ResourceId, range: std::ops::Range<u64>) -> OwnBody {
    let store = core.store.clone();
    let frames = stream::try_unfold(range, move |range| {
        let store = store.clone();
        async move {
            if range.start >= range.end {
                return Ok(None);
            }
            let max =
                FRAME_BYTES.min(usize::try_from(range.end - range.start).unwrap_or(usize::MAX));
            let data = store.read(id, range.start, max).await?;
            if data.is_empty() {
                return Err(BoxError::from("the held bytes shrank while being read"));
            }
            let next = range.start + data.len() as u64..range.end;
            Ok(Some((Frame::data(data), next)))
        }
    });
    StreamBody::new(frames).boxed_unsync()
}
