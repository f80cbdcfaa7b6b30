//! Issue 8, item 2 over real TCP: the proxy of the README, a plain hyper-util `Client` with
//! `ReplayLayer::with_policy(Backends::new(..))`, mounted in `axum::serve` in one line.
//!
//! Origin `a` is shut down in the middle of an upload; the layer replays it on `b`, which
//! must see every byte exactly once (the digest proves the order). Also: a policy with no
//! backend left answers `503`, and a first attempt the client cannot connect is `502`
//! through the `HandleError` of that one line.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleError;
use axum::extract::{Request, State};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceBuilder;
use tower_handoff::client::replay::policy::Backends;
use tower_handoff::client::replay::{ReplayBody, ReplayLayer, ReplayStats};
use tower_handoff::server::replay::PartialPostReplayLayer;
use tower_handoff::server::Shutdown;

const LIMIT: Duration = Duration::from_secs(20);
const PART: usize = 512 * 1024;

/// Reads the whole body; answers `<name> <bytes> <sha256>`.
async fn upload(
    State((name, seen)): State<(&'static str, Arc<AtomicU64>)>,
    req: Request,
) -> String {
    let mut body = req.into_body();
    let mut hash = Sha256::new();
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return "error".into();
        };
        if let Ok(data) = frame.into_data() {
            bytes += data.len();
            hash.update(&data);
            seen.fetch_add(data.len() as u64, Ordering::SeqCst);
        }
    }
    format!("{name} {bytes} {:x}", hash.finalize())
}

struct Origin {
    addr: SocketAddr,
    shutdown: Shutdown,
    seen: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

async fn origin(name: &'static str) -> Origin {
    let shutdown = Shutdown::new();
    let seen = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route("/upload", post(upload))
        .with_state((name, seen.clone()))
        .layer(PartialPostReplayLayer::new(shutdown.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let signal = shutdown.signalled();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
            .unwrap();
    });
    Origin {
        addr,
        shutdown,
        seen,
        task,
    }
}

/// The README's proxy: a plain client, the layer with a list of backends, one line to mount.
async fn proxy(backends: Backends, stats: ReplayStats) -> (SocketAddr, JoinHandle<()>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<axum::body::Body>>();
    let proxy = ServiceBuilder::new()
        .layer(ReplayLayer::with_policy(backends).stats(stats))
        .service(client);
    let app = Router::new().fallback_service(HandleError::new(
        proxy,
        |_: hyper_util::client::legacy::Error| async { StatusCode::BAD_GATEWAY },
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, task)
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

fn part(i: u8) -> Bytes {
    Bytes::from(vec![i; PART])
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(LIMIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_client_behind_the_layer_replays_on_the_next_backend() {
    let a = origin("a").await;
    let b = origin("b").await;
    let stats = ReplayStats::default();
    // The rotation starts at the first backend: the upload goes to `a`.
    let backends = Backends::new([url(a.addr), url(b.addr)]).unwrap();
    let (proxy_addr, proxy_task) = proxy(backends, stats.clone()).await;

    let (mut tx, body) =
        http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(4);
    let client = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::post(format!("http://{proxy_addr}/upload"))
        .body(body)
        .unwrap();
    let response = tokio::spawn(client.request(req));
    let mut all = Vec::new();
    for i in 0..2 {
        tx.send_data(part(i)).await.unwrap();
        all.extend_from_slice(&part(i));
    }
    let seen = a.seen.clone();
    wait_until("a to read 1 MiB", || {
        seen.load(Ordering::SeqCst) >= 2 * PART as u64
    })
    .await;
    a.shutdown.trigger();
    for i in 2..4 {
        tx.send_data(part(i)).await.unwrap();
        all.extend_from_slice(&part(i));
    }
    drop(tx);

    let res = tokio::time::timeout(LIMIT, response)
        .await
        .expect("an answer")
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.into_body().collect().await.unwrap().to_bytes();
    let expected = format!("b {} {:x}", all.len(), Sha256::digest(&all));
    assert_eq!(text, expected.as_bytes());
    assert_eq!(stats.replays(), 1);
    assert_eq!(stats.failed(), 0);
    // `a` exited: its drain did not wait for the upload.
    tokio::time::timeout(LIMIT, a.task).await.unwrap().unwrap();
    assert!(b.seen.load(Ordering::SeqCst) >= all.len() as u64);
    b.shutdown.trigger();
    tokio::time::timeout(LIMIT, b.task).await.unwrap().unwrap();
    proxy_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_backend_left_is_503_and_an_unreachable_first_backend_is_502() {
    let a = origin("a").await;
    let stats = ReplayStats::default();
    // One backend, which hands the upload back: nothing is left to replay on.
    let backends = Backends::new([url(a.addr)]).unwrap();
    let (proxy_addr, proxy_task) = proxy(backends, stats.clone()).await;
    let (mut tx, body) =
        http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(4);
    let client = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::post(format!("http://{proxy_addr}/upload"))
        .body(body)
        .unwrap();
    let response = tokio::spawn(client.request(req));
    tx.send_data(part(1)).await.unwrap();
    let seen = a.seen.clone();
    wait_until("a to read", || seen.load(Ordering::SeqCst) >= PART as u64).await;
    a.shutdown.trigger();
    let res = tokio::time::timeout(LIMIT, response)
        .await
        .expect("an answer")
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, "no upstream is available for this request\n");
    assert_eq!(stats.failed(), 1);
    drop(tx);
    tokio::time::timeout(LIMIT, a.task).await.unwrap().unwrap();
    proxy_task.abort();

    // A backend nobody listens on: the client's connect error is the first attempt's, so
    // the layer hands it to the caller, and the one line's `HandleError` answers 502.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let (proxy_addr, proxy_task) = proxy(Backends::new([url(closed_addr)]).unwrap(), stats).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<String>();
    let req = http::Request::post(format!("http://{proxy_addr}/upload"))
        .body("hello".to_owned())
        .unwrap();
    let res = tokio::time::timeout(LIMIT, client.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    proxy_task.abort();
}
