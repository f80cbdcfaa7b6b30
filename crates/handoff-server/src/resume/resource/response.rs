//! The response-message resource: `GET` serves the recorded final response as
//! `message/http`, `DELETE` releases the operation (docs/PROTOCOL.md parts B.5, B.6, C).

use std::time::Duration;

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};

use handoff_proto::message_http::{encode_response, CONTENT_TYPE as MESSAGE_HTTP};
use handoff_proto::prefer::Preferences;

use super::super::core::Core;
use super::super::record::{wait_for_response, Launch};
use super::super::reply::{full, not_found, refuse, store_error, text};
use super::super::response_body::OwnBody;
use super::super::store::{RecordedResponse, Resource, StoreError};
use super::adopt;

/// `GET`: `200` with `Content-Type: message/http` (exactly) once the response is recorded;
/// before that, `Prefer: wait=N` holds the request up to N seconds (at most
/// [`Limits::max_wait`](crate::resume::Limits::max_wait)), then `202` with `Retry-After`.
pub(super) async fn get(
    core: &Core,
    launch: Launch,
    resource: Resource,
    parts: &http::request::Parts,
) -> Response<OwnBody> {
    match recorded(core, launch, resource, parts).await {
        Ok(Some(recorded)) => {
            let document = encode_response(recorded.status, &recorded.headers, &recorded.body);
            let mut response = Response::new(full(document));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(MESSAGE_HTTP));
            response
        }
        Ok(None) => accepted(),
        Err(response) => response,
    }
}

/// `DELETE`: forgets the operation (stopping its handler if it still runs here).
pub(super) async fn delete(core: &Core, resource: Resource) -> Response<OwnBody> {
    // Removed first, so that no request can adopt the operation between the two steps.
    let removed = core.store.remove(resource.id).await;
    core.runs.abort(resource.id);
    match removed {
        Ok(()) => {
            let mut response = Response::new(full(""));
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Err(error) => store_error(error),
    }
}

/// The recorded response, after the wait the client asked for; `Ok(None)` if it is not
/// recorded by then. Shared with the content resource.
pub(super) async fn recorded(
    core: &Core,
    launch: Launch,
    resource: Resource,
    parts: &http::request::Parts,
) -> Result<Option<RecordedResponse>, Response<OwnBody>> {
    let wait = match Preferences::from_headers(&parts.headers) {
        Ok(preferences) => preferences.wait().unwrap_or(Duration::ZERO),
        Err(error) => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format_args!("malformed Prefer: {error}"),
            ))
        }
    };
    let id = resource.id;
    adopt(launch, &resource);
    match wait_for_response(core, id, Some(wait.min(core.limits.max_wait))).await {
        Ok(found) => Ok(found),
        Err(StoreError::NotFound) => Err(not_found()),
        Err(error) => Err(store_error(error)),
    }
}

/// `202 Accepted` with `Retry-After`: the operation is still running.
pub(super) fn accepted() -> Response<OwnBody> {
    let mut response = text(
        StatusCode::ACCEPTED,
        "the operation is still running; retry, or ask with Prefer: wait=N\n",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
