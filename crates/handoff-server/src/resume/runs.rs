//! [`Runs`]: what this process is doing with each operation: whether its handler runs here,
//! and who is writing its body. The store holds the data; this holds the activity.
//!
//! One writer at a time (docs/PROTOCOL.md part C): the original request's body and each
//! `PATCH` take a [`WriterLease`]. A second writer gets [`Busy`] (`409`) unless the current
//! one has made no progress for the takeover interval, in which case the new one takes the
//! lease and the stalled one's next append fails. The store's compare-and-append keeps the
//! bytes right even without the lease; the lease is what gives a clear `409`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::ResourceId;

/// The registry of one layer (shared by its services' clones).
#[derive(Debug, Clone, Default)]
pub(crate) struct Runs {
    inner: Arc<Mutex<HashMap<ResourceId, Run>>>,
    /// Writer tokens, never reused: an entry may be forgotten while a taken-over writer
    /// still lives, and that writer must never match a later one.
    tokens: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, Default)]
struct Run {
    /// The handler's task, while it runs in this process.
    handler: Option<tokio::task::AbortHandle>,
    /// The current writer: its token and when it last appended.
    writer: Option<(u64, Instant)>,
}

/// Another writer holds the body and is making progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// The right to append to one resource's body; released on drop.
#[derive(Debug)]
pub(crate) struct WriterLease {
    runs: Runs,
    id: ResourceId,
    token: u64,
}

impl Runs {
    fn lock(&self) -> MutexGuard<'_, HashMap<ResourceId, Run>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `handler` on its own task unless the operation's handler already runs here.
    /// Returns whether it was started. The task's end is reported with
    /// [`finished`](Self::finished).
    pub(crate) fn start_handler<F>(&self, id: ResourceId, handler: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut runs = self.lock();
        let run = runs.entry(id).or_default();
        if run.handler.is_some() {
            return false;
        }
        run.handler = Some(tokio::spawn(handler).abort_handle());
        true
    }

    /// The handler's task ended.
    pub(crate) fn finished(&self, id: ResourceId) {
        let mut runs = self.lock();
        if let Some(run) = runs.get_mut(&id) {
            run.handler = None;
            if run.writer.is_none() {
                runs.remove(&id);
            }
        }
    }

    /// Whether the operation's handler runs in this process.
    pub(crate) fn is_running(&self, id: ResourceId) -> bool {
        self.lock()
            .get(&id)
            .is_some_and(|run| run.handler.is_some())
    }

    /// Stops the operation's handler, if it runs here, and forgets the operation.
    pub(crate) fn abort(&self, id: ResourceId) {
        if let Some(run) = self.lock().remove(&id) {
            if let Some(handler) = run.handler {
                handler.abort();
            }
        }
    }

    /// The writer lease, unless a writer that made progress within `takeover` holds it.
    pub(crate) fn acquire_writer(
        &self,
        id: ResourceId,
        takeover: Duration,
    ) -> Result<WriterLease, Busy> {
        let mut runs = self.lock();
        let run = runs.entry(id).or_default();
        if let Some((_, last)) = run.writer {
            if last.elapsed() < takeover {
                return Err(Busy);
            }
            tracing::debug!(%id, "a stalled writer is replaced");
        }
        let token = self
            .tokens
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        run.writer = Some((token, Instant::now()));
        Ok(WriterLease {
            runs: self.clone(),
            id,
            token,
        })
    }
}

impl WriterLease {
    /// Records progress; [`Busy`] if another writer took the lease over.
    pub(crate) fn progress(&self) -> Result<(), Busy> {
        let mut runs = self.runs.lock();
        match runs.get_mut(&self.id).and_then(|run| run.writer.as_mut()) {
            Some((token, last)) if *token == self.token => {
                *last = Instant::now();
                Ok(())
            }
            _ => Err(Busy),
        }
    }
}

impl Drop for WriterLease {
    fn drop(&mut self) {
        let mut runs = self.runs.lock();
        if let Some(run) = runs.get_mut(&self.id) {
            if run.writer.is_some_and(|(token, _)| token == self.token) {
                run.writer = None;
                if run.handler.is_none() {
                    runs.remove(&self.id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_writer_until_it_stalls() {
        let runs = Runs::default();
        let id = ResourceId::mint().unwrap();
        let takeover = Duration::from_secs(5);
        let first = runs.acquire_writer(id, takeover).unwrap();
        assert_eq!(runs.acquire_writer(id, takeover).unwrap_err(), Busy);
        tokio::time::advance(Duration::from_secs(4)).await;
        first.progress().unwrap();
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(runs.acquire_writer(id, takeover).unwrap_err(), Busy);
        tokio::time::advance(Duration::from_secs(2)).await;
        let second = runs.acquire_writer(id, takeover).unwrap();
        assert_eq!(first.progress(), Err(Busy));
        drop(first); // must not release the new writer's lease
        assert_eq!(runs.acquire_writer(id, takeover).unwrap_err(), Busy);
        drop(second);
        assert!(runs.lock().is_empty());
        runs.acquire_writer(id, takeover).unwrap();
    }

    #[tokio::test]
    async fn one_handler_per_operation() {
        let runs = Runs::default();
        let id = ResourceId::mint().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        assert!(runs.start_handler(id, async move {
            let _ = rx.await;
        }));
        assert!(!runs.start_handler(id, async {}));
        assert!(runs.is_running(id));
        runs.finished(id);
        assert!(!runs.is_running(id));
        drop(tx);
        assert!(runs.lock().is_empty());
    }
}
