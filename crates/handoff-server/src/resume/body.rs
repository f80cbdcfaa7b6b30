//! The request bodies the inner service sees: the client's own body for requests the layer
//! passes through, and [`ResumedBody`] for resumable requests.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Either;

use super::core::Core;
use super::store::StoreError;
use super::ResourceId;
use crate::BoxError;

/// The most bytes one frame of a [`ResumedBody`] carries.
const FRAME_BYTES: usize = 256 * 1024;

/// The request body the inner service of a [`Resumable`](super::Resumable) sees: the
/// client's own body, untouched, for requests the layer passes through
/// ([`Either::Left`]), and a [`ResumedBody`] for resumable requests ([`Either::Right`]),
/// one continuous body across connections.
pub type RequestBody<B> = Either<B, ResumedBody>;

/// The body of a resumable request: every byte of the upload, in order, whatever happened
/// to the connections that carried it (docs/PROTOCOL.md part B).
///
/// When the client's connection dies, the body simply waits for a `PATCH` to continue it.
/// It reads from the store, so the bytes may come from the original request, from `PATCH`es
/// to this process, or (with a shared store) from another process. When no byte arrives
/// for [`Limits::idle_timeout`](super::Limits::idle_timeout), or the upload is otherwise
/// given up, it ends with an [`UploadAbandoned`] error.
pub struct ResumedBody {
    core: Arc<Core>,
    id: ResourceId,
    /// Bytes handed to the handler so far.
    cursor: u64,
    complete_length: Option<u64>,
    next: Option<NextChunk>,
    done: bool,
}

/// The read of the next chunk in progress.
type NextChunk = Pin<Box<dyn Future<Output = Result<Next, BoxError>> + Send>>;

enum Next {
    Data(Bytes),
    End,
}

impl ResumedBody {
    pub(crate) fn new(core: Arc<Core>, id: ResourceId, complete_length: Option<u64>) -> Self {
        Self {
            core,
            id,
            cursor: 0,
            complete_length,
            next: None,
            done: false,
        }
    }

    /// The operation this body belongs to.
    pub fn id(&self) -> ResourceId {
        self.id
    }
}

impl fmt::Debug for ResumedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumedBody")
            .field("id", &self.id)
            .field("cursor", &self.cursor)
            .field("done", &self.done)
            .finish()
    }
}

impl Body for ResumedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let next = this
            .next
            .get_or_insert_with(|| Box::pin(next_chunk(this.core.clone(), this.id, this.cursor)));
        let result = ready!(next.as_mut().poll(cx));
        this.next = None;
        match result {
            Ok(Next::Data(data)) => {
                this.cursor += data.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Ok(Next::End) => {
                this.done = true;
                Poll::Ready(None)
            }
            Err(error) => {
                this.done = true;
                Poll::Ready(Some(Err(error)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.complete_length == Some(self.cursor)
    }

    fn size_hint(&self) -> SizeHint {
        match self.complete_length {
            Some(length) => SizeHint::with_exact(length.saturating_sub(self.cursor)),
            None => SizeHint::default(),
        }
    }
}

/// The next bytes after `cursor`, waiting for them if need be (at most the idle timeout).
async fn next_chunk(core: Arc<Core>, id: ResourceId, cursor: u64) -> Result<Next, BoxError> {
    let store = &core.store;
    loop {
        let resource = store.get(id).await.map_err(|e| abandoned(id, e))?;
        if cursor < resource.length {
            let data = store.read(id, cursor, FRAME_BYTES).await?;
            if !data.is_empty() {
                // The handler owns these bytes now; a store that does not keep content frees them.
                store.release(id, cursor + data.len() as u64).await?;
                return Ok(Next::Data(data));
            }
        }
        if resource.is_complete() {
            return Ok(Next::End);
        }
        if resource.abandoned {
            return Err(UploadAbandoned::new(id, "the upload was given up").into());
        }
        let idle = SystemTime::now()
            .duration_since(resource.updated_at)
            .unwrap_or(Duration::ZERO);
        let left = core.limits.idle_timeout.saturating_sub(idle);
        match tokio::time::timeout(left, store.changed(id, resource.version)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(abandoned(id, error)),
            Err(_elapsed) => {
                tracing::info!(%id, held = resource.length, idle = ?core.limits.idle_timeout,
                    "resumable upload idle too long; abandoned");
                store.abandon(id).await?;
                return Err(
                    UploadAbandoned::new(id, "no byte arrived within the idle timeout").into(),
                );
            }
        }
    }
}

fn abandoned(id: ResourceId, error: StoreError) -> BoxError {
    match error {
        StoreError::NotFound => UploadAbandoned::new(id, "the operation was released").into(),
        StoreError::Abandoned => UploadAbandoned::new(id, "the upload was given up").into(),
        other => other.into(),
    }
}

/// The error a [`ResumedBody`] ends with when its upload will not complete: nothing arrived
/// within the idle timeout, the client released the operation, or (with
/// `resume=ignore-incomplete`) the connection was cut. Downcast the body error to tell it
/// apart:
///
/// ```
/// use handoff_server::resume::UploadAbandoned;
///
/// fn explain(error: &(dyn std::error::Error + 'static)) -> &'static str {
///     if error.downcast_ref::<UploadAbandoned>().is_some() {
///         "the client never finished the upload"
///     } else {
///         "the body failed"
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug, Clone)]
pub struct UploadAbandoned {
    id: ResourceId,
    why: &'static str,
}

impl UploadAbandoned {
    pub(crate) fn new(id: ResourceId, why: &'static str) -> Self {
        Self { id, why }
    }

    /// The operation that was abandoned.
    pub fn id(&self) -> ResourceId {
        self.id
    }
}

impl fmt::Display for UploadAbandoned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "resumable upload {} abandoned: {}", self.id, self.why)
    }
}

impl std::error::Error for UploadAbandoned {}
