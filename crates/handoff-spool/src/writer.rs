//! The writing half of a spool.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::SpoolError;
use crate::file::{self, CHUNK};
use crate::state::{lock, End, Shared};
use crate::BoxError;

/// Bytes waiting for the disk past which [`SpoolWriter::poll_ready`] waits.
const HIGH_WATER: usize = CHUNK;

/// Appends bytes to a spool. See the [crate docs](crate).
///
/// Dropping it without [`finish`](Self::finish) or [`fail`](Self::fail) makes the reader
/// fail with [`WriterGone`](crate::WriterGone) once it has read every byte.
pub struct SpoolWriter {
    shared: Shared,
    write: Option<file::Write>,
    memory_limit: usize,
    max_bytes: u64,
    budget_limit: u64,
    dir: Option<PathBuf>,
    /// A file write failed: the spool takes nothing more.
    broken: bool,
}

impl SpoolWriter {
    pub(crate) fn new(shared: Shared, config: &crate::SpoolConfig) -> Self {
        SpoolWriter {
            shared,
            write: None,
            memory_limit: config.memory_limit,
            max_bytes: config.max_bytes,
            budget_limit: config.budget.limit(),
            dir: config.dir.clone(),
            broken: false,
        }
    }

    /// Waits until the spool can take more bytes without holding more than a few chunks in
    /// memory while its file catches up. Fails if a file write failed or the reader is gone.
    ///
    /// Call it before reading the next frame from wherever the bytes come from, then
    /// [`push`](Self::push) that frame: memory stays within the memory limit plus two
    /// 256 KiB chunks plus one frame.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SpoolError>> {
        if self.broken {
            return Poll::Ready(Err(broken()));
        }
        loop {
            if let Some(write) = self.write.as_mut() {
                let result = match Pin::new(write).poll(cx) {
                    Poll::Ready(result) => file::joined(result),
                    Poll::Pending => {
                        let mut state = lock(&self.shared);
                        if state.reader_gone {
                            return Poll::Ready(Err(SpoolError::ReaderGone));
                        }
                        state.wait_writer(cx);
                        return if state.pending.len() < HIGH_WATER {
                            Poll::Ready(Ok(()))
                        } else {
                            Poll::Pending
                        };
                    }
                };
                self.write = None;
                match result {
                    Ok(file) => lock(&self.shared).written(file),
                    Err(err) => {
                        self.broken = true;
                        return Poll::Ready(Err(SpoolError::Io(err)));
                    }
                }
            }
            let mut state = lock(&self.shared);
            if state.reader_gone {
                return Poll::Ready(Err(SpoolError::ReaderGone));
            }
            state.wait_writer(cx);
            let Some((chunk, offset)) = state.take_chunk(false) else {
                return Poll::Ready(Ok(()));
            };
            let file = state.file.clone();
            drop(state);
            self.write = Some(file::write(file, self.dir.clone(), chunk, offset));
        }
    }

    /// Appends a copy of `data` (copied, so a frame's larger buffer is never kept alive).
    /// Refused, with nothing appended, past the spool's `max_bytes` or the shared budget.
    ///
    /// Writing to the file happens in [`poll_ready`](Self::poll_ready), on tokio's blocking
    /// pool; `push` itself never blocks.
    pub fn push(&mut self, data: &[u8]) -> Result<(), SpoolError> {
        if self.broken {
            return Err(broken());
        }
        let mut state = lock(&self.shared);
        if state.reader_gone {
            return Err(SpoolError::ReaderGone);
        }
        let total = state.total + data.len() as u64;
        if total > self.max_bytes {
            return Err(SpoolError::TooLarge {
                max: self.max_bytes,
            });
        }
        if !state.reservation.hold(total) {
            return Err(SpoolError::BudgetExhausted {
                limit: self.budget_limit,
            });
        }
        state.append(data, self.memory_limit);
        Ok(())
    }

    /// Takes `bytes` of the spool's bounds now, for a writer that knows how much will come:
    /// later pushes up to that total cannot be refused by the shared budget.
    pub fn reserve(&mut self, bytes: u64) -> Result<(), SpoolError> {
        if bytes > self.max_bytes {
            return Err(SpoolError::TooLarge {
                max: self.max_bytes,
            });
        }
        let mut state = lock(&self.shared);
        if state.reservation.hold(bytes) {
            Ok(())
        } else {
            Err(SpoolError::BudgetExhausted {
                limit: self.budget_limit,
            })
        }
    }

    /// Bytes appended so far.
    pub fn len(&self) -> u64 {
        lock(&self.shared).total
    }

    /// Whether nothing was appended yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of this spool held in memory right now (the rest is on disk).
    pub fn in_memory(&self) -> usize {
        lock(&self.shared).in_memory()
    }

    /// Whether part of the spool went to its temporary file.
    pub fn has_spilled(&self) -> bool {
        lock(&self.shared).spilled
    }

    /// The stream is complete: the reader ends once it has read every byte.
    pub fn finish(self) {
        self.end(End::Finished);
    }

    /// The stream failed: the reader yields `err` once it has read every byte.
    pub fn fail(self, err: impl Into<BoxError>) {
        self.end(End::Failed(Some(err.into())));
    }

    fn end(self, end: End) {
        let mut state = lock(&self.shared);
        if matches!(state.end, End::Open) {
            state.end = end;
        }
        state.wake_reader();
    }
}

fn broken() -> SpoolError {
    SpoolError::Io(std::io::Error::other(
        "an earlier write to the spool file failed",
    ))
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        if matches!(state.end, End::Open) {
            state.end = End::Abandoned;
        }
        state.wake_reader();
        // A write still in flight finishes on the blocking pool; the reader reads its
        // chunk from memory (it stays in `inflight`).
    }
}

impl fmt::Debug for SpoolWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("SpoolWriter")
            .field("len", &state.total)
            .field("in_memory", &state.in_memory())
            .field("spilled", &state.spilled)
            .finish_non_exhaustive()
    }
}
