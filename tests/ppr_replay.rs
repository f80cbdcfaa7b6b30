//! Issue #3 items 10, 11 and 13: Partial POST Replay end to end over real TCP on 127.0.0.1.
//!
//! Client -> proxy (`ReplayLayer` + round-robin balancer) -> two origins
//! (`PartialPostReplayLayer`), all built from `examples/support`.

#[path = "../examples/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use tokio::net::TcpListener;

use support::origin::{spawn_origin, OriginConfig, OriginHandle, OriginStats};
use support::proxy::{spawn_proxy, ProxyConfig, ProxyHandle};
use support::upload::{upload_with, UploadOutcome, UploadSpec};

const LIMIT: Duration = Duration::from_secs(30);

async fn origin(name: &str, replay: bool) -> (OriginHandle, OriginStats) {
    let stats = OriginStats::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = OriginConfig::new(name)
        .replay(replay)
        .drain_timeout(Duration::from_secs(10));
    let origin = spawn_origin(listener, cfg, stats.clone()).await.unwrap();
    (origin, stats)
}

async fn proxy(backends: &[SocketAddr], h2: bool) -> ProxyHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = ProxyConfig::with_addrs(backends.iter().copied())
        .h2(h2)
        .drain_timeout(Duration::from_secs(5));
    spawn_proxy(listener, cfg).await.unwrap()
}

/// Waits (bounded) until `ready` holds; the bound is a safety net, not a timing assertion.
async fn until(what: &str, ready: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn finish(upload: tokio::task::JoinHandle<UploadOutcome>) -> UploadOutcome {
    tokio::time::timeout(LIMIT, upload)
        .await
        .expect("the upload finished in time")
        .expect("the upload task did not panic")
}

fn spawn_upload(proxy: SocketAddr, spec: UploadSpec) -> tokio::task::JoinHandle<UploadOutcome> {
    tokio::spawn(async move { upload_with(proxy, &spec).await.expect("a response") })
}

/// Item 10: an upload interrupted by its origin's shutdown completes on the other origin.
async fn interrupted_upload_completes_elsewhere(h2: bool) {
    let (a, a_stats) = origin("a", true).await;
    let (b, b_stats) = origin("b", true).await;
    let proxy = proxy(&[a.addr(), b.addr()], h2).await;

    // 2 MiB in 32 KiB frames, 5 ms apart: about 0.3 s of upload.
    let spec = UploadSpec::new(2 << 20, 32 << 10, Duration::from_millis(5), 10);
    let upload = spawn_upload(proxy.addr(), spec);
    until("origin a received 256 KiB", || {
        a_stats.bytes_received() >= 256 << 10
    })
    .await;
    a.shutdown();

    let outcome = finish(upload).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.server(), Some("b"));
    assert_eq!(outcome.reply.as_ref().unwrap().bytes, 2 << 20);
    assert_eq!(proxy.stats().replays(), 1);
    assert!(proxy.stats().echoed_bytes() >= 256 << 10);
    assert_eq!(a_stats.uploads_completed(), 0, "a's handler was abandoned");
    assert_eq!(b_stats.uploads_completed(), 1);

    a.wait().await;
    proxy.wait().await;
    b.wait().await;
}

#[tokio::test]
async fn interrupted_upload_completes_on_the_other_origin_over_http1() {
    interrupted_upload_completes_elsewhere(false).await;
}

#[tokio::test]
async fn interrupted_upload_completes_on_the_other_origin_over_h2c() {
    interrupted_upload_completes_elsewhere(true).await;
}

/// Item 11: 50 uploads in flight when one of two origins shuts down.
#[tokio::test]
async fn fifty_uploads_survive_one_origin_shutting_down() {
    let (a, a_stats) = origin("a", true).await;
    let (b, b_stats) = origin("b", true).await;
    let proxy = proxy(&[a.addr(), b.addr()], false).await;

    // 50 x 512 KiB in 16 KiB frames, 10 ms apart: each upload takes about 0.3 s.
    let uploads: Vec<_> = (0..50)
        .map(|seed| {
            let spec = UploadSpec::new(512 << 10, 16 << 10, Duration::from_millis(10), seed);
            spawn_upload(proxy.addr(), spec)
        })
        .collect();
    until("origin a has 20 uploads under way", || {
        a_stats.uploads_started() >= 20 && a_stats.bytes_received() >= 20 * (32 << 10)
    })
    .await;
    a.shutdown();

    let mut outcomes = Vec::new();
    for upload in uploads {
        outcomes.push(finish(upload).await);
    }
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.succeeded()).collect();
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());

    // Every response a's abandoned handlers could have produced is accounted for: the only
    // answers from a are those of uploads that had finished before the shutdown.
    let answered_by_a = outcomes.iter().filter(|o| o.server() == Some("a")).count() as u64;
    assert_eq!(a_stats.uploads_completed(), answered_by_a);
    let abandoned = a_stats.uploads_started() - a_stats.uploads_completed();
    assert!(abandoned > 0, "the shutdown caught uploads in flight");
    assert_eq!(proxy.stats().replays(), abandoned);
    assert_eq!(proxy.stats().failed(), 0);
    assert_eq!(
        b_stats.uploads_completed() + answered_by_a,
        50,
        "b answered the rest"
    );

    a.wait().await;
    proxy.wait().await;
    b.wait().await;
}

/// Item 13 and issue 10 item 8: origins with the replay layer behind a proxy *without*
/// it. The proxy does not mark its requests, so the origin never answers them `379`
/// (which that proxy would pass to the client): shutdown drains the upload.
#[tokio::test]
async fn a_proxy_without_the_replay_layer_never_gets_a_379() {
    let (a, a_stats) = origin("a", true).await;
    let (b, _) = origin("b", true).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = ProxyConfig::with_addrs([a.addr(), b.addr()])
        .replay(false)
        .drain_timeout(Duration::from_secs(5));
    let proxy = spawn_proxy(listener, cfg).await.unwrap();

    let spec = UploadSpec::new(1 << 20, 32 << 10, Duration::from_millis(5), 20);
    let upload = spawn_upload(proxy.addr(), spec);
    until("origin a received 128 KiB", || {
        a_stats.bytes_received() >= 128 << 10
    })
    .await;
    a.shutdown();

    let outcome = finish(upload).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.server(), Some("a"), "a drained its upload");
    assert_eq!(proxy.stats().replays(), 0, "no 379 reached the proxy");
    a.wait().await;
    proxy.wait().await;
    b.wait().await;
}

/// Issue 10 item 8: a client that reaches an origin with the replay layer directly (no
/// proxy, so no `Partial-Post-Replay` mark) gets the handler's answer, never a `379`.
#[tokio::test]
async fn a_client_reaching_the_origin_directly_never_gets_a_379() {
    let (a, a_stats) = origin("a", true).await;
    let spec = UploadSpec::new(1 << 20, 32 << 10, Duration::from_millis(5), 21);
    let upload = spawn_upload(a.addr(), spec);
    until("origin a received 128 KiB", || {
        a_stats.bytes_received() >= 128 << 10
    })
    .await;
    a.shutdown();
    let outcome = finish(upload).await;
    assert_eq!(outcome.status, StatusCode::OK);
    assert!(outcome.succeeded(), "{outcome:?}");
    a.wait().await;
}

/// Item 13: with the layer, a request whose body is complete finishes normally.
#[tokio::test]
async fn a_complete_body_finishes_normally_during_shutdown() {
    let (a, a_stats) = origin("a", true).await;
    // One small frame, then the origin takes its time (`?chunk_delay_ms`): the handler has
    // read the whole body when the shutdown begins.
    let mut spec = UploadSpec::new(1000, 1000, Duration::ZERO, 22);
    spec.origin_chunk_delay_ms = Some(300);
    let upload = spawn_upload(a.addr(), spec);
    until("origin a received the body", || {
        a_stats.bytes_received() == 1000
    })
    .await;
    a.shutdown();
    let outcome = finish(upload).await;
    assert_eq!(outcome.status, StatusCode::OK, "{outcome:?}");
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.server(), Some("a"));
    a.wait().await;
}
