//! The replay layer against in-process fake upstreams (`tower::Service`s that play a
//! balancer over origins answering `379` with an echo, `PROTOCOL.md` part A).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use handoff_client::backend::{AvoidBackends, ServedBy};
use handoff_client::replay::{
    ReplayBody, ReplayError, ReplayLayer, ReplayResponseBody, ReplayStats,
};
use handoff_proto::ppr;
use http::header::HOST;
use http::request::Parts;
use http::uri::Authority;
use http::{Request, Response, StatusCode};
use http_body::{Body, SizeHint};
use http_body_util::channel::{Channel, Sender};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tokio::sync::{mpsc, oneshot};
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt};

type ClientBody = Channel<Bytes>;
type Req = Request<ReplayBody<ClientBody>>;
type ResBody = UnsyncBoxBody<Bytes, BoxError>;
type ProxyResponse = Response<ReplayResponseBody<ResBody>>;

/// How a fake origin echoes what it received in its 379.
#[derive(Debug, Clone, Copy)]
enum Echo {
    /// Every frame as received, then every further frame.
    Exact,
    /// One byte too many, in the frame that completes the echo.
    TooLong,
    /// One byte short, then the echo ends.
    TooShort,
    /// The right length, one byte changed.
    Altered,
    /// One byte short, then nothing more for ever.
    Stall,
}

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Read at least `after` bytes, then answer 379.
    HandBack {
        after: usize,
        echo: Echo,
        served_by: bool,
    },
    /// Read the whole body, then answer 200 with it.
    Accept,
    /// Answer 200 at once and read the body in the background.
    AcceptEarly,
    /// The service call fails.
    Fail,
    /// Answer `status` at once, dropping the body unread (an origin's early 413 that closes).
    Refuse(StatusCode),
    /// Read at least `read` bytes, answer `status`, and hand the body, no longer polled, to
    /// the test (`Events::kept`): an upstream that answers early and stops reading.
    AnswerAndKeep { read: usize, status: StatusCode },
    /// Read at least `read` bytes, drop the body, then (a second later) hand the request
    /// back with a 379 echoing what it read.
    DropThenHandBack { read: usize },
}

#[derive(Debug)]
enum Event {
    Called {
        backend: &'static str,
        parts: Box<Parts>,
        size_hint: SizeHint,
    },
    BodyDone {
        backend: &'static str,
        bytes: Vec<u8>,
        error: Option<BoxError>,
    },
    Kept {
        backend: &'static str,
        body: ReplayBody<ClientBody>,
        read: Vec<u8>,
    },
}

/// A balancer over named fake origins: the first one that is neither in `AvoidBackends` nor
/// down, else 503. Like a real balancer's health state, an origin that hands a request back
/// is down from then on (it is shutting down).
#[derive(Clone)]
struct Fake {
    backends: Arc<Vec<(&'static str, Behaviour)>>,
    down: Arc<std::sync::Mutex<Vec<&'static str>>>,
    events: mpsc::UnboundedSender<Event>,
}

fn fake(backends: Vec<(&'static str, Behaviour)>) -> (Fake, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let fake = Fake {
        backends: Arc::new(backends),
        down: Arc::default(),
        events: tx,
    };
    (
        fake,
        Events {
            rx,
            seen: Vec::new(),
        },
    )
}

impl Service<Req> for Fake {
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let avoid = req
            .extensions()
            .get::<AvoidBackends>()
            .cloned()
            .unwrap_or_default();
        let mut down = self.down.lock().unwrap();
        let chosen = self
            .backends
            .iter()
            .find(|(name, _)| {
                !avoid.contains(&Authority::from_static(name)) && !down.contains(name)
            })
            .copied();
        if let Some((name, Behaviour::HandBack { .. })) = chosen {
            down.push(name);
        }
        drop(down);
        let events = self.events.clone();
        Box::pin(async move {
            let Some((backend, behaviour)) = chosen else {
                // No backend left: the balancer answers 503 without reading the body.
                drop(req);
                return Ok(response(StatusCode::SERVICE_UNAVAILABLE, "no backend left"));
            };
            let (parts, body) = req.into_parts();
            let size_hint = body.size_hint();
            let _ = events.send(Event::Called {
                backend,
                parts: Box::new(parts),
                size_hint,
            });
            match behaviour {
                Behaviour::HandBack {
                    after,
                    echo,
                    served_by,
                } => hand_back(backend, body, after, echo, served_by, events).await,
                Behaviour::Accept => {
                    let (tx, rx) = oneshot::channel();
                    tokio::spawn(async move {
                        let (bytes, error) = read_to_end(body, Vec::new()).await;
                        let result = match &error {
                            None => Ok(bytes.clone()),
                            Some(err) => Err(err.to_string()),
                        };
                        let _ = events.send(Event::BodyDone {
                            backend,
                            bytes,
                            error,
                        });
                        let _ = tx.send(result);
                    });
                    match rx.await? {
                        Ok(bytes) => Ok(response(StatusCode::OK, bytes)),
                        Err(err) => Err(err.into()),
                    }
                }
                Behaviour::AcceptEarly => {
                    tokio::spawn(async move {
                        let (bytes, error) = read_to_end(body, Vec::new()).await;
                        let _ = events.send(Event::BodyDone {
                            backend,
                            bytes,
                            error,
                        });
                    });
                    Ok(response(StatusCode::OK, "early"))
                }
                Behaviour::Fail => Err("upstream connection refused".into()),
                Behaviour::Refuse(status) => {
                    drop(body);
                    Ok(response(status, "refused"))
                }
                Behaviour::AnswerAndKeep { read, status } => {
                    let mut body = body;
                    let read = read_at_least(&mut body, read).await?;
                    let _ = events.send(Event::Kept {
                        backend,
                        body,
                        read,
                    });
                    Ok(response(status, "answered early"))
                }
                Behaviour::DropThenHandBack { read } => {
                    let mut body = body;
                    let read = read_at_least(&mut body, read).await?;
                    drop(body);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let mut res = response(ppr::status(), read);
                    res.extensions_mut()
                        .insert(ServedBy(Authority::from_static(backend)));
                    Ok(res)
                }
            }
        })
    }
}

async fn hand_back(
    backend: &'static str,
    mut body: ReplayBody<ClientBody>,
    after: usize,
    echo: Echo,
    served_by: bool,
    events: mpsc::UnboundedSender<Event>,
) -> Result<Response<ResBody>, BoxError> {
    let mut frames: Vec<Bytes> = Vec::new();
    while frames.iter().map(Bytes::len).sum::<usize>() < after {
        match body.frame().await {
            Some(Ok(frame)) => frames.extend(frame.into_data().ok()),
            Some(Err(err)) => return Err(err),
            None => break,
        }
    }
    let seen: Vec<u8> = frames.concat();
    let (mut tx, echo_body) = Channel::<Bytes, BoxError>::new(64);
    let mut echoed = frames.clone();
    match echo {
        Echo::Exact => {}
        Echo::TooLong => {
            let last = echoed.pop().unwrap_or_default();
            echoed.push([&last[..], b"!"].concat().into());
        }
        Echo::TooShort | Echo::Stall => {
            let last = echoed.pop().unwrap_or_default();
            echoed.push(last.slice(..last.len().saturating_sub(1)));
        }
        Echo::Altered => {
            let mut first = BytesMut::from(&echoed[0][..]);
            first[0] ^= 0x20;
            echoed[0] = first.freeze();
        }
    }
    for frame in echoed {
        tx.send_data(frame).await?;
    }
    // Part A, server 4: keep echoing every further byte until the proxy ends the request.
    let echo_further = matches!(echo, Echo::Exact | Echo::TooLong | Echo::Altered);
    let mut tx = match echo {
        Echo::TooShort => None,
        _ => Some(tx),
    };
    tokio::spawn(async move {
        let (bytes, error) = read_echoing(body, seen, tx.as_mut().filter(|_| echo_further)).await;
        drop(tx);
        let _ = events.send(Event::BodyDone {
            backend,
            bytes,
            error,
        });
    });
    let mut res = Response::new(echo_body.boxed_unsync());
    *res.status_mut() = ppr::status();
    if served_by {
        res.extensions_mut()
            .insert(ServedBy(Authority::from_static(backend)));
    }
    Ok(res)
}

async fn read_at_least(body: &mut ReplayBody<ClientBody>, n: usize) -> Result<Vec<u8>, BoxError> {
    let mut read = Vec::new();
    while read.len() < n {
        match body.frame().await {
            Some(Ok(frame)) => read.extend(frame.into_data().unwrap_or_default()),
            Some(Err(err)) => return Err(err),
            None => break,
        }
    }
    Ok(read)
}

async fn read_echoing(
    mut body: ReplayBody<ClientBody>,
    mut seen: Vec<u8>,
    mut echo: Option<&mut Sender<Bytes, BoxError>>,
) -> (Vec<u8>, Option<BoxError>) {
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    seen.extend_from_slice(&data);
                    if let Some(echo) = echo.as_mut() {
                        let _ = echo.send_data(data).await;
                    }
                }
            }
            Some(Err(err)) => return (seen, Some(err)),
            None => return (seen, None),
        }
    }
}

async fn read_to_end(body: ReplayBody<ClientBody>, seen: Vec<u8>) -> (Vec<u8>, Option<BoxError>) {
    read_echoing(body, seen, None).await
}

fn response(status: StatusCode, body: impl Into<Bytes>) -> Response<ResBody> {
    let mut res = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *res.status_mut() = status;
    res
}

/// What the fake origins saw, in order, with a generous safety timeout.
struct Events {
    rx: mpsc::UnboundedReceiver<Event>,
    seen: Vec<Event>,
}

impl Events {
    async fn next_matching(&mut self, pred: impl Fn(&Event) -> bool) -> Event {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        loop {
            let event = tokio::time::timeout(Duration::from_secs(60), self.rx.recv())
                .await
                .expect("safety timeout waiting for a fake origin")
                .expect("fake origins gone");
            if pred(&event) {
                return event;
            }
            self.seen.push(event);
        }
    }

    async fn called(&mut self, name: &'static str) -> (Parts, SizeHint) {
        let event = self
            .next_matching(|e| matches!(e, Event::Called { backend, .. } if *backend == name))
            .await;
        match event {
            Event::Called {
                parts, size_hint, ..
            } => (*parts, size_hint),
            _ => unreachable!(),
        }
    }

    async fn body_done(&mut self, name: &'static str) -> (Vec<u8>, Option<BoxError>) {
        let event = self
            .next_matching(|e| matches!(e, Event::BodyDone { backend, .. } if *backend == name))
            .await;
        match event {
            Event::BodyDone { bytes, error, .. } => (bytes, error),
            _ => unreachable!(),
        }
    }

    /// The body an `AnswerAndKeep` origin kept, and what it read of it.
    async fn kept(&mut self, name: &'static str) -> (ReplayBody<ClientBody>, Vec<u8>) {
        let event = self
            .next_matching(|e| matches!(e, Event::Kept { backend, .. } if *backend == name))
            .await;
        match event {
            Event::Kept { body, read, .. } => (body, read),
            _ => unreachable!(),
        }
    }

    fn was_called(&mut self, name: &'static str) -> bool {
        while let Ok(event) = self.rx.try_recv() {
            self.seen.push(event);
        }
        self.seen
            .iter()
            .any(|e| matches!(e, Event::Called { backend, .. } if *backend == name))
    }
}

fn client_request(body: ClientBody) -> Request<ClientBody> {
    Request::post("http://svc.internal/upload")
        .header(HOST, "svc.internal")
        .header("x-custom", "kept")
        // A client's own replay count: never forwarded.
        .header(ppr::REPLAY_COUNT, "5")
        .body(body)
        .unwrap()
}

type Proxy = tokio::task::JoinHandle<Result<ProxyResponse, BoxError>>;

fn start(layer: ReplayLayer, fake: Fake, body: ClientBody) -> Proxy {
    // The fake origins hand back after whole frames; the echo spool re-frames what it
    // holds, so keep its frames at the three bytes the clients here send.
    let layer = layer.echo_frame_size(3);
    let proxy = ServiceBuilder::new().layer(layer).service(fake);
    tokio::spawn(proxy.oneshot(client_request(body)))
}

async fn text(res: ProxyResponse) -> Bytes {
    res.into_body().collect().await.unwrap().to_bytes()
}

fn replay_error(err: &Option<BoxError>) -> &ReplayError {
    err.as_ref()
        .expect("the body ended with an error")
        .downcast_ref::<ReplayError>()
        .expect("a ReplayError")
}

fn keeps(read: usize, status: StatusCode) -> Behaviour {
    Behaviour::AnswerAndKeep { read, status }
}

fn hands_back(after: usize, echo: Echo) -> Behaviour {
    Behaviour::HandBack {
        after,
        echo,
        served_by: true,
    }
}

#[tokio::test]
async fn passes_other_responses_through() {
    let stats = ReplayStats::default();
    let (fake, mut events) = fake(vec![("a:80", Behaviour::Accept)]);
    let (mut client, body) = ClientBody::new(4);
    let proxy = start(ReplayLayer::new().stats(stats.clone()), fake, body);
    client.send_data(Bytes::from("hello")).await.unwrap();
    drop(client);

    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.body().is_error());
    assert_eq!(text(res).await, "hello");
    let (parts, _) = events.called("a:80").await;
    // Item 8: the first attempt is marked, so the origin knows a replay proxy is in front.
    assert_eq!(parts.headers[ppr::REPLAY_COUNT], "0");
    assert_eq!(parts.headers[HOST], "svc.internal");
    assert_eq!(stats.replays(), 0);
    assert_eq!(stats.failed(), 0);
}

#[tokio::test]
async fn replays_the_echo_then_the_rest_of_the_body() {
    let stats = ReplayStats::default();
    let (fake, mut events) = fake(vec![
        ("a:80", hands_back(6, Echo::Exact)),
        ("b:80", Behaviour::Accept),
    ]);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hel")).await.unwrap();
    client.send_data(Bytes::from("lo ")).await.unwrap();
    let proxy = start(ReplayLayer::new().stats(stats.clone()), fake, body);

    // The replay is on its way: the rest of the client's body goes to `b` only.
    let (parts, _) = events.called("b:80").await;
    client.send_data(Bytes::from("big ")).await.unwrap();
    client.send_data(Bytes::from("world")).await.unwrap();
    drop(client);

    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "hello big world");

    assert_eq!(parts.headers[ppr::REPLAY_COUNT], "1");
    assert_eq!(parts.headers[HOST], "svc.internal", "the replay keeps Host");
    assert_eq!(parts.headers["x-custom"], "kept");
    assert_eq!(parts.uri, "http://svc.internal/upload");
    let avoid = parts.extensions.get::<AvoidBackends>().unwrap();
    assert!(avoid.contains(&Authority::from_static("a:80")));
    assert_eq!(avoid.len(), 1);

    let (bytes, error) = events.body_done("b:80").await;
    assert_eq!(bytes, b"hello big world");
    assert!(error.is_none());
    // `a` got the first six bytes, then its upload was ended with an error.
    let (bytes, error) = events.body_done("a:80").await;
    assert_eq!(bytes, b"hello ");
    assert!(replay_error(&error).is_detached());

    assert_eq!(stats.replays(), 1);
    assert_eq!(stats.echoed_bytes(), 6);
    assert_eq!(stats.failed(), 0);
    assert!(stats.max_held_bytes() <= 5, "one frame at most");
}

#[tokio::test]
async fn replays_twice_with_nested_echoes() {
    let stats = ReplayStats::default();
    let (fake, mut events) = fake(vec![
        ("a:80", hands_back(6, Echo::Exact)),
        // `b` hands back after three bytes of `a`'s six-byte echo.
        ("b:80", hands_back(3, Echo::Exact)),
        ("c:80", Behaviour::Accept),
    ]);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hel")).await.unwrap();
    client.send_data(Bytes::from("lo ")).await.unwrap();
    let proxy = start(ReplayLayer::new().stats(stats.clone()), fake, body);

    let (parts, _) = events.called("c:80").await;
    client.send_data(Bytes::from("world")).await.unwrap();
    drop(client);

    let res = proxy.await.unwrap().unwrap();
    assert_eq!(text(res).await, "hello world");
    assert_eq!(parts.headers[ppr::REPLAY_COUNT], "2");
    let avoid: Vec<_> = parts
        .extensions
        .get::<AvoidBackends>()
        .unwrap()
        .iter()
        .map(|a| a.host().to_owned())
        .collect();
    // Every origin that handed the request back is listed (issue 10 item 6: no A -> B -> A).
    assert_eq!(avoid, ["a", "b"]);
    assert_eq!(events.body_done("c:80").await.0, b"hello world");
    let (bytes, error) = events.body_done("b:80").await;
    assert_eq!(bytes, b"hel");
    assert!(replay_error(&error).is_detached());
    assert!(replay_error(&events.body_done("a:80").await.1).is_detached());
    assert_eq!(stats.replays(), 2);
    assert_eq!(stats.echoed_bytes(), 9);
}

/// The failing-echo cases: 502, and `b` never receives the complete body.
async fn bad_echo(echo: Echo) -> ReplayStats {
    let stats = ReplayStats::default();
    let (fake, mut events) = fake(vec![
        ("a:80", hands_back(6, echo)),
        ("b:80", Behaviour::Accept),
    ]);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hel")).await.unwrap();
    client.send_data(Bytes::from("lo ")).await.unwrap();
    let layer = ReplayLayer::new()
        .stats(stats.clone())
        .echo_timeout(Duration::from_secs(5));
    let proxy = start(layer, fake, body);

    events.called("b:80").await;
    // The client keeps sending; the layer may no longer want it.
    let _ = client.send_data(Bytes::from("world")).await;
    drop(client);

    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY, "{echo:?}");
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(res.body().is_error());
    assert!(!text(res).await.is_empty());

    let (bytes, error) = events.body_done("b:80").await;
    assert!(error.is_some(), "{echo:?}: b's body must end in an error");
    assert!(
        bytes.len() < b"hello world".len(),
        "{echo:?}: b saw {bytes:?}"
    );
    let (_, error) = events.body_done("a:80").await;
    assert!(error.is_some(), "{echo:?}: a's exchange must be ended");
    assert_eq!(stats.failed(), 1);
    stats
}

#[tokio::test]
async fn echo_too_long_is_502() {
    bad_echo(Echo::TooLong).await;
}

#[tokio::test]
async fn echo_too_short_is_502() {
    bad_echo(Echo::TooShort).await;
}

#[tokio::test]
async fn altered_echo_is_502() {
    let stats = bad_echo(Echo::Altered).await;
    assert_eq!(stats.echoed_bytes(), 6);
}

#[tokio::test(start_paused = true)]
async fn stalled_echo_times_out() {
    let start = tokio::time::Instant::now();
    bad_echo(Echo::Stall).await;
    assert!(start.elapsed() >= Duration::from_secs(5));
}

#[tokio::test]
async fn altered_echo_fails_even_after_an_early_response() {
    let (fake, mut events) = fake(vec![
        ("a:80", hands_back(6, Echo::Altered)),
        ("b:80", Behaviour::AcceptEarly),
    ]);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hello ")).await.unwrap();
    let proxy = start(ReplayLayer::new(), fake, body);
    events.called("b:80").await;
    drop(client);
    // `b` said 200 before reading anything; the layer held it and found the echo wrong.
    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert!(events.body_done("b:80").await.1.is_some());
}

#[tokio::test]
async fn an_early_response_is_held_until_the_echo_is_verified() {
    let (fake, mut events) = fake(vec![
        ("a:80", hands_back(6, Echo::Exact)),
        ("b:80", Behaviour::AcceptEarly),
    ]);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hello ")).await.unwrap();
    let proxy = start(ReplayLayer::new(), fake, body);
    events.called("b:80").await;
    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "early");
    client.send_data(Bytes::from("world")).await.unwrap();
    drop(client);
    let (bytes, error) = events.body_done("b:80").await;
    assert_eq!(bytes, b"hello world");
    assert!(error.is_none());
}

#[tokio::test]
async fn more_replays_than_allowed_is_502() {
    let stats = ReplayStats::default();
    let (fake, mut events) = fake(vec![
        ("a:80", hands_back(6, Echo::Exact)),
        ("b:80", hands_back(6, Echo::Exact)),
        ("c:80", Behaviour::Accept),
    ]);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hello ")).await.unwrap();
    let layer = ReplayLayer::new().max_replays(1).stats(stats.clone());
    let proxy = start(layer, fake, body);
    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert!(!events.was_called("c:80"));
    // Both old exchanges are ended.
    assert!(events.body_done("a:80").await.1.is_some());
    assert!(events.body_done("b:80").await.1.is_some());
    assert_eq!(stats.replays(), 1);
    assert_eq!(stats.failed(), 1);
}

#[tokio::test]
async fn zero_replays_allowed_answers_every_379_with_502() {
    let (fake, _events) = fake(vec![
        ("a:80", hands_back(6, Echo::Exact)),
        ("b:80", Behaviour::Accept),
    ]);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hello ")).await.unwrap();
    let res = start(ReplayLayer::new().max_replays(0), fake, body)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn an_upstream_error_during_a_replay_is_502() {
    let stats = ReplayStats::default();
    let (fake, mut events) = fake(vec![
        ("a:80", hands_back(6, Echo::Exact)),
        ("b:80", Behaviour::Fail),
    ]);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hello ")).await.unwrap();
    let proxy = start(ReplayLayer::new().stats(stats.clone()), fake, body);
    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert!(events.body_done("a:80").await.1.is_some());
    assert_eq!(stats.failed(), 1);
}

#[tokio::test]
async fn a_first_attempt_error_passes_through() {
    let stats = ReplayStats::default();
    let (fake, _events) = fake(vec![("a:80", Behaviour::Fail)]);
    let (_client, body) = ClientBody::new(4);
    let err = start(ReplayLayer::new().stats(stats.clone()), fake, body)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "upstream connection refused");
    assert_eq!(stats.failed(), 0);
}

#[tokio::test]
async fn nothing_forwarded_means_nothing_to_verify() {
    let stats = ReplayStats::default();
    let (fake, mut events) = fake(vec![
        ("a:80", hands_back(0, Echo::Exact)),
        ("b:80", Behaviour::Accept),
    ]);
    let (mut client, body) = ClientBody::new(4);
    let proxy = start(ReplayLayer::new().stats(stats.clone()), fake, body);
    events.called("b:80").await;
    // The old exchange is dropped at once.
    let (bytes, error) = events.body_done("a:80").await;
    assert!(bytes.is_empty());
    assert!(replay_error(&error).is_detached());
    client.send_data(Bytes::from("hello")).await.unwrap();
    drop(client);
    let res = proxy.await.unwrap().unwrap();
    assert_eq!(text(res).await, "hello");
    assert_eq!(stats.echoed_bytes(), 0);
    assert_eq!(stats.replays(), 1);
}

#[tokio::test]
async fn the_balancers_503_is_the_final_answer() {
    let stats = ReplayStats::default();
    let (fake, mut events) = fake(vec![("a:80", hands_back(6, Echo::Exact))]);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hello ")).await.unwrap();
    let proxy = start(ReplayLayer::new().stats(stats.clone()), fake, body);
    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(text(res).await, "no backend left");
    // The old exchange does not linger.
    assert!(events.body_done("a:80").await.1.is_some());
    assert_eq!(stats.failed(), 1);
}

/// Starts an upload of "hello " (two frames) that `a` hands back after six bytes with
/// `echo`; the replay goes to `b`, or to the balancer's 503 without it.
async fn replayed(
    echo: Echo,
    b: Option<Behaviour>,
    layer: ReplayLayer,
) -> (Proxy, Events, Sender<Bytes>) {
    let mut backends = vec![("a:80", hands_back(6, echo))];
    backends.extend(b.map(|b| ("b:80", b)));
    let (fake, events) = fake(backends);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hel")).await.unwrap();
    client.send_data(Bytes::from("lo ")).await.unwrap();
    (start(layer, fake, body), events, client)
}

fn is_replay_error(err: &BoxError, query: fn(&ReplayError) -> bool) -> bool {
    err.downcast_ref::<ReplayError>().is_some_and(query)
}

#[tokio::test]
async fn an_early_413_without_reading_the_replay_passes_once_the_echo_verifies() {
    let stats = ReplayStats::default();
    let refuse = Behaviour::Refuse(StatusCode::PAYLOAD_TOO_LARGE);
    let layer = ReplayLayer::new().stats(stats.clone());
    let (proxy, mut events, _client) = replayed(Echo::Exact, Some(refuse), layer).await;
    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(text(res).await, "refused");
    // `b` dropped the body unread, so the layer read `a`'s echo itself; `a` was released
    // only once that echo was complete.
    let (bytes, error) = events.body_done("a:80").await;
    assert_eq!(bytes, b"hello ");
    assert!(replay_error(&error).is_detached());
    assert_eq!(stats.replays(), 1);
    assert_eq!(stats.echoed_bytes(), 6);
    assert_eq!(stats.failed(), 0);
    assert!(stats.max_held_bytes() <= 3, "one frame at most");
}

#[tokio::test]
async fn an_early_413_with_an_altered_echo_is_502() {
    let stats = ReplayStats::default();
    let refuse = Behaviour::Refuse(StatusCode::PAYLOAD_TOO_LARGE);
    let layer = ReplayLayer::new().stats(stats.clone());
    let (proxy, mut events, _client) = replayed(Echo::Altered, Some(refuse), layer).await;
    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert!(res.body().is_error());
    let (_, error) = events.body_done("a:80").await;
    // Its body fails either way: released once the whole echo was spooled, or failed with
    // the request once the echo was found wrong, whichever came first.
    let error = replay_error(&error);
    assert!(error.is_detached() || error.is_echo_mismatch(), "{error}");
    assert_eq!(stats.echoed_bytes(), 6);
    assert_eq!(stats.failed(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_short_echo_ends_the_old_exchange_at_once_even_if_nobody_reads_the_replay() {
    // `b` answers at once and keeps the replay's body without reading it: the layer takes
    // the echo over only after `echo_timeout`, but `a`'s exchange must not wait for that.
    let began = tokio::time::Instant::now();
    let layer = ReplayLayer::new().echo_timeout(Duration::from_secs(30));
    let b = Behaviour::AnswerAndKeep {
        read: 0,
        status: StatusCode::OK,
    };
    let (proxy, mut events, _client) = replayed(Echo::TooShort, Some(b), layer).await;
    let (_, error) = events.body_done("a:80").await;
    assert!(replay_error(&error).is_echo_too_short());
    let ended = began.elapsed();
    assert!(ended < Duration::from_secs(30), "a ended after {ended:?}");
    let (_kept, _) = events.kept("b:80").await;
    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn the_balancers_503_passes_once_the_echo_verifies() {
    let stats = ReplayStats::default();
    let layer = ReplayLayer::new().stats(stats.clone());
    let (proxy, mut events, _client) = replayed(Echo::Exact, None, layer).await;
    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(text(res).await, "no backend left");
    let (_, error) = events.body_done("a:80").await;
    assert!(replay_error(&error).is_detached());
    assert_eq!(stats.echoed_bytes(), 6);
    // A replay answered with a server error did not save the request.
    assert_eq!(stats.failed(), 1);
}

#[tokio::test]
async fn the_balancers_503_with_an_altered_echo_is_502() {
    let stats = ReplayStats::default();
    let layer = ReplayLayer::new().stats(stats.clone());
    let (proxy, mut events, _client) = replayed(Echo::Altered, None, layer).await;
    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert!(res.body().is_error());
    let (_, error) = events.body_done("a:80").await;
    // Its body fails either way: released once the whole echo was spooled, or failed with
    // the request once the echo was found wrong, whichever came first.
    let error = replay_error(&error);
    assert!(error.is_detached() || error.is_echo_mismatch(), "{error}");
    assert_eq!(stats.failed(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_upstream_that_answers_early_and_stops_reading_is_verified_by_the_layer() {
    let stats = ReplayStats::default();
    let timeout = Duration::from_secs(5);
    let layer = ReplayLayer::new()
        .stats(stats.clone())
        .echo_timeout(timeout);
    let began = tokio::time::Instant::now();
    let (proxy, mut events, _client) =
        replayed(Echo::Exact, Some(keeps(3, StatusCode::OK)), layer).await;
    // `b` read "hel" of the echo, answered, and keeps the body without polling it.
    let (mut kept, read) = events.kept("b:80").await;
    assert_eq!(read, b"hel");

    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // The layer gave `b` `echo_timeout` to move the echo on, then read the rest itself.
    let waited = began.elapsed();
    assert!(waited >= timeout && waited < 2 * timeout, "{waited:?}");
    let (bytes, error) = events.body_done("a:80").await;
    assert_eq!(bytes, b"hello ");
    assert!(replay_error(&error).is_detached());
    assert_eq!(stats.echoed_bytes(), 6);
    assert_eq!(stats.failed(), 0);

    // `b`'s upload can never complete now. While the response may still stream on its
    // connection, its body neither ends nor fails...
    assert!(kept.frame().now_or_never().is_none());
    assert_eq!(text(res).await, "answered early");
    // ...then it fails, so that connection is closed.
    let err = kept.frame().await.unwrap().unwrap_err();
    assert!(is_replay_error(&err, ReplayError::is_aborted), "{err}");
}

#[tokio::test(start_paused = true)]
async fn an_upstream_that_stops_reading_with_an_altered_echo_is_502() {
    let stats = ReplayStats::default();
    let timeout = Duration::from_secs(5);
    let layer = ReplayLayer::new()
        .stats(stats.clone())
        .echo_timeout(timeout);
    let began = tokio::time::Instant::now();
    let (proxy, mut events, _client) =
        replayed(Echo::Altered, Some(keeps(3, StatusCode::OK)), layer).await;
    let (mut kept, read) = events.kept("b:80").await;
    assert_eq!(read, b"Hel");

    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert!(began.elapsed() < 2 * timeout);
    // `b` never gets the rest: its upload fails.
    let err = kept.frame().await.unwrap().unwrap_err();
    assert!(
        is_replay_error(&err, ReplayError::is_echo_mismatch),
        "{err}"
    );
    // `a`'s exchange was let go as soon as its whole echo was taken, before the check.
    let (_, error) = events.body_done("a:80").await;
    assert!(replay_error(&error).is_detached());
    assert_eq!(stats.failed(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_upstream_that_answers_then_closes_is_verified_at_once() {
    let timeout = Duration::from_secs(5);
    let began = tokio::time::Instant::now();
    let b = keeps(3, StatusCode::PAYLOAD_TOO_LARGE);
    let layer = ReplayLayer::new().echo_timeout(timeout);
    let (proxy, mut events, _client) = replayed(Echo::Exact, Some(b), layer).await;
    let (kept, _) = events.kept("b:80").await;
    // The 413 is held: its echo is not verified yet.
    tokio::task::yield_now().await;
    assert!(!proxy.is_finished());

    // `b` closes its connection: hyper drops the request body.
    drop(kept);
    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Verified as soon as the body was gone, without waiting out `echo_timeout`.
    assert!(began.elapsed() < timeout);
    let (_, error) = events.body_done("a:80").await;
    assert!(replay_error(&error).is_detached());
}

#[tokio::test(start_paused = true)]
async fn a_379_after_the_replay_dropped_its_body_replays_every_echoed_byte() {
    // `b` reads "hel" of `a`'s echo, drops the body, then hands the request back itself.
    // The rest of `a`'s echo never went anywhere: the replay on `c` sends `b`'s echo, then
    // the rest of `a`'s, then the rest of the client's body.
    let stats = ReplayStats::default();
    let (fake, mut events) = fake(vec![
        ("a:80", hands_back(6, Echo::Exact)),
        ("b:80", Behaviour::DropThenHandBack { read: 3 }),
        ("c:80", Behaviour::Accept),
    ]);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hel")).await.unwrap();
    client.send_data(Bytes::from("lo ")).await.unwrap();
    let proxy = start(ReplayLayer::new().stats(stats.clone()), fake, body);
    events.called("c:80").await;
    client.send_data(Bytes::from("world")).await.unwrap();
    drop(client);
    let res = proxy.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "hello world");
    let (_, error) = events.body_done("a:80").await;
    assert!(replay_error(&error).is_detached());
    assert_eq!(stats.replays(), 2);
    assert_eq!(stats.failed(), 0);
}

#[tokio::test]
async fn without_served_by_a_379_is_502() {
    let (fake, mut events) = fake(vec![
        (
            "svc.internal",
            Behaviour::HandBack {
                after: 6,
                echo: Echo::Exact,
                served_by: false,
            },
        ),
        ("b:80", Behaviour::Accept),
    ]);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hello ")).await.unwrap();
    drop(client);
    let res = start(ReplayLayer::new(), fake, body)
        .await
        .unwrap()
        .unwrap();
    // Not knowing which origin shuts down, a replay could go right back to it: fail safe.
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert!(!events.was_called("b:80"));
}

#[tokio::test]
async fn without_any_backend_name_a_379_is_502() {
    let (fake, mut events) = fake(vec![(
        "a:80",
        Behaviour::HandBack {
            after: 6,
            echo: Echo::Exact,
            served_by: false,
        },
    )]);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hello ")).await.unwrap();
    let req = Request::post("/upload").body(body).unwrap();
    let res = ReplayLayer::new().layer(fake).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert!(events.body_done("a:80").await.1.is_some());
}

#[tokio::test]
async fn dropping_the_response_future_ends_every_exchange() {
    let (fake, mut events) = fake(vec![
        ("a:80", hands_back(6, Echo::Exact)),
        ("b:80", Behaviour::Accept),
    ]);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hello ")).await.unwrap();
    let proxy = start(ReplayLayer::new(), fake, body);
    events.called("b:80").await;
    proxy.abort();
    assert!(proxy.await.unwrap_err().is_cancelled());
    assert!(events.body_done("a:80").await.1.is_some());
    let (bytes, error) = events.body_done("b:80").await;
    assert!(replay_error(&error).is_aborted());
    assert!(bytes.len() <= 6);
    drop(client);
}

#[tokio::test]
async fn the_replay_keeps_an_exact_size_hint() {
    // A body of known length: hyper would send it with that Content-Length.
    let upstream = tower::service_fn(|req: Request<ReplayBody<Full<Bytes>>>| async move {
        let hint = req.body().size_hint().exact();
        let first = req.extensions().get::<AvoidBackends>().is_none();
        let mut body = req.into_body();
        if first {
            let data = body.frame().await.unwrap()?.into_data().unwrap();
            tokio::spawn(async move { while let Some(Ok(_)) = body.frame().await {} });
            let mut res = Response::new(Full::new(data));
            *res.status_mut() = ppr::status();
            res.extensions_mut()
                .insert(ServedBy(Authority::from_static("a:80")));
            return Ok::<_, BoxError>(res);
        }
        let all = body.collect().await?.to_bytes();
        Ok(Response::new(Full::new(Bytes::from(format!(
            "{hint:?} {}",
            all.len()
        )))))
    });
    let req = Request::post("http://svc.internal/")
        .body(Full::new(Bytes::from("0123456789")))
        .unwrap();
    let res = ReplayLayer::new()
        .layer(upstream)
        .oneshot(req)
        .await
        .unwrap();
    let text = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, "Some(10) 10");
}

#[test]
fn bodies_and_futures_are_send() {
    fn send_unpin_static<T: Send + Unpin + 'static>() {}
    fn send<T: Send>(_: &T) {}
    send_unpin_static::<ReplayBody<ClientBody>>();
    send_unpin_static::<ReplayBody<Full<Bytes>>>();
    let (fake, _events) = fake(vec![]);
    let mut svc = ReplayLayer::new().layer(fake);
    let future = svc.call(client_request(ClientBody::new(1).1));
    send(&future);
}

#[tokio::test]
async fn an_echo_made_of_the_request_body_itself() {
    // An in-process origin whose 379 body is what it read, then the request body itself:
    // dropping that echo drops a `ReplayBody`, which must not happen under the layer's lock.
    let upstream = tower::service_fn(|req: Req| async move {
        let first = req.extensions().get::<AvoidBackends>().is_none();
        let mut body = req.into_body();
        if first {
            let data = body.frame().await.unwrap()?.into_data().unwrap();
            let read = futures_util::stream::once(async move { Ok(http_body::Frame::data(data)) });
            let rest = futures_util::stream::unfold(body, |mut body| async move {
                body.frame().await.map(|frame| (frame, body))
            });
            let echo = http_body_util::StreamBody::new(futures_util::StreamExt::chain(read, rest));
            let mut res = Response::new(echo.boxed_unsync());
            *res.status_mut() = ppr::status();
            res.extensions_mut()
                .insert(ServedBy(Authority::from_static("a:80")));
            return Ok::<_, BoxError>(res);
        }
        let all = body.collect().await?.to_bytes();
        Ok(response(StatusCode::OK, all))
    });
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hello ")).await.unwrap();
    client.send_data(Bytes::from("world")).await.unwrap();
    drop(client);
    let res = tokio::time::timeout(
        Duration::from_secs(60),
        ReplayLayer::new()
            .layer(upstream)
            .oneshot(client_request(body)),
    )
    .await
    .expect("safety timeout: deadlock?")
    .unwrap();
    assert_eq!(text(res).await, "hello world");
}

#[tokio::test]
async fn a_policy_with_no_backend_for_the_first_attempt_answers_503_without_calling() {
    let called = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = called.clone();
    let upstream = tower::service_fn(move |_: Request<ReplayBody<Full<Bytes>>>| {
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        async { Ok::<_, BoxError>(Response::new(Full::new(Bytes::new()))) }
    });
    let stats = ReplayStats::default();
    let policy = handoff_client::replay::policy::Backends::new(["http://a:1"]).unwrap();
    let layer = ReplayLayer::with_policy(policy).stats(stats.clone());
    let mut req = Request::post("/upload")
        .body(Full::new(Bytes::from("x")))
        .unwrap();
    // The caller itself asks to avoid the only backend.
    req.extensions_mut()
        .insert(AvoidBackends::from(vec![Authority::from_static("a:1")]));
    let res = layer.layer(upstream).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "no upstream is available for this request\n"
    );
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
    // Nothing was replayed, so no replay failed.
    assert_eq!(stats.failed(), 0);
}
