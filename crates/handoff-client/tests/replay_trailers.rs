//! Issue 10, item 7: a client's request trailers survive a replay.
//!
//! A `379`'s echo carries body bytes only. An origin may hand a request back after it
//! received the client's trailers (its handler had not read to the end yet), so the layer
//! keeps them and the replay sends them again after the echo and the rest of the body.

use bytes::Bytes;
use handoff_client::backend::{AvoidBackends, ServedBy};
use handoff_client::replay::{ReplayBody, ReplayLayer};
use handoff_proto::ppr;
use http::uri::Authority;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tower::{BoxError, ServiceBuilder, ServiceExt};

type ClientBody = Channel<Bytes>;
type ResBody = UnsyncBoxBody<Bytes, BoxError>;

/// How the fake origins read a request body.
#[derive(Clone, Copy)]
enum Reading {
    /// To its end, polling past the trailers.
    ToTheEnd,
    /// Up to the trailers frame, never polling for the end, as hyper does.
    UntilTheTrailers,
}

/// The body's bytes and its `x-checksum` trailer.
async fn read(
    mut body: ReplayBody<ClientBody>,
    reading: Reading,
) -> Result<(Bytes, Option<String>), BoxError> {
    let mut data = Vec::new();
    let mut trailer = None;
    while let Some(frame) = body.frame().await {
        match frame?.into_data() {
            Ok(bytes) => data.extend_from_slice(&bytes),
            Err(frame) => {
                trailer = frame
                    .trailers_ref()
                    .and_then(|t| t.get("x-checksum"))
                    .map(|v| v.to_str().unwrap().to_owned());
                if let Reading::UntilTheTrailers = reading {
                    break;
                }
            }
        }
    }
    Ok((Bytes::from(data), trailer))
}

fn text(text: String) -> ResBody {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Origin `a` reads the whole body, trailers included, then hands it back; origin `b`
/// answers with what it received: the body and its `x-checksum` trailer.
async fn origins(
    req: Request<ReplayBody<ClientBody>>,
    reading: Reading,
) -> Result<Response<ResBody>, BoxError> {
    let a = Authority::from_static("a:80");
    let replay = req
        .extensions()
        .get::<AvoidBackends>()
        .is_some_and(|l| l.contains(&a));
    let (data, trailer) = read(req.into_body(), reading).await?;
    if !replay {
        assert_eq!(trailer.as_deref(), Some("abc123"), "a got the trailers");
        let echo = Full::new(data).map_err(|never| match never {});
        let mut res = Response::new(echo.boxed_unsync());
        *res.status_mut() = ppr::status();
        res.extensions_mut().insert(ServedBy(a));
        return Ok(res);
    }
    let body = format!(
        "{} {}",
        String::from_utf8_lossy(&data),
        trailer.unwrap_or_default()
    );
    Ok(Response::new(text(body)))
}

/// Sends "hello" and an `x-checksum: abc123` trailer through the layer; `b`'s answer.
async fn upload(reading: Reading) -> Bytes {
    let proxy = ServiceBuilder::new()
        .layer(ReplayLayer::new())
        .service_fn(move |req| origins(req, reading));
    let (mut client, body) = ClientBody::new(4);
    client.send_data(Bytes::from("hello")).await.unwrap();
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc123"));
    client.send_trailers(trailers).await.unwrap();
    drop(client);
    let req = Request::post("http://svc.internal/up").body(body).unwrap();
    let res = proxy.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn trailers_the_origin_received_are_sent_again_with_the_replay() {
    // Without the kept copy, `b` would get "hello" and no trailer.
    assert_eq!(upload(Reading::ToTheEnd).await, "hello abc123");
}

/// Like hyper does, `a` and `b` stop reading at the trailers frame (they never poll for the
/// end): the replay must still deliver the trailers after the echo.
#[tokio::test]
async fn trailers_reach_a_replay_whose_upstream_stops_at_them() {
    assert_eq!(upload(Reading::UntilTheTrailers).await, "hello abc123");
}
