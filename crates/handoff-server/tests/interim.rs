//! The interim-response hook over real sockets: `axum::serve` and hyper-util's auto builder,
//! talked to by a raw `TcpStream`, hyper's client (`on_informational`) and curl.
#![cfg(feature = "axum")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::routing::post;
use axum::{Extension, Router};
use bytes::Bytes;
use handoff_server::interim::{self, InterimHandle, InterimListener, WithInterimHandle};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

const LIMIT: Duration = Duration::from_secs(10);

const BARE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
const ARMED_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\
    request-content-location: /uploads/7\r\n\
    response-message-location: /responses/7\r\n\
    content-location: /uploads/7\r\n\
    preference-applied: resume\r\n\r\n";
const ACK_100: &[u8] = b"HTTP/1.1 100 Continue\r\nacknowledge: 123\r\n\r\n";

fn armed_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("request-content-location", "/uploads/7"),
        ("response-message-location", "/responses/7"),
        ("content-location", "/uploads/7"),
        ("preference-applied", "resume"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
}

fn ack_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("acknowledge", HeaderValue::from_static("123"));
    headers
}

/// Reads a whole body, frame by frame, and counts its bytes.
async fn body_len<B>(mut body: B) -> usize
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut len = 0;
    while let Some(Ok(frame)) = body.frame().await {
        len += frame.data_ref().map_or(0, Bytes::len);
    }
    len
}

/// Arms the resumable-upload headers, then reads the body.
async fn armed(Extension(interim): Extension<InterimHandle>, request: Request) -> String {
    let armed = interim.arm_continue(&armed_headers());
    let len = body_len(request.into_body()).await;
    format!("armed={armed} len={len} sent={}", interim.continue_sent())
}

/// Reads the body without arming anything.
async fn plain(request: Request) -> String {
    let len = body_len(request.into_body()).await;
    format!("len={len}")
}

/// Arms, then acknowledges the first frame with a second `100` while the upload runs.
async fn ack(Extension(interim): Extension<InterimHandle>, request: Request) -> String {
    let armed = interim.arm_continue(&armed_headers());
    let mut body = request.into_body();
    let first = body.frame().await.and_then(Result::ok);
    let first = first
        .and_then(|f| f.into_data().ok())
        .map_or(0, |d| d.len());
    let acked = interim.send_continue(&ack_headers());
    let len = first + body_len(body).await;
    format!("armed={armed} acked={acked} len={len}")
}

fn app() -> Router {
    Router::new()
        .route("/armed", post(armed))
        .route("/plain", post(plain))
        .route("/ack", post(ack))
}

struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Stops the server: a graceful shutdown for axum (idle connections are closed, the
    /// serve future returns), an abort of the accept loop and its connections otherwise.
    async fn stop(mut self) {
        match self.shutdown.take() {
            Some(shutdown) => {
                let _ = shutdown.send(());
                tokio::time::timeout(LIMIT, &mut self.task)
                    .await
                    .expect("the server stops in time")
                    .unwrap();
            }
            None => {
                self.task.abort();
                let _ = self.task.await;
            }
        }
    }
}

/// `axum::serve`, with the hook (the one line a user writes) or without it (the
/// reference for transparency).
async fn serve_axum_with(hook: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, signal) = oneshot::channel::<()>();
    let signal = async move {
        let _ = signal.await;
    };
    let task = tokio::spawn(async move {
        if hook {
            axum::serve(
                InterimListener::new(listener),
                WithInterimHandle::new(app()),
            )
            .with_graceful_shutdown(signal)
            .await
            .unwrap();
        } else {
            axum::serve(listener, app())
                .with_graceful_shutdown(signal)
                .await
                .unwrap();
        }
    });
    Server {
        addr,
        shutdown: Some(shutdown),
        task,
    }
}

async fn serve_axum() -> Server {
    serve_axum_with(true).await
}

/// A raw HTTP/1.1 client connection that reads heads and `Content-Length` bodies.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn fill(&mut self) {
        let mut chunk = [0; 4096];
        let n = tokio::time::timeout(LIMIT, self.stream.read(&mut chunk))
            .await
            .expect("the server answers in time")
            .unwrap();
        assert!(
            n > 0,
            "connection closed; got {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next message head, through its empty line.
    async fn head(&mut self) -> Vec<u8> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let rest = self.buf.split_off(end + 4);
                return std::mem::replace(&mut self.buf, rest);
            }
            self.fill().await;
        }
    }

    /// The next final response: its head and its `Content-Length` body.
    async fn response(&mut self) -> (String, String) {
        let head = String::from_utf8(self.head().await).unwrap();
        let len: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .expect("a content-length")
            .parse()
            .unwrap();
        while self.buf.len() < len {
            self.fill().await;
        }
        let rest = self.buf.split_off(len);
        let body = std::mem::replace(&mut self.buf, rest);
        (head, String::from_utf8(body).unwrap())
    }
}

/// The answer of `/armed` when the client sent the body without waiting for the `100`.
///
/// The handler can then read the whole body before hyper hands the (buffered) `100` to the
/// socket, a moment later: `continue_sent` may still be false when it answers. The wire is
/// what the tests check.
fn eager_armed_answer(body: &str, len: usize) {
    let sent = body
        .strip_prefix(&format!("armed=true len={len} sent="))
        .unwrap_or_else(|| panic!("unexpected answer {body:?}"));
    assert!(matches!(sent, "true" | "false"), "{body}");
}

fn post_head(path: &str, len: usize) -> String {
    format!("POST {path} HTTP/1.1\r\nhost: origin.test\r\ncontent-length: {len}\r\nexpect: 100-continue\r\n\r\n")
}

#[tokio::test]
async fn raw_client_reads_the_rewritten_100_then_a_bare_one_on_the_same_connection() {
    let server = serve_axum().await;
    let mut raw = Raw::connect(server.addr).await;

    raw.send(post_head("/armed", 5).as_bytes()).await;
    assert_eq!(raw.head().await, ARMED_100);
    raw.send(b"hello").await;
    let (head, body) = raw.response().await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, "armed=true len=5 sent=true");

    // Request 2 on the same keep-alive connection arms nothing: its 100 is hyper's own.
    raw.send(post_head("/plain", 3).as_bytes()).await;
    assert_eq!(raw.head().await, BARE_100);
    raw.send(b"abc").await;
    assert_eq!(raw.response().await.1, "len=3");

    // And arming works again on a reused connection.
    raw.send(post_head("/armed", 2).as_bytes()).await;
    assert_eq!(raw.head().await, ARMED_100);
    raw.send(b"ok").await;
    assert_eq!(raw.response().await.1, "armed=true len=2 sent=true");
    server.stop().await;
}

#[tokio::test]
async fn pipelined_requests_only_the_armed_one_is_rewritten() {
    let server = serve_axum().await;
    let mut raw = Raw::connect(server.addr).await;
    // Three requests in one write, bodies included (a client may skip waiting for 100).
    let pipelined = [
        post_head("/plain", 3) + "abc",
        post_head("/armed", 5) + "hello",
        post_head("/plain", 2) + "xy",
    ]
    .concat();
    raw.send(pipelined.as_bytes()).await;

    assert_eq!(raw.head().await, BARE_100);
    assert_eq!(raw.response().await.1, "len=3");
    assert_eq!(raw.head().await, ARMED_100);
    eager_armed_answer(&raw.response().await.1, 5);
    assert_eq!(raw.head().await, BARE_100);
    assert_eq!(raw.response().await.1, "len=2");
    server.stop().await;
}

/// Every byte the server sends on one connection, with the clock's `date` values blanked.
async fn transcript(addr: SocketAddr) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let requests = [
        post_head("/plain", 3) + "abc",
        "POST /plain HTTP/1.1\r\nhost: origin.test\r\ntransfer-encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n".into(),
        "POST /plain HTTP/1.1\r\nhost: origin.test\r\ncontent-length: 2\r\nexpect: 100-continue\r\nconnection: close\r\n\r\nok".into(),
    ]
    .concat();
    stream.write_all(requests.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    text.split("\r\n")
        .map(|line| {
            if line.starts_with("date: ") {
                "date: -"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes()
}

#[tokio::test]
async fn nothing_armed_the_connection_is_unchanged_byte_for_byte() {
    let hooked = serve_axum().await;
    let reference = serve_axum_with(false).await;
    let with_hook = transcript(hooked.addr).await;
    let without = transcript(reference.addr).await;
    assert_eq!(
        String::from_utf8_lossy(&with_hook),
        String::from_utf8_lossy(&without)
    );
    assert!(with_hook.starts_with(BARE_100));
    assert_eq!(
        with_hook
            .windows(BARE_100.len())
            .filter(|w| w == &BARE_100)
            .count(),
        2
    );
    hooked.stop().await;
    reference.stop().await;
}

#[tokio::test]
async fn raw_client_sees_the_acknowledgement_while_the_upload_waits() {
    let server = serve_axum().await;
    let mut raw = Raw::connect(server.addr).await;
    raw.send(post_head("/ack", 10).as_bytes()).await;
    assert_eq!(raw.head().await, ARMED_100);
    raw.send(b"hello").await;
    // The rest of the body is held back until the acknowledgement arrives: the connection
    // writes it while hyper only waits for upload bytes.
    assert_eq!(raw.head().await, ACK_100);
    raw.send(b"world").await;
    let (head, body) = raw.response().await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, "armed=true acked=true len=10");
    server.stop().await;
}

type Seen = Arc<Mutex<Vec<(StatusCode, HeaderMap)>>>;

/// Sends one `Expect: 100-continue` POST with hyper's client, recording every 1xx.
async fn hyper_post(addr: SocketAddr, path: &str, body: &'static str) -> (Seen, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let mut request = http::Request::post(path)
        .header("host", "origin.test")
        .header("expect", "100-continue")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let seen = Seen::default();
    let record = seen.clone();
    hyper::ext::on_informational(&mut request, move |response| {
        let entry = (response.status(), response.headers().clone());
        record.lock().unwrap().push(entry);
    });
    let response = tokio::time::timeout(LIMIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    drop(sender);
    conn.await.unwrap().unwrap();
    (seen, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn hyper_client_reports_the_armed_headers() {
    let server = serve_axum().await;
    // hyper's client sends the body at once, without waiting for the 100.
    let (seen, body) = hyper_post(server.addr, "/armed", "hello").await;
    eager_armed_answer(&body, 5);
    assert_eq!(
        *seen.lock().unwrap(),
        [(StatusCode::CONTINUE, armed_headers())]
    );

    let (seen, body) = hyper_post(server.addr, "/plain", "hello").await;
    assert_eq!(body, "len=5");
    assert_eq!(
        *seen.lock().unwrap(),
        [(StatusCode::CONTINUE, HeaderMap::new())]
    );
    server.stop().await;
}

#[tokio::test]
async fn hyper_client_reports_each_interim_response() {
    let server = serve_axum().await;
    let (seen, body) = hyper_post(server.addr, "/ack", "hello").await;
    assert_eq!(body, "armed=true acked=true len=5");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (StatusCode::CONTINUE, armed_headers()),
            (StatusCode::CONTINUE, ack_headers()),
        ]
    );
    server.stop().await;
}

/// `curl -v` posting `hello` with `Expect: 100-continue`: its stdout and stderr, or `None`
/// when curl is not installed.
async fn curl(url: &str) -> Option<(String, String)> {
    let output = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "-v",
            "--max-time",
            "10",
            "-H",
            "Expect: 100-continue",
        ])
        .args(["--data-binary", "hello", url])
        .output()
        .await;
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running curl: {e}"),
    };
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    Some((String::from_utf8_lossy(&output.stdout).into_owned(), stderr))
}

/// The header lines curl printed for the interim responses, in order, one `Vec` each.
fn curl_interims(stderr: &str) -> Vec<Vec<&str>> {
    let received = stderr.lines().filter_map(|line| line.strip_prefix("< "));
    let mut interims: Vec<Vec<&str>> = Vec::new();
    for line in received.take_while(|line| !line.starts_with("HTTP/1.1 200")) {
        match line {
            "HTTP/1.1 100 Continue" => interims.push(Vec::new()),
            "" => {}
            header => interims.last_mut().expect("a 1xx first").push(header),
        }
    }
    interims
}

#[tokio::test]
async fn curl_shows_the_armed_headers_and_the_acknowledgement() {
    let server = serve_axum().await;
    let Some((stdout, stderr)) = curl(&format!("http://{}/armed", server.addr)).await else {
        eprintln!("skipping: curl not installed");
        server.stop().await;
        return;
    };
    eager_armed_answer(&stdout, 5);
    let armed = [
        "request-content-location: /uploads/7",
        "response-message-location: /responses/7",
        "content-location: /uploads/7",
        "preference-applied: resume",
    ];
    assert_eq!(curl_interims(&stderr), [armed.to_vec()], "{stderr}");

    let (stdout, stderr) = curl(&format!("http://{}/ack", server.addr)).await.unwrap();
    assert_eq!(stdout, "armed=true acked=true len=5");
    assert_eq!(
        curl_interims(&stderr),
        [armed.to_vec(), vec!["acknowledge: 123"]],
        "{stderr}"
    );
    server.stop().await;
}

/// A hyper service for the hyper-util server: arms, reads, tells what happened.
async fn hyper_upload(
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<String>, Infallible> {
    let interim = request.extensions().get::<InterimHandle>().unwrap().clone();
    let armed = interim.arm_continue(&armed_headers());
    let len = body_len(request.into_body()).await;
    let sent = interim.continue_sent();
    let pending = interim.is_armed();
    Ok(http::Response::new(format!(
        "armed={armed} len={len} sent={sent} pending={pending}"
    )))
}

/// hyper-util's auto builder (HTTP/1.1 and h2c), the hook added with `interim::wrap`.
async fn serve_hyper_util() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        // Aborting the accept loop drops the set, which aborts every connection.
        let mut connections = JoinSet::new();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (io, service) = interim::wrap(tcp, hyper::service::service_fn(hyper_upload));
            connections.spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(io), service).await;
            });
        }
    });
    Server {
        addr,
        shutdown: None,
        task,
    }
}

#[tokio::test]
async fn hyper_util_auto_builder_with_wrap() {
    let server = serve_hyper_util().await;
    let mut raw = Raw::connect(server.addr).await;
    raw.send(post_head("/upload", 5).as_bytes()).await;
    assert_eq!(raw.head().await, ARMED_100);
    raw.send(b"hello").await;
    let (head, body) = raw.response().await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, "armed=true len=5 sent=true pending=false");
    server.stop().await;
}

#[tokio::test]
async fn http2_connections_refuse_to_arm() {
    let server = serve_hyper_util().await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let request = http::Request::post(format!("http://{}/upload", server.addr))
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    let response = tokio::time::timeout(LIMIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "armed=false len=5 sent=false pending=false");
    drop(sender);
    let _ = conn.await;
    server.stop().await;
}
