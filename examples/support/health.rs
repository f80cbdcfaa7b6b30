//! The health checker: `GET /health` on a down backend every ~100 ms until it answers 2xx.

use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Method, Request, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

/// How down backends are probed.
#[derive(Debug, Clone)]
pub(crate) struct HealthCheck {
    client: Client<HttpConnector, Empty<Bytes>>,
    interval: Duration,
    timeout: Duration,
    max_attempts: u32,
}

/// How a round of probing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A check passed.
    Healthy,
    /// `max_attempts` checks failed.
    GaveUp,
    /// The proxy is shutting down.
    Stopped,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(1), 600)
    }
}

impl HealthCheck {
    /// A check every `interval`, each bounded by `timeout`, at most `max_attempts` in a row.
    pub(crate) fn new(interval: Duration, timeout: Duration, max_attempts: u32) -> Self {
        // No pooling: every probe opens a fresh connection, so it proves the backend is
        // accepting again (a pooled connection could belong to the draining predecessor).
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        Self {
            client,
            interval,
            timeout,
            max_attempts,
        }
    }

    /// One `GET /health`; true on a 2xx within the timeout.
    pub(crate) async fn check(&self, scheme: Scheme, authority: Authority) -> bool {
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/health")
            .build();
        let Ok(uri) = uri else { return false };
        let request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .body(Empty::new());
        let Ok(request) = request else { return false };
        matches!(
            tokio::time::timeout(self.timeout, self.client.request(request)).await,
            Ok(Ok(response)) if response.status().is_success()
        )
    }

    /// Probes until a check passes, `max_attempts` failed, or `stop` is cancelled.
    pub(crate) async fn probe_until_healthy(
        &self,
        scheme: Scheme,
        authority: Authority,
        stop: &CancellationToken,
    ) -> Probe {
        for _ in 0..self.max_attempts {
            tokio::select! {
                _ = stop.cancelled() => return Probe::Stopped,
                _ = tokio::time::sleep(self.interval) => {}
            }
            let check = self.check(scheme.clone(), authority.clone());
            tokio::select! {
                _ = stop.cancelled() => return Probe::Stopped,
                healthy = check => if healthy { return Probe::Healthy },
            }
        }
        Probe::GaveUp
    }
}
