//! Issue #3 item 12: origins that misbehave after a `379`, over real TCP on 127.0.0.1.
//!
//! A raw-TCP origin reads the first part of an upload, then answers `379` with an echo that
//! is too long, too short or altered (or a faithful echo, to push the replay count). The
//! proxy must answer the client 502 (503 once no backend is left), and the second, real
//! origin must never see a completed request.

#[path = "../examples/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::channel::{Channel, Sender};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use support::origin::{spawn_origin, OriginConfig, OriginHandle, OriginStats};
use support::proxy::{spawn_proxy, ProxyConfig, ProxyHandle};

const LIMIT: Duration = Duration::from_secs(10);
/// What the client sends before the raw origin answers `379`.
const FIRST_PART: usize = 1000;
/// What the client sends after it.
const SECOND_PART: usize = 3000;

/// How the raw origin echoes the first part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Echo {
    Faithful,
    TooMany,
    TooFew,
    Altered,
}

/// A hand-written HTTP/1.1 origin that answers every upload with a `379` and the chosen echo.
struct RawOrigin {
    addr: SocketAddr,
    /// The heads of the uploads it received, lower-cased.
    heads: Arc<Mutex<Vec<String>>>,
    echoed: Arc<Notify>,
    task: JoinHandle<()>,
}

impl RawOrigin {
    async fn spawn(echo: Echo) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let echoed = Arc::new(Notify::new());
        let task = tokio::spawn({
            let heads = heads.clone();
            let echoed = echoed.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve_raw(stream, echo, heads.clone(), echoed.clone()));
                }
            }
        });
        RawOrigin {
            addr,
            heads,
            echoed,
            task,
        }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads until a full request head is buffered; returns (head, bytes after it).
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            let head = String::from_utf8_lossy(buf).to_ascii_lowercase();
            buf.clear();
            return Some((head, rest));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn serve_raw(
    mut stream: TcpStream,
    echo: Echo,
    heads: Arc<Mutex<Vec<String>>>,
    echoed: Arc<Notify>,
) {
    let mut buf = Vec::new();
    while let Some((head, mut body)) = read_head(&mut stream, &mut buf).await {
        if head.starts_with("get ") {
            // The proxy's health checks: this origin is draining, it stays unhealthy.
            let ok = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
            if stream.write_all(ok).await.is_err() {
                return;
            }
            buf = body;
            continue;
        }
        heads.lock().unwrap().push(head);
        while body.len() < FIRST_PART {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        let mut echo_bytes = body[..FIRST_PART].to_vec();
        match echo {
            Echo::Faithful => {}
            Echo::TooMany => echo_bytes.extend_from_slice(b"sixteen more b.."),
            Echo::TooFew => {
                echo_bytes.pop();
            }
            Echo::Altered => echo_bytes[FIRST_PART / 2] ^= 0x20,
        }
        let mut response = b"HTTP/1.1 379 Partial POST Replay\r\n\
            transfer-encoding: chunked\r\nconnection: close\r\n\
            pseudo-echo-method: POST\r\npseudo-echo-path: /upload\r\n\r\n"
            .to_vec();
        response.extend_from_slice(format!("{:x}\r\n", echo_bytes.len()).as_bytes());
        response.extend_from_slice(&echo_bytes);
        response.extend_from_slice(b"\r\n");
        if echo == Echo::TooFew {
            // The echo ends, one byte short.
            response.extend_from_slice(b"0\r\n\r\n");
        }
        if stream.write_all(&response).await.is_err() {
            return;
        }
        echoed.notify_one();
        // Hold the exchange open until the proxy drops it.
        let mut sink = [0u8; 4096];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
        return;
    }
}

fn pattern(len: usize, salt: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

/// The status and body the client got.
type Answer = JoinHandle<Result<(StatusCode, Bytes), hyper_util::client::legacy::Error>>;

/// Starts an upload of FIRST_PART + SECOND_PART bytes whose body the test feeds by hand.
fn start_upload(proxy: SocketAddr) -> (Sender<Bytes>, Answer) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Channel<Bytes>>();
    let (sender, body) = Channel::new(4);
    let request = Request::post(format!("http://{proxy}/upload"))
        .header("content-length", FIRST_PART + SECOND_PART)
        .header("x-upload", "integrity")
        .body(body)
        .unwrap();
    let response = tokio::spawn(async move {
        let response = client.request(request).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok((status, body))
    });
    (sender, response)
}

async fn good_origin() -> (OriginHandle, OriginStats) {
    let stats = OriginStats::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = spawn_origin(listener, OriginConfig::new("good"), stats.clone())
        .await
        .unwrap();
    (origin, stats)
}

async fn proxy(backends: &[SocketAddr], max_replays: u32) -> ProxyHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = ProxyConfig::with_addrs(backends.iter().copied())
        .max_replays(max_replays)
        .echo_timeout(Duration::from_secs(5))
        .drain_timeout(Duration::from_secs(2));
    spawn_proxy(listener, cfg).await.unwrap()
}

/// One misbehaving first origin, then the good one: the client must get 502 and the good
/// origin must never complete the request.
async fn bad_echo_fails_the_request(echo: Echo) {
    let raw = RawOrigin::spawn(echo).await;
    let (good, good_stats) = good_origin().await;
    let proxy = proxy(&[raw.addr, good.addr()], 3).await;

    let (mut sender, response) = start_upload(proxy.addr());
    sender.send_data(pattern(FIRST_PART, 1)).await.unwrap();
    tokio::time::timeout(LIMIT, raw.echoed.notified())
        .await
        .expect("the raw origin answered 379");
    let feeder = tokio::spawn(async move {
        let _ = sender.send_data(pattern(SECOND_PART, 2)).await;
        // Keep the client's side open until the test ends.
        std::future::pending::<()>().await;
    });

    let (status, body) = tokio::time::timeout(LIMIT, response)
        .await
        .expect("the proxy answered in time")
        .unwrap()
        .expect("the proxy answered");
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{echo:?}: {body:?}");
    assert_eq!(proxy.stats().failed(), 1, "{echo:?}");
    assert_eq!(
        raw.heads().len(),
        1,
        "{echo:?}: the raw origin saw one upload"
    );
    // Give a wrongly completed request every chance to show up before looking.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // `uploads_completed` counts every answer, `body_errors` those whose body failed.
    assert_eq!(
        good_stats.uploads_completed() - good_stats.body_errors(),
        0,
        "{echo:?}: the second origin must never see a completed request"
    );

    feeder.abort();
    proxy.wait().await;
    good.wait().await;
}

#[tokio::test]
async fn an_echo_with_more_bytes_than_forwarded_gives_502() {
    bad_echo_fails_the_request(Echo::TooMany).await;
}

#[tokio::test]
async fn an_echo_that_ends_short_gives_502() {
    bad_echo_fails_the_request(Echo::TooFew).await;
}

#[tokio::test]
async fn an_altered_echo_gives_502() {
    bad_echo_fails_the_request(Echo::Altered).await;
}

#[tokio::test]
async fn replays_beyond_the_maximum_give_502() {
    let first = RawOrigin::spawn(Echo::Faithful).await;
    let second = RawOrigin::spawn(Echo::Faithful).await;
    let proxy = proxy(&[first.addr, second.addr], 1).await;

    let (mut sender, response) = start_upload(proxy.addr());
    sender.send_data(pattern(FIRST_PART, 3)).await.unwrap();
    let (status, _) = tokio::time::timeout(LIMIT, response)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(proxy.stats().replays(), 1);
    assert_eq!(proxy.stats().failed(), 1);

    // The replay went to the other origin, rebuilt from the proxy's own copy of the head.
    let replayed = second.heads();
    assert_eq!(replayed.len(), 1);
    assert!(
        replayed[0].contains("\r\npartial-post-replay: 1\r\n"),
        "{}",
        replayed[0]
    );
    assert!(
        replayed[0].contains("\r\nx-upload: integrity\r\n"),
        "{}",
        replayed[0]
    );
    assert!(
        replayed[0].contains(&format!("\r\nhost: {}\r\n", second.addr)),
        "{}",
        replayed[0]
    );
    drop(sender);
    proxy.wait().await;
}

#[tokio::test]
async fn no_backend_left_gives_503() {
    let first = RawOrigin::spawn(Echo::Faithful).await;
    let second = RawOrigin::spawn(Echo::Faithful).await;
    let proxy = proxy(&[first.addr, second.addr], 3).await;

    let (mut sender, response) = start_upload(proxy.addr());
    sender.send_data(pattern(FIRST_PART, 4)).await.unwrap();
    let (status, _) = tokio::time::timeout(LIMIT, response)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(first.heads().len(), 1);
    assert_eq!(second.heads().len(), 1);
    drop(sender);
    proxy.wait().await;
}
