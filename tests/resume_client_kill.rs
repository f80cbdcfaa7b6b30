//! `kill -9` of a disk-store `origin` process in the middle of an upload through the client
//! resume layer, and a restart on the same port and directory: the client completes within
//! its deadline, and the handler runs once, in the new process.

mod raw;
mod running;
#[path = "../examples/support/mod.rs"]
mod support;

use std::time::Duration;

use bytes::Bytes;
use handoff_client::resume::{ResumeLayer, ResumeReport, Upload, UploadBody};
use http::Request;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use running::Running;
use sha2::{Digest, Sha256};
use support::relay::{faithful, Relay};
use tower::{Layer, ServiceExt};

#[tokio::test]
async fn the_client_completes_across_a_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let first = Running::disk_origin("127.0.0.1:0", "before", &store);
    let addr = first.addr;
    // A paced relay keeps the upload in flight long enough to kill the origin under it.
    let relay = Relay::with_rate(addr, faithful(), Some(4 << 20))
        .await
        .unwrap();
    let body = Bytes::from(raw::body_of(8 << 20));
    let client = Client::builder(TokioExecutor::new()).build_http::<UploadBody>();
    let resume = ResumeLayer::new()
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .max_retries(100)
        .deadline(Duration::from_secs(30))
        .layer(client);
    let request = Request::post(format!("http://{}/upload", relay.addr()))
        .body(Upload::from(body.clone()))
        .unwrap();
    let upload = tokio::spawn(resume.oneshot(request));

    // Kill once a good part of the body reached the origin.
    for _ in 0..1000 {
        if relay.stats().upstream_bytes > 2 << 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        relay.stats().upstream_bytes > 2 << 20,
        "the upload is under way"
    );
    first.kill9();
    let listen = addr.to_string();
    let second = Running::disk_origin(&listen, "after", &store);

    let response = tokio::time::timeout(Duration::from_secs(40), upload)
        .await
        .expect("the upload finishes within its deadline")
        .unwrap()
        .unwrap_or_else(|error| panic!("{error}\norigin log:\n{}", second.log()));
    assert_eq!(response.status(), 200);
    let report = *response.extensions().get::<ResumeReport>().unwrap();
    let answer = response.into_body().collect().await.unwrap().to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        answer["server"], "after",
        "the handler ran in the new process"
    );
    assert_eq!(answer["bytes"], body.len() as u64);
    assert_eq!(answer["sha256"], raw::hex(&Sha256::digest(&body)));
    let log = second.log();
    assert_eq!(
        log.matches("adopted").count(),
        1,
        "one run in the new process:\n{log}"
    );
    assert!(report.resumes >= 1, "{report:?}");
    eprintln!(
        "kill -9 mid-upload: attempts {}, resumes {}, bytes re-sent {} of {}",
        report.attempts,
        report.resumes,
        report.bytes_resent,
        body.len()
    );
}
