//! The proxy's backend set: which backends are up, and the round-robin pick.
//!
//! A backend goes down when it answers `379` (it is shutting down, PROTOCOL.md part A) or
//! refuses a connection; [`health`](super::health) probes it until it is back.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::uri::{Authority, Scheme};
use http::Uri;
use tokio_util::sync::CancellationToken;

use super::health::{self, HealthCheck};
use super::BoxError;

/// One upstream origin.
#[derive(Debug)]
pub(crate) struct Backend {
    authority: Authority,
    scheme: Scheme,
    up: AtomicBool,
    probing: AtomicBool,
    /// When a health check last brought it back up (`None`: up since the start).
    up_since: Mutex<Option<Instant>>,
}

impl Backend {
    /// `authority` (`host:port`) of the backend.
    pub(crate) fn authority(&self) -> &Authority {
        &self.authority
    }

    /// `http` (TLS to backends is out of scope).
    pub(crate) fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// Whether the balancer may pick it.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }
}

/// The backends behind a proxy, shared by the balancer and the health checker.
pub(crate) struct Backends {
    list: Vec<Backend>,
    next: AtomicUsize,
    health: HealthCheck,
    stop: CancellationToken,
}

impl fmt::Debug for Backends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backends")
            .field("list", &self.list)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl Backends {
    /// The set for `uris` (`http://host:port`, any path is ignored), all up. Health checks
    /// stop when `stop` is cancelled.
    pub(crate) fn new(
        uris: &[Uri],
        health: HealthCheck,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, BoxError> {
        if uris.is_empty() {
            return Err("no backend given".into());
        }
        let mut list = Vec::with_capacity(uris.len());
        for uri in uris {
            let authority = uri
                .authority()
                .cloned()
                .ok_or_else(|| format!("backend {uri} has no host:port"))?;
            let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTP);
            if scheme != Scheme::HTTP {
                return Err(format!("backend {uri}: only http:// is supported").into());
            }
            list.push(Backend {
                authority,
                scheme,
                up: AtomicBool::new(true),
                probing: AtomicBool::new(false),
                up_since: Mutex::new(None),
            });
        }
        Ok(Arc::new(Self {
            list,
            next: AtomicUsize::new(0),
            health,
            stop,
        }))
    }

    /// All backends, in configuration order.
    pub(crate) fn list(&self) -> &[Backend] {
        &self.list
    }

    /// The backend at `authority`, if configured.
    pub(crate) fn find(&self, authority: &Authority) -> Option<usize> {
        self.list.iter().position(|b| &b.authority == authority)
    }

    /// Whether the backend at `authority` is configured and up.
    pub(crate) fn is_up(&self, authority: &Authority) -> bool {
        self.find(authority).is_some_and(|i| self.list[i].is_up())
    }

    /// When the backend at `authority` last came back up after being down.
    pub(crate) fn up_since(&self, authority: &Authority) -> Option<Instant> {
        let backend = &self.list[self.find(authority)?];
        *backend.up_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next backend in round-robin order that is up and not `avoided`.
    pub(crate) fn pick(&self, avoided: impl Fn(&Authority) -> bool) -> Option<usize> {
        let n = self.list.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|offset| (start + offset) % n)
            .find(|&i| self.list[i].is_up() && !avoided(&self.list[i].authority))
    }

    /// Backend `index`.
    pub(crate) fn get(&self, index: usize) -> &Backend {
        &self.list[index]
    }

    /// Takes backend `index` out of rotation and starts probing it (once) until a health
    /// check passes.
    pub(crate) fn mark_down(self: &Arc<Self>, index: usize, reason: &'static str) {
        let backend = &self.list[index];
        if backend.up.swap(false, Ordering::AcqRel) {
            tracing::info!(backend = %backend.authority, reason, "backend down");
        }
        if self.stop.is_cancelled() || backend.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let backends = Arc::clone(self);
        tokio::spawn(async move {
            let passed = backends
                .health
                .probe_until_healthy(
                    backends.list[index].scheme.clone(),
                    backends.list[index].authority.clone(),
                    &backends.stop,
                )
                .await;
            let backend = &backends.list[index];
            backend.probing.store(false, Ordering::Release);
            match passed {
                health::Probe::Healthy => {
                    *backend.up_since.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Instant::now());
                    backend.up.store(true, Ordering::Release);
                    tracing::info!(backend = %backend.authority, "backend up");
                }
                health::Probe::GaveUp => {
                    // Bounded probing: put it back into rotation; live traffic takes it out
                    // again (and restarts probing) if it still refuses connections.
                    backend.up.store(true, Ordering::Release);
                    tracing::warn!(backend = %backend.authority, "health checks gave up; backend back in rotation");
                }
                health::Probe::Stopped => {}
            }
        });
    }
}
