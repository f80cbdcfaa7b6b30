//! Shared by the resumable-request integration tests: an upload origin over real TCP with
//! the resumable layer and the interim hook, and a raw HTTP/1.1 client that can cut a
//! request at any byte.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use handoff_server::interim::{InterimListener, WithInterimHandle};
use handoff_server::resume::{ResumableLayer, UploadAbandoned};
use handoff_server::Shutdown;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};

/// A running origin: `POST /upload` reads the whole body and answers `"<bytes> <sha256>"`.
pub(crate) struct Origin {
    pub(crate) addr: SocketAddr,
    /// Triggers the server's graceful shutdown.
    pub(crate) shutdown: Shutdown,
    /// Upload handlers entered.
    pub(crate) runs: Arc<AtomicUsize>,
    /// Upload handlers that read a whole body and answered it: the operation ran.
    pub(crate) completed: Arc<AtomicUsize>,
    /// Handlers that saw their body fail, with the error text.
    pub(crate) failures: Arc<std::sync::Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct AppState {
    runs: Arc<AtomicUsize>,
    completed: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    delay: Duration,
}

async fn upload(State(state): State<AppState>, body: Body) -> Response {
    state.runs.fetch_add(1, Ordering::SeqCst);
    let mut body = body;
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    hasher.update(data);
                    len += data.len() as u64;
                }
            }
            Err(error) => {
                let inner = error.into_inner();
                let kind = if inner.downcast_ref::<UploadAbandoned>().is_some() {
                    "abandoned"
                } else {
                    "other"
                };
                let text = format!("{kind}: {inner}");
                state.failures.lock().unwrap().push(text.clone());
                return (StatusCode::BAD_REQUEST, format!("body failed: {text}")).into_response();
            }
        }
    }
    tokio::time::sleep(state.delay).await;
    state.completed.fetch_add(1, Ordering::SeqCst);
    format!("{len} {}", hex(&hasher.finalize())).into_response()
}

/// Answers at once, without reading the body.
async fn reject(State(state): State<AppState>) -> Response {
    state.runs.fetch_add(1, Ordering::SeqCst);
    (StatusCode::PAYLOAD_TOO_LARGE, "no thanks").into_response()
}

/// Waits a second before reading the body (a handler busy elsewhere), then uploads it.
async fn stall(state: State<AppState>, body: Body) -> Response {
    tokio::time::sleep(Duration::from_secs(1)).await;
    upload(state, body).await
}

/// Reads the body, then answers with 2000 bytes.
async fn big(State(state): State<AppState>, body: Body) -> Response {
    state.runs.fetch_add(1, Ordering::SeqCst);
    let _ = body.collect().await;
    vec![b'x'; 2000].into_response()
}

/// Serves an upload origin with `layer` on an ephemeral port; the handler sleeps `delay`
/// after reading the body.
pub(crate) async fn origin(layer: ResumableLayer, delay: Duration) -> Origin {
    origin_with(|router| boxed(layer.layer(router)), delay).await
}

/// The service an origin serves.
pub(crate) type TestService = BoxCloneSyncService<http::Request<Body>, Response, Infallible>;

/// `service`, boxed, its responses made axum responses.
pub(crate) fn boxed<S, B>(service: S) -> TestService
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    BoxCloneSyncService::new(service.map_response(IntoResponse::into_response))
}

/// Like [`origin`], with the layers `wrap` puts around the whole upload router.
pub(crate) async fn origin_with(
    wrap: impl FnOnce(Router) -> TestService,
    delay: Duration,
) -> Origin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState {
        runs: Arc::default(),
        completed: Arc::default(),
        failures: Arc::default(),
        delay,
    };
    let app = wrap(
        Router::new()
            .route("/upload", post(upload))
            .route("/reject", post(reject))
            .route("/stall", post(stall))
            .route("/big", post(big))
            .with_state(state.clone()),
    );
    let shutdown = Shutdown::new();
    let serve = axum::serve(
        InterimListener::new(listener),
        WithInterimHandle::new(axum::ServiceExt::into_make_service(app)),
    )
    .with_graceful_shutdown(shutdown.signalled());
    let task = tokio::spawn(async move {
        serve.await.unwrap();
    });
    let _ = &task;
    Origin {
        addr,
        shutdown,
        runs: state.runs,
        completed: state.completed,
        failures: state.failures,
        task,
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The expected answer of the origin for `body`.
pub(crate) fn answer_for(body: &[u8]) -> String {
    format!("{} {}", body.len(), hex(&Sha256::digest(body)))
}

/// A deterministic body of `len` bytes.
pub(crate) fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

/// A parsed response.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Reply {
    /// The request-content and response-message locations this reply published.
    pub(crate) fn locations(&self) -> (String, String) {
        let location = |name| {
            self.header(name)
                .unwrap_or_else(|| panic!("no {name} in {self:?}"))
                .to_owned()
        };
        (
            location("request-content-location"),
            location("response-message-location"),
        )
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one response head (and, when `with_body`, a `Content-Length` body) from the front
/// of `buf`; returns it with the bytes consumed, or `None` if more are needed.
pub(crate) fn parse_reply(buf: &[u8], with_body: bool) -> Option<(Reply, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = response.parse(buf).expect("a valid response")
    else {
        return None;
    };
    let status = response.code.unwrap();
    let reason = response.reason.unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut reply = Reply {
        status,
        reason,
        headers,
        body: Bytes::new(),
    };
    if !with_body || status < 200 {
        return Some((reply, head_len));
    }
    let len: usize = reply
        .header("content-length")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    if buf.len() < head_len + len {
        return None;
    }
    reply.body = Bytes::copy_from_slice(&buf[head_len..head_len + len]);
    Some((reply, head_len + len))
}

/// Sends `request` (which should say `Connection: close`) and reads the final response,
/// skipping interim ones. A HEAD's response has no body.
pub(crate) async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let is_head = request.starts_with(b"HEAD ");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let mut chunk = [0u8; 16 * 1024];
            let n = stream.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let mut at = 0;
            while let Some((reply, used)) = parse_reply(&buf[at..], !is_head) {
                if reply.status >= 200 {
                    return reply;
                }
                at += used;
            }
            assert!(
                n > 0,
                "connection closed before a response: {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
    })
    .await
    .expect("a response within 20 s")
}

/// `HEAD` on `path`.
pub(crate) async fn head(addr: SocketAddr, path: &str, auth: Option<&str>) -> Reply {
    let request = format!(
        "HEAD {path} HTTP/1.1\r\nHost: {addr}\r\n{}Connection: close\r\n\r\n",
        auth_line(auth)
    );
    exchange(addr, request.as_bytes()).await
}

/// `GET` on `path` with extra header lines.
pub(crate) async fn get(addr: SocketAddr, path: &str, extra: &str) -> Reply {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    exchange(addr, request.as_bytes()).await
}

/// `DELETE` on `path`.
pub(crate) async fn delete(addr: SocketAddr, path: &str, auth: Option<&str>) -> Reply {
    let request = format!(
        "DELETE {path} HTTP/1.1\r\nHost: {addr}\r\n{}Connection: close\r\n\r\n",
        auth_line(auth)
    );
    exchange(addr, request.as_bytes()).await
}

/// A `PATCH` with a `message/byterange` body: part head `Content-Range: <range>` (and the
/// part `Content-Length`), then `data`.
pub(crate) fn patch_request(
    addr: SocketAddr,
    path: &str,
    range: &str,
    data: &[u8],
    auth: Option<&str>,
) -> Vec<u8> {
    let mut part = format!(
        "Content-Range: {range}\r\nContent-Length: {}\r\n\r\n",
        data.len()
    )
    .into_bytes();
    part.extend_from_slice(data);
    raw_patch(addr, path, &part, auth)
}

/// A `PATCH` of `message/byterange` with `part` as its whole body.
pub(crate) fn raw_patch(addr: SocketAddr, path: &str, part: &[u8], auth: Option<&str>) -> Vec<u8> {
    let mut request = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\n{}Content-Type: message/byterange\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        auth_line(auth),
        part.len()
    )
    .into_bytes();
    request.extend_from_slice(part);
    request
}

fn auth_line(auth: Option<&str>) -> String {
    auth.map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default()
}

/// The head of a resumable upload of `len` bytes.
pub(crate) fn upload_head(
    addr: SocketAddr,
    len: usize,
    auth: Option<&str>,
    prefer: &str,
) -> Vec<u8> {
    upload_head_to("/upload", addr, len, auth, prefer)
}

/// The head of a resumable upload of `len` bytes to `path`.
pub(crate) fn upload_head_to(
    path: &str,
    addr: SocketAddr,
    len: usize,
    auth: Option<&str>,
    prefer: &str,
) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{}Content-Length: {len}\r\nExpect: 100-continue\r\nPrefer: {prefer}\r\nConnection: close\r\n\r\n",
        auth_line(auth)
    )
    .into_bytes()
}

/// Opens a resumable upload of `len` bytes to `/upload` and reads its `100 Continue`; the
/// body is the caller's to send.
pub(crate) async fn open_upload(
    addr: SocketAddr,
    len: usize,
    auth: Option<&str>,
    prefer: &str,
) -> (TcpStream, Reply) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&upload_head(addr, len, auth, prefer))
        .await
        .unwrap();
    let interim = read_interim(&mut stream).await;
    (stream, interim)
}

/// Starts an upload of `body` and cuts the connection once `cut` bytes of the request
/// (head + body) were written. Returns the interim `100` response if the server sent one
/// (only once the whole head was written).
pub(crate) async fn cut_upload(
    addr: SocketAddr,
    body: &[u8],
    cut: usize,
    auth: Option<&str>,
) -> Option<Reply> {
    let head = upload_head(addr, body.len(), auth, "resume");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    if cut < head.len() {
        stream.write_all(&head[..cut]).await.unwrap();
        stream.shutdown().await.ok();
        return None;
    }
    stream.write_all(&head).await.unwrap();
    let interim = read_interim(&mut stream).await;
    let sent = cut - head.len();
    stream.write_all(&body[..sent]).await.unwrap();
    stream.flush().await.unwrap();
    // A little time for the bytes to reach the server before the cut.
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(stream);
    Some(interim)
}

/// Reads one interim response from `stream`.
pub(crate) async fn read_interim(stream: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut byte = [0u8; 1];
            let n = stream.read(&mut byte).await.unwrap();
            assert!(n > 0, "closed before the 100 Continue");
            buf.push(byte[0]);
            if buf.ends_with(b"\r\n\r\n") {
                let (reply, _) = parse_reply(&buf, false).unwrap();
                return reply;
            }
        }
    })
    .await
    .expect("the 100 Continue within 10 s")
}

/// Completes an upload: `HEAD` for the offset, then `PATCH` the rest, retrying while another
/// writer (the cut connection, not yet noticed) holds the body. Returns the offset the
/// server reported first.
pub(crate) async fn complete(
    addr: SocketAddr,
    location: &str,
    body: &[u8],
    auth: Option<&str>,
) -> u64 {
    let mut first_offset = None;
    for _ in 0..100 {
        let head = head(addr, location, auth).await;
        assert!(head.status == 299 || head.status == 200, "HEAD: {head:?}");
        let offset: u64 = head.header("content-length").unwrap().parse().unwrap();
        first_offset.get_or_insert(offset);
        if head.status == 200 {
            return first_offset.unwrap();
        }
        let range = format!("bytes {offset}-{}/{}", body.len() - 1, body.len());
        let reply = exchange(
            addr,
            &patch_request(addr, location, &range, &body[offset as usize..], auth),
        )
        .await;
        match reply.status {
            200 | 202 => return first_offset.unwrap(),
            409 => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!(
                "PATCH answered {other}: {:?}",
                String::from_utf8_lossy(&reply.body)
            ),
        }
    }
    panic!("the upload could not be completed");
}

/// Fetches the recorded response (waiting up to 10 s) and returns its body.
pub(crate) async fn fetch_response(
    addr: SocketAddr,
    location: &str,
    auth: Option<&str>,
) -> (u16, Bytes) {
    let extra = format!("Prefer: wait=10\r\n{}", auth_line(auth));
    let reply = get(addr, location, &extra).await;
    assert_eq!(reply.status, 200, "GET response: {reply:?}");
    assert_eq!(reply.header("content-type"), Some("message/http"));
    let response = handoff_proto::message_http::decode_response(&reply.body).unwrap();
    (response.status().as_u16(), response.into_body())
}
