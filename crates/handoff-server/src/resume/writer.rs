//! [`Writer`]: appends one writer's bytes to a resource's body. The original request's body
//! and every `PATCH` go through it, so both follow the same rules (docs/PROTOCOL.md part C):
//! bytes before the held length are skipped (re-sending is idempotent), a first byte past
//! it is a gap, and every append is a compare-and-append at the held length.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::time::Instant;

use super::core::Core;
use super::runs::WriterLease;
use super::store::StoreError;
use super::ResourceId;

/// Why a [`Writer`] stopped.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The bytes start past the held length: they would leave a gap.
    Gap { held: u64 },
    /// Another writer took the body over.
    TakenOver,
    /// The store refused (too large, length mismatch, abandoned, full for too long, I/O).
    Store(StoreError),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gap { held } => write!(f, "the bytes would leave a gap after the {held} held"),
            Self::TakenOver => f.write_str("another writer took the upload over"),
            Self::Store(error) => error.fmt(f),
        }
    }
}

/// `Acknowledge` interim responses (docs/PROTOCOL.md part B.9), paced by the layer's limits.
pub(crate) struct Acks {
    /// Sends one interim response; `false` once the connection can take no more.
    send: Box<dyn FnMut(u64) -> bool + Send>,
    acked: u64,
    at: Instant,
}

impl Acks {
    pub(crate) fn new(send: impl FnMut(u64) -> bool + Send + 'static) -> Self {
        Self {
            send: Box::new(send),
            acked: 0,
            at: Instant::now(),
        }
    }
}

/// Appends to one resource under a [`WriterLease`].
pub(crate) struct Writer {
    core: Arc<Core>,
    id: ResourceId,
    lease: WriterLease,
    held: u64,
    acks: Option<Acks>,
}

impl Writer {
    /// A writer for `id`, which holds `held` bytes.
    pub(crate) fn new(core: Arc<Core>, id: ResourceId, lease: WriterLease, held: u64) -> Self {
        Self {
            core,
            id,
            lease,
            held,
            acks: None,
        }
    }

    /// Sends `Acknowledge` interim responses as bytes become durable.
    pub(crate) fn with_acks(mut self, acks: Acks) -> Self {
        self.acks = Some(acks);
        self
    }

    /// The body length held after this writer's last append.
    pub(crate) fn held(&self) -> u64 {
        self.held
    }

    /// Puts `data`, whose first byte belongs at offset `at`.
    pub(crate) async fn put(&mut self, at: u64, mut data: Bytes) -> Result<(), WriteError> {
        let end = at + data.len() as u64;
        if end <= self.held {
            return Ok(());
        }
        if at > self.held {
            return Err(WriteError::Gap { held: self.held });
        }
        data.advance((self.held - at) as usize);
        let deadline = deadline_after(self.core.limits.full_wait);
        let mut pause = Duration::from_millis(1);
        loop {
            self.lease.progress().map_err(|_| WriteError::TakenOver)?;
            match self
                .core
                .store
                .append(self.id, self.held, data.clone())
                .await
            {
                Ok(length) => {
                    self.held = length;
                    break;
                }
                // Someone else appended meanwhile (a store shared with another process):
                // skip what they wrote, if it covers ours.
                Err(StoreError::Conflict { held }) if held > self.held && held <= end => {
                    data.advance((held - self.held) as usize);
                    self.held = held;
                    if data.is_empty() {
                        break;
                    }
                }
                // The store is out of room until handlers consume what it holds: back-pressure
                // the writer, for a while (then `429`, with `Retry-After`).
                Err(StoreError::Full { max_bytes }) if Instant::now() < deadline => {
                    tracing::trace!(id = %self.id, max_bytes, "store full; the writer waits");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(error) => return Err(WriteError::Store(error)),
            }
        }
        self.acknowledge().await;
        Ok(())
    }

    /// Records the body's complete length.
    pub(crate) async fn finish(&mut self, complete_length: u64) -> Result<(), WriteError> {
        self.lease.progress().map_err(|_| WriteError::TakenOver)?;
        self.core
            .store
            .set_complete_length(self.id, complete_length)
            .await
            .map_err(WriteError::Store)
    }

    async fn acknowledge(&mut self) {
        let Some(acks) = &mut self.acks else { return };
        let limits = &self.core.limits;
        if self.held < acks.acked.saturating_add(limits.ack_every_bytes)
            || acks.at.elapsed() < limits.ack_every
        {
            return;
        }
        match self.core.store.sync(self.id).await {
            Ok(durable) if durable > acks.acked => {
                acks.acked = durable;
                acks.at = Instant::now();
                if !(acks.send)(durable) {
                    self.acks = None;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(id = %self.id, %error, "could not make the upload durable");
                self.acks = None;
            }
        }
    }
}

/// `now + wait`, or far in the future for a wait too long to add.
pub(crate) fn deadline_after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}
