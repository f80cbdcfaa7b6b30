//! Resumable requests over real TCP: uploads cut at many byte offsets complete with `HEAD` +
//! `PATCH`, a lost response is fetched, and the handler runs exactly once.

mod raw;

use std::sync::atomic::Ordering;
use std::time::Duration;

use handoff_server::resume::{Limits, ResumableLayer};
use raw::*;
use tokio::io::AsyncWriteExt;

fn layer() -> ResumableLayer {
    ResumableLayer::new().limits(Limits {
        writer_takeover: Duration::from_millis(200),
        ..Limits::default()
    })
}

#[tokio::test]
async fn a_complete_upload_publishes_the_locations() {
    let origin = origin(layer(), Duration::ZERO).await;
    let body = body_of(10_000);
    let mut request = upload_head(origin.addr, body.len(), None, "resume");
    request.extend_from_slice(&body);
    let reply = exchange(origin.addr, &request).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, answer_for(&body));
    assert_eq!(reply.header("preference-applied"), Some("resume"));
    let location = reply
        .header("response-message-location")
        .unwrap()
        .to_owned();
    assert!(reply.header("request-content-location").is_some());
    let (status, stored) = fetch_response(origin.addr, &location, None).await;
    assert_eq!(status, 200);
    assert_eq!(stored, answer_for(&body));
    assert_eq!(origin.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cuts_at_many_offsets_complete_with_head_and_patch() {
    let origin = origin(layer(), Duration::ZERO).await;
    let body = body_of(200_000);
    let head_len = upload_head(origin.addr, body.len(), None, "resume").len();
    let cuts = [
        0,
        1,
        head_len / 2,
        head_len,
        head_len + 1,
        head_len + body.len() / 2,
        head_len + body.len() - 1,
    ];
    for (n, cut) in cuts.into_iter().enumerate() {
        let runs_before = origin.runs.load(Ordering::SeqCst);
        let interim = cut_upload(origin.addr, &body, cut, None).await;
        let Some(interim) = interim else {
            // The head never arrived: no operation exists; the client starts over.
            let mut request = upload_head(origin.addr, body.len(), None, "resume");
            request.extend_from_slice(&body);
            let reply = exchange(origin.addr, &request).await;
            assert_eq!(reply.body, answer_for(&body), "cut {cut}");
            assert_eq!(
                origin.runs.load(Ordering::SeqCst),
                runs_before + 1,
                "cut {cut}"
            );
            continue;
        };
        assert_eq!(interim.status, 100);
        let request_location = interim
            .header("request-content-location")
            .unwrap()
            .to_owned();
        let response_location = interim
            .header("response-message-location")
            .unwrap()
            .to_owned();
        let offset = complete(origin.addr, &request_location, &body, None).await;
        eprintln!("cut {n} at byte {cut}: the server held {offset} body bytes");
        assert!(offset <= (cut - head_len) as u64);
        let (status, answer) = fetch_response(origin.addr, &response_location, None).await;
        assert_eq!(status, 200, "cut {cut}");
        assert_eq!(answer, answer_for(&body), "cut {cut}");
        assert_eq!(
            origin.runs.load(Ordering::SeqCst),
            runs_before + 1,
            "cut {cut}: handler runs"
        );
    }
    assert!(origin.failures.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_lost_response_is_fetched_from_the_response_message_resource() {
    let origin = origin(layer(), Duration::from_millis(300)).await;
    let body = body_of(50_000);
    let (mut stream, interim) = open_upload(origin.addr, body.len(), None, "resume").await;
    stream.write_all(&body).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(stream); // before the handler answers
    let location = interim.header("response-message-location").unwrap();
    // Without a wait, the operation is still running.
    let early = get(origin.addr, location, "").await;
    assert_eq!(early.status, 202);
    assert_eq!(early.header("retry-after"), Some("1"));
    let (status, answer) = fetch_response(origin.addr, location, None).await;
    assert_eq!(status, 200);
    assert_eq!(answer, answer_for(&body));
    assert_eq!(origin.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn acknowledge_reports_durable_bytes_while_the_upload_runs() {
    let layer = ResumableLayer::new().limits(Limits {
        ack_every_bytes: 10_000,
        // Paced by bytes only here: loopback is faster than any time bound.
        ack_every: Duration::ZERO,
        ..Limits::default()
    });
    let origin = origin(layer, Duration::ZERO).await;
    let body = body_of(100_000);
    let (mut stream, first) =
        open_upload(origin.addr, body.len(), None, "resume, acknowledge").await;
    assert_eq!(
        first.header("preference-applied"),
        Some("resume, acknowledge")
    );
    let mut acks = Vec::new();
    let mut sent = 0;
    for chunk in body.chunks(20_000) {
        stream.write_all(chunk).await.unwrap();
        sent += chunk.len() as u64;
        if sent == body.len() as u64 {
            break;
        }
        // Each chunk crosses at least one pacing bound, so at least one more 100 comes for
        // it (a second one is read with the next chunk).
        let ack = read_interim(&mut stream).await;
        assert_eq!(ack.status, 100);
        let n: u64 = ack.header("acknowledge").unwrap().parse().unwrap();
        assert!(n <= sent, "acknowledged {n} of {sent} sent");
        acks.push(n);
    }
    assert!(acks.windows(2).all(|w| w[0] < w[1]), "{acks:?}");
    assert!(acks.len() >= 3, "{acks:?}");
    let mut rest = Vec::new();
    use tokio::io::AsyncReadExt;
    stream.read_to_end(&mut rest).await.unwrap();
    // What follows is interim responses still on their way, then the final response.
    let mut at = 0;
    let final_reply = loop {
        let (reply, used) = parse_reply(&rest[at..], true).unwrap();
        at += used;
        if reply.status >= 200 {
            break reply;
        }
    };
    assert_eq!(final_reply.body, answer_for(&body));
    eprintln!("acknowledged offsets: {acks:?}");
}

#[tokio::test]
async fn the_content_resource_serves_ranges_of_the_response_body() {
    let origin = origin(layer(), Duration::ZERO).await;
    let body = body_of(1000);
    let mut request = upload_head(origin.addr, body.len(), None, "resume");
    request.extend_from_slice(&body);
    let reply = exchange(origin.addr, &request).await;
    let content = reply.header("content-location").unwrap().to_owned();
    let answer = answer_for(&body);
    let whole = get(origin.addr, &content, "").await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, answer);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let part = get(origin.addr, &content, "Range: bytes=5-\r\n").await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, answer[5..]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 5-{}/{}", answer.len() - 1, answer.len()).as_str())
    );
    let past = get(origin.addr, &content, "Range: bytes=5000-\r\n").await;
    assert_eq!(past.status, 416);
}
