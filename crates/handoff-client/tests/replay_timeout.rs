//! Issue 10, item 5: a replay never hangs. `ReplayLayer::replay_timeout` bounds the wait for
//! an upstream to take the replay (a service that never gets to it, a connect that never
//! completes), the echo is still taken from the old origin meanwhile, and a replay that is
//! being read is never cut by it, however long it takes; `echo_timeout` bounds a replay that
//! was taken but reads none of its echo.

use std::time::Duration;

use bytes::Bytes;
use handoff_client::backend::{AvoidBackends, ServedBy};
use handoff_client::replay::{ReplayBody, ReplayLayer, ReplayStats};
use handoff_proto::ppr;
use http::uri::Authority;
use http::{Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tower::{BoxError, ServiceBuilder, ServiceExt};

type ClientBody = Channel<Bytes>;
type ResBody = UnsyncBoxBody<Bytes, BoxError>;

/// What origin `b` does with the replay.
#[derive(Clone, Copy)]
enum Replacement {
    /// Never touches it: its future stays pending for ever.
    NeverTakes,
    /// Reads it slowly, five seconds per frame, then answers.
    ReadsSlowly,
    /// Takes it (asks its size, as hyper does when it writes the head), then never reads
    /// it nor answers: an HTTP/2 window that never opens.
    TakesButNeverReads,
}

async fn origins(
    req: Request<ReplayBody<ClientBody>>,
    b: Replacement,
) -> Result<Response<ResBody>, BoxError> {
    let a = Authority::from_static("a:80");
    let replay = req
        .extensions()
        .get::<AvoidBackends>()
        .is_some_and(|l| l.contains(&a));
    let mut body = req.into_body();
    if !replay {
        // `a` reads six bytes and hands the request back.
        let first = body.frame().await.unwrap()?.into_data().unwrap();
        let echo = Full::new(first).map_err(|never| match never {});
        let mut res = Response::new(echo.boxed_unsync());
        *res.status_mut() = ppr::status();
        res.extensions_mut().insert(ServedBy(a));
        return Ok(res);
    }
    match b {
        Replacement::NeverTakes => std::future::pending().await,
        Replacement::TakesButNeverReads => {
            let _ = http_body::Body::size_hint(&body);
            std::future::pending().await
        }
        Replacement::ReadsSlowly => {
            let mut all = Vec::new();
            while let Some(frame) = body.frame().await {
                tokio::time::sleep(Duration::from_secs(5)).await;
                all.extend_from_slice(&frame?.into_data().unwrap_or_default());
            }
            let text = Full::new(Bytes::from(all)).map_err(|never| match never {});
            Ok(Response::new(text.boxed_unsync()))
        }
    }
}

async fn run(b: Replacement) -> (Response<impl http_body::Body>, ReplayStats) {
    let stats = ReplayStats::default();
    let layer = ReplayLayer::new()
        .replay_timeout(Duration::from_secs(2))
        .echo_timeout(Duration::from_secs(60))
        .echo_frame_size(3)
        .stats(stats.clone());
    let proxy = ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |req| origins(req, b));
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hello ")).await.unwrap();
    client.send_data(Bytes::from("world")).await.unwrap();
    drop(client);
    let req = Request::post("http://svc.internal/up").body(body).unwrap();
    (proxy.oneshot(req).await.unwrap(), stats)
}

#[tokio::test(start_paused = true)]
async fn a_replay_nobody_takes_is_502_after_the_replay_timeout() {
    let began = tokio::time::Instant::now();
    let (res, stats) = run(Replacement::NeverTakes).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let waited = began.elapsed();
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    assert!(
        waited < Duration::from_secs(60),
        "not the echo timeout: {waited:?}"
    );
    // The echo was taken from `a` meanwhile, so `a` could exit.
    assert_eq!(stats.spooled_bytes(), 6);
    assert_eq!(stats.failed(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_replay_being_read_is_not_cut_however_long_it_takes() {
    let (res, stats) = run(Replacement::ReadsSlowly).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.ok().unwrap().to_bytes();
    assert_eq!(body, "hello world");
    assert_eq!(stats.failed(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_replay_taken_but_never_read_is_502_after_the_echo_timeout() {
    let began = tokio::time::Instant::now();
    let (res, stats) = run(Replacement::TakesButNeverReads).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let waited = began.elapsed();
    // Taken before the replay timeout (2 s), then one to two echo timeouts (60 s) without
    // progress.
    assert!(waited >= Duration::from_secs(62), "{waited:?}");
    assert!(waited <= Duration::from_secs(125), "{waited:?}");
    assert_eq!(stats.spooled_bytes(), 6);
    assert_eq!(stats.failed(), 1);
}
