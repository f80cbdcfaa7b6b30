//! Issue 10, item 5 over real TCP: a replay whose connect never completes is answered `502`
//! after `replay_timeout`, and the old origin's echo is taken meanwhile (it exits drained).
//!
//! The replacement is a listening socket with a backlog of one whose queue a stray
//! connection already fills and which never accepts: Linux drops further SYNs, so the
//! proxy's connect to it hangs.

#[path = "../examples/support/mod.rs"]
mod support;

use std::time::Duration;

use http::StatusCode;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use support::connections::Ended;
use support::origin::{spawn_origin, OriginConfig, OriginStats};
use support::proxy::{spawn_proxy, ProxyConfig};
use support::upload::{upload_with, UploadSpec};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_replay_whose_connect_hangs_is_502_after_the_replay_timeout() {
    // The black hole: listens, never accepts, its queue full.
    let hole = TcpSocket::new_v4().unwrap();
    hole.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let hole = hole.listen(0).unwrap();
    let mut stray = Vec::new();
    for _ in 0..2 {
        if let Ok(Ok(conn)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(hole_addr)).await
        {
            stray.push(conn);
        }
    }
    let probe =
        tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(hole_addr)).await;
    if probe.is_ok() {
        eprintln!("SKIP: this kernel completes connects to a full listen queue; no black hole");
        return;
    }

    let a_stats = OriginStats::default();
    let cfg = OriginConfig::new("a").drain_timeout(Duration::from_millis(500));
    let a = spawn_origin(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        cfg,
        a_stats.clone(),
    )
    .await
    .unwrap();
    let cfg = ProxyConfig::with_addrs([a.addr(), hole_addr])
        .replay_timeout(Duration::from_secs(1))
        .drain_timeout(Duration::from_secs(5));
    let proxy = spawn_proxy(TcpListener::bind("127.0.0.1:0").await.unwrap(), cfg)
        .await
        .unwrap();
    // Round robin starts with `a`: the first attempt goes there, the replay to the hole.
    let spec = UploadSpec::new(1 << 20, 64 << 10, Duration::from_millis(10), 1);
    let addr = proxy.addr();
    let upload = tokio::spawn(async move { upload_with(addr, &spec).await });
    let deadline = tokio::time::Instant::now() + LIMIT;
    while a_stats.bytes_received() < 256 << 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a never got the upload"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.shutdown();
    let ended = tokio::time::timeout(LIMIT, a.wait()).await.unwrap();
    let outcome = tokio::time::timeout(LIMIT, upload)
        .await
        .expect("the upload did not hang")
        .unwrap()
        .expect("a response");
    assert_eq!(outcome.status, StatusCode::BAD_GATEWAY, "{outcome:?}");
    assert!(matches!(ended, Ended::Drained), "{ended:?}");
    let stats = proxy.stats();
    assert_eq!(stats.replays(), 1, "{stats:?}");
    assert!(stats.spooled_bytes() >= 256 << 10, "{stats:?}");
    assert_eq!(proxy.spool_in_use(), 0);
    proxy.shutdown();
    tokio::time::timeout(LIMIT, proxy.wait()).await.unwrap();
    drop((hole, stray));
}
