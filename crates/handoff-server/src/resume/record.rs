//! Runs an operation's handler where a dropped connection cannot cancel it (its own task),
//! and records its final response in the store (docs/PROTOCOL.md part B.5).

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Either, Limited};
use tower::{Service, ServiceExt};

use super::body::{RequestBody, ResumedBody};
use super::core::Core;
use super::store::{RecordedResponse, StoreError};
use super::ResourceId;
use crate::BoxError;

/// Starts an operation's handler: the request head (with `content_length`, when known) and a
/// [`ResumedBody`] over the store. Type-erased so that the resource endpoints need not carry
/// the inner service's type.
pub(crate) type Launch =
    Box<dyn FnOnce(ResourceId, http::request::Parts, Option<u64>) -> bool + Send>;

/// A [`Launch`] that runs `inner`.
pub(crate) fn launcher<S, B, ResBody>(core: Arc<Core>, inner: S) -> Launch
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send,
    S::Error: fmt::Display,
    B: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    Box::new(move |id, parts, complete_length| {
        let body = ResumedBody::new(core.clone(), id, complete_length);
        let request = Request::from_parts(parts, Either::Right(body));
        spawn_handler(core, id, inner, request)
    })
}

/// Starts the handler of `id` on its own task, unless it already runs in this process or
/// the operation already has its response (so a handler never runs twice here).
fn spawn_handler<S, B, ResBody>(
    core: Arc<Core>,
    id: ResourceId,
    inner: S,
    request: Request<RequestBody<B>>,
) -> bool
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send,
    S::Error: fmt::Display,
    B: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let runs = core.runs.clone();
    runs.start_handler(id, async move {
        // However this task ends (a panic, an abort), the registry hears of it.
        let _finished = Finished {
            core: core.clone(),
            id,
        };
        // Tasks start one at a time per operation and each records before it ends, so a
        // task that finds no record is the only one to run. (An abandoned upload still runs:
        // its body fails at once, and the handler's answer to that is the record.)
        match core.store.get(id).await {
            Ok(resource) if resource.responded_at.is_none() => {}
            Ok(_) | Err(StoreError::NotFound) => return,
            Err(error) => {
                tracing::warn!(%id, %error, "resumable handler not started");
                return;
            }
        }
        let max = core.limits.max_response_bytes;
        let recorded = AssertUnwindSafe(run(inner, request, max))
            .catch_unwind()
            .await
            .unwrap_or_else(|_panic| {
                tracing::error!(%id, "resumable handler panicked");
                failure("the handler failed")
            });
        record(&core, id, recorded).await;
    })
}

/// Tells the registry that an operation's task ended (on drop: it releases the slot).
struct Finished {
    core: Arc<Core>,
    id: ResourceId,
}

impl Drop for Finished {
    fn drop(&mut self) {
        self.core.runs.finished(self.id);
    }
}

async fn run<S, B, ResBody>(
    inner: S,
    request: Request<RequestBody<B>>,
    max: usize,
) -> RecordedResponse
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let response = match inner.oneshot(request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(%error, "resumable handler failed");
            return failure("the handler failed");
        }
    };
    let (parts, body) = response.into_parts();
    match Limited::new(body, max).collect().await {
        Ok(collected) => RecordedResponse {
            status: parts.status,
            headers: parts.headers,
            body: collected.to_bytes(),
        },
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            tracing::warn!(max, "resumable handler's response is too large to record");
            failure(&format!(
                "the response exceeded the {max} bytes a resumable response may record"
            ))
        }
        Err(error) => {
            tracing::warn!(%error, "resumable handler's response body failed");
            failure("the handler's response body failed")
        }
    }
}

fn failure(reason: &str) -> RecordedResponse {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    RecordedResponse {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        headers,
        body: Bytes::from(format!("{reason}\n")),
    }
}

/// Stores the response, then frees whatever body bytes the handler left unread. A memory
/// store short of room is retried for a while (handlers free room as they finish); a
/// released operation needs no record. If nothing can be recorded, the operation is
/// removed (never left to be run again): its original exchange answers `500`.
async fn record(core: &Core, id: ResourceId, recorded: RecordedResponse) {
    let mut pause = Duration::from_millis(5);
    let deadline = super::writer::deadline_after(core.limits.completion_wait);
    let mut recorded = recorded;
    loop {
        match core.store.record_response(id, recorded.clone()).await {
            Ok(()) => break,
            Err(StoreError::NotFound) => return,
            Err(StoreError::Full { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(error) if recorded.status != StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(%id, %error, "could not record the resumable response");
                // The operation can still be reported as failed.
                recorded = failure("the response could not be recorded");
            }
            Err(error) => {
                // Left without a record, the operation would be adopted (run again) by the
                // next request that names it: forget it instead.
                tracing::error!(%id, %error, "could not record even a failure; forgetting the operation");
                core.store.remove(id).await.ok();
                return;
            }
        }
    }
    core.store.release(id, u64::MAX).await.ok();
}

/// A response rebuilt from a record.
pub(crate) fn replay<T>(recorded: &RecordedResponse, body: T) -> Response<T> {
    let mut response = Response::new(body);
    *response.status_mut() = recorded.status;
    *response.headers_mut() = recorded.headers.clone();
    response
}

/// Waits for the operation's recorded response, at most `wait` (for ever with `None`: the
/// original exchange lasts as long as its handler). `Ok(None)` when the wait ran out.
pub(crate) async fn wait_for_response(
    core: &Core,
    id: ResourceId,
    wait: Option<Duration>,
) -> Result<Option<RecordedResponse>, StoreError> {
    let deadline = wait.map(super::writer::deadline_after);
    loop {
        let resource = core.store.get(id).await?;
        if resource.responded_at.is_some() {
            return core.store.response(id).await;
        }
        let changed = core.store.changed(id, resource.version);
        match deadline {
            None => {
                changed.await?;
            }
            Some(deadline) => match tokio::time::timeout_at(deadline, changed).await {
                Ok(result) => {
                    result?;
                }
                Err(_elapsed) => return Ok(None),
            },
        }
    }
}
