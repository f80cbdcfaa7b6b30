//! The origin side of Partial POST Replay over real sockets: axum serving HTTP/1.1 and h2c.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use handoff_server::replay::{PartialPostReplayLayer, ReplayControl};
use handoff_server::Shutdown;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

const LIMIT: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
struct Seen {
    first_frame: Arc<Notify>,
    answered: Arc<AtomicUsize>,
}

/// Reads the body frame by frame, says when the first one arrived, answers with the length.
async fn upload(State(seen): State<Seen>, request: Request) -> String {
    let mut body = request.into_body();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return "error".into();
        };
        len += frame.data_ref().map_or(0, Bytes::len);
        seen.first_frame.notify_one();
    }
    seen.answered.fetch_add(1, Ordering::SeqCst);
    len.to_string()
}

async fn serve(replay: bool) -> (std::net::SocketAddr, Shutdown, Seen, JoinHandle<()>) {
    let shutdown = Shutdown::new();
    let seen = Seen::default();
    let mut app = Router::new()
        .route("/upload", post(upload))
        .with_state(seen.clone());
    if replay {
        app = app.layer(PartialPostReplayLayer::new(shutdown.clone()));
    }
    let (addr, server) = spawn_until(app, &shutdown).await;
    (addr, shutdown, seen, server)
}

/// Serves `app` on an ephemeral port until `shutdown`'s graceful shutdown ends.
async fn spawn_until(app: Router, shutdown: &Shutdown) -> (std::net::SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let signal = shutdown.signalled();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
            .unwrap();
    });
    (addr, server)
}

/// Reads an HTTP/1.1 response head from `stream`, returning it and what followed it.
async fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8(buf).unwrap().to_ascii_lowercase(), rest);
        }
    }
}

/// Decodes a complete chunked body.
fn dechunk(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = input.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&input[..line_end]).unwrap(), 16).unwrap();
        input = &input[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&input[..size]);
        input = &input[size + 2..];
    }
}

#[tokio::test]
async fn http1_upload_is_handed_back_with_every_byte() {
    let (addr, shutdown, seen, server) = serve(true).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /upload?id=9 HTTP/1.1\r\nHost: origin.test\r\nPartial-Post-Replay: 0\r\nX-Trace: abc\r\nContent-Length: 11\r\n\r\nhello ")
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, seen.first_frame.notified())
        .await
        .unwrap();
    shutdown.trigger();

    let (head, mut body) = tokio::time::timeout(LIMIT, read_head(&mut stream))
        .await
        .unwrap();
    assert!(
        head.starts_with("http/1.1 379 partial post replay\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\necho-host: origin.test\r\n"), "{head}");
    assert!(head.contains("\r\necho-x-trace: abc\r\n"), "{head}");
    assert!(head.contains("\r\necho-content-length: 11\r\n"), "{head}");
    assert!(head.contains("\r\npseudo-echo-method: post\r\n"), "{head}");
    assert!(
        head.contains("\r\npseudo-echo-path: /upload?id=9\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head}"
    );
    assert!(!head.contains("\r\ncontent-length:"), "{head}");

    // The proxy still sends the bytes that were in flight; the echo carries them too.
    stream.write_all(b"world").await.unwrap();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dechunk(&body), b"hello world");
    tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    assert_eq!(
        seen.answered.load(Ordering::SeqCst),
        0,
        "the handler was abandoned"
    );
}

#[tokio::test]
async fn h2c_upload_is_handed_back_on_its_stream() {
    let (addr, shutdown, seen, server) = serve(true).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Body>();
    let (mut sender, body) =
        http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(4);
    let request = http::Request::post(format!("http://{addr}/upload"))
        .header("partial-post-replay", "0")
        .body(Body::new(body))
        .unwrap();
    let response = tokio::spawn(client.request(request));
    sender
        .send_data(Bytes::from_static(b"first "))
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, seen.first_frame.notified())
        .await
        .unwrap();
    shutdown.trigger();

    let response = tokio::time::timeout(LIMIT, response)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.status().as_u16(), 379);
    assert_eq!(response.headers()["pseudo-echo-scheme"], "http");
    assert_eq!(response.headers()["pseudo-echo-path"], "/upload");
    assert!(response.headers().get("connection").is_none());
    sender
        .send_data(Bytes::from_static(b"second"))
        .await
        .unwrap();
    drop(sender);
    let echo = tokio::time::timeout(LIMIT, response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(echo, "first second");
    drop(client);
    tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn without_the_layer_shutdown_drains() {
    let (addr, shutdown, seen, server) = serve(false).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: origin.test\r\nPartial-Post-Replay: 0\r\nContent-Length: 11\r\n\r\nhello ",
        )
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, seen.first_frame.notified())
        .await
        .unwrap();
    shutdown.trigger();
    stream.write_all(b"world").await.unwrap();
    let (head, body) = tokio::time::timeout(LIMIT, read_head(&mut stream))
        .await
        .unwrap();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(body.ends_with(b"11"), "{body:?}");
    drop(stream);
    tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    assert_eq!(seen.answered.load(Ordering::SeqCst), 1);
}

/// Issue #3 item 2, HTTP/2: the stream gets the 379 (with its echo) and the connection a
/// GOAWAY, seen through a raw h2 client.
#[tokio::test]
async fn h2c_stream_gets_the_379_and_the_connection_a_goaway() {
    let (addr, shutdown, seen, server) = serve(true).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!("http://{addr}/upload"))
        .header("partial-post-replay", "0")
        .body(())
        .unwrap();
    let (response, mut upload) = client.send_request(request, false).unwrap();
    upload
        .send_data(Bytes::from_static(b"first "), false)
        .unwrap();
    tokio::time::timeout(LIMIT, seen.first_frame.notified())
        .await
        .unwrap();
    shutdown.trigger();

    let response = tokio::time::timeout(LIMIT, response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status().as_u16(), 379);
    upload
        .send_data(Bytes::from_static(b"second"), true)
        .unwrap();
    let mut body = response.into_body();
    let mut echo = Vec::new();
    while let Some(data) = tokio::time::timeout(LIMIT, body.data()).await.unwrap() {
        let data = data.unwrap();
        body.flow_control().release_capacity(data.len()).unwrap();
        echo.extend_from_slice(&data);
    }
    assert_eq!(echo, b"first second");

    // The GOAWAY: the connection takes no new stream, then closes without an error.
    let probe = async {
        let mut ready = client.clone().ready().await?;
        let request = http::Request::get(format!("http://{addr}/upload"))
            .body(())
            .unwrap();
        let (response, _) = ready.send_request(request, true)?;
        response.await
    };
    let refused = tokio::time::timeout(LIMIT, probe)
        .await
        .unwrap()
        .expect_err("no new stream is served after the GOAWAY");
    assert!(refused.is_go_away(), "{refused:?}");
    assert_eq!(refused.reason(), Some(h2::Reason::NO_ERROR), "{refused:?}");
    tokio::time::timeout(LIMIT, connection)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
}

/// Issue 10 item 4 over TCP: a handler's side effect runs exactly once with `claim`.
#[derive(Clone, Default)]
struct Effects {
    read_first: Arc<Notify>,
    go: Arc<Notify>,
    done: Arc<AtomicUsize>,
}

/// Reads a first frame, then hands the side effect to a spawned task that awaits `go`
/// before it claims and runs it (the handler may be gone by then), then reads the rest.
/// With `claim_first`, the handler claims the request before spawning.
async fn effect(State((effects, claim_first)): State<(Effects, bool)>, request: Request) -> String {
    let control = request
        .extensions()
        .get::<ReplayControl>()
        .cloned()
        .expect("the layer adds ReplayControl");
    let mut body = request.into_body();
    let _ = body.frame().await;
    if claim_first {
        control.claim().expect("nothing handed back yet");
    }
    effects.read_first.notify_one();
    let work = effects.clone();
    let spawned = tokio::spawn(async move {
        work.go.notified().await;
        // Before the effect: an atomic check-and-withdraw against the shutdown's handoff.
        if control.claim().is_ok() {
            work.done.fetch_add(1, Ordering::SeqCst);
        }
    });
    let _ = spawned.await;
    let mut len = 0;
    while let Some(Ok(frame)) = body.frame().await {
        len += frame.data_ref().map_or(0, Bytes::len);
    }
    len.to_string()
}

async fn serve_effect(
    claim_first: bool,
) -> (std::net::SocketAddr, Shutdown, Effects, JoinHandle<()>) {
    let shutdown = Shutdown::new();
    let effects = Effects::default();
    let app = Router::new()
        .route("/effect", post(effect))
        .with_state((effects.clone(), claim_first))
        .layer(PartialPostReplayLayer::new(shutdown.clone()));
    let (addr, server) = spawn_until(app, &shutdown).await;
    (addr, shutdown, effects, server)
}

async fn effect_run(claim_first: bool) -> (String, usize) {
    let (addr, shutdown, effects, server) = serve_effect(claim_first).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /effect HTTP/1.1\r\nHost: origin.test\r\nPartial-Post-Replay: 0\r\nContent-Length: 11\r\n\r\nhello ")
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, effects.read_first.notified())
        .await
        .unwrap();
    // The deploy begins while the side effect is still ahead of the handler.
    shutdown.trigger();
    tokio::time::sleep(Duration::from_millis(50)).await;
    effects.go.notify_one();
    stream.write_all(b"world").await.ok();
    let (head, _) = tokio::time::timeout(LIMIT, read_head(&mut stream))
        .await
        .unwrap();
    drop(stream);
    tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    // The spawned work has run by now, whichever way it went.
    tokio::time::sleep(Duration::from_millis(50)).await;
    (head, effects.done.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_claimed_request_is_not_handed_back_and_its_effect_runs_once() {
    let (head, effects) = effect_run(true).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(effects, 1);
}

#[tokio::test]
async fn work_the_handler_spawned_sees_the_handoff_and_skips_its_effect() {
    let (head, effects) = effect_run(false).await;
    // Handed back: the proxy will replay it elsewhere, so the effect must not run here.
    assert!(head.starts_with("http/1.1 379"), "{head}");
    assert_eq!(effects, 0);
}
