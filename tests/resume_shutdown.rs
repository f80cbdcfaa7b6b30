//! The resumable layer and Partial POST Replay on one router (replay outside), through a
//! graceful shutdown, over real TCP.

mod raw;

use std::sync::atomic::Ordering;
use std::time::Duration;

use handoff_server::replay::{Always, PartialPostReplayLayer};
use handoff_server::resume::{Limits, ResumableLayer};
use raw::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceBuilder;

/// The replay layer outside the resumable one, both around the whole router.
fn both(shutdown: handoff_server::Shutdown) -> impl FnOnce(axum::Router) -> TestService {
    move |router| {
        boxed(
            ServiceBuilder::new()
                // The test plays the proxy with a raw client that does not mark its
                // requests: hand back every unfinished one.
                .layer(PartialPostReplayLayer::new(shutdown).predicate(Always))
                .layer(ResumableLayer::new().limits(Limits::default()))
                .service(router),
        )
    }
}

#[tokio::test]
async fn an_unfinished_resumable_upload_is_handed_back_with_379() {
    let shutdown = handoff_server::Shutdown::new();
    let origin = origin_with(both(shutdown.clone()), Duration::ZERO).await;
    let body = body_of(10_000);
    let (mut stream, interim) = open_upload(origin.addr, body.len(), None, "resume").await;
    assert!(interim.header("request-content-location").is_some());
    stream.write_all(&body[..4000]).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    shutdown.trigger();
    // The proxy's view: a 379 echoing the request and the 4000 bytes the origin received.
    let mut buf = Vec::new();
    let reply = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the 379");
            buf.extend_from_slice(&chunk[..n]);
            if let Some((reply, used)) = parse_reply(&buf, false) {
                return (reply, used);
            }
        }
    })
    .await
    .unwrap();
    let (reply, used) = reply;
    assert_eq!(reply.status, 379);
    assert_eq!(reply.header("echo-prefer"), Some("resume"));
    // The echo is chunked; its first chunks hold the received bytes. Send the rest, then
    // end the request as a proxy would, and read the echo to its end.
    stream.write_all(&body[4000..]).await.unwrap();
    let mut echo_raw = buf[used..].to_vec();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut echo_raw)).await;
    let echo = dechunk(&echo_raw);
    assert!(echo.len() >= 4000, "echoed {} bytes", echo.len());
    assert_eq!(&echo[..], &body[..echo.len()]);
    // No handler answered: nothing was recorded as the operation's response.
    drop(origin);
}

#[tokio::test]
async fn a_complete_resumable_upload_drains_through_shutdown() {
    let shutdown = handoff_server::Shutdown::new();
    let origin = origin_with(both(shutdown.clone()), Duration::from_millis(300)).await;
    let body = body_of(10_000);
    let (mut stream, _interim) = open_upload(origin.addr, body.len(), None, "resume").await;
    stream.write_all(&body).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.trigger();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let (reply, _) = parse_reply(&buf, true).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, answer_for(&body));
    assert_eq!(origin.runs.load(Ordering::SeqCst), 1);
}

/// The payload of a chunked body (as much of it as is there).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 || raw.len() < size {
            out.extend_from_slice(&raw[..size.min(raw.len())]);
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[(size + 2).min(raw.len())..];
    }
    out
}
