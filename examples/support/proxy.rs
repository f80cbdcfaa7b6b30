//! The reverse proxy: axum serving HTTP/1.1 and h2c, every request going through
//! `ReplayLayer` (PROTOCOL.md part A, intermediary side) and the [`Balancer`].
//!
//! Request bodies stream through; nothing here buffers them. With replay off the balancer
//! alone forwards requests, which is what a proxy without Partial POST Replay does.

use std::convert::Infallible;
use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use handoff_client::replay::{ReplayBody, ReplayLayer, ReplayStats, SpoolBudget};
use http::uri::Authority;
use http::{Request, Response, Uri};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceBuilder, ServiceExt as _};

use super::backends::Backends;
use super::balancer::Balancer;
use super::connections::{Connections, Ended, TrackedListener};
use super::health::HealthCheck;
use super::BoxError;

/// How a proxy is set up.
#[derive(Debug, Clone)]
pub(crate) struct ProxyConfig {
    /// The origins, `http://host:port`.
    pub(crate) backends: Vec<Uri>,
    /// h2c (prior knowledge) to the origins instead of HTTP/1.1.
    pub(crate) h2: bool,
    /// Replays per request before the proxy gives up with 502.
    pub(crate) max_replays: u32,
    /// Put `ReplayLayer` in front of the balancer.
    pub(crate) replay: bool,
    /// How long a 379's echo may stall; `None` keeps the layer's default.
    pub(crate) echo_timeout: Option<Duration>,
    /// How long a replay may wait for an upstream to take it; `None` keeps the default.
    pub(crate) replay_timeout: Option<Duration>,
    /// How long [`ProxyHandle::wait`] lets in-flight requests finish.
    pub(crate) drain_timeout: Duration,
    /// How down backends are probed.
    pub(crate) health: HealthCheck,
}

impl ProxyConfig {
    /// Replay on, HTTP/1.1 to the origins, 3 replays, 30 s drain.
    pub(crate) fn new(backends: impl IntoIterator<Item = Uri>) -> Self {
        Self {
            backends: backends.into_iter().collect(),
            h2: false,
            max_replays: 3,
            replay: true,
            echo_timeout: None,
            replay_timeout: None,
            drain_timeout: Duration::from_secs(30),
            health: HealthCheck::default(),
        }
    }

    /// The same with origins given as socket addresses.
    pub(crate) fn with_addrs(addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self::new(addrs.into_iter().map(|addr| {
            Uri::builder()
                .scheme("http")
                .authority(addr.to_string())
                .path_and_query("/")
                .build()
                .expect("a socket address is a valid authority")
        }))
    }

    /// Sets [`Self::h2`].
    pub(crate) fn h2(mut self, h2: bool) -> Self {
        self.h2 = h2;
        self
    }

    /// Sets [`Self::max_replays`].
    pub(crate) fn max_replays(mut self, max_replays: u32) -> Self {
        self.max_replays = max_replays;
        self
    }

    /// Sets [`Self::replay`].
    pub(crate) fn replay(mut self, replay: bool) -> Self {
        self.replay = replay;
        self
    }

    /// Sets [`Self::echo_timeout`].
    pub(crate) fn echo_timeout(mut self, echo_timeout: Duration) -> Self {
        self.echo_timeout = Some(echo_timeout);
        self
    }

    /// Sets [`Self::replay_timeout`].
    pub(crate) fn replay_timeout(mut self, replay_timeout: Duration) -> Self {
        self.replay_timeout = Some(replay_timeout);
        self
    }

    /// Sets [`Self::drain_timeout`].
    pub(crate) fn drain_timeout(mut self, drain_timeout: Duration) -> Self {
        self.drain_timeout = drain_timeout;
        self
    }
}

/// A running proxy.
#[derive(Debug)]
pub(crate) struct ProxyHandle {
    addr: SocketAddr,
    stop: CancellationToken,
    stats: ReplayStats,
    spool: SpoolBudget,
    backends: Arc<Backends>,
    drain_timeout: Duration,
    connections: Connections,
    task: JoinHandle<io::Result<()>>,
}

/// Serves the proxy on `listener` until [`ProxyHandle::shutdown`].
pub(crate) async fn spawn_proxy(
    listener: TcpListener,
    cfg: ProxyConfig,
) -> Result<ProxyHandle, BoxError> {
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let backends = Backends::new(&cfg.backends, cfg.health.clone(), stop.child_token())?;
    let stats = ReplayStats::default();
    let listener = TrackedListener::new(listener);
    let connections = listener.connections();
    let mut layer = ReplayLayer::new()
        .max_replays(cfg.max_replays)
        .stats(stats.clone());
    if let Some(echo_timeout) = cfg.echo_timeout {
        layer = layer.echo_timeout(echo_timeout);
    }
    if let Some(replay_timeout) = cfg.replay_timeout {
        layer = layer.replay_timeout(replay_timeout);
    }
    let spool = layer.echo_spool_budget().clone();

    let task = if cfg.replay {
        let service =
            ServiceBuilder::new().layer(layer).service(
                Balancer::<ReplayBody<axum::body::Body>>::new(Arc::clone(&backends), cfg.h2),
            );
        serve(listener, service, stop.clone())
    } else {
        let service = Balancer::<axum::body::Body>::new(Arc::clone(&backends), cfg.h2);
        serve(listener, service, stop.clone())
    };
    tracing::info!(
        %addr,
        backends = ?cfg.backends,
        h2 = cfg.h2,
        replay = cfg.replay,
        "proxy listening"
    );
    Ok(ProxyHandle {
        addr,
        stop,
        stats,
        spool,
        backends,
        drain_timeout: cfg.drain_timeout,
        connections,
        task,
    })
}

fn serve<S, B>(
    listener: TrackedListener,
    service: S,
    stop: CancellationToken,
) -> JoinHandle<io::Result<()>>
where
    S: Service<Request<axum::body::Body>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let service = service.map_response(|response: Response<B>| response.map(axum::body::Body::new));
    let make_service = axum::ServiceExt::<Request<axum::body::Body>>::into_make_service(service);
    let server = axum::serve(listener, make_service)
        .with_graceful_shutdown(stop.cancelled_owned())
        .into_future();
    tokio::spawn(server)
}

impl ProxyHandle {
    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The replay layer's counters (all zero with replay off).
    pub(crate) fn stats(&self) -> ReplayStats {
        self.stats.clone()
    }

    /// Echo bytes the replay layer's spools hold (reserved) right now.
    pub(crate) fn spool_in_use(&self) -> u64 {
        self.spool.used()
    }

    /// The backend set.
    pub(crate) fn backends(&self) -> &Arc<Backends> {
        &self.backends
    }

    /// Whether the balancer currently considers the origin at `addr` usable.
    pub(crate) fn backend_up(&self, addr: SocketAddr) -> bool {
        addr.to_string()
            .parse::<Authority>()
            .is_ok_and(|authority| self.backends.is_up(&authority))
    }

    /// Stops accepting, stops health checks, lets in-flight requests finish.
    pub(crate) fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits for the end of the graceful shutdown (triggering it if nobody did), at most the
    /// drain timeout; then closes whatever is left.
    pub(crate) async fn wait(mut self) -> Ended {
        self.stop.cancel();
        match tokio::time::timeout(self.drain_timeout, &mut self.task).await {
            Ok(Ok(Ok(()))) => Ended::Drained,
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, "proxy server failed");
                Ended::Drained
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "proxy task failed");
                Ended::Drained
            }
            Err(_) => {
                let closed = self.connections.close_all();
                tracing::warn!(closed, "proxy drain timeout, closing connections");
                if tokio::time::timeout(Duration::from_secs(2), &mut self.task)
                    .await
                    .is_err()
                {
                    self.task.abort();
                }
                Ended::Forced(closed)
            }
        }
    }
}
