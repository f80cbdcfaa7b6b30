//! The client resume layer over real TCP, through a relay that cuts connections at chosen
//! byte offsets in either direction, against this project's resumable origin: every cut
//! ends with the right response, the handler ran exactly once, and the bytes re-sent stay
//! within what was in flight.

mod raw;
#[path = "../examples/support/mod.rs"]
mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use handoff_client::resume::{Resume, ResumeLayer, ResumeReport, Upload, UploadBody};
use handoff_server::resume::{Limits, ResumableLayer};
use http::Request;
use http_body_util::BodyExt;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use support::relay::{Cut, Relay};
use tower::ServiceExt;

type HttpClient = Client<HttpConnector, UploadBody>;

fn client() -> Resume<HttpClient> {
    let client = Client::builder(TokioExecutor::new()).build_http::<UploadBody>();
    ResumeLayer::new()
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
        .deadline(Duration::from_secs(20))
        .layer_service(client)
}

trait LayerService {
    fn layer_service(self, client: HttpClient) -> Resume<HttpClient>;
}

impl LayerService for ResumeLayer {
    fn layer_service(self, client: HttpClient) -> Resume<HttpClient> {
        tower::Layer::layer(&self, client)
    }
}

fn server_layer() -> ResumableLayer {
    ResumableLayer::new().limits(Limits {
        writer_takeover: Duration::from_millis(200),
        ..Limits::default()
    })
}

/// Uploads `body` through a relay that applies `cuts` to its first connections; returns
/// the answer, the report and how many handlers ran the operation to its end.
async fn upload_through(cuts: Vec<Cut>, body: &[u8]) -> (String, ResumeReport, usize) {
    let origin = raw::origin(server_layer(), Duration::ZERO).await;
    let relay = Relay::with_cuts(origin.addr, cuts).await.unwrap();
    let request = Request::post(format!("http://{}/upload", relay.addr()))
        .header("authorization", "Bearer test")
        .body(Upload::from(Bytes::copy_from_slice(body)))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(30), client().oneshot(request))
        .await
        .expect("the upload finishes within 30 s")
        .expect("the upload succeeds");
    assert_eq!(response.status(), 200);
    let report = *response.extensions().get::<ResumeReport>().unwrap();
    let answer = response.into_body().collect().await.unwrap().to_bytes();
    let runs = origin.completed.load(Ordering::SeqCst);
    // The handler starts with the first body byte, which the client sends only after the
    // 100 with the locations: a cut before it leaves no handler behind either.
    assert_eq!(
        origin.runs.load(Ordering::SeqCst),
        1,
        "handlers entered: {report:?}"
    );
    (String::from_utf8(answer.to_vec()).unwrap(), report, runs)
}

#[tokio::test]
async fn uploads_cut_at_many_offsets_complete_with_one_handler_run() {
    let body = raw::body_of(300_000);
    let expected = raw::answer_for(&body);
    // The request head is about 200 bytes; the body follows.
    let offsets = [0u64, 1, 100, 250, 1_000, 150_000, 299_999, 300_150];
    for at in offsets {
        let (answer, report, runs) = upload_through(vec![Cut::upstream(at)], &body).await;
        assert_eq!(answer, expected, "upstream cut at {at}");
        assert_eq!(runs, 1, "upstream cut at {at}: handler runs");
        // Inside the request head the server never saw a request: the client starts over.
        // From the body on, the 100 Continue had published the locations: it resumes.
        if at <= 100 {
            assert_eq!(
                (report.restarts, report.resumes),
                (1, 0),
                "cut at {at}: {report:?}"
            );
        } else if at < 300_150 {
            assert_eq!(report.restarts, 0, "cut at {at}: {report:?}");
            assert!(report.resumes >= 1, "cut at {at}: {report:?}");
        }
        eprintln!(
            "upstream cut at {at:>7}: attempts {}, resumes {}, restarts {}, bytes re-sent {}",
            report.attempts, report.resumes, report.restarts, report.bytes_resent
        );
    }
}

#[tokio::test]
async fn cuts_before_the_100_after_the_upload_and_during_the_response() {
    let body = raw::body_of(200_000);
    let expected = raw::answer_for(&body);
    // Downstream: 0 is before the 100 Continue; about 250 bytes is the 100 with its
    // locations (so the cut falls just as the final response begins, after the upload);
    // 290 and 320 are inside the final response.
    for at in [0u64, 1, 240, 250, 260, 290, 320] {
        let (answer, report, runs) = upload_through(vec![Cut::downstream(at)], &body).await;
        assert_eq!(answer, expected, "downstream cut at {at}");
        assert_eq!(runs, 1, "downstream cut at {at}: handler runs");
        // Before the whole 100 Continue arrived, the body was held back: the request starts
        // over. Within the final response, the recorded copy is fetched.
        if at <= 260 {
            assert_eq!(
                (report.restarts, report.fetched),
                (1, false),
                "cut at {at}: {report:?}"
            );
        } else {
            assert!(report.fetched, "cut at {at}: {report:?}");
        }
        eprintln!(
            "downstream cut at {at:>3}: attempts {}, resumes {}, restarts {}, fetched {}, bytes re-sent {}",
            report.attempts, report.resumes, report.restarts, report.fetched, report.bytes_resent
        );
    }
}

#[tokio::test]
async fn three_cuts_in_a_row() {
    let body = raw::body_of(500_000);
    let cuts = vec![
        Cut::upstream(100_000),
        Cut::upstream(50_000),
        Cut::downstream(400),
    ];
    let (answer, report, runs) = upload_through(cuts, &body).await;
    assert_eq!(answer, raw::answer_for(&body));
    assert_eq!(runs, 1);
    assert!(report.resumes >= 2, "{report:?}");
}

#[tokio::test]
async fn a_server_without_resume_support_gets_a_plain_request() {
    // An axum app without the resumable layer.
    let app = axum::Router::new().route(
        "/upload",
        axum::routing::post(|body: Bytes| async move { format!("plain {}", body.len()) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let request = Request::post(format!("http://{addr}/upload"))
        .body(Upload::from(Bytes::from_static(b"12345")))
        .unwrap();
    let response = client().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let report = *response.extensions().get::<ResumeReport>().unwrap();
    assert_eq!(report.attempts, 1);
    let answer = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(answer, "plain 5");
    server.abort();
}

#[tokio::test]
async fn a_plain_server_cut_after_the_whole_body_is_not_sent_twice() {
    // A server without the resumable layer: its 100 Continue (25 bytes) has no locations.
    // The relay cuts the connection right after it, so the answer never comes back, after
    // the server got the whole body.
    let origin = raw::origin_with(raw::boxed, Duration::ZERO).await;
    let body = raw::body_of(100_000);
    let relay = Relay::with_cuts(origin.addr, vec![Cut::downstream(25)])
        .await
        .unwrap();
    let request = Request::post(format!("http://{}/upload", relay.addr()))
        .body(Upload::from(Bytes::from(body)))
        .unwrap();
    let error = client().oneshot(request).await.unwrap_err();
    assert!(error.is_exhausted(), "{error}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(origin.runs.load(Ordering::SeqCst) <= 1, "never run twice");
    assert_eq!(relay.stats().accepted, 1, "no second attempt");
}

#[tokio::test]
async fn the_stored_response_is_released_once_the_body_is_read() {
    use handoff_server::resume::store::{MemoryStore, Store};
    let store = MemoryStore::new();
    let layer =
        ResumableLayer::with_shared_store(std::sync::Arc::new(store.clone())).limits(Limits {
            writer_takeover: Duration::from_millis(200),
            ..Limits::default()
        });
    let origin = raw::origin(layer, Duration::from_millis(200)).await;
    let body = raw::body_of(50_000);
    // Cut as the answer starts: the response comes from the response-message resource.
    let relay = Relay::with_cuts(origin.addr, vec![Cut::downstream(300)])
        .await
        .unwrap();
    let request = Request::post(format!("http://{}/upload", relay.addr()))
        .body(Upload::from(Bytes::from(body.clone())))
        .unwrap();
    let response = client().oneshot(request).await.unwrap();
    assert!(response.extensions().get::<ResumeReport>().unwrap().fetched);
    assert_eq!(store.list().await.unwrap().len(), 1, "kept until read");
    let answer = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(answer, raw::answer_for(&body));
    let mut left = 1;
    for _ in 0..100 {
        left = store.list().await.unwrap().len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(left, 0, "released with DELETE");
}

#[tokio::test]
async fn a_streamed_body_resumes_from_its_replay_buffer() {
    let origin = raw::origin(server_layer(), Duration::ZERO).await;
    let body = raw::body_of(400_000);
    let relay = Relay::with_cuts(origin.addr, vec![Cut::upstream(150_000)])
        .await
        .unwrap();
    // The buffer holds the whole body: whatever was in flight can be sent again.
    let source = streamed(&body, 1 << 20);
    let request = Request::post(format!("http://{}/upload", relay.addr()))
        .body(Upload::new(source))
        .unwrap();
    let response = client().oneshot(request).await.unwrap();
    let report = *response.extensions().get::<ResumeReport>().unwrap();
    assert!(report.resumes >= 1, "{report:?}");
    let answer = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(answer, raw::answer_for(&body));
}

#[tokio::test]
async fn a_streamed_body_past_its_replay_buffer_fails_saying_so() {
    let origin = raw::origin(server_layer(), Duration::ZERO).await;
    let body = raw::body_of(2_000_000);
    let relay = Relay::with_cuts(origin.addr, vec![Cut::upstream(1_500_000)])
        .await
        .unwrap();
    // A tiny buffer, and no acknowledgements soon enough: the bytes in flight are gone.
    let source = streamed(&body, 10_000);
    let request = Request::post(format!("http://{}/upload", relay.addr()))
        .body(Upload::new(source))
        .unwrap();
    let error = client().oneshot(request).await.unwrap_err();
    assert!(error.is_source(), "{error}");
    assert!(error.to_string().contains("replay buffer"), "{error}");
}

/// `body` as a plain stream of 10 KB frames, behind a replay buffer of `buffer` bytes.
fn streamed(body: &[u8], buffer: u64) -> handoff_client::resume::StreamSource {
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = body
        .chunks(10_000)
        .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let stream = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
    handoff_client::resume::StreamSource::new(stream, buffer, Some(body.len() as u64))
}
