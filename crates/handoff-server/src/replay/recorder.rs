//! The request body the handler reads, and the record of what it read.
//!
//! `PROTOCOL.md` part A, server 4: the echo starts with every body byte the server has
//! received, *including the bytes the application already consumed*. So the handler does
//! not own the request body: it reads it through a [`Recorder`] that copies every consumed
//! byte into a spool (memory up to a limit, then an unlinked temporary file) up to the
//! layer's bounds, and that can take the body away from the handler the moment the request
//! is handed back to the proxy.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use handoff_spool::{spool, SpoolConfig, SpoolError, SpoolReader, SpoolWriter};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::control::ReplayControl;
use crate::BoxError;

/// The shared state between a request's handler and the layer's response future.
pub(super) struct Recorder<B> {
    state: Mutex<RecorderState<B>>,
    control: ReplayControl,
}

struct RecorderState<B> {
    /// The body as it arrives from the connection; `None` once taken for the echo.
    body: Option<Pin<Box<B>>>,
    /// The consumed bytes, kept for the echo; `None` once the request cannot be handed off.
    record: Option<(SpoolWriter, SpoolReader)>,
    /// The body ended or failed while the handler read it: nothing left to hand off.
    finished: bool,
}

/// What the response future takes from the recorder to build the `379`'s body.
pub(super) struct Handoff<B> {
    pub(super) consumed: SpoolReader,
    pub(super) rest: Pin<Box<B>>,
}

impl<B> Handoff<B> {
    /// The consumed bytes the echo starts with.
    pub(super) fn consumed_len(&self) -> u64 {
        http_body::Body::size_hint(&self.consumed).lower()
    }
}

impl<B> Recorder<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    pub(super) fn new(body: B, control: ReplayControl, spool_config: &SpoolConfig) -> Self {
        Self {
            state: Mutex::new(RecorderState {
                body: Some(Box::pin(body)),
                record: Some(spool(spool_config)),
                finished: false,
            }),
            control,
        }
    }

    fn lock(&self) -> MutexGuard<'_, RecorderState<B>> {
        // A panic while holding the lock cannot leave the state torn: every update is a
        // single push or field write, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The handler's read: forwards the frame and records its data.
    fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut state = self.lock();
        if state.body.is_none() {
            return Poll::Ready(Some(Err(HandedOff.into())));
        }
        // The record's file must keep up before another frame is read: memory stays at the
        // spool's memory limit plus a few chunks, however fast the client sends.
        if let Some((writer, _)) = state.record.as_mut() {
            match writer.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(err)) => self.stop_recording(&mut state, &err),
            }
        }
        let body = state.body.as_mut().expect("checked above");
        let polled = body.as_mut().poll_frame(cx);
        let ended = body.is_end_stream();
        let polled = match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                Self::finish(&mut state);
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(err))) => {
                Self::finish(&mut state);
                return Poll::Ready(Some(Err(err.into())));
            }
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if ended {
            Self::finish(&mut state);
        } else if let Some(data) = polled.data_ref() {
            self.keep(&mut state, data);
        }
        Poll::Ready(Some(Ok(polled)))
    }

    fn keep(&self, state: &mut RecorderState<B>, data: &Bytes) {
        let Some((writer, _)) = state.record.as_mut() else {
            return;
        };
        if !self.control.is_replayable() {
            // The handler disabled replay: what was kept for the echo is no longer needed.
            state.record = None;
            return;
        }
        if let Err(err) = writer.push(data) {
            self.stop_recording(state, &err);
        }
    }

    /// Past a bound, or with a failing spill file, the request is no longer replayable and
    /// simply drains on shutdown.
    fn stop_recording(&self, state: &mut RecorderState<B>, err: &SpoolError) {
        if err.is_full() {
            tracing::debug!(reason = %err, "echo bound reached; the request will drain instead of being replayed");
        } else {
            tracing::warn!(reason = %err, "echo spool failed; the request will drain instead of being replayed");
        }
        self.control.disable();
        state.record = None;
    }

    /// The body ended or failed: it will never be handed off (part A, server 5), so the
    /// record and its share of the budget are released now, not when the handler returns.
    fn finish(state: &mut RecorderState<B>) {
        state.finished = true;
        state.record = None;
    }

    /// Takes the body away from the handler if the request can still be handed off:
    /// its body is not complete (part A, server 5), the handler did not disable replay and
    /// the consumed bytes stayed within the bound.
    pub(super) fn take_for_handoff(&self) -> Option<Handoff<B>> {
        let mut state = self.lock();
        let complete = state.finished || state.body.as_ref().is_none_or(|b| b.is_end_stream());
        // Under the lock, so no read can slip in; atomic with the handler's `claim`, so a
        // handler that claimed first keeps its request, and one that claims after is told.
        if complete || state.record.is_none() || !self.control.hand_off() {
            return None;
        }
        let (writer, consumed) = state.record.take()?;
        let rest = state.body.take()?;
        writer.finish();
        Some(Handoff { consumed, rest })
    }

    fn is_end_stream(&self) -> bool {
        let state = self.lock();
        state.body.as_ref().is_some_and(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let state = self.lock();
        state
            .body
            .as_ref()
            .map_or_else(SizeHint::default, |b| b.size_hint())
    }
}

pin_project! {
    /// The request body the inner service sees behind
    /// [`PartialPostReplay`](super::PartialPostReplay).
    ///
    /// It yields the same frames as the original body. When the request is handed back to
    /// the proxy, further reads fail with an error whose source is a [`HandedOff`] (the
    /// handler's future is dropped at that point, so only work it spawned can see this).
    pub struct RecordedBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        // The request is not eligible for replay: the body passes through untouched.
        Plain { #[pin] body: B },
        // The request may be handed off: reads go through the shared recorder.
        Recorded { recorder: Arc<Recorder<B>> },
    }
}

impl<B> RecordedBody<B> {
    pub(super) fn plain(body: B) -> Self {
        Self {
            kind: Kind::Plain { body },
        }
    }

    pub(super) fn recorded(recorder: Arc<Recorder<B>>) -> Self {
        Self {
            kind: Kind::Recorded { recorder },
        }
    }
}

impl<B> fmt::Debug for RecordedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Plain { .. } => f.write_str("RecordedBody::Plain"),
            Kind::Recorded { recorder } => f
                .debug_tuple("RecordedBody::Recorded")
                .field(recorder)
                .finish(),
        }
    }
}

impl<B> Body for RecordedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Plain { body } => body.poll_frame(cx).map_err(Into::into),
            KindProj::Recorded { recorder } => recorder.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Plain { body } => body.is_end_stream(),
            Kind::Recorded { recorder } => recorder.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Plain { body } => body.size_hint(),
            Kind::Recorded { recorder } => recorder.size_hint(),
        }
    }
}

impl<B> fmt::Debug for Recorder<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("consumed_len", &self.lock_for_debug())
            .finish_non_exhaustive()
    }
}

impl<B> Recorder<B> {
    fn lock_for_debug(&self) -> Option<u64> {
        let state = self.state.try_lock().ok()?;
        state.record.as_ref().map(|(writer, _)| writer.len())
    }
}

/// The error a handler's body read returns once its request was handed back to the proxy.
///
/// ```
/// use handoff_server::replay::HandedOff;
/// assert_eq!(
///     HandedOff.to_string(),
///     "the request body was handed back to the proxy (Partial POST Replay)"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandedOff;

impl fmt::Display for HandedOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request body was handed back to the proxy (Partial POST Replay)")
    }
}

impl std::error::Error for HandedOff {}
