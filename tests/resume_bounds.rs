//! Resumable requests over real TCP: owners, refusals, limits, and arbitrary PATCH bodies.

mod raw;

use std::sync::atomic::Ordering;
use std::time::Duration;

use handoff_server::resume::{Limits, ResumableLayer};
use proptest::prelude::*;
use raw::*;
use tokio::io::AsyncWriteExt;

fn limits() -> Limits {
    Limits {
        writer_takeover: Duration::from_millis(300),
        ..Limits::default()
    }
}

/// Starts an upload of `body` as `auth`, cuts it after `sent` body bytes, and returns the
/// request-content and response-message locations.
async fn interrupted(
    origin: &Origin,
    body: &[u8],
    sent: usize,
    auth: Option<&str>,
) -> (String, String) {
    let head_len = upload_head(origin.addr, body.len(), auth, "resume").len();
    let interim = cut_upload(origin.addr, body, head_len + sent, auth)
        .await
        .unwrap();
    (
        interim
            .header("request-content-location")
            .unwrap()
            .to_owned(),
        interim
            .header("response-message-location")
            .unwrap()
            .to_owned(),
    )
}

#[tokio::test]
async fn another_party_gets_404_like_an_unknown_id() {
    let origin = origin(ResumableLayer::new().limits(limits()), Duration::ZERO).await;
    let body = body_of(1000);
    let alice = Some("Bearer alice");
    let mallory = Some("Bearer mallory");
    let (request, response) = interrupted(&origin, &body, 10, alice).await;
    let unknown = "/.resumable/00000000000000000000000000000000/request";

    for path in [request.as_str(), unknown] {
        assert_eq!(head(origin.addr, path, mallory).await.status, 404, "{path}");
        let patch = patch_request(origin.addr, path, "bytes 10-999/1000", &body[10..], mallory);
        assert_eq!(exchange(origin.addr, &patch).await.status, 404, "{path}");
        assert_eq!(
            head(origin.addr, path, None).await.status,
            404,
            "anonymous, {path}"
        );
    }
    assert_eq!(
        get(origin.addr, &response, "Authorization: Bearer mallory\r\n")
            .await
            .status,
        404
    );
    assert_eq!(delete(origin.addr, &response, mallory).await.status, 404);
    assert_eq!(
        get(origin.addr, "/.resumable/nonsense", "").await.status,
        404
    );

    // The owner can still complete it, and the handler ran once.
    complete(origin.addr, &request, &body, alice).await;
    let (status, answer) = fetch_response(origin.addr, &response, alice).await;
    assert_eq!((status, answer), (200, answer_for(&body).into()));
    assert_eq!(delete(origin.addr, &response, alice).await.status, 204);
    assert_eq!(
        head(origin.addr, &request, alice).await.status,
        404,
        "released"
    );
    assert_eq!(origin.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn patches_that_do_not_fit_are_refused() {
    let origin = origin(ResumableLayer::new().limits(limits()), Duration::ZERO).await;
    let body = body_of(1000);
    let (request, response) = interrupted(&origin, &body, 100, None).await;
    let addr = origin.addr;
    let held = complete_offset(&origin, &request).await;
    assert_eq!(held, 100);

    let send = |range: &str, data: &[u8]| patch_request(addr, &request, range, data, None);
    // A gap: 409 with the held length.
    let reply = exchange(addr, &send("bytes 200-299/1000", &body[200..300])).await;
    assert_eq!(reply.status, 409);
    assert!(
        String::from_utf8_lossy(&reply.body).contains("100 bytes are held"),
        "{reply:?}"
    );
    // A complete length that contradicts the request's Content-Length: 400.
    assert_eq!(
        exchange(addr, &send("bytes 100-199/2000", &body[100..200]))
            .await
            .status,
        400
    );
    // Bytes past the complete length: 400.
    assert_eq!(
        exchange(addr, &send("bytes 100-1099/*", &vec![0; 1000]))
            .await
            .status,
        400
    );
    // A part Content-Length that contradicts the range: 400.
    let mut part = b"Content-Range: bytes 100-199/1000\r\nContent-Length: 5\r\n\r\n".to_vec();
    part.extend_from_slice(&body[100..200]);
    assert_eq!(
        exchange(addr, &raw_patch(addr, &request, &part, None))
            .await
            .status,
        400
    );
    // Malformed byterange and Content-Range: 400, saying what is wrong.
    let reply = exchange(
        addr,
        &raw_patch(addr, &request, b"no colon here\r\n\r\n", None),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(
        String::from_utf8_lossy(&reply.body).contains("byterange"),
        "{reply:?}"
    );
    let reply = exchange(
        addr,
        &raw_patch(addr, &request, b"Content-Range: bytes 9-1/10\r\n\r\n", None),
    )
    .await;
    assert_eq!(reply.status, 400);
    // Not message/byterange: 415.
    let wrong_type = format!("PATCH {request} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx");
    assert_eq!(exchange(addr, wrong_type.as_bytes()).await.status, 415);
    // Nothing of that changed the held length.
    assert_eq!(complete_offset(&origin, &request).await, 100);

    // Re-sending bytes already held is idempotent; the unit-less form is accepted.
    let reply = exchange(addr, &send("0-499/1000", &body[..500])).await;
    assert_eq!(reply.status, 299, "{reply:?}");
    assert_eq!(reply.body, "500/1000 bytes\n");
    // A PATCH cut mid-way keeps the prefix it delivered.
    let full_patch = send("bytes 500-999/1000", &body[500..]);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&full_patch[..full_patch.len() - 300])
        .await
        .unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(stream);
    let mut held = 0;
    for _ in 0..50 {
        held = complete_offset(&origin, &request).await;
        if held == 700 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(held, 700, "the prefix of the cut PATCH is kept");
    complete(addr, &request, &body, None).await;
    let (_, answer) = fetch_response(addr, &response, None).await;
    assert_eq!(answer, answer_for(&body));
    assert_eq!(origin.runs.load(Ordering::SeqCst), 1);
}

async fn complete_offset(origin: &Origin, request: &str) -> u64 {
    let reply = head(origin.addr, request, None).await;
    assert_eq!(
        (reply.status, reply.reason.as_str()),
        (299, "Incomplete Content")
    );
    reply.header("content-length").unwrap().parse().unwrap()
}

#[tokio::test]
async fn one_writer_at_a_time_until_it_stalls() {
    let origin = origin(ResumableLayer::new().limits(limits()), Duration::ZERO).await;
    let body = body_of(1000);
    let (request, response) = interrupted(&origin, &body, 0, None).await;
    let addr = origin.addr;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A PATCH that sends its first half, then stalls with its connection open.
    let stalled = patch_request(addr, &request, "bytes 0-999/1000", &body, None);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head_and_half = stalled.len() - 500;
    stream.write_all(&stalled[..head_and_half]).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A second writer while the first made progress recently: 409.
    let second = patch_request(addr, &request, "bytes 500-999/1000", &body[500..], None);
    assert_eq!(exchange(addr, &second).await.status, 409);
    // Once it stalled for longer than the takeover interval, the owner takes over.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let reply = exchange(addr, &second).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    drop(stream);
    let (_, answer) = fetch_response(addr, &response, None).await;
    assert_eq!(answer, answer_for(&body));
    assert_eq!(origin.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn every_limit_gives_its_4xx() {
    let limits = Limits {
        max_body_bytes: 1000,
        max_open: 3,
        max_open_per_owner: 2,
        ..limits()
    };
    let origin = origin(ResumableLayer::new().limits(limits), Duration::ZERO).await;
    let addr = origin.addr;
    // Too large up front: 413.
    let reply = exchange(addr, &upload_head(addr, 1001, None, "resume")).await;
    assert_eq!(reply.status, 413);
    // Open operations per owner, then in total: 429 with Retry-After.
    let body = body_of(1000);
    interrupted(&origin, &body, 1, Some("a")).await;
    interrupted(&origin, &body, 1, Some("a")).await;
    let reply = exchange(addr, &upload_head(addr, 1000, Some("a"), "resume")).await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(
        String::from_utf8_lossy(&reply.body).contains("this party"),
        "{reply:?}"
    );
    interrupted(&origin, &body, 1, Some("b")).await;
    let reply = exchange(addr, &upload_head(addr, 1000, Some("c"), "resume")).await;
    assert_eq!(reply.status, 429);
    assert!(
        String::from_utf8_lossy(&reply.body).contains("the server"),
        "{reply:?}"
    );
    // Malformed Prefer on a request with a body: 400.
    let bad = format!("POST /upload HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1\r\nPrefer: resume=\"\r\nConnection: close\r\n\r\nx");
    let reply = exchange(addr, bad.as_bytes()).await;
    assert_eq!(reply.status, 400);
    assert!(
        String::from_utf8_lossy(&reply.body).contains("Prefer"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn a_chunked_upload_grows_past_the_limit() {
    let limits = Limits {
        max_body_bytes: 1000,
        ..limits()
    };
    let origin = origin(ResumableLayer::new().limits(limits), Duration::ZERO).await;
    let addr = origin.addr;
    let mut request = format!("POST /upload HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nPrefer: resume\r\nConnection: close\r\n\r\n").into_bytes();
    for _ in 0..3 {
        request.extend_from_slice(b"1f4\r\n");
        request.extend_from_slice(&[b'x'; 500]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let reply = exchange(addr, &request).await;
    assert_eq!(reply.status, 413, "{reply:?}");
}

#[tokio::test]
async fn an_idle_upload_is_abandoned_and_its_handler_told() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..limits()
    };
    let origin = origin(ResumableLayer::new().limits(limits), Duration::ZERO).await;
    let body = body_of(1000);
    let (request, response) = interrupted(&origin, &body, 10, None).await;
    let (status, answer) = fetch_response(origin.addr, &response, None).await;
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&answer).contains("abandoned"),
        "{answer:?}"
    );
    assert_eq!(origin.failures.lock().unwrap().len(), 1);
    assert!(origin.failures.lock().unwrap()[0].starts_with("abandoned: "));
    // Its bytes are gone: the request content is no longer there.
    assert_eq!(head(origin.addr, &request, None).await.status, 404);
}

#[tokio::test]
async fn ignore_incomplete_publishes_only_the_response() {
    let origin = origin(ResumableLayer::new().limits(limits()), Duration::ZERO).await;
    let addr = origin.addr;
    let body = body_of(1000);
    let (mut stream, interim) =
        open_upload(addr, body.len(), None, "resume=ignore-incomplete").await;
    assert!(interim.header("request-content-location").is_none());
    assert_eq!(
        interim.header("preference-applied"),
        Some("resume=ignore-incomplete")
    );
    stream.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(stream);
    let response = interim.header("response-message-location").unwrap();
    let (status, answer) = fetch_response(addr, response, None).await;
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&answer).contains("abandoned"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn the_memory_store_does_not_serve_consumed_request_content() {
    let origin = origin(ResumableLayer::new().limits(limits()), Duration::ZERO).await;
    let body = body_of(1000);
    let (request, _) = interrupted(&origin, &body, 10, None).await;
    let reply = get(origin.addr, &request, "").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("HEAD, PATCH"));
}

#[tokio::test]
async fn requests_without_the_preference_pass_through() {
    let origin = origin(ResumableLayer::new(), Duration::ZERO).await;
    let body = body_of(1000);
    let mut request = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n",
        origin.addr
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let reply = exchange(origin.addr, &request).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, answer_for(&body));
    assert!(reply.header("response-message-location").is_none());
    assert!(reply.header("preference-applied").is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Arbitrary bytes as a PATCH body, over the whole request path: a 4xx (or a 299 that
    /// kept valid bytes), never a panic or a hang, and the server still serves the owner.
    #[test]
    fn arbitrary_patch_bodies_never_panic(part in proptest::collection::vec(any::<u8>(), 0..300), prefix in any::<bool>()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let origin = origin(ResumableLayer::new().limits(limits()), Duration::ZERO).await;
            let body = body_of(100);
            let (request, _) = interrupted(&origin, &body, 0, None).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            let mut patch = if prefix { b"Content-Range: bytes 0-".to_vec() } else { Vec::new() };
            patch.extend_from_slice(&part);
            let reply = exchange(origin.addr, &raw_patch(origin.addr, &request, &patch, None)).await;
            prop_assert!(matches!(reply.status, 299 | 400 | 409 | 413), "{reply:?}");
            let after = head(origin.addr, &request, None).await;
            prop_assert!(after.status == 299 || after.status == 200);
            Ok(())
        })?;
    }
}
