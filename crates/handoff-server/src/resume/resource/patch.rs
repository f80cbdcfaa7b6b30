//! `PATCH` on the request-content resource: append a `message/byterange` part
//! (docs/PROTOCOL.md parts B.4 and C).
//!
//! The part's `Content-Range` says where its bytes go (`bytes a-b/len`, `bytes a-b/*`, or the
//! lenient `a-b/len`); an optional part `Content-Length` must match it. Bytes before the held
//! length are skipped, a first byte past it is `409`, a complete length that contradicts an
//! earlier one (or bytes past it) is `400`. The bytes are appended as they arrive, so a
//! `PATCH` cut mid-way keeps the prefix it delivered. A `PATCH` that leaves the body
//! incomplete answers `299` with `held/total bytes`; the one that completes it answers once
//! the operation's response is recorded (`200`, or `202` after
//! [`Limits::completion_wait`](crate::resume::Limits::completion_wait)).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;

use handoff_proto::byterange::{PatchDecoder, PatchEvent, PatchHead, CONTENT_TYPE as BYTERANGE};
use handoff_proto::location::RESPONSE_MESSAGE_LOCATION;
use handoff_proto::message_http::incomplete_content;

use super::super::core::Core;
use super::super::paths::Resource as Which;
use super::super::record::{wait_for_response, Launch};
use super::super::reply::{not_found, refuse, store_error, text, write_error};
use super::super::response_body::OwnBody;
use super::super::store::{Resource, StoreError};
use super::super::writer::{WriteError, Writer};
use super::{adopt, progress};
use crate::BoxError;

pub(super) async fn patch<B>(
    core: Arc<Core>,
    launch: Launch,
    resource: Resource,
    parts: http::request::Parts,
    body: B,
) -> Response<OwnBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if !is_byterange(parts.headers.get(CONTENT_TYPE)) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format_args!("a PATCH here must be {BYTERANGE}"),
        );
    }
    if resource.abandoned {
        return not_found();
    }
    let id = resource.id;
    let lease = match core.runs.acquire_writer(id, core.limits.writer_takeover) {
        Ok(lease) => lease,
        Err(_busy) => {
            return refuse(
                StatusCode::CONFLICT,
                "another request is uploading this body; retry once it stalls or ends",
            )
        }
    };
    // Read again under the lease: the previous writer may have appended since.
    let resource = match core.store.get(id).await {
        Ok(resource) => resource,
        Err(error) => return store_error(error),
    };
    if resource.responded_at.is_some() {
        // The handler already answered (it may not have needed the whole body): nothing
        // more is taken, and the response is there to fetch.
        return done(&core, &resource, StatusCode::OK);
    }
    adopt(launch, &resource);
    let mut writer = Writer::new(core.clone(), id, lease, resource.length);
    if let Err(response) = append(&mut writer, &resource, body).await {
        return response;
    }
    drop(writer);

    let resource = match core.store.get(id).await {
        Ok(resource) => resource,
        Err(error) => return store_error(error),
    };
    if !resource.is_complete() {
        return text(incomplete_content(), progress(&resource));
    }
    match wait_for_response(&core, id, Some(core.limits.completion_wait)).await {
        Ok(Some(_)) => done(&core, &resource, StatusCode::OK),
        Ok(None) => {
            let mut response = done(&core, &resource, StatusCode::ACCEPTED);
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Err(StoreError::NotFound) => not_found(),
        Err(error) => store_error(error),
    }
}

/// The answer to a PATCH after which nothing more is needed: the progress, and where the
/// response is.
fn done(core: &Core, resource: &Resource, status: StatusCode) -> Response<OwnBody> {
    let mut response = text(status, progress(resource));
    response.headers_mut().insert(
        RESPONSE_MESSAGE_LOCATION,
        core.paths.location(resource.id, Which::Response),
    );
    response
}

/// Decodes the patch and appends its data, as it arrives.
async fn append<B>(
    writer: &mut Writer,
    resource: &Resource,
    body: B,
) -> Result<(), Response<OwnBody>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut decoder = PatchDecoder::new();
    let mut offset = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            let error: BoxError = error.into();
            refuse(
                StatusCode::BAD_REQUEST,
                format_args!("the patch body failed after {offset} bytes were kept: {error}"),
            )
        })?;
        let Ok(mut input) = frame.into_data() else {
            continue;
        };
        loop {
            let event = decoder.decode(&mut input).map_err(|error| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    format_args!("malformed message/byterange: {error}"),
                )
            })?;
            match event {
                None => break,
                Some(PatchEvent::Head(head)) => {
                    offset = check_head(writer, resource, &head).await?;
                }
                Some(PatchEvent::Data(data)) => {
                    let len = data.len() as u64;
                    writer.put(offset, data).await.map_err(write_error)?;
                    offset += len;
                }
            }
        }
    }
    decoder.finish().map_err(|error| {
        refuse(
            StatusCode::BAD_REQUEST,
            format_args!("incomplete message/byterange (the bytes received are kept): {error}"),
        )
    })
}

/// Checks a part head against the resource; returns the offset of its first byte.
async fn check_head(
    writer: &mut Writer,
    resource: &Resource,
    head: &PatchHead,
) -> Result<u64, Response<OwnBody>> {
    let range = &head.content_range;
    if let Some(length) = head.headers.get(CONTENT_LENGTH) {
        let matches = length
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|length| length == range.len());
        if !matches {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format_args!("the part's Content-Length does not match its Content-Range {range}"),
            ));
        }
    }
    if range.first() > writer.held() {
        return Err(write_error(WriteError::Gap {
            held: writer.held(),
        }));
    }
    if let Some(complete) = range.complete_length() {
        writer.finish(complete).await.map_err(|error| match error {
            WriteError::Store(StoreError::LengthMismatch { held, known }) => refuse(
                StatusCode::BAD_REQUEST,
                format_args!(
                    "Content-Range {range} contradicts the upload: {}",
                    StoreError::LengthMismatch { held, known }
                ),
            ),
            other => write_error(other),
        })?;
    } else if let Some(known) = resource.complete_length {
        if range.end() > known {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format_args!("Content-Range {range} goes past the complete length {known}"),
            ));
        }
    }
    Ok(range.first())
}

fn is_byterange(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case(BYTERANGE)
}
