//! Issue 10, item 7 over real TCP: a client's request trailers survive a replay.
//!
//! h2 from the client to the proxy and h2c from the proxy to two origins (HTTP/1.1 carries
//! request trailers only on chunked bodies). Origin `a` is shut down while the upload is
//! in flight and hands it back with `379`; the replay on `b` must end with the trailers
//! the client sent after the handoff.

#[path = "../examples/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use handoff_server::replay::PartialPostReplayLayer;
use handoff_server::Shutdown;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use support::proxy::{spawn_proxy, ProxyConfig};

const LIMIT: Duration = Duration::from_secs(20);

/// Reads the whole body, trailers included; answers `<name> <bytes> <x-checksum trailer>`.
async fn upload(
    State((name, seen)): State<(&'static str, Arc<AtomicU64>)>,
    req: Request,
) -> String {
    let mut body = req.into_body();
    let mut bytes = 0;
    let mut checksum = String::from("-");
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return "error".into();
        };
        match frame.into_data() {
            Ok(data) => {
                bytes += data.len();
                seen.fetch_add(data.len() as u64, Ordering::SeqCst);
            }
            Err(frame) => {
                if let Some(value) = frame.trailers_ref().and_then(|t| t.get("x-checksum")) {
                    checksum = value.to_str().unwrap_or("?").to_owned();
                }
            }
        }
    }
    format!("{name} {bytes} {checksum}")
}

async fn origin(name: &'static str) -> (SocketAddr, Shutdown, Arc<AtomicU64>, JoinHandle<()>) {
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
    (addr, shutdown, seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_sent_after_the_handoff_reach_the_replay() {
    let (a, a_shutdown, a_seen, a_task) = origin("a").await;
    let (b, b_shutdown, _, b_task) = origin("b").await;
    let cfg = ProxyConfig::with_addrs([a, b])
        .h2(true)
        .drain_timeout(Duration::from_secs(5));
    let proxy = spawn_proxy(TcpListener::bind("127.0.0.1:0").await.unwrap(), cfg)
        .await
        .unwrap();

    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::channel::Channel<Bytes>>();
    let (mut sender, body) = http_body_util::channel::Channel::<Bytes>::new(4);
    let req = http::Request::post(format!("http://{}/upload", proxy.addr()))
        .body(body)
        .unwrap();
    let response = tokio::spawn(client.request(req));
    sender
        .send_data(Bytes::from(vec![b'x'; 10_000]))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while a_seen.load(Ordering::SeqCst) < 10_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a never got the first part"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The deploy: `a` hands the upload back; the rest, trailers included, goes to `b`.
    a_shutdown.trigger();
    tokio::time::timeout(LIMIT, a_task).await.unwrap().unwrap();
    sender
        .send_data(Bytes::from(vec![b'y'; 5_000]))
        .await
        .unwrap();
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc123"));
    sender.send_trailers(trailers).await.unwrap();
    drop(sender);

    let response = tokio::time::timeout(LIMIT, response)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, "b 15000 abc123");
    assert_eq!(proxy.stats().replays(), 1);

    proxy.shutdown();
    b_shutdown.trigger();
    tokio::time::timeout(LIMIT, proxy.wait()).await.unwrap();
    tokio::time::timeout(LIMIT, b_task).await.unwrap().unwrap();
}
