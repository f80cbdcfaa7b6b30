//! The per-connection service that hands each request its connection's [`InterimHandle`].

use std::task::{Context, Poll};

use http::Request;

use super::{InterimHandle, InterimStream};

/// Inserts the connection's [`InterimHandle`] into every request's extensions.
///
/// Implements both [`tower::Service`] and [`hyper::service::Service`], whichever the inner
/// service does. On HTTP/2 the handle is inserted too, but refuses to arm. Built by
/// [`wrap`] or, with axum, by `WithInterimHandle`. See the
/// [module docs](super).
#[derive(Debug, Clone)]
pub struct AddInterimHandle<S> {
    inner: S,
    handle: InterimHandle,
}

impl<S> AddInterimHandle<S> {
    /// Serves `inner` with `handle` in every request's extensions.
    pub fn new(inner: S, handle: InterimHandle) -> Self {
        Self { inner, handle }
    }

    /// The handle this service inserts.
    pub fn handle(&self) -> &InterimHandle {
        &self.handle
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn prepare<B>(&self, mut request: Request<B>) -> Request<B> {
        self.handle.on_request(request.version());
        request.extensions_mut().insert(self.handle.clone());
        request
    }
}

impl<S, B> tower::Service<Request<B>> for AddInterimHandle<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let request = self.prepare(request);
        self.inner.call(request)
    }
}

impl<S, B> hyper::service::Service<Request<B>> for AddInterimHandle<S>
where
    S: hyper::service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: Request<B>) -> Self::Future {
        self.inner.call(self.prepare(request))
    }
}

/// Wraps one accepted connection and its service: the one line for hyper-util's
/// `server::conn::auto::Builder` (or hyper's own connection builders).
///
/// The stream goes to `TokioIo::new`, the service to `serve_connection`; every request the
/// service sees carries the connection's [`InterimHandle`]. See the [module docs](super).
pub fn wrap<IO, S>(io: IO, service: S) -> (InterimStream<IO>, AddInterimHandle<S>) {
    let io = InterimStream::new(io);
    let service = AddInterimHandle::new(service, io.handle());
    (io, service)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{service_fn, ServiceExt};

    async fn answer<B>(request: Request<B>) -> Result<bool, Infallible> {
        let handle = request.extensions().get::<InterimHandle>().unwrap();
        Ok(handle.arm_continue(&http::HeaderMap::new()))
    }

    #[tokio::test]
    async fn every_request_gets_the_connection_handle_http2_refuses_it() {
        let (io, service) = wrap(tokio::io::empty(), service_fn(answer));
        let h1 = Request::new(());
        assert!(service.clone().oneshot(h1).await.unwrap());
        assert!(io.handle().is_armed(), "same connection, same state");

        let mut h2 = Request::new(());
        *h2.version_mut() = http::Version::HTTP_2;
        assert!(!service.clone().oneshot(h2).await.unwrap());
        assert!(!io.handle().is_armed());
        assert!(!service.oneshot(Request::new(())).await.unwrap());
    }

    #[tokio::test]
    async fn also_a_hyper_service() {
        async fn respond(request: Request<String>) -> Result<http::Response<String>, Infallible> {
            let armed = answer(request).await?;
            Ok(http::Response::new(armed.to_string()))
        }
        let hyper_service = hyper::service::service_fn(respond);
        let (_io, service) = wrap(tokio::io::empty(), hyper_service);
        let armed = hyper::service::Service::call(&service, Request::new(String::new()));
        assert_eq!(armed.await.unwrap().into_body(), "true");
    }
}
