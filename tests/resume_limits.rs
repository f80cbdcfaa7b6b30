//! The resumable layer's remaining bounds and edge cases over real TCP: a handler that
//! answers early, a PATCH that takes over a stalled original request, a full memory store,
//! an oversized response, expiry, the completion wait, the wait cap, and a disk store
//! serving the request content with ranges.

mod raw;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use handoff_server::resume::store::{DiskStore, MemoryStore};
use handoff_server::resume::{Limits, ResumableLayer};
use raw::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn limits() -> Limits {
    Limits {
        writer_takeover: Duration::from_millis(300),
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_handler_that_answers_early_stops_the_upload_and_frees_its_bytes() {
    let store = MemoryStore::new();
    let layer = ResumableLayer::with_shared_store(Arc::new(store.clone())).limits(limits());
    let origin = origin(layer, Duration::ZERO).await;
    let body = body_of(2 << 20);
    let mut stream = tokio::net::TcpStream::connect(origin.addr).await.unwrap();
    // A keep-alive request: the early answer itself must close the connection.
    let head = String::from_utf8(upload_head_to(
        "/reject",
        origin.addr,
        body.len(),
        None,
        "resume",
    ))
    .unwrap()
    .replace("Connection: close\r\n", "");
    stream.write_all(head.as_bytes()).await.unwrap();

    let interim = read_interim(&mut stream).await;
    let response = interim
        .header("response-message-location")
        .unwrap()
        .to_owned();
    // Send part of the body; the answer comes without the rest.
    stream.write_all(&body[..64 * 1024]).await.unwrap();
    let mut buf = Vec::new();
    let reply = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            assert!(n > 0, "closed before the answer");
            buf.extend_from_slice(&chunk[..n]);
            if let Some((reply, _)) = parse_reply(&buf, true) {
                return reply;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(reply.status, 413);
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(reply.body, "no thanks");
    drop(stream);
    // Only the (tiny) recorded response is held, not the body.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(store.held_bytes() < 1024, "held {}", store.held_bytes());
    let (status, stored) = fetch_response(origin.addr, &response, None).await;
    assert_eq!((status, stored.as_ref()), (413, &b"no thanks"[..]));
}

#[tokio::test]
async fn a_patch_takes_over_a_stalled_original_request() {
    let origin = origin(ResumableLayer::new().limits(limits()), Duration::ZERO).await;
    let body = body_of(100_000);
    let addr = origin.addr;
    let (mut stream, interim) = open_upload(addr, body.len(), None, "resume").await;
    let (request, response) = interim.locations();
    stream.write_all(&body[..30_000]).await.unwrap();
    stream.flush().await.unwrap();
    // The original connection stays open but sends nothing for longer than the takeover.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held: usize = head(addr, &request, None)
        .await
        .header("content-length")
        .unwrap()
        .parse()
        .unwrap();
    let part = patch_request(
        addr,
        &request,
        &format!("bytes {held}-59999/100000"),
        &body[held..60_000],
        None,
    );
    assert_eq!(exchange(addr, &part).await.status, 299);
    // The stalled connection wakes up and sends more: it lost the body to the PATCH, and
    // must not end the operation.
    stream.write_all(&body[30_000..40_000]).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    complete(addr, &request, &body, None).await;
    let (status, answer) = fetch_response(addr, &response, None).await;
    assert_eq!(status, 200);
    assert_eq!(answer, answer_for(&body));
    assert_eq!(origin.completed.load(Ordering::SeqCst), 1);
    drop(stream);
}

#[tokio::test]
async fn a_full_memory_store_answers_429_after_its_wait() {
    let store = MemoryStore::with_max_bytes(20_000);
    let layer = ResumableLayer::with_shared_store(Arc::new(store)).limits(Limits {
        full_wait: Duration::from_millis(200),
        ..limits()
    });
    let origin = origin(layer, Duration::ZERO).await;
    let body = body_of(100_000);
    let mut request = upload_head_to("/stall", origin.addr, body.len(), None, "resume");
    request.extend_from_slice(&body);
    // The handler reads nothing for a second; the store fills and the writer gives up.
    let reply = exchange(origin.addr, &request).await;
    assert_eq!(reply.status, 429, "{reply:?}");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(String::from_utf8_lossy(&reply.body).contains("maximum of 20000 bytes"));
    // The operation ended with the refusal: a retry is a new one, the old one is gone.
    let (request_location, _) = reply.locations();
    assert_eq!(head(origin.addr, &request_location, None).await.status, 404);
}

#[tokio::test]
async fn a_response_too_large_to_record_becomes_a_500_that_says_so() {
    let layer = ResumableLayer::new().limits(Limits {
        max_response_bytes: 1000,
        ..limits()
    });
    let origin = origin(layer, Duration::ZERO).await;
    let mut request = upload_head_to("/big", origin.addr, 10, None, "resume");
    request.extend_from_slice(b"0123456789");
    let reply = exchange(origin.addr, &request).await;
    assert_eq!(reply.status, 500);
    assert!(
        String::from_utf8_lossy(&reply.body).contains("1000 bytes"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn recorded_responses_expire() {
    let layer = ResumableLayer::new().limits(Limits {
        response_ttl: Duration::from_millis(200),
        ..limits()
    });
    let origin = origin(layer, Duration::ZERO).await;
    let body = body_of(1000);
    let mut request = upload_head(origin.addr, body.len(), None, "resume");
    request.extend_from_slice(&body);
    let reply = exchange(origin.addr, &request).await;
    let response = reply
        .header("response-message-location")
        .unwrap()
        .to_owned();
    assert_eq!(get(origin.addr, &response, "").await.status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Sweeps run on use: this request starts one.
    let _ = get(origin.addr, "/.resumable/x", "").await;
    let mut status = 200;
    for _ in 0..50 {
        status = get(origin.addr, &response, "").await.status;
        if status == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 404, "the recorded response expired");
}

#[tokio::test]
async fn the_completing_patch_answers_202_when_the_handler_is_slow_and_waits_are_capped() {
    let layer = ResumableLayer::new().limits(Limits {
        completion_wait: Duration::from_millis(100),
        max_wait: Duration::from_millis(100),
        ..limits()
    });
    let origin = origin(layer, Duration::from_millis(1500)).await;
    let body = body_of(1000);
    let head_len = upload_head(origin.addr, body.len(), None, "resume").len();
    let interim = cut_upload(origin.addr, &body, head_len + 10, None)
        .await
        .unwrap();
    let (request, response) = interim.locations();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let patch = patch_request(
        origin.addr,
        &request,
        "bytes 10-999/1000",
        &body[10..],
        None,
    );
    let reply = exchange(origin.addr, &patch).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        reply.header("response-message-location"),
        Some(response.as_str())
    );
    // Prefer: wait=10 is capped at 100 ms: still running, so 202.
    let waited = get(origin.addr, &response, "Prefer: wait=10\r\n").await;
    assert_eq!(waited.status, 202);
}

#[tokio::test]
async fn a_disk_store_serves_the_request_content_with_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path()).await.unwrap();
    let origin = origin(
        ResumableLayer::with_store(store).limits(limits()),
        Duration::ZERO,
    )
    .await;
    let body = body_of(10_000);
    let head_len = upload_head(origin.addr, body.len(), None, "resume").len();
    let interim = cut_upload(origin.addr, &body, head_len + 5000, None)
        .await
        .unwrap();
    let (request, _) = interim.locations();
    let mut held = 0;
    for _ in 0..100 {
        held = head(origin.addr, &request, None)
            .await
            .header("content-length")
            .unwrap()
            .parse()
            .unwrap();
        if held == 5000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(held, 5000);
    let whole = get(origin.addr, &request, "").await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, body[..5000]);
    let part = get(origin.addr, &request, "Range: bytes=100-199\r\n").await;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 100-199/5000"));
    assert_eq!(part.body, body[100..200]);
    // A method the resource does not serve: 405 naming the ones it does.
    let put = format!(
        "PUT {request} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        origin.addr
    );
    let reply = exchange(origin.addr, put.as_bytes()).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("HEAD, GET, PATCH"));
}
