//! The reading half of a spool: an [`http_body::Body`] of the spooled bytes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::error::{SpoolError, WriterGone};
use crate::file;
use crate::state::{lock, End, Next, Shared};
use crate::BoxError;

/// Reads a spool's bytes in order, while or after they are written, as a body of data
/// frames of at most [`frame_size`](crate::SpoolConfig::frame_size). See the [crate docs](crate).
///
/// It ends when the writer [finished](crate::SpoolWriter::finish) and every byte was read;
/// it yields the writer's error instead if the writer [failed](crate::SpoolWriter::fail),
/// or [`WriterGone`] if the writer was dropped. A failed file read yields a
/// [`SpoolError::Io`]. Dropping the reader drops the spool (its memory, file and budget)
/// once the writer is gone too.
pub struct SpoolReader {
    shared: Shared,
    pos: u64,
    read: Option<file::Read>,
    done: bool,
    frame_size: usize,
}

impl SpoolReader {
    pub(crate) fn new(shared: Shared, frame_size: usize) -> Self {
        SpoolReader {
            shared,
            pos: 0,
            read: None,
            done: false,
            frame_size,
        }
    }

    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn deliver(&mut self, data: Bytes) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.pos += data.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl Body for SpoolReader {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(read) = self.read.as_mut() {
            let result = std::task::ready!(Pin::new(read).poll(cx));
            self.read = None;
            return match file::joined(result) {
                Ok(data) => self.deliver(data),
                Err(err) => {
                    self.done = true;
                    Poll::Ready(Some(Err(SpoolError::Io(err).into())))
                }
            };
        }
        if self.done {
            return Poll::Ready(None);
        }
        let pos = self.pos;
        let mut state = lock(&self.shared);
        match state.next(pos, self.frame_size) {
            Next::Ready(data) => {
                drop(state);
                self.deliver(data)
            }
            Next::OnDisk { file, offset, len } => {
                drop(state);
                self.read = Some(file::read(file, offset, len));
                self.poll_frame(cx)
            }
            Next::Wait => {
                state.wait_reader(cx);
                Poll::Pending
            }
            Next::End => {
                let end = std::mem::replace(&mut state.end, End::Finished);
                drop(state);
                self.done = true;
                match end {
                    End::Failed(Some(err)) => Poll::Ready(Some(Err(err))),
                    End::Abandoned => Poll::Ready(Some(Err(WriterGone.into()))),
                    End::Open | End::Finished | End::Failed(None) => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.done {
            return true;
        }
        let state = lock(&self.shared);
        self.read.is_none() && self.pos == state.total && matches!(state.end, End::Finished)
    }

    fn size_hint(&self) -> SizeHint {
        let state = lock(&self.shared);
        let left = state.total - self.pos;
        match state.end {
            End::Finished => SizeHint::with_exact(left),
            _ => {
                let mut hint = SizeHint::new();
                hint.set_lower(left);
                hint
            }
        }
    }
}

impl Drop for SpoolReader {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        state.reader_gone = true;
        state.wake_writer();
    }
}

impl fmt::Debug for SpoolReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpoolReader")
            .field("position", &self.pos)
            .finish_non_exhaustive()
    }
}
