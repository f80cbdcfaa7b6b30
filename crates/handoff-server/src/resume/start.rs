//! The resumable request itself: publish the locations, run the handler on its own task,
//! feed it the body through the store, and answer with the recorded response
//! (docs/PROTOCOL.md parts B.1, B.2).

use std::sync::Arc;

use bytes::Bytes;
use std::pin::pin;
use std::time::Duration;

use futures_util::future::{select, Either};
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_LOCATION};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;

use handoff_proto::location::{REQUEST_CONTENT_LOCATION, RESPONSE_MESSAGE_LOCATION};
use handoff_proto::prefer::{Preference, PreferenceApplied, Resume, PREFERENCE_APPLIED};

use super::core::Core;
use super::hook::Hook;
use super::paths::Resource;
use super::record::{replay, wait_for_response, Launch};
use super::reply::{full, refuse, store_error, write_error};
use super::response_body::OwnBody;
use super::store::{NewResource, RecordedResponse, StoreError, StoredHead};
use super::writer::{WriteError, Writer};
use super::ResourceId;
use crate::BoxError;

/// What the client asked for in `Prefer`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asked {
    pub(crate) resume: Resume,
    pub(crate) acknowledge: bool,
}

pub(crate) async fn start<B>(
    core: Arc<Core>,
    launch: Launch,
    request: Request<B>,
    asked: Asked,
) -> Response<OwnBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
{
    let (parts, body) = request.into_parts();
    let complete_length = match content_length(&parts.headers) {
        Ok(length) => length,
        Err(reason) => return refuse(StatusCode::BAD_REQUEST, reason),
    };
    let max = core.limits.max_body_bytes;
    if complete_length.is_some_and(|length| length > max) {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format_args!("a resumable request body may hold at most {max} bytes"),
        );
    }
    let id = match ResourceId::mint() {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(%error, "no randomness for a resource id");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "cannot mint a resource id");
        }
    };
    let keep_incomplete = asked.resume != Resume::IgnoreIncomplete;
    let resource = NewResource {
        head: StoredHead::from_parts(&parts),
        owner: core.owner_of.owner(&parts),
        complete_length,
        max_bytes: max,
        keep_incomplete,
    };
    if let Err(error) = core.store.create(id, resource, core.quota()).await {
        return store_error(error);
    }
    let hook = Hook::of(&parts);
    // Acknowledgements need interim responses: only on a connection with the hook.
    let asked = Asked {
        acknowledge: asked.acknowledge && hook.is_some(),
        ..asked
    };
    let published = published_headers(&core, id, asked, keep_incomplete);
    if let Some(hook) = &hook {
        hook.arm(&published);
    }

    let lease = core
        .runs
        .acquire_writer(id, core.limits.writer_takeover)
        .expect("a new resource has no writer");
    // With ignore-incomplete, an exchange that ends before its body does ends the operation,
    // however it ends (docs/PROTOCOL.md part B.1).
    let mut give_up = GiveUpOnDrop {
        core: (!keep_incomplete).then(|| core.clone()),
        id,
    };

    let mut writer = Writer::new(core.clone(), id, lease, 0);
    if let (Some(hook), true) = (&hook, asked.acknowledge) {
        writer = writer.with_acks(hook.acks());
    }
    let mut body = pin!(body);
    // The handler starts with the first body frame: that frame comes after the client got
    // the `100 Continue` with the locations (it waits for it), so a client cut before then,
    // which starts over, leaves no handler behind.
    let first = body.frame().await;
    if !matches!(first, Some(Err(_))) {
        launch(id, parts, complete_length);
    }
    // The handler may answer before it read the whole body: then stop reading it.
    let outcome = {
        let pumping = pin!(pump(&mut writer, first, body));
        match select(pumping, pin!(recorded(&core, id))).await {
            Either::Left((pumped, _)) => Outcome::Pumped(pumped),
            Either::Right((answered, _)) => Outcome::AnsweredEarly(answered),
        }
    };
    // A handler that read its whole body can answer before the pump saw the body's end:
    // that is a complete upload, not an early answer.
    let answered = matches!(outcome, Outcome::AnsweredEarly(Ok(_)));
    let complete = answered && core.store.get(id).await.is_ok_and(|r| r.is_complete());
    let outcome = match outcome {
        Outcome::AnsweredEarly(Ok(_)) if complete => Outcome::Pumped(Ok(())),
        outcome => outcome,
    };
    drop(writer);
    drop(hook);
    let mut response = match outcome {
        Outcome::Pumped(Ok(())) => {
            give_up.disarm();
            match recorded(&core, id).await {
                Ok(recorded) => replay(&recorded, full(recorded.body.clone())),
                Err(response) => response,
            }
        }
        Outcome::Pumped(Err(Pumped::Cut(error))) => {
            // The client's connection is most likely gone; the operation waits for a PATCH
            // (with ignore-incomplete, `give_up` ends it).
            refuse(
                StatusCode::BAD_REQUEST,
                format_args!("the request body failed: {error}"),
            )
        }
        Outcome::Pumped(Err(Pumped::Refused(error))) => {
            // Only a body that can never complete ends the operation; a writer that lost its
            // lease (a PATCH took over) or found a conflict just stops.
            if is_fatal(&error) {
                core.store.abandon(id).await.ok();
            }
            write_error(error)
        }
        Outcome::AnsweredEarly(answered) => {
            give_up.disarm();
            // The rest of the body is not needed: free what the store holds of it.
            core.store.release(id, u64::MAX).await.ok();
            let mut response = match answered {
                Ok(recorded) => replay(&recorded, full(recorded.body.clone())),
                Err(response) => response,
            };
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            response
        }
    };
    publish(&mut response, published);
    response
}

/// How the original exchange ended.
enum Outcome {
    /// The body was read to its end, or failed.
    Pumped(Result<(), Pumped>),
    /// The handler answered before the body was complete.
    AnsweredEarly(Result<RecordedResponse, Response<OwnBody>>),
}

/// Ends the operation when dropped while armed: a `resume=ignore-incomplete` exchange that
/// stops before its body is complete (cut, or dropped by hyper or an outer layer).
struct GiveUpOnDrop {
    core: Option<Arc<Core>>,
    id: ResourceId,
}

impl GiveUpOnDrop {
    fn disarm(&mut self) {
        self.core = None;
    }
}

impl Drop for GiveUpOnDrop {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            let id = self.id;
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    core.store.abandon(id).await.ok();
                });
            }
        }
    }
}

/// Whether a writer's failure ends the operation: a body that can never complete, or a
/// store that stayed full (the client is told `429`, and a retry is a new operation, so
/// the old one must not go on behind it).
fn is_fatal(error: &WriteError) -> bool {
    matches!(
        error,
        WriteError::Store(
            StoreError::TooLarge { .. }
                | StoreError::LengthMismatch { .. }
                | StoreError::Full { .. }
        )
    )
}

/// The operation's recorded response. The wait has no deadline of its own (the original
/// exchange lasts as long as its handler runs), but it ends if the handler's task ended
/// without a record.
async fn recorded(core: &Core, id: ResourceId) -> Result<RecordedResponse, Response<OwnBody>> {
    loop {
        match wait_for_response(core, id, Some(Duration::from_secs(1))).await {
            Ok(Some(recorded)) => return Ok(recorded),
            Ok(None) if core.runs.is_running(id) => {}
            // Its task ended: the record is there now, or will never be.
            Ok(None) => {
                return match wait_for_response(core, id, Some(Duration::ZERO)).await {
                    Ok(Some(recorded)) => Ok(recorded),
                    Ok(None) => Err(refuse(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the operation ended without a response",
                    )),
                    Err(error) => Err(store_error(error)),
                };
            }
            Err(StoreError::NotFound) => {
                return Err(refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the operation ended without a response",
                ))
            }
            Err(error) => return Err(store_error(error)),
        }
    }
}

/// Adds the operation's headers to its final response; a `Content-Location` the handler set
/// itself is kept.
fn publish(response: &mut Response<OwnBody>, published: HeaderMap) {
    let headers = response.headers_mut();
    for (name, value) in published.iter() {
        if name == CONTENT_LOCATION && headers.contains_key(CONTENT_LOCATION) {
            continue;
        }
        headers.insert(name.clone(), value.clone());
    }
}

enum Pumped {
    /// The client's body failed: the connection was cut or the framing was broken.
    Cut(BoxError),
    /// The store refused the bytes.
    Refused(WriteError),
}

/// Moves the original request's body into the store, `first` being its first frame, already
/// read.
async fn pump<B>(
    writer: &mut Writer,
    first: Option<Result<http_body::Frame<Bytes>, B::Error>>,
    mut body: std::pin::Pin<&mut B>,
) -> Result<(), Pumped>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut offset = 0u64;
    let mut next = first;
    while let Some(frame) = next {
        let frame = frame.map_err(|error| Pumped::Cut(error.into()))?;
        if let Ok(data) = frame.into_data() {
            let len = data.len() as u64;
            writer.put(offset, data).await.map_err(Pumped::Refused)?;
            offset += len;
        }
        next = body.frame().await;
    }
    writer.finish(writer.held()).await.map_err(Pumped::Refused)
}

/// The headers that publish the operation: in the `100 Continue` and the final response.
fn published_headers(core: &Core, id: ResourceId, asked: Asked, keep: bool) -> HeaderMap {
    let paths = &core.paths;
    let mut headers = HeaderMap::new();
    if keep {
        headers.insert(
            REQUEST_CONTENT_LOCATION,
            paths.location(id, Resource::Request),
        );
    }
    headers.insert(
        RESPONSE_MESSAGE_LOCATION,
        paths.location(id, Resource::Response),
    );
    headers.insert(
        http::header::CONTENT_LOCATION,
        paths.location(id, Resource::Content),
    );
    let mut applied = PreferenceApplied::new().with_resume(asked.resume);
    if asked.acknowledge {
        applied.push(Preference::new("acknowledge", None).expect("a valid token"));
    }
    headers.insert(PREFERENCE_APPLIED, applied.to_header_value());
    headers
}

/// The request's `Content-Length`, if it has one.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.any(|other| other != value) {
        return Err("conflicting Content-Length headers");
    }
    parse_length(value)
        .map(Some)
        .ok_or("an invalid Content-Length")
}

fn parse_length(value: &HeaderValue) -> Option<u64> {
    let text = value.to_str().ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
