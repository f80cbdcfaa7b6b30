//! Issue 10, item 1: a slow replacement origin and a short drain window.
//!
//! The origins read slowly (`?chunk_delay_ms`), the old one drains for only 0.5 s, and it
//! has consumed megabytes of each upload before its `379`s. Every upload must still
//! succeed, and the old origin must end within its drain window (`Ended::Drained`): the
//! proxy takes each echo as fast as the old origin sends it, into its spool, instead of at
//! the pace the replacement reads the replay. Over HTTP/1.1 and h2c between the proxy and
//! the origins (over h2c all echoes share one connection, and no echo may wait on another's
//! flow-control window), and with h2c from the client to the proxy.

#[path = "../examples/support/mod.rs"]
mod support;

use std::time::Duration;

use tokio::net::TcpListener;

use support::connections::Ended;
use support::origin::{spawn_origin, OriginConfig, OriginHandle, OriginStats};
use support::proxy::{spawn_proxy, ProxyConfig};
use support::upload::{upload_with, UploadSpec};

const LIMIT: Duration = Duration::from_secs(60);
const UPLOADS: u64 = 4;
const UPLOAD_BYTES: u64 = 12 << 20;

async fn origin(name: &str, read_rate: Option<u64>) -> (OriginHandle, OriginStats) {
    let stats = OriginStats::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = OriginConfig::new(name)
        .drain_timeout(Duration::from_millis(500))
        .read_rate(read_rate);
    (
        spawn_origin(listener, cfg, stats.clone()).await.unwrap(),
        stats,
    )
}

async fn slow_replacement(h2_upstream: bool, h2_client: bool) {
    // `a` reads as fast as the client sends; `b`, the replacement, at 4 MiB/s.
    let (a, a_stats) = origin("a", None).await;
    let (b, b_stats) = origin("b", Some(4 << 20)).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = ProxyConfig::with_addrs([a.addr(), b.addr()])
        .h2(h2_upstream)
        .drain_timeout(Duration::from_secs(5));
    let proxy = spawn_proxy(listener, cfg).await.unwrap();

    // The clients send 64 KiB every 10 ms (6.4 MB/s each). `b` needs 2 s for each
    // 8 MiB echo: four times the old origin's drain window, and more than the socket
    // buffers between them absorb.
    let uploads: Vec<_> = (0..UPLOADS)
        .map(|seed| {
            let mut spec = UploadSpec::new(UPLOAD_BYTES, 64 << 10, Duration::from_millis(10), seed);
            spec.h2 = h2_client;
            let addr = proxy.addr();
            tokio::spawn(async move { upload_with(addr, &spec).await })
        })
        .collect();

    // Hand back only once `a` consumed megabytes: each of its uploads then has a large echo.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while a_stats.bytes_received() < 16 << 20 {
        assert!(tokio::time::Instant::now() < deadline, "a never got 16 MiB");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let consumed = a_stats.bytes_received();
    a.shutdown();
    let ended = tokio::time::timeout(LIMIT, a.wait())
        .await
        .expect("a ended");

    for upload in uploads {
        let outcome = tokio::time::timeout(LIMIT, upload)
            .await
            .expect("the upload finished")
            .unwrap()
            .expect("a response");
        assert!(outcome.succeeded(), "{outcome:?}");
        assert_eq!(outcome.server(), Some("b"), "{outcome:?}");
        assert_eq!(outcome.reply.as_ref().unwrap().bytes, UPLOAD_BYTES);
    }
    // The old origin's connections all finished within its 0.5 s drain window: none was cut
    // with an echo half sent.
    assert!(matches!(ended, Ended::Drained), "{ended:?}");
    let stats = proxy.stats();
    assert!(stats.replays() >= 1, "{stats:?}");
    assert_eq!(stats.failed(), 0, "{stats:?}");
    // The echoes went through the proxy's spool: at least what `a` had consumed.
    assert!(stats.spooled_bytes() >= consumed, "{stats:?} < {consumed}");
    assert_eq!(
        proxy.spool_in_use(),
        0,
        "every spool was released with its request"
    );
    assert_eq!(b_stats.uploads_completed(), UPLOADS);

    proxy.shutdown();
    b.shutdown();
    tokio::time::timeout(LIMIT, proxy.wait()).await.unwrap();
    tokio::time::timeout(LIMIT, b.wait()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_replacement_does_not_keep_the_old_origin_over_http1() {
    slow_replacement(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_replacement_does_not_keep_the_old_origin_over_h2c() {
    slow_replacement(true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_replacement_with_h2_from_the_client() {
    slow_replacement(true, true).await;
}
