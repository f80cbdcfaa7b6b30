//! The upload origin: an axum app that hashes request bodies as they stream in.
//!
//! - `POST /upload[?chunk_delay_ms=N]`: reads the body frame by frame (never buffering it),
//!   feeding SHA-256 and a byte count, sleeping `N` ms after each frame to play a slow
//!   processor, and answers `200 {"server":"<name>","bytes":N,"sha256":"<hex>"}`.
//! - `GET /health`: `200`.
//!
//! With [`OriginConfig::resume`] (on by default) the router gets `ResumableLayer`
//! (docs/PROTOCOL.md part B): an upload with `Prefer: resume` survives a cut connection and
//! its answer can be fetched again; requests without the preference are untouched.
//!
//! With [`OriginConfig::replay`] the router gets `PartialPostReplayLayer` (PROTOCOL.md part
//! A, server side): when the origin's [`Shutdown`] is triggered, uploads still arriving are
//! handed back to the proxy with `379`; the rest drain.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::ServiceExt as _;
use axum::{Json, Router};
use handoff_server::interim::{InterimListener, WithInterimHandle};
use handoff_server::replay::{PartialPostReplayLayer, ReplayPredicate, ViaReplayProxy};
use handoff_server::resume::store::DiskStore;
use handoff_server::resume::{Limits, ResumableLayer, DEFAULT_PREFIX};
use handoff_server::Shutdown;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt as _};

use super::connections::{Connections, Ended, TrackedListener};
use super::pattern::hex;

/// How an origin is set up.
#[derive(Debug, Clone)]
pub(crate) struct OriginConfig {
    /// Reported as `server` in upload answers.
    pub(crate) name: String,
    /// Answer unfinished uploads with `379` on shutdown (the proxy must understand it).
    pub(crate) replay: bool,
    /// How long [`OriginHandle::wait`] lets in-flight requests drain before closing their
    /// connections.
    pub(crate) drain_timeout: Duration,
    /// Bound on the consumed bytes kept per request for the echo.
    pub(crate) max_echo_bytes: u64,
    /// Read upload bodies at most this fast (bytes per second): a slow replacement origin
    /// (cold caches, slow storage). `None`: as fast as they come.
    pub(crate) read_rate: Option<u64>,
    /// The resumable-request layer (docs/PROTOCOL.md part B), or `None` for none.
    pub(crate) resume: Option<ResumeConfig>,
}

/// How the origin serves resumable requests.
#[derive(Debug, Clone)]
pub(crate) struct ResumeConfig {
    /// Keep operations in this directory (a `DiskStore`) instead of memory.
    pub(crate) store: Option<std::path::PathBuf>,
    /// The path prefix of the operations' resources.
    pub(crate) prefix: String,
    /// The layer's bounds.
    pub(crate) limits: Limits,
}

impl Default for ResumeConfig {
    fn default() -> Self {
        Self {
            store: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            limits: Limits::default(),
        }
    }
}

impl ResumeConfig {
    async fn layer(&self) -> io::Result<ResumableLayer> {
        let layer = match &self.store {
            Some(dir) => ResumableLayer::with_store(DiskStore::open(dir).await?),
            None => ResumableLayer::new(),
        };
        Ok(layer.prefix(&self.prefix).limits(self.limits))
    }
}

impl OriginConfig {
    /// `name`, replay on, 30 s drain, 64 MiB echo bound.
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            replay: true,
            drain_timeout: Duration::from_secs(30),
            max_echo_bytes: handoff_server::replay::DEFAULT_MAX_ECHO_BYTES,
            read_rate: None,
            resume: Some(ResumeConfig::default()),
        }
    }

    /// Sets [`Self::resume`].
    pub(crate) fn resume(mut self, resume: Option<ResumeConfig>) -> Self {
        self.resume = resume;
        self
    }

    /// Sets [`Self::replay`].
    pub(crate) fn replay(mut self, replay: bool) -> Self {
        self.replay = replay;
        self
    }

    /// Sets [`Self::drain_timeout`].
    pub(crate) fn drain_timeout(mut self, drain_timeout: Duration) -> Self {
        self.drain_timeout = drain_timeout;
        self
    }

    /// Sets [`Self::read_rate`].
    pub(crate) fn read_rate(mut self, bytes_per_second: Option<u64>) -> Self {
        self.read_rate = bytes_per_second.filter(|rate| *rate > 0);
        self
    }

    /// Sets [`Self::max_echo_bytes`].
    pub(crate) fn max_echo_bytes(mut self, max_echo_bytes: u64) -> Self {
        self.max_echo_bytes = max_echo_bytes;
        self
    }
}

/// Counters of one origin (cheap to clone; clones share them).
#[derive(Debug, Clone, Default)]
pub(crate) struct OriginStats {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    uploads_started: AtomicU64,
    uploads_completed: AtomicU64,
    body_errors: AtomicU64,
    bytes_received: AtomicU64,
}

impl OriginStats {
    /// Upload handlers entered.
    pub(crate) fn uploads_started(&self) -> u64 {
        self.inner.uploads_started.load(Ordering::Relaxed)
    }

    /// Upload handlers that produced a response (a `200`, or a `400` after a body error).
    /// A handler abandoned by a `379` never gets here.
    pub(crate) fn uploads_completed(&self) -> u64 {
        self.inner.uploads_completed.load(Ordering::Relaxed)
    }

    /// Upload handlers that saw their request body fail.
    pub(crate) fn body_errors(&self) -> u64 {
        self.inner.body_errors.load(Ordering::Relaxed)
    }

    /// Upload body bytes the handlers received.
    pub(crate) fn bytes_received(&self) -> u64 {
        self.inner.bytes_received.load(Ordering::Relaxed)
    }
}

/// The answer to a successful upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UploadReply {
    /// The origin's name.
    pub(crate) server: String,
    /// Body bytes received.
    pub(crate) bytes: u64,
    /// SHA-256 of the body, lower-case hex.
    pub(crate) sha256: String,
}

#[derive(Debug, Deserialize)]
struct UploadParams {
    chunk_delay_ms: Option<u64>,
}

#[derive(Debug, Clone)]
struct AppState {
    name: Arc<str>,
    stats: OriginStats,
    read_rate: Option<u64>,
}

/// The origin's router, without the replay layer.
pub(crate) fn app(name: &str, stats: OriginStats, read_rate: Option<u64>) -> Router {
    Router::new()
        .route("/upload", post(upload))
        .route("/health", get(health))
        .with_state(AppState {
            name: name.into(),
            stats,
            read_rate,
        })
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn upload(
    State(state): State<AppState>,
    Query(params): Query<UploadParams>,
    mut body: Body,
) -> Response {
    let counters = &state.stats.inner;
    counters.uploads_started.fetch_add(1, Ordering::Relaxed);
    let delay = params.chunk_delay_ms.map(Duration::from_millis);
    let started = tokio::time::Instant::now();

    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let outcome = loop {
        match body.frame().await {
            None => break Ok(()),
            Some(Err(error)) => break Err(error),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    hasher.update(data);
                    bytes += data.len() as u64;
                    counters
                        .bytes_received
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                if let Some(rate) = state.read_rate {
                    // Paced on the total, so frame sizes do not change the rate.
                    let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
                    tokio::time::sleep_until(started + due).await;
                }
            }
        }
    };

    counters.uploads_completed.fetch_add(1, Ordering::Relaxed);
    match outcome {
        Ok(()) => Json(UploadReply {
            server: state.name.to_string(),
            bytes,
            sha256: hex(&hasher.finalize()),
        })
        .into_response(),
        Err(error) => {
            counters.body_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(server = %state.name, %error, bytes, "upload body failed");
            (
                StatusCode::BAD_REQUEST,
                format!("upload body failed: {error}\n"),
            )
                .into_response()
        }
    }
}

/// A running origin.
#[derive(Debug)]
pub(crate) struct OriginHandle {
    addr: SocketAddr,
    name: String,
    shutdown: Shutdown,
    drain_timeout: Duration,
    connections: Connections,
    task: JoinHandle<io::Result<()>>,
}

/// Serves the origin on `listener` (HTTP/1.1 and h2c) until its shutdown is triggered.
pub(crate) async fn spawn_origin(
    listener: TcpListener,
    cfg: OriginConfig,
    stats: OriginStats,
) -> io::Result<OriginHandle> {
    let addr = listener.local_addr()?;
    let shutdown = Shutdown::new();
    // Both layers wrap the whole router, so that the resumable layer's resources reach it
    // and a resumed operation runs the router, and the replay layer goes outside
    // (docs: handoff_server::resume, "With Partial POST Replay").
    let mut service = BoxCloneSyncService::new(app(&cfg.name, stats, cfg.read_rate));
    if let Some(resume) = &cfg.resume {
        let resumable = resume.layer().await?.layer(any_body(service));
        service = BoxCloneSyncService::new(resumable.map_response(IntoResponse::into_response));
    }
    if cfg.replay {
        let replay = PartialPostReplayLayer::new(shutdown.clone())
            .max_echo_bytes(cfg.max_echo_bytes)
            .predicate(|parts: &http::request::Parts| {
                ViaReplayProxy.should_replay(parts) && parts.uri.path() == "/upload"
            })
            .layer(any_body(service));
        service = BoxCloneSyncService::new(replay.map_response(IntoResponse::into_response));
    }
    let listener = TrackedListener::new(listener);
    let connections = listener.connections();
    // The interim hook lets the `100 Continue` carry the resumable locations.
    let serve = axum::serve(
        InterimListener::new(listener),
        WithInterimHandle::new(service.into_make_service()),
    )
    .with_graceful_shutdown(shutdown.signalled());
    let task = tokio::spawn(async move { serve.await });
    tracing::info!(name = %cfg.name, %addr, replay = cfg.replay, resume = cfg.resume.is_some(), "origin listening");
    Ok(OriginHandle {
        addr,
        name: cfg.name,
        shutdown,
        drain_timeout: cfg.drain_timeout,
        connections,
        task,
    })
}

/// The origin's service, whatever layers it has.
type OriginService = BoxCloneSyncService<http::Request<Body>, Response, Infallible>;

/// `service` for requests with any body a layer passes on.
fn any_body<B>(
    service: OriginService,
) -> impl tower::Service<http::Request<B>, Response = Response, Error = Infallible, Future: Send>
       + Clone
       + Send
       + Sync
       + 'static
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    service.map_request(|request: http::Request<B>| request.map(Body::new))
}

impl OriginHandle {
    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configured name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A clone of the origin's shutdown handle.
    pub(crate) fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Begins graceful shutdown: stop accepting, `379` the unfinished uploads (with replay),
    /// drain the rest. The listening socket is released right away.
    pub(crate) fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// Connections still open.
    pub(crate) fn open_connections(&self) -> usize {
        self.connections.open()
    }

    /// Waits for the end of the graceful shutdown (triggering it if nobody did), at most the
    /// drain timeout; then closes whatever is left, like a process that exits.
    pub(crate) async fn wait(mut self) -> Ended {
        self.shutdown.trigger();
        let ended = match tokio::time::timeout(self.drain_timeout, &mut self.task).await {
            Ok(result) => {
                log_join(&self.name, result);
                Ended::Drained
            }
            Err(_) => {
                let closed = self.connections.close_all();
                tracing::warn!(name = %self.name, closed, "drain timeout, closing connections");
                // The connections fail at their next read or write; give them a moment.
                match tokio::time::timeout(Duration::from_secs(2), &mut self.task).await {
                    Ok(result) => log_join(&self.name, result),
                    Err(_) => self.task.abort(),
                }
                Ended::Forced(closed)
            }
        };
        tracing::info!(name = %self.name, ?ended, "origin stopped");
        ended
    }
}

fn log_join(name: &str, result: Result<io::Result<()>, tokio::task::JoinError>) {
    match result {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(name, %error, "origin server failed"),
        Err(error) => tracing::warn!(name, %error, "origin task failed"),
    }
}
