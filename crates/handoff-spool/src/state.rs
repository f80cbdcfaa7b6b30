//! The state a spool's writer and reader share, and where each logical byte lives.
//!
//! The spool is one stream of bytes, `[0, total)`, in two tiers:
//!
//! ```text
//! memory tier          file tier (once spilled)
//! [read .. head_end) | [head_end .. durable)  [durable .. +inflight)  [.. total)
//!        head        |     on disk                being written           pending
//! ```
//!
//! Bytes go to the memory tier while it holds less than the memory limit and nothing was
//! spilled yet; once it is full, every later byte goes to the file tier, so the order is
//! kept. The file tier is written in chunks by the writer and read back by the reader; the
//! bytes not on disk yet (`inflight`, `pending`) are read from memory.

use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};

use bytes::{Bytes, BytesMut};

use crate::budget::Reservation;
use crate::BoxError;

pub(crate) type Shared = Arc<Mutex<State>>;

/// Locks the state. Every update is a few field writes that leave it consistent, so a
/// poisoned lock is used as is.
pub(crate) fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) struct State {
    /// The memory tier's unread bytes, ending at `head_end`.
    pub(crate) head: BytesMut,
    pub(crate) head_end: u64,
    /// Bytes from `head_end` on go to the file tier.
    pub(crate) spilled: bool,
    pub(crate) file: Option<Arc<File>>,
    /// Logical end of the bytes on disk (file offset = logical offset - `head_end`).
    pub(crate) durable: u64,
    /// The chunk being written, at `durable`.
    pub(crate) inflight: Bytes,
    /// Bytes after the chunk being written, up to `total`.
    pub(crate) pending: BytesMut,
    pub(crate) total: u64,
    pub(crate) end: End,
    pub(crate) reader_waker: Option<Waker>,
    pub(crate) writer_waker: Option<Waker>,
    pub(crate) reader_gone: bool,
    /// `total` bytes of the shared budget, given back when the spool is dropped.
    pub(crate) reservation: Reservation,
}

/// How the byte stream ends, once the writer says so.
pub(crate) enum End {
    Open,
    Finished,
    /// The writer failed the stream; the reader yields this after the bytes, once.
    Failed(Option<BoxError>),
    /// The writer was dropped without saying.
    Abandoned,
}

/// Where the reader's next bytes are.
pub(crate) enum Next {
    /// In memory: here they are.
    Ready(Bytes),
    /// On disk: `len` bytes at file offset `offset`.
    OnDisk {
        file: Arc<File>,
        offset: u64,
        len: usize,
    },
    /// Not written yet.
    Wait,
    /// Every byte was read and the writer finished (or failed, or vanished).
    End,
}

impl State {
    pub(crate) fn new(reservation: Reservation) -> Self {
        State {
            head: BytesMut::new(),
            head_end: 0,
            spilled: false,
            file: None,
            durable: 0,
            inflight: Bytes::new(),
            pending: BytesMut::new(),
            total: 0,
            end: End::Open,
            reader_waker: None,
            writer_waker: None,
            reader_gone: false,
            reservation,
        }
    }

    /// Appends `data` to the tier it belongs to (see the module docs).
    pub(crate) fn append(&mut self, mut data: &[u8], memory_limit: usize) {
        self.total += data.len() as u64;
        if !self.spilled {
            let room = memory_limit.saturating_sub(self.head.len());
            let now = room.min(data.len());
            self.head.extend_from_slice(&data[..now]);
            self.head_end += now as u64;
            data = &data[now..];
            if !data.is_empty() {
                self.spilled = true;
                self.durable = self.head_end;
            }
        }
        self.pending.extend_from_slice(data);
        self.wake_reader();
    }

    /// The next bytes for a reader at `pos`, at most `max` of them.
    pub(crate) fn next(&mut self, pos: u64, max: usize) -> Next {
        if pos < self.head_end {
            let len = self.head.len().min(max);
            return Next::Ready(self.head.split_to(len).freeze());
        }
        if pos < self.durable {
            let file = self.file.clone().expect("bytes on disk have a file");
            let len = (self.durable - pos).min(max as u64) as usize;
            return Next::OnDisk {
                file,
                offset: pos - self.head_end,
                len,
            };
        }
        let inflight_end = self.durable + self.inflight.len() as u64;
        if pos < inflight_end {
            let start = (pos - self.durable) as usize;
            let end = self.inflight.len().min(start + max);
            return Next::Ready(self.inflight.slice(start..end));
        }
        if pos < self.total {
            let start = (pos - inflight_end) as usize;
            let end = self.pending.len().min(start + max);
            return Next::Ready(Bytes::copy_from_slice(&self.pending[start..end]));
        }
        match self.end {
            End::Open => Next::Wait,
            End::Finished | End::Failed(_) | End::Abandoned => Next::End,
        }
    }

    /// Moves the chunk that was written to disk out of memory.
    pub(crate) fn written(&mut self, file: Arc<File>) {
        self.durable += self.inflight.len() as u64;
        self.inflight = Bytes::new();
        self.file = Some(file);
        self.wake_reader();
    }

    /// The next chunk to write and its file offset, if a chunk's worth is pending (or
    /// anything at all when `all`), and no write is in flight.
    pub(crate) fn take_chunk(&mut self, all: bool) -> Option<(Bytes, u64)> {
        if !self.inflight.is_empty() || self.pending.is_empty() {
            return None;
        }
        if self.pending.len() < crate::file::CHUNK && !all {
            return None;
        }
        let len = self.pending.len().min(crate::file::CHUNK);
        self.inflight = self.pending.split_to(len).freeze();
        Some((self.inflight.clone(), self.durable - self.head_end))
    }

    /// Bytes held in memory right now.
    pub(crate) fn in_memory(&self) -> usize {
        self.head.len() + self.inflight.len() + self.pending.len()
    }

    pub(crate) fn wait_reader(&mut self, cx: &Context<'_>) {
        park(&mut self.reader_waker, cx);
    }

    pub(crate) fn wait_writer(&mut self, cx: &Context<'_>) {
        park(&mut self.writer_waker, cx);
    }

    pub(crate) fn wake_reader(&mut self) {
        if let Some(waker) = self.reader_waker.take() {
            waker.wake();
        }
    }

    pub(crate) fn wake_writer(&mut self) {
        if let Some(waker) = self.writer_waker.take() {
            waker.wake();
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // Closing the last handle of a large unlinked file frees its blocks, which can take
        // a while: do it on the blocking pool when there is one.
        if let (Some(file), Ok(runtime)) = (self.file.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn_blocking(move || drop(file));
        }
    }
}

fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}
