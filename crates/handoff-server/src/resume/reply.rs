//! The layer's own responses: refusals that say what is wrong (logged once), and small
//! helpers for bodies and headers.

use std::fmt;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::response_body::OwnBody;
use super::store::StoreError;
use super::writer::WriteError;

/// A body holding `bytes`.
pub(crate) fn full(bytes: impl Into<Bytes>) -> OwnBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response with a plain-text body.
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response<OwnBody> {
    let mut response = Response::new(full(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A refusal: `status` with `reason` as its body, logged once here.
pub(crate) fn refuse(status: StatusCode, reason: impl fmt::Display) -> Response<OwnBody> {
    let reason = reason.to_string();
    tracing::info!(status = status.as_u16(), %reason, "resumable request refused");
    let mut response = text(status, format!("{reason}\n"));
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// `404`, the same for an unknown id and for another owner's resource (docs/PROTOCOL.md
/// part B.7): nothing tells them apart.
pub(crate) fn not_found() -> Response<OwnBody> {
    refuse(StatusCode::NOT_FOUND, "no such resumable resource")
}

/// The response for a store failure.
pub(crate) fn store_error(error: StoreError) -> Response<OwnBody> {
    let status = match &error {
        StoreError::NotFound | StoreError::Abandoned => return not_found(),
        StoreError::Conflict { .. } => StatusCode::CONFLICT,
        StoreError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        StoreError::LengthMismatch { .. } => StatusCode::BAD_REQUEST,
        StoreError::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        StoreError::Full { .. } => StatusCode::TOO_MANY_REQUESTS,
        StoreError::NotKept => StatusCode::GONE,
        StoreError::Io(_) => {
            tracing::error!(%error, "resumable store failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    refuse(status, error)
}

/// The response for a writer that stopped.
pub(crate) fn write_error(error: WriteError) -> Response<OwnBody> {
    match error {
        WriteError::Gap { held } => refuse(
            StatusCode::CONFLICT,
            format_args!("the patch would leave a gap: {held} bytes are held"),
        ),
        WriteError::TakenOver => refuse(
            StatusCode::CONFLICT,
            "another request took this upload over",
        ),
        WriteError::Store(error) => store_error(error),
    }
}
