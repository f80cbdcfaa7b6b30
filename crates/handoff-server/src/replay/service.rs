//! [`PartialPostReplay`]: the middleware.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::control::ReplayControl;
use super::echo::EchoHead;
use super::future::ResponseFuture;
use super::layer::PartialPostReplayLayer;
use super::predicate::{ReplayPredicate, ViaReplayProxy};
use super::recorder::{RecordedBody, Recorder};
use super::ResponseBody;
use crate::{BoxError, Shutdown};

/// Answers requests whose body is still arriving with `379 Partial POST Replay` once
/// graceful shutdown begins. See the [module docs](super) for an example.
#[derive(Clone)]
pub struct PartialPostReplay<S, P = ViaReplayProxy> {
    inner: S,
    config: PartialPostReplayLayer<P>,
}

impl<S> PartialPostReplay<S> {
    /// Wraps `inner`, handing back on `shutdown` every request with an incomplete body that
    /// came through a replay proxy ([`ViaReplayProxy`]).
    pub fn new(inner: S, shutdown: Shutdown) -> Self {
        Self::from_layer(inner, PartialPostReplayLayer::new(shutdown))
    }

    /// The layer form of [`new`](Self::new).
    pub fn layer(shutdown: Shutdown) -> PartialPostReplayLayer {
        PartialPostReplayLayer::new(shutdown)
    }
}

impl<S, P> PartialPostReplay<S, P> {
    pub(super) fn from_layer(inner: S, config: PartialPostReplayLayer<P>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, P, ReqBody, ResBody> Service<Request<ReqBody>> for PartialPostReplay<S, P>
where
    S: Service<Request<RecordedBody<ReqBody>>, Response = Response<ResBody>>,
    P: ReplayPredicate,
    ReqBody: Body<Data = Bytes>,
    ReqBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody, ReqBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (mut head, body) = request.into_parts();
        // Part A, server 5: a request whose body is already complete is never replayed.
        let eligible = !body.is_end_stream() && self.config.predicate.should_replay(&head);
        let control = ReplayControl::new(eligible);
        head.extensions.insert(control.clone());
        if !eligible {
            let request = Request::from_parts(head, RecordedBody::plain(body));
            return ResponseFuture::passthrough(self.inner.call(request));
        }

        let echo_head = EchoHead {
            method: head.method.clone(),
            uri: head.uri.clone(),
            version: head.version,
            headers: head.headers.clone(),
        };
        let recorder = Arc::new(Recorder::new(body, control, &self.config.spool));
        let request = Request::from_parts(head, RecordedBody::recorded(recorder.clone()));
        ResponseFuture::watching(
            self.inner.call(request),
            recorder,
            echo_head,
            self.config.shutdown.signalled(),
        )
    }
}

impl<S: fmt::Debug, P> fmt::Debug for PartialPostReplay<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartialPostReplay")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http::{Request, Response, StatusCode, Version};
    use http_body_util::channel::{Channel, Sender};
    use http_body_util::{BodyExt, Full};
    use tower::{service_fn, BoxError, Layer, Service as _, ServiceBuilder, ServiceExt};

    use super::*;
    use crate::replay::{HandedOff, ReplayControl};

    type Upload = Sender<Bytes, BoxError>;

    fn upload(uri: &str) -> (Upload, Request<Channel<Bytes, BoxError>>) {
        let (sender, body) = Channel::new(8);
        let request = Request::post(uri)
            .header("content-type", "application/octet-stream")
            // What a replay proxy sets on a first attempt (the default predicate's mark).
            .header("partial-post-replay", "0")
            .body(body)
            .unwrap();
        (sender, request)
    }

    type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

    /// An upload handler that reads everything, counting the answers it produced.
    #[derive(Clone, Default)]
    struct Collect {
        answered: Arc<AtomicUsize>,
    }

    impl<B> tower::Service<Request<B>> for Collect
    where
        B: http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static,
    {
        type Response = Response<Full<Bytes>>;
        type Error = BoxError;
        type Future = BoxFuture<Result<Response<Full<Bytes>>, BoxError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<B>) -> Self::Future {
            let answered = self.answered.clone();
            Box::pin(async move {
                let body = request.into_body().collect().await?.to_bytes();
                answered.fetch_add(1, Ordering::SeqCst);
                Ok(Response::new(Full::new(body)))
            })
        }
    }

    fn collecting(answered: Arc<AtomicUsize>) -> Collect {
        Collect { answered }
    }

    #[tokio::test]
    async fn transparent_until_shutdown() {
        let answered = Arc::new(AtomicUsize::new(0));
        let service = PartialPostReplay::new(collecting(answered.clone()), Shutdown::new());
        let (mut sender, request) = upload("/upload");
        let response = tokio::spawn(service.oneshot(request));
        sender.send_data(Bytes::from_static(b"abc")).await.unwrap();
        drop(sender);
        let response = response.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "abc"
        );
        assert_eq!(answered.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn shutdown_hands_back_consumed_and_arriving_bytes() {
        let answered = Arc::new(AtomicUsize::new(0));
        let shutdown = Shutdown::new();
        let service = PartialPostReplay::new(collecting(answered.clone()), shutdown.clone());
        let (mut sender, request) = upload("http://origin.test/upload?x=1");
        let response = tokio::spawn(service.oneshot(request));
        sender.send_data(Bytes::from_static(b"one ")).await.unwrap();
        sender.send_data(Bytes::from_static(b"two ")).await.unwrap();
        tokio::task::yield_now().await;
        shutdown.trigger();
        let response = response.await.unwrap().unwrap();

        assert_eq!(response.status().as_u16(), 379);
        let headers = response.headers();
        assert_eq!(headers["echo-content-type"], "application/octet-stream");
        assert_eq!(headers["pseudo-echo-method"], "POST");
        assert_eq!(headers["pseudo-echo-scheme"], "http");
        assert_eq!(headers["pseudo-echo-authority"], "origin.test");
        assert_eq!(headers["pseudo-echo-path"], "/upload?x=1");
        assert_eq!(headers["connection"], "close");
        assert!(headers.get("content-length").is_none());
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .unwrap();
        assert_eq!(reason.as_bytes(), b"Partial POST Replay");

        sender
            .send_data(Bytes::from_static(b"three"))
            .await
            .unwrap();
        drop(sender);
        let echo = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(echo, "one two three");
        assert_eq!(
            answered.load(Ordering::SeqCst),
            0,
            "the handler was abandoned"
        );
    }

    #[tokio::test]
    async fn shutdown_before_the_request_hands_it_back_at_once() {
        let shutdown = Shutdown::new();
        shutdown.trigger();
        let service = PartialPostReplay::new(collecting(Arc::default()), shutdown);
        let (mut sender, request) = upload("/upload");
        sender
            .send_data(Bytes::from_static(b"early"))
            .await
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), 379);
        drop(sender);
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "early"
        );
    }

    #[tokio::test]
    async fn requests_no_replay_proxy_marked_drain() {
        // Issue 10 item 8: without `Partial-Post-Replay`, nobody in front understands 379.
        let shutdown = Shutdown::new();
        let service = ServiceBuilder::new()
            .layer(PartialPostReplayLayer::new(shutdown.clone()))
            .service(collecting(Arc::default()));
        let (mut sender, mut request) = upload("/");
        request.headers_mut().remove("partial-post-replay");
        let pending = tokio::spawn(service.oneshot(request));
        sender.send_data(Bytes::from_static(b"par")).await.unwrap();
        tokio::task::yield_now().await;
        shutdown.trigger();
        tokio::task::yield_now().await;
        sender.send_data(Bytes::from_static(b"tial")).await.unwrap();
        drop(sender);
        let response = pending.await.unwrap().unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "drained, not handed back"
        );
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "partial"
        );
    }

    #[tokio::test]
    async fn complete_bodies_drain() {
        let shutdown = Shutdown::new();
        let service = ServiceBuilder::new()
            .layer(PartialPostReplayLayer::new(shutdown.clone()))
            .service(collecting(Arc::default()));
        shutdown.trigger();
        let body = Full::new(Bytes::from_static(b"whole")).map_err(BoxError::from);
        let request = Request::post("/").body(body).unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "whole"
        );
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_drains() {
        let shutdown = Shutdown::new();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = Arc::new(tokio::sync::Mutex::new(Some(released)));
        let service = PartialPostReplay::new(
            service_fn(
                move |request: Request<RecordedBody<Channel<Bytes, BoxError>>>| {
                    let released = released.clone();
                    let future: BoxFuture<_> = Box::pin(async move {
                        let wait = released.lock().await.take().unwrap();
                        let response = collecting(Arc::default()).call(request).await;
                        wait.await.ok();
                        response
                    });
                    future
                },
            ),
            shutdown.clone(),
        );
        let (mut sender, request) = upload("/");
        let response = tokio::spawn(service.oneshot(request));
        sender
            .send_data(Bytes::from_static(b"all of it"))
            .await
            .unwrap();
        drop(sender);
        tokio::task::yield_now().await;
        shutdown.trigger();
        tokio::task::yield_now().await;
        release.send(()).unwrap();
        let response = response.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "all of it"
        );
    }

    #[tokio::test]
    async fn disabled_by_the_handler_drains() {
        let shutdown = Shutdown::new();
        let service = PartialPostReplay::new(
            service_fn(|request: Request<RecordedBody<Channel<Bytes, BoxError>>>| {
                request
                    .extensions()
                    .get::<ReplayControl>()
                    .unwrap()
                    .disable();
                collecting(Arc::default()).call(request)
            }),
            shutdown.clone(),
        );
        let (mut sender, request) = upload("/");
        let response = tokio::spawn(service.oneshot(request));
        sender
            .send_data(Bytes::from_static(b"charged"))
            .await
            .unwrap();
        tokio::task::yield_now().await;
        shutdown.trigger();
        tokio::task::yield_now().await;
        drop(sender);
        let response = response.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn over_the_echo_bound_drains() {
        let shutdown = Shutdown::new();
        let service = PartialPostReplayLayer::new(shutdown.clone())
            .max_echo_bytes(4)
            .layer(collecting(Arc::default()));
        let (mut sender, request) = upload("/");
        let response = tokio::spawn(service.oneshot(request));
        sender
            .send_data(Bytes::from_static(b"12345"))
            .await
            .unwrap();
        tokio::task::yield_now().await;
        shutdown.trigger();
        tokio::task::yield_now().await;
        sender.send_data(Bytes::from_static(b"6")).await.unwrap();
        drop(sender);
        let response = response.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "123456"
        );
    }

    #[tokio::test]
    async fn within_the_echo_bound_replays() {
        let shutdown = Shutdown::new();
        let service = PartialPostReplayLayer::new(shutdown.clone())
            .max_echo_bytes(5)
            .layer(collecting(Arc::default()));
        let (mut sender, request) = upload("/");
        let response = tokio::spawn(service.oneshot(request));
        sender
            .send_data(Bytes::from_static(b"12345"))
            .await
            .unwrap();
        tokio::task::yield_now().await;
        shutdown.trigger();
        let response = response.await.unwrap().unwrap();
        assert_eq!(response.status().as_u16(), 379);
        drop(sender);
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "12345"
        );
    }

    #[tokio::test]
    async fn the_shared_budget_bounds_all_requests_together() {
        let shutdown = Shutdown::new();
        let layer = PartialPostReplayLayer::new(shutdown.clone()).max_total_echo_bytes(8);
        let service = layer.layer(collecting(Arc::default()));
        let (mut first_upload, request) = upload("/first");
        let first = tokio::spawn(service.clone().oneshot(request));
        first_upload
            .send_data(Bytes::from_static(b"12345"))
            .await
            .unwrap();
        tokio::task::yield_now().await;
        let (mut second_upload, request) = upload("/second");
        let second = tokio::spawn(service.oneshot(request));
        second_upload
            .send_data(Bytes::from_static(b"abcde"))
            .await
            .unwrap();
        tokio::task::yield_now().await;
        assert_eq!(
            layer.spool.get_budget().used(),
            5,
            "only the first request fit"
        );

        shutdown.trigger();
        let first = first.await.unwrap().unwrap();
        assert_eq!(
            first.status().as_u16(),
            379,
            "within the budget: handed back"
        );
        tokio::task::yield_now().await;
        second_upload
            .send_data(Bytes::from_static(b"f"))
            .await
            .unwrap();
        drop(second_upload);
        let second = second.await.unwrap().unwrap();
        assert_eq!(second.status(), StatusCode::OK, "over the budget: drained");
        assert_eq!(
            second.into_body().collect().await.unwrap().to_bytes(),
            "abcdef"
        );

        drop(first_upload);
        let echo = first.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(echo, "12345");
        assert_eq!(
            layer.spool.get_budget().used(),
            0,
            "sent echo frames give their budget back"
        );
    }

    type Req = Request<RecordedBody<Channel<Bytes, BoxError>>>;
    type Waiter = Arc<tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>;
    type Outcome =
        Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Sender<Result<(), HandedOff>>>>>;

    fn waiter() -> (tokio::sync::oneshot::Sender<()>, Waiter) {
        let (go, wait) = tokio::sync::oneshot::channel();
        (go, Arc::new(tokio::sync::Mutex::new(Some(wait))))
    }

    async fn wait_for(waiter: &Waiter) {
        if let Some(wait) = waiter.lock().await.take() {
            let _ = wait.await;
        }
    }

    fn body_of<B>(request: Request<B>) -> BoxFuture<Bytes>
    where
        B: http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static,
    {
        Box::pin(async move {
            match request.into_body().collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => Bytes::new(),
            }
        })
    }

    /// Reads the whole body, then goes on working until `waiter` fires.
    async fn read_then_work(
        waiter: Waiter,
        request: Req,
    ) -> Result<Response<Full<Bytes>>, BoxError> {
        let body = body_of(request).await;
        wait_for(&waiter).await;
        Ok(Response::new(Full::new(body)))
    }

    /// Claims, awaits `waiter` (the shutdown comes then), performs the effect.
    async fn claim_then_effect(
        waiter: Waiter,
        effects: Arc<AtomicUsize>,
        request: Req,
    ) -> Result<Response<Full<Bytes>>, BoxError> {
        let control = request.extensions().get::<ReplayControl>().unwrap().clone();
        control.claim().expect("not handed off yet");
        wait_for(&waiter).await;
        effects.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(Full::new(body_of(request).await)))
    }

    /// Spawns work that claims once `waiter` fires and reports the outcome.
    async fn spawn_claiming_work(
        waiter: Waiter,
        outcome: Outcome,
        request: Req,
    ) -> Result<Response<Full<Bytes>>, BoxError> {
        let control = request.extensions().get::<ReplayControl>().unwrap().clone();
        tokio::spawn(async move {
            wait_for(&waiter).await;
            let claimed = control.claim();
            if let Some(tx) = outcome.lock().unwrap().take() {
                let _ = tx.send(claimed);
            }
        });
        Ok(Response::new(Full::new(body_of(request).await)))
    }

    #[tokio::test]
    async fn a_finished_body_gives_its_budget_back_at_once() {
        // A handler still running after its body ended kept the echo record, and its share
        // of the budget, so the next request could not be replayed.
        let shutdown = Shutdown::new();
        let layer = PartialPostReplayLayer::new(shutdown.clone()).max_total_echo_bytes(8);
        let (release, waiter) = waiter();
        let service = layer.layer(service_fn(move |request| {
            read_then_work(waiter.clone(), request)
        }));
        let (mut first_upload, request) = upload("/first");
        let first = tokio::spawn(service.clone().oneshot(request));
        first_upload
            .send_data(Bytes::from_static(b"12345"))
            .await
            .unwrap();
        drop(first_upload);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            layer.spool.get_budget().used(),
            0,
            "the finished body holds nothing"
        );

        let (mut second_upload, request) = upload("/second");
        let second = tokio::spawn(service.oneshot(request));
        second_upload
            .send_data(Bytes::from_static(b"abcde"))
            .await
            .unwrap();
        tokio::task::yield_now().await;
        assert_eq!(
            layer.spool.get_budget().used(),
            5,
            "the second request fits"
        );
        shutdown.trigger();
        let second = second.await.unwrap().unwrap();
        assert_eq!(second.status().as_u16(), 379, "and can be handed back");
        drop(second_upload);
        release.send(()).unwrap();
        let first = first.await.unwrap().unwrap();
        assert_eq!(first.status(), StatusCode::OK, "the first one drains");
    }

    #[tokio::test]
    async fn a_claim_before_the_effect_keeps_the_request_across_awaits() {
        let shutdown = Shutdown::new();
        let effects = Arc::new(AtomicUsize::new(0));
        let (go, waiter) = waiter();
        let handler = {
            let effects = effects.clone();
            service_fn(move |request| claim_then_effect(waiter.clone(), effects.clone(), request))
        };
        let service = PartialPostReplay::new(handler, shutdown.clone());
        let (mut sender, request) = upload("/charge");
        let response = tokio::spawn(service.oneshot(request));
        sender.send_data(Bytes::from_static(b"pay")).await.unwrap();
        tokio::task::yield_now().await;
        shutdown.trigger();
        tokio::task::yield_now().await;
        go.send(()).unwrap();
        drop(sender);
        let response = response.await.unwrap().unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "claimed: drained, never a 379"
        );
        assert_eq!(effects.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn spawned_work_that_claims_after_the_handoff_is_refused() {
        let shutdown = Shutdown::new();
        let (go, waiter) = waiter();
        let (tx, claimed) = tokio::sync::oneshot::channel();
        let outcome = Arc::new(std::sync::Mutex::new(Some(tx)));
        let handler = service_fn(move |request| {
            spawn_claiming_work(waiter.clone(), outcome.clone(), request)
        });
        let service = PartialPostReplay::new(handler, shutdown.clone());
        let (mut sender, request) = upload("/charge");
        let response = tokio::spawn(service.oneshot(request));
        sender.send_data(Bytes::from_static(b"pay")).await.unwrap();
        tokio::task::yield_now().await;
        shutdown.trigger();
        let response = response.await.unwrap().unwrap();
        assert_eq!(response.status().as_u16(), 379);
        go.send(()).unwrap();
        assert_eq!(
            claimed.await.unwrap(),
            Err(HandedOff),
            "the effect must not run here"
        );
        drop(sender);
    }

    #[tokio::test]
    async fn predicate_rules_requests_out() {
        let shutdown = Shutdown::new();
        let service = PartialPostReplayLayer::new(shutdown.clone())
            .predicate(|head: &http::request::Parts| head.uri.path() == "/upload")
            .layer(collecting(Arc::default()));
        let (mut sender, request) = upload("/other");
        let response = tokio::spawn(service.clone().oneshot(request));
        sender.send_data(Bytes::from_static(b"a")).await.unwrap();
        tokio::task::yield_now().await;
        shutdown.trigger();
        tokio::task::yield_now().await;
        drop(sender);
        assert_eq!(response.await.unwrap().unwrap().status(), StatusCode::OK);

        let (sender, request) = upload("/upload");
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), 379);
        drop(sender);
    }

    #[tokio::test]
    async fn http2_gets_no_connection_header() {
        let shutdown = Shutdown::new();
        shutdown.trigger();
        let service = PartialPostReplay::new(collecting(Arc::default()), shutdown);
        let (sender, mut request) = upload("http://origin.test/upload");
        *request.version_mut() = Version::HTTP_2;
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), 379);
        assert!(response.headers().get("connection").is_none());
        drop(sender);
    }

    #[tokio::test]
    async fn handler_reads_after_handoff_fail() {
        let shutdown = Shutdown::new();
        let (body_tx, body_rx) = tokio::sync::oneshot::channel();
        let body_tx = std::sync::Mutex::new(Some(body_tx));
        let service = PartialPostReplay::new(
            service_fn(
                move |request: Request<RecordedBody<Channel<Bytes, BoxError>>>| {
                    // Work the handler spawned outlives the handler's future.
                    let body_tx = body_tx.lock().unwrap().take().unwrap();
                    let _ = body_tx.send(request.into_body());
                    std::future::pending::<Result<Response<Full<Bytes>>, BoxError>>()
                },
            ),
            shutdown.clone(),
        );
        let (sender, request) = upload("/");
        let response = tokio::spawn(service.oneshot(request));
        let mut body = body_rx.await.unwrap();
        shutdown.trigger();
        assert_eq!(response.await.unwrap().unwrap().status().as_u16(), 379);
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.downcast_ref::<crate::replay::HandedOff>().is_some());
        drop(sender);
    }
}
