//! Expiry: recorded responses older than [`Limits::response_ttl`](super::Limits) and
//! operations left idle with no handler here (after a restart, or abandoned) are removed.
//! The layer sweeps on use, at most once per interval, on a task of its own: nothing runs
//! when no request comes, and nothing outlives the runtime.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::core::Core;

/// When the last sweep started (shared by every service of one layer).
#[derive(Debug, Clone, Default)]
pub(crate) struct Sweeper {
    last: Arc<Mutex<Option<Instant>>>,
}

impl Sweeper {
    /// Starts a sweep if the last one is older than a quarter of the shorter of the idle
    /// timeout and the response lifetime (between 100 ms and 60 s).
    pub(crate) fn maybe_sweep(core: &Arc<Core>) {
        let limits = &core.limits;
        let every = (limits.response_ttl.min(limits.idle_timeout) / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(60));
        {
            let mut last = core.sweeper.last.lock().unwrap_or_else(|p| p.into_inner());
            match *last {
                Some(at) if at.elapsed() < every => return,
                _ => *last = Some(Instant::now()),
            }
        }
        tokio::spawn(sweep(core.clone()));
    }
}

async fn sweep(core: Arc<Core>) {
    let ids = match core.store.list().await {
        Ok(ids) => ids,
        Err(error) => return tracing::warn!(%error, "resumable sweep could not list the store"),
    };
    let now = SystemTime::now();
    let older = |at: SystemTime, age: Duration| now.duration_since(at).is_ok_and(|d| d >= age);
    let mut removed = 0usize;
    for id in ids {
        let Ok(resource) = core.store.get(id).await else {
            continue;
        };
        let expired = match resource.responded_at {
            Some(at) => older(at, core.limits.response_ttl),
            None => {
                !core.runs.is_running(id) && older(resource.updated_at, core.limits.idle_timeout)
            }
        };
        if expired {
            if core.store.remove(id).await.is_ok() {
                removed += 1;
            }
            core.runs.abort(id);
        }
    }
    if removed > 0 {
        tracing::debug!(removed, "resumable sweep removed expired operations");
    }
}
