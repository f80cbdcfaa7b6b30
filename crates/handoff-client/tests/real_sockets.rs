//! The replay layer over real TCP: hyper-util's legacy client beneath it, two hyper origins
//! on 127.0.0.1. Proves the `Send + Unpin` bounds and that hyper delivers a `379` head while
//! the request body is still being written.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use handoff_client::backend::{AvoidBackends, ServedBy};
use handoff_client::replay::{ReplayBody, ReplayLayer, ReplayStats};
use handoff_proto::ppr;
use http::header::{CONNECTION, CONTENT_LENGTH};
use http::uri::{Authority, Uri};
use http::{Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::{BoxError, ServiceBuilder, ServiceExt};

type ClientBody = Channel<Bytes>;
type ResBody = UnsyncBoxBody<Bytes, BoxError>;

const FIRST: usize = 32 * 1024;
const REST: usize = 64 * 1024;
/// Origin `a` hands the request back once it has this many bytes.
const HAND_BACK_AFTER: usize = 16 * 1024;

fn payload() -> Vec<u8> {
    (0..FIRST + REST).map(|i| (i % 251) as u8).collect()
}

fn boxed<B>(body: B) -> ResBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

async fn serve<F, Fut>(handler: F) -> Authority
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<ResBody>, Infallible>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let handler = handler.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handler))
                    .await;
            });
        }
    });
    authority
}

/// What origin `a` saw of its request body, and how that body ended.
#[derive(Debug)]
struct Seen {
    bytes: usize,
    error: bool,
}

/// An origin that is shutting down (part A, server side): 379 after `HAND_BACK_AFTER` bytes,
/// echoing what it got and everything that follows, optionally with one byte changed.
async fn origin_a(alter: bool, seen: mpsc::UnboundedSender<Seen>) -> Authority {
    serve(move |req: Request<Incoming>| {
        let seen = seen.clone();
        async move {
            let mut body = req.into_body();
            let mut frames = Vec::new();
            let mut got = 0;
            while got < HAND_BACK_AFTER {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            got += data.len();
                            frames.push(data);
                        }
                    }
                    _ => break,
                }
            }
            if alter {
                let mut first = frames[0].to_vec();
                first[0] ^= 1;
                frames[0] = first.into();
            }
            let (mut echo, echo_body) = Channel::<Bytes, BoxError>::new(1024);
            for frame in frames {
                echo.send_data(frame).await.unwrap();
            }
            tokio::spawn(async move {
                let error = loop {
                    match body.frame().await {
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                got += data.len();
                                let _ = echo.send_data(data).await;
                            }
                        }
                        Some(Err(_)) => break true,
                        None => break false,
                    }
                };
                let _ = seen.send(Seen { bytes: got, error });
            });
            let mut res = Response::new(boxed(echo_body));
            *res.status_mut() = ppr::status();
            res.headers_mut()
                .insert(CONNECTION, http::HeaderValue::from_static("close"));
            Ok(res)
        }
    })
    .await
}

/// A healthy origin: reads the whole body, answers with its length and SHA-256.
/// Sends `Some(length)` on `finished` when the body was complete, `None` when it failed.
async fn origin_b(
    started: mpsc::UnboundedSender<http::HeaderMap>,
    finished: mpsc::UnboundedSender<Option<usize>>,
) -> Authority {
    serve(move |req: Request<Incoming>| {
        let started = started.clone();
        let finished = finished.clone();
        async move {
            let _ = started.send(req.headers().clone());
            let res = match req.into_body().collect().await {
                Ok(body) => {
                    let body = body.to_bytes();
                    let _ = finished.send(Some(body.len()));
                    let text = format!("{} {:x}", body.len(), Sha256::digest(&body));
                    Response::new(boxed(Full::new(Bytes::from(text))))
                }
                Err(_) => {
                    let _ = finished.send(None);
                    let mut res = Response::new(boxed(Full::new(Bytes::from("aborted"))));
                    *res.status_mut() = StatusCode::BAD_REQUEST;
                    res
                }
            };
            Ok(res)
        }
    })
    .await
}

/// A balancer over hyper-util's client: the first backend not avoided, else 503.
fn balancer(
    backends: Vec<Authority>,
) -> impl tower::Service<
    Request<ReplayBody<ClientBody>>,
    Response = Response<ResBody>,
    Error = BoxError,
    Future = impl Future<Output = Result<Response<ResBody>, BoxError>> + Send,
> + Clone
       + Send
       + 'static {
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<ClientBody>>();
    tower::service_fn(move |mut req: Request<ReplayBody<ClientBody>>| {
        let client = client.clone();
        let avoid = req
            .extensions()
            .get::<AvoidBackends>()
            .cloned()
            .unwrap_or_default();
        let backend = backends.iter().find(|b| !avoid.contains(b)).cloned();
        async move {
            let Some(backend) = backend else {
                let mut res = Response::new(boxed(Full::new(Bytes::from("no backend left"))));
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                return Ok(res);
            };
            let path = req.uri().path_and_query().unwrap().clone();
            *req.uri_mut() = Uri::builder()
                .scheme("http")
                .authority(backend.clone())
                .path_and_query(path)
                .build()?;
            let mut res = client.request(req).await?;
            res.extensions_mut().insert(ServedBy(backend));
            Ok(res.map(boxed))
        }
    })
}

struct Run {
    status: StatusCode,
    text: Bytes,
    a_seen: Seen,
    b_headers: Option<http::HeaderMap>,
    b_finished: Option<usize>,
    stats: ReplayStats,
}

async fn run(alter: bool) -> Run {
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let (finished_tx, mut finished_rx) = mpsc::unbounded_channel();
    let a = origin_a(alter, seen_tx).await;
    let b = origin_b(started_tx, finished_tx).await;
    let stats = ReplayStats::default();
    let proxy = ServiceBuilder::new()
        .layer(ReplayLayer::new().stats(stats.clone()))
        .service(balancer(vec![a, b]));

    let payload = payload();
    let (mut client, body) = ClientBody::new(4);
    let req = Request::post("http://svc.internal/upload")
        .header(CONTENT_LENGTH, payload.len())
        .body(body)
        .unwrap();
    let mut response = tokio::spawn(proxy.oneshot(req));
    let mut early = None;
    let mut b_headers = None;
    for (i, chunk) in payload.chunks(8 * 1024).enumerate() {
        if i * 8 * 1024 == FIRST {
            // Send the rest only once the replay reached `b` (or the layer gave up): `a`
            // answered while its request body was still being written, and gets no more.
            tokio::select! {
                headers = started_rx.recv() => b_headers = headers,
                res = &mut response => early = Some(res),
            }
        }
        // Once the layer failed the request, it no longer reads the client's body.
        if client
            .send_data(Bytes::copy_from_slice(chunk))
            .await
            .is_err()
        {
            assert!(alter, "the client body was dropped at chunk {i}");
            break;
        }
    }
    drop(client);

    let res = match early {
        Some(res) => res,
        None => tokio::time::timeout(Duration::from_secs(30), response)
            .await
            .expect("safety timeout: no response"),
    };
    let res = res.unwrap().unwrap();
    let status = res.status();
    let text = res.into_body().collect().await.unwrap().to_bytes();
    let a_seen = tokio::time::timeout(Duration::from_secs(30), seen_rx.recv())
        .await
        .expect("safety timeout: a's exchange was never ended")
        .unwrap();
    // With a wrong echo, `b` may never have seen the request at all (hyper can fail the
    // request before flushing its head): wait a little, only to catch a complete body.
    let wait = if alter { 500 } else { 30_000 };
    let b_finished = tokio::time::timeout(Duration::from_millis(wait), finished_rx.recv())
        .await
        .ok()
        .flatten()
        .flatten();
    Run {
        status,
        text,
        a_seen,
        b_headers,
        b_finished,
        stats,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_over_real_connections() {
    let run = run(false).await;
    assert_eq!(run.status, StatusCode::OK);
    let payload = payload();
    let expected = format!("{} {:x}", payload.len(), Sha256::digest(&payload));
    assert_eq!(run.text, expected);
    assert_eq!(run.b_finished, Some(payload.len()));

    let b_headers = run.b_headers.unwrap();
    assert_eq!(b_headers[ppr::REPLAY_COUNT], "1");
    assert_eq!(b_headers[CONTENT_LENGTH], payload.len().to_string());
    // hyper-util set `Host` from the new URI.
    assert_ne!(b_headers["host"], "svc.internal");

    // `a` received its share, at least what it needed to hand back, never the rest; the
    // proxy then tore its connection down.
    assert!(
        run.a_seen.bytes >= HAND_BACK_AFTER && run.a_seen.bytes <= FIRST,
        "{:?}",
        run.a_seen
    );
    assert!(run.a_seen.error, "{:?}", run.a_seen);
    assert_eq!(run.stats.replays(), 1);
    assert_eq!(run.stats.echoed_bytes(), run.a_seen.bytes as u64);
    assert_eq!(run.stats.failed(), 0);
    // One frame in hand at a time: the client's, or one read back from the echo spool.
    assert!(run.stats.max_held_bytes() <= 256 * 1024);
    // The whole echo went through the spool, taken as fast as `a` sent it.
    assert_eq!(run.stats.spooled_bytes(), run.a_seen.bytes as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_echo_never_completes_upstream() {
    let run = run(true).await;
    assert_eq!(run.status, StatusCode::BAD_GATEWAY);
    // hyper aborted the replayed request: `b` never got a complete body.
    assert_eq!(run.b_finished, None);
    assert!(run.a_seen.error);
    assert_eq!(run.stats.failed(), 1);
}
