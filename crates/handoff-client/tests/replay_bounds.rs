//! Issue 10, item 1: the proxy's echo spool has bounds, and past them the client gets a
//! clear `503` (never a hang, never a silent loss).

use bytes::Bytes;
use handoff_client::backend::{AvoidBackends, ServedBy};
use handoff_client::replay::{ReplayBody, ReplayLayer, ReplayStats};
use handoff_proto::ppr;
use http::uri::Authority;
use http::{Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use tower::{BoxError, ServiceBuilder, ServiceExt};

type ClientBody = Channel<Bytes>;
type ResBody = UnsyncBoxBody<Bytes, BoxError>;

/// Origin `a` hands back after its first frame with an echo built from the request body
/// itself (the first frame, then the live rest of the `ReplayBody`), like an in-process
/// origin would; `b` answers with the body it got.
async fn origins(req: Request<ReplayBody<ClientBody>>) -> Result<Response<ResBody>, BoxError> {
    let a = Authority::from_static("a:80");
    let replay = req
        .extensions()
        .get::<AvoidBackends>()
        .is_some_and(|l| l.contains(&a));
    let mut body = req.into_body();
    if replay {
        let all = body.collect().await?.to_bytes();
        return Ok(Response::new(
            Full::new(all).map_err(|n| match n {}).boxed_unsync(),
        ));
    }
    let first = body.frame().await.unwrap()?;
    let rest = futures_util::stream::unfold(body, |mut body| async move {
        body.frame().await.map(|frame| (frame, body))
    });
    let echo = StreamBody::new(futures_util::stream::iter([Ok(first)]).chain(rest));
    let mut res = Response::new(echo.boxed_unsync());
    *res.status_mut() = ppr::status();
    res.extensions_mut().insert(ServedBy(a));
    Ok(res)
}

use futures_util::StreamExt as _;

async fn upload(layer: ReplayLayer) -> Response<impl http_body::Body<Error = BoxError>> {
    let proxy = ServiceBuilder::new().layer(layer).service_fn(origins);
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hello ")).await.unwrap();
    let pending = tokio::spawn(proxy.oneshot(Request::post("http://svc/up").body(body).unwrap()));
    tokio::task::yield_now().await;
    // Refused once the request failed (503): that is fine.
    let _ = client.send_data(Bytes::from("world")).await;
    drop(client);
    pending.await.unwrap().unwrap()
}

#[tokio::test]
async fn an_echo_larger_than_the_spool_bound_is_503() {
    let stats = ReplayStats::default();
    let layer = ReplayLayer::new()
        .max_echo_spool_bytes(3)
        .stats(stats.clone());
    let budget = layer.echo_spool_budget().clone();
    let res = upload(layer).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = res.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&text).contains("no room"),
        "{text:?}"
    );
    assert_eq!(stats.replays(), 0);
    assert_eq!(stats.failed(), 1);
    assert_eq!(budget.used(), 0);
}

#[tokio::test]
async fn an_echo_past_the_layers_budget_is_503() {
    let layer = ReplayLayer::new().max_total_echo_spool_bytes(5);
    let res = upload(layer).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn within_the_bounds_the_same_upload_is_replayed() {
    let stats = ReplayStats::default();
    let layer = ReplayLayer::new()
        .max_echo_spool_bytes(6)
        .max_total_echo_spool_bytes(6)
        .stats(stats.clone());
    let budget = layer.echo_spool_budget().clone();
    let res = upload(layer).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "hello world"
    );
    assert_eq!(stats.spooled_bytes(), 6);
    assert_eq!(budget.used(), 0, "released with the request");
}
