//! The client resume layer against servers that lie, over real TCP: an offset beyond what
//! was sent, a `HEAD` that shrinks, a malformed `message/http`, a location on another
//! authority. Each gives a clear error naming the step, never a panic, a hang, or a success.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use handoff_client::resume::{Resume, ResumeError, ResumeLayer, Step, Upload, UploadBody};
use http::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, ServiceExt};

/// What a scripted server does with one connection, given the request head it read.
type Script = Box<dyn FnOnce(TcpStream, String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A server that runs the next script on each connection.
async fn scripted(scripts: Vec<Script>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let scripts = Arc::new(Mutex::new(scripts.into_iter()));
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let Some(script) = scripts.lock().unwrap().next() else {
                return;
            };
            tokio::spawn(async move {
                let head = read_head(&mut stream).await;
                script(stream, head).await;
            });
        }
    });
    (addr, task)
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Sends the 100 with `locations`, reads `take` body bytes, then resets the connection.
fn continue_then_reset(locations: &'static str, take: usize) -> Script {
    Box::new(move |mut stream, _head| {
        Box::pin(async move {
            let interim = format!("HTTP/1.1 100 Continue\r\n{locations}\r\n");
            stream.write_all(interim.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; take];
            let _ = stream.read_exact(&mut buf).await;
            stream.set_zero_linger().ok();
        })
    })
}

/// Answers with `response` (raw bytes), then closes.
fn answer(response: &'static str) -> Script {
    Box::new(move |mut stream, _head| {
        Box::pin(async move {
            stream.write_all(response.as_bytes()).await.unwrap();
            stream.shutdown().await.ok();
        })
    })
}

/// Reads a `PATCH` head, then resets.
fn reset() -> Script {
    Box::new(|stream, _head| {
        Box::pin(async move {
            stream.set_zero_linger().ok();
        })
    })
}

const LOCATIONS: &str =
    "request-content-location: /r/1/request\r\nresponse-message-location: /r/1/response\r\n";

async fn run(addr: SocketAddr, body_len: usize) -> ResumeError {
    run_within(addr, body_len, Duration::from_secs(10)).await
}

async fn run_within(addr: SocketAddr, body_len: usize, deadline: Duration) -> ResumeError {
    let client = Client::builder(TokioExecutor::new()).build_http::<UploadBody>();
    let resume: Resume<_> = ResumeLayer::new()
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
        .max_retries(3)
        .deadline(deadline)
        .layer(client);
    let request = Request::post(format!("http://{addr}/upload"))
        .body(Upload::from(Bytes::from(vec![7u8; body_len])))
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(15), resume.oneshot(request))
        .await
        .expect("a lying server never makes the client hang");
    match outcome {
        Ok(response) => panic!(
            "a lying server must not give a success: {:?}",
            response.status()
        ),
        Err(error) => error,
    }
}

#[tokio::test]
async fn an_offset_beyond_what_was_sent_is_refused() {
    let (addr, server) = scripted(vec![
        continue_then_reset(LOCATIONS, 1000),
        answer("HTTP/1.1 299 Incomplete Content\r\ncontent-length: 99999999\r\n\r\n"),
    ])
    .await;
    let error = run(addr, 100_000).await;
    assert!(error.is_protocol(), "{error}");
    assert_eq!(error.step(), Some(Step::Head));
    assert!(
        error.to_string().contains("claims 99999999 bytes"),
        "{error}"
    );
    server.abort();
}

#[tokio::test]
async fn a_head_that_shrinks_is_refused() {
    let (addr, server) = scripted(vec![
        continue_then_reset(LOCATIONS, 1000),
        answer("HTTP/1.1 299 Incomplete Content\r\ncontent-length: 500\r\n\r\n"),
        reset(),
        answer("HTTP/1.1 299 Incomplete Content\r\ncontent-length: 100\r\n\r\n"),
    ])
    .await;
    let error = run(addr, 100_000).await;
    assert!(error.is_protocol(), "{error}");
    assert_eq!(error.step(), Some(Step::Head));
    assert!(error.to_string().contains("fewer than the 500"), "{error}");
    server.abort();
}

#[tokio::test]
async fn a_malformed_message_http_is_refused() {
    let (addr, server) = scripted(vec![
        continue_then_reset(LOCATIONS, 1000),
        answer("HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n"),
        answer(
            "HTTP/1.1 200 OK\r\ncontent-type: message/http\r\ncontent-length: 9\r\n\r\nnot http!",
        ),
    ])
    .await;
    let error = run(addr, 100_000).await;
    assert!(error.is_protocol(), "{error}");
    assert_eq!(error.step(), Some(Step::Fetch));
    assert!(
        error.to_string().contains("malformed message/http"),
        "{error}"
    );
    server.abort();
}

#[tokio::test]
async fn a_location_on_another_authority_is_not_followed() {
    let (addr, server) = scripted(vec![continue_then_reset(
        "request-content-location: http://elsewhere.invalid/steal\r\n",
        1000,
    )])
    .await;
    let error = run(addr, 100_000).await;
    assert!(error.is_protocol(), "{error}");
    assert_eq!(error.step(), Some(Step::Send));
    assert!(error.to_string().contains("another origin"), "{error}");
    server.abort();
}

#[tokio::test]
async fn a_refused_patch_reports_its_status() {
    let (addr, server) = scripted(vec![
        continue_then_reset(LOCATIONS, 1000),
        answer("HTTP/1.1 299 Incomplete Content\r\ncontent-length: 500\r\n\r\n"),
        answer("HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo big\n"),
    ])
    .await;
    let error = run(addr, 100_000).await;
    assert_eq!(error.step(), Some(Step::Patch));
    assert_eq!(error.status().map(|s| s.as_u16()), Some(413));
    assert!(error.to_string().contains("too big"), "{error}");
    server.abort();
}

/// Reads a PATCH body's first bytes; answers `ok` if they start with `wanted`, else 400.
fn patch_wanting(wanted: &'static str, ok: &'static str) -> Script {
    Box::new(move |mut stream, _head| {
        Box::pin(async move {
            let mut first = vec![0u8; wanted.len()];
            let _ = stream.read_exact(&mut first).await;
            let response = if first == wanted.as_bytes() {
                ok
            } else {
                "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            };
            stream.write_all(response.as_bytes()).await.unwrap();
            stream.set_zero_linger().ok();
        })
    })
}

#[tokio::test]
async fn a_server_that_only_takes_unit_less_ranges_is_completed() {
    let (addr, server) = scripted(vec![
        continue_then_reset(LOCATIONS, 1000),
        answer("HTTP/1.1 299 Incomplete Content\r\ncontent-length: 500\r\n\r\n"),
        // The first PATCH says `bytes 500-...`: refused.
        patch_wanting("Content-Range: 500-", "unused"),
        answer("HTTP/1.1 299 Incomplete Content\r\ncontent-length: 500\r\n\r\n"),
        // The retry in the unit-less form is taken.
        patch_wanting(
            "Content-Range: 500-99999/100000",
            "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n",
        ),
        // A document without Content-Length and with an extra header line.
        answer("HTTP/1.1 200 OK\r\ncontent-type: message/http\r\nconnection: close\r\n\r\nHTTP/1.1 201 Created\r\nx-extra: kept\r\n\r\nstored"),
    ])
    .await;
    let client = Client::builder(TokioExecutor::new()).build_http::<UploadBody>();
    let resume: Resume<_> = ResumeLayer::new()
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
        .deadline(Duration::from_secs(10))
        .layer(client);
    let request = Request::post(format!("http://{addr}/upload"))
        .body(Upload::from(Bytes::from(vec![7u8; 100_000])))
        .unwrap();
    let response = resume.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-extra"], "kept");
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body, "stored");
    server.abort();
}

/// Answers with `response`, then keeps the connection open and silent.
fn answer_then_stall(response: &'static str) -> Script {
    Box::new(move |mut stream, _head| {
        Box::pin(async move {
            stream.write_all(response.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
    })
}

#[tokio::test]
async fn a_server_that_stalls_its_answer_runs_into_the_deadline() {
    let (addr, server) = scripted(vec![
        continue_then_reset(LOCATIONS, 1000),
        answer("HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n"),
        answer_then_stall(
            "HTTP/1.1 200 OK\r\ncontent-type: message/http\r\ncontent-length: 100\r\n\r\nHTTP/1.1",
        ),
    ])
    .await;
    let error = run_within(addr, 100_000, Duration::from_millis(800)).await;
    assert!(error.is_deadline(), "{error}");
    server.abort();
}
