//! [`UploadBody`]: what the resume layer sends to the inner service: the upload from an
//! offset (after a `message/byterange` part head, for a `PATCH`), or nothing.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::error::SourceFailed;
use super::event::{Observer, ResumeEvent};
use super::gate::Gate;
use super::source::SourceStream;
use crate::BoxError;

/// The request body the inner service of a [`Resume`](super::Resume) receives.
pub struct UploadBody {
    gate: Option<Gate>,
    head: Option<Bytes>,
    data: Option<SourceStream>,
    /// Source bytes still to send, when known.
    remaining: Option<u64>,
    sent: Option<Arc<AtomicU64>>,
    observer: Option<Observer>,
}

impl UploadBody {
    /// No body (`HEAD`, `GET`, `DELETE`).
    pub(crate) fn empty() -> Self {
        Self {
            gate: None,
            head: None,
            data: None,
            remaining: Some(0),
            sent: None,
            observer: None,
        }
    }

    /// `head` (may be empty), then `data`, which holds `remaining` bytes when known. Every
    /// data byte handed to the inner service is counted in `sent` (the bytes in flight).
    pub(crate) fn new(
        head: Bytes,
        data: SourceStream,
        remaining: Option<u64>,
        sent: Arc<AtomicU64>,
    ) -> Self {
        Self {
            gate: None,
            head: (!head.is_empty()).then_some(head),
            data: Some(data),
            remaining,
            sent: Some(sent),
            observer: None,
        }
    }
}

impl UploadBody {
    /// Reports every chunk handed over as [`ResumeEvent::Sent`].
    pub(crate) fn with_observer(mut self, observer: Option<Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Waits at `gate` before the first byte (`Expect: 100-continue`).
    pub(crate) fn with_gate(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }
}

impl fmt::Debug for UploadBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadBody")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl Body for UploadBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(gate) = self.gate.as_mut() {
            ready!(gate.poll_open(cx));
            self.gate = None;
        }
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        let Some(data) = self.data.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(data.as_mut().poll_next(cx)) {
            Some(Ok(chunk)) => {
                let len = chunk.len() as u64;
                if let Some(remaining) = &mut self.remaining {
                    if len > *remaining {
                        self.data = None;
                        return Poll::Ready(Some(Err(failed(
                            "the upload is longer than announced".into(),
                        ))));
                    }
                    *remaining -= len;
                }
                if let Some(sent) = &self.sent {
                    let offset = sent.fetch_add(len, Ordering::Relaxed) + len;
                    if let Some(observer) = &self.observer {
                        observer.emit(ResumeEvent::Sent { offset });
                    }
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Some(Err(error)) => {
                self.data = None;
                Poll::Ready(Some(Err(failed(error))))
            }
            None => {
                self.data = None;
                match self.remaining {
                    Some(left) if left > 0 => Poll::Ready(Some(Err(failed(
                        format!("the upload ended {left} bytes short of its announced length")
                            .into(),
                    )))),
                    _ => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && (self.data.is_none() || self.remaining == Some(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(remaining) => {
                SizeHint::with_exact(remaining + self.head.as_ref().map_or(0, |h| h.len() as u64))
            }
            None => SizeHint::default(),
        }
    }
}

/// Marks an error as the source's (see [`SourceFailed`]).
fn failed(error: BoxError) -> BoxError {
    Box::new(SourceFailed(error))
}
