//! The resumable exchange (docs/PROTOCOL.md part B), from the client's side, as one
//! sequence of steps:
//!
//! 1. **Send** the request with `Expect: 100-continue` and `Prefer: resume`, capturing the
//!    locations from the `100 Continue` or the final response. A failure before any location
//!    arrived re-sends from the first byte (the server has no state yet).
//! 2. **Complete** the body: `HEAD` on the request content for the server's offset, then
//!    `PATCH` the rest as `message/byterange`, again after every failure.
//! 3. **Fetch** the recorded response: `GET` on the response message with `Prefer: wait`,
//!    decoding `message/http`.
//!
//! A response that arrives on the original exchange is read whole, so that a cut during
//! the response falls through to step 3.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderName, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, EXPECT, RETRY_AFTER,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tokio::time::Instant;
use tower::retry::backoff::{Backoff, ExponentialBackoff, MakeBackoff};
use tower::{Service, ServiceExt};

use handoff_proto::byterange;
use handoff_proto::content_range::ContentRange;
use handoff_proto::location::Locations;
use handoff_proto::message_http::{self, decode_response_lenient, INCOMPLETE_CONTENT};
use handoff_proto::prefer::{Preferences, PREFER};

use super::body::UploadBody;
use super::error::{ResumeError, Step};
use super::event::ResumeEvent;
use super::layer::{Config, Release};
use super::locations::{self, Captured};
use super::response_body::{OnEnd, ResponseBody};
use super::source::Source;
use super::ResumeReport;
use crate::BoxError;

/// The most bytes read of a `HEAD` or `PATCH` answer.
const SMALL_BODY: usize = 64 * 1024;

/// Request headers that name the party, carried to the operation's resources (the server
/// binds an operation to its creator, docs/PROTOCOL.md part B.7).
const CREDENTIALS: [HeaderName; 2] = [AUTHORIZATION, COOKIE];

/// One resumable request in progress.
pub(crate) struct Flow<S> {
    inner: S,
    config: Config,
    head: http::request::Parts,
    source: Arc<dyn Source>,
    deadline: Instant,
    backoff: ExponentialBackoff,
    report: ResumeReport,
    failures: u32,
    /// The absolute offset of the next byte the body being sent hands over.
    position: Arc<AtomicU64>,
    /// The furthest offset ever handed over: bytes beyond what the server holds up to here
    /// were in flight.
    furthest: u64,
    /// The last offset a `HEAD` reported.
    offset: u64,
    /// Send `Content-Range: a-b/len` without the unit (for servers that only accept that).
    unitless: bool,
}

/// How step 1 ended.
enum Sent<B> {
    /// A final response, with the locations if the server published any.
    Answered(Response<B>, Option<Locations>),
    /// The exchange failed after the locations arrived.
    Interrupted(Locations),
}

/// What an exchange with the inner service gave.
enum Exchange<B> {
    Answered(Response<B>),
    Failed(BoxError),
}

impl<S, B> Flow<S>
where
    S: Service<Request<UploadBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    pub(crate) fn new(
        inner: S,
        config: Config,
        head: http::request::Parts,
        source: Arc<dyn Source>,
    ) -> Self {
        let mut maker = config.backoff.clone();
        Self {
            inner,
            deadline: Instant::now() + config.deadline,
            backoff: maker.make_backoff(),
            config,
            head,
            source,
            report: ResumeReport::default(),
            failures: 0,
            position: Arc::new(AtomicU64::new(0)),
            furthest: 0,
            offset: 0,
            unitless: false,
        }
    }

    pub(crate) async fn run(mut self) -> Result<Response<ResponseBody<B>>, ResumeError> {
        let locations = match self.send().await? {
            Sent::Answered(response, None) => {
                let mut response = response.map(ResponseBody::live);
                response.extensions_mut().insert(self.report);
                return Ok(response);
            }
            Sent::Answered(response, Some(locations)) => {
                match read_whole(response, self.config.max_response_bytes).await {
                    Ok(response) => return Ok(self.deliver(response, &locations)),
                    // Cut during the response: the recorded copy completes it.
                    Err(error) => {
                        tracing::debug!(%error, "resumable response cut; fetching the recorded one");
                        locations
                    }
                }
            }
            Sent::Interrupted(locations) => {
                self.complete(&locations).await?;
                locations
            }
        };
        self.emit(ResumeEvent::Fetching);
        let response = self.fetch(&locations).await?;
        self.report.fetched = true;
        Ok(self.deliver(response, &locations))
    }

    /// Step 1: the request, re-sent from the start while no location arrived.
    async fn send(&mut self) -> Result<Sent<B>, ResumeError> {
        loop {
            let captured = Captured::default();
            let request = self.first_request(&captured)?;
            match self.exchange(Step::Send, request).await? {
                Exchange::Answered(response) => {
                    let base = &self.head.uri;
                    // Locations that cannot be used do not spoil a response that arrived:
                    // the layer never fails a request that succeeded without it.
                    let published = match locations::read(response.headers(), base) {
                        Ok(Some(found)) => Some(found),
                        Ok(None) => captured.get().and_then(Result::ok),
                        Err(what) => {
                            tracing::warn!(%what, "ignoring the locations of a response");
                            None
                        }
                    };
                    self.note_sent();
                    return Ok(Sent::Answered(response, published));
                }
                Exchange::Failed(error) => {
                    let sent = self.note_sent();
                    match captured.get() {
                        Some(Ok(found)) => return Ok(Sent::Interrupted(found)),
                        Some(Err(what)) => return Err(ResumeError::protocol(Step::Send, what)),
                        None => {}
                    }
                    // No location arrived: the server holds no state the client could name,
                    // so the request starts over (part B.1). A resumable server publishes its
                    // locations before it reads a byte of the body, so only a `100 Continue`
                    // lost on the way back while the body still got through could leave an
                    // operation behind; that one ends with its idle timeout.
                    self.retry_after_failure(Step::Send, error).await?;
                    self.report.restarts += 1;
                    self.report.bytes_resent += sent;
                    self.emit(ResumeEvent::Restarting { resent: sent });
                }
            }
        }
    }

    /// Step 2: `HEAD` for the offset, `PATCH` from it, until the server holds every byte.
    async fn complete(&mut self, locations: &Locations) -> Result<(), ResumeError> {
        let Some(target) = locations.request_content.clone() else {
            // `resume=ignore-incomplete` servers publish no request content: the interrupted
            // body cannot be completed, but the response (the operation's failure) can be
            // fetched.
            return Ok(());
        };
        let len = self.source.len_hint();
        loop {
            let Some((held, complete)) = self.head(&target).await? else {
                continue;
            };
            if complete || Some(held) == len {
                return Ok(());
            }
            let Some(len) = len else {
                return Err(ResumeError::source(
                    Step::Patch,
                    "a body of unknown length cannot be completed".into(),
                ));
            };
            if self.patch(&target, held, len).await? {
                return Ok(());
            }
        }
    }

    /// One `HEAD`: `Some((held, complete))`, or `None` after a failure worth a retry.
    async fn head(&mut self, target: &Uri) -> Result<Option<(u64, bool)>, ResumeError> {
        let request = self.protocol_request(Method::HEAD, target, UploadBody::empty());
        let response = match self.exchange(Step::Head, request).await? {
            Exchange::Answered(response) => response,
            Exchange::Failed(error) => {
                self.retry_after_failure(Step::Head, error).await?;
                return Ok(None);
            }
        };
        let status = response.status();
        if status.is_server_error() {
            self.retry_after_failure(Step::Head, format!("HEAD answered {status}").into())
                .await?;
            return Ok(None);
        }
        // `299 Incomplete Content` or another 2xx carries the offset (part C, clients).
        if !status.is_success() {
            return Err(ResumeError::refused(Step::Head, status, b""));
        }
        let held = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ResumeError::protocol(Step::Head, "answered HEAD without a Content-Length")
            })?;
        if held > self.furthest {
            return Err(ResumeError::protocol(
                Step::Head,
                format!("claims {held} bytes, but only {} were sent", self.furthest),
            ));
        }
        if held < self.offset {
            return Err(ResumeError::protocol(
                Step::Head,
                format!(
                    "now holds {held} bytes, fewer than the {} it held before",
                    self.offset
                ),
            ));
        }
        self.offset = held;
        self.source.release(held);
        let complete =
            status.as_u16() != INCOMPLETE_CONTENT && self.source.len_hint() == Some(held);
        Ok(Some((held, complete)))
    }

    /// One `PATCH` of the bytes from `held` on; `true` once the body is complete.
    async fn patch(&mut self, target: &Uri, held: u64, len: u64) -> Result<bool, ResumeError> {
        let data = self
            .source
            .read_from(held)
            .map_err(|error| ResumeError::source(Step::Patch, error))?;
        let range = ContentRange::new(held, len - 1, Some(len))
            .map_err(|error| ResumeError::source(Step::Patch, error.to_string().into()))?;
        let part = self.part_head(&range);
        let part_len = part.len() as u64 + (len - held);
        self.position.store(held, Ordering::Relaxed);
        self.report.resumes += 1;
        let resent = self.furthest.saturating_sub(held);
        self.report.bytes_resent += resent;
        self.emit(ResumeEvent::Resuming { from: held, resent });
        let body = UploadBody::new(part, data, Some(len - held), self.position.clone())
            .with_observer(self.config.observer.clone());
        let mut request = self.protocol_request(Method::PATCH, target, body);
        let headers = request.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(byterange::CONTENT_TYPE),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(part_len));
        let outcome = self.exchange(Step::Patch, request).await?;
        self.note_sent();
        let response = match outcome {
            Exchange::Answered(response) => response,
            Exchange::Failed(error) => {
                self.retry_after_failure(Step::Patch, error).await?;
                return Ok(false);
            }
        };
        let status = response.status();
        let body = read_small(response.into_body()).await;
        match status.as_u16() {
            INCOMPLETE_CONTENT => Ok(false),
            200..=299 => Ok(true),
            // Another writer still holds the body (our own cut connection, not yet noticed).
            409 => {
                self.retry_after_failure(
                    Step::Patch,
                    "the server is still busy with the body".into(),
                )
                .await?;
                Ok(false)
            }
            // Servers that only accept the unit-less `Content-Range: a-b/len` (part C): one
            // retry in that form.
            400 if !self.unitless => {
                tracing::debug!("PATCH refused; retrying with a unit-less Content-Range");
                self.unitless = true;
                Ok(false)
            }
            500..=599 => {
                self.retry_after_failure(Step::Patch, format!("PATCH answered {status}").into())
                    .await?;
                Ok(false)
            }
            _ => Err(ResumeError::refused(Step::Patch, status, &body)),
        }
    }

    /// Step 3: the recorded response.
    async fn fetch(&mut self, locations: &Locations) -> Result<Response<Bytes>, ResumeError> {
        let Some(target) = locations.response_message.clone() else {
            return Err(ResumeError::protocol(
                Step::Fetch,
                "published no response-message location",
            ));
        };
        loop {
            let mut request = self.protocol_request(Method::GET, &target, UploadBody::empty());
            let wait = Preferences::new().with_wait(self.config.wait);
            request.headers_mut().insert(PREFER, wait.to_header_value());
            let response = match self.exchange(Step::Fetch, request).await? {
                Exchange::Answered(response) => response,
                Exchange::Failed(error) => {
                    self.retry_after_failure(Step::Fetch, error).await?;
                    continue;
                }
            };
            let status = response.status();
            match status.as_u16() {
                200 => {
                    let is_message = response
                        .headers()
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| {
                            v.split(';')
                                .next()
                                .unwrap_or("")
                                .trim()
                                .eq_ignore_ascii_case(message_http::CONTENT_TYPE)
                        });
                    if !is_message {
                        return Err(ResumeError::protocol(
                            Step::Fetch,
                            "answered the response message with something other than message/http",
                        ));
                    }
                    let document =
                        match Limited::new(response.into_body(), self.config.max_response_bytes)
                            .collect()
                            .await
                        {
                            Ok(collected) => collected.to_bytes(),
                            Err(error) => {
                                self.retry_after_failure(Step::Fetch, error).await?;
                                continue;
                            }
                        };
                    return decode_response_lenient(&document).map_err(|error| {
                        ResumeError::protocol(
                            Step::Fetch,
                            format!("sent a malformed message/http: {error}"),
                        )
                    });
                }
                202 => {
                    let pause = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map_or(Duration::from_millis(200), Duration::from_secs)
                        .min(Duration::from_secs(30));
                    self.sleep(Step::Fetch, pause).await?;
                }
                500..=599 => {
                    self.retry_after_failure(Step::Fetch, format!("GET answered {status}").into())
                        .await?
                }
                _ => {
                    let body = read_small(response.into_body()).await;
                    return Err(ResumeError::refused(Step::Fetch, status, &body));
                }
            }
        }
    }

    /// The caller's response, releasing the stored copy as configured.
    fn deliver(
        &self,
        response: Response<Bytes>,
        locations: &Locations,
    ) -> Response<ResponseBody<B>> {
        let release = locations.response_message.clone().map(|target| {
            let request = self.protocol_request(Method::DELETE, &target, UploadBody::empty());
            let inner = self.inner.clone();
            Box::new(move || {
                tokio::spawn(async move {
                    if let Err(error) = inner.oneshot(request).await {
                        let error: BoxError = error.into();
                        tracing::debug!(%error, "could not release the stored response");
                    }
                });
            }) as OnEnd
        });
        let on_end = match self.config.release {
            Release::AfterBody => release,
            Release::Immediately => {
                if let Some(release) = release {
                    release();
                }
                None
            }
            Release::Never => None,
        };
        let (mut parts, body) = response.into_parts();
        parts.extensions.insert(self.report);
        Response::from_parts(parts, ResponseBody::stored(body, on_end))
    }

    /// The request with its own head, `Expect: 100-continue`, `Prefer: resume`, and the
    /// body from the first byte.
    fn first_request(&mut self, captured: &Captured) -> Result<Request<UploadBody>, ResumeError> {
        let data = self
            .source
            .read_from(0)
            .map_err(|error| ResumeError::source(Step::Send, error))?;
        self.position.store(0, Ordering::Relaxed);
        let len = self.source.len_hint();
        let body = UploadBody::new(Bytes::new(), data, len, self.position.clone())
            .with_gate(captured.gate(self.config.expect_timeout))
            .with_observer(self.config.observer.clone());
        let mut request = Request::new(body);
        *request.method_mut() = self.head.method.clone();
        *request.uri_mut() = self.head.uri.clone();
        *request.version_mut() = self.head.version;
        *request.headers_mut() = self.head.headers.clone();
        let headers = request.headers_mut();
        headers.insert(EXPECT, HeaderValue::from_static("100-continue"));
        if let Some(len) = len {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        add_resume_preference(headers, self.source.buffered());
        captured.watch(&mut request, self.source.clone());
        Ok(request)
    }

    /// A request to one of the operation's resources, with the original's credentials.
    fn protocol_request(
        &self,
        method: Method,
        target: &Uri,
        body: UploadBody,
    ) -> Request<UploadBody> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = target.clone();
        for name in CREDENTIALS {
            for value in self.head.headers.get_all(&name) {
                request.headers_mut().append(name.clone(), value.clone());
            }
        }
        request
    }

    /// The `message/byterange` part head: `Content-Range` and `Content-Length`.
    fn part_head(&self, range: &ContentRange) -> Bytes {
        let text = if self.unitless {
            range.to_string().trim_start_matches("bytes ").to_owned()
        } else {
            range.to_string()
        };
        Bytes::from(format!(
            "Content-Range: {text}\r\nContent-Length: {}\r\n\r\n",
            range.len()
        ))
    }

    /// One exchange, within the deadline.
    async fn exchange(
        &mut self,
        step: Step,
        request: Request<UploadBody>,
    ) -> Result<Exchange<B>, ResumeError> {
        self.report.attempts += 1;
        let call = self.inner.clone().oneshot(request);
        match tokio::time::timeout_at(self.deadline, call).await {
            Ok(Ok(response)) => Ok(Exchange::Answered(response)),
            Ok(Err(error)) => Ok(Exchange::Failed(error.into())),
            Err(_elapsed) => Err(ResumeError::deadline(step)),
        }
    }

    /// Counts a failure and waits the next backoff, or fails when the budget is spent.
    async fn retry_after_failure(
        &mut self,
        step: Step,
        error: BoxError,
    ) -> Result<(), ResumeError> {
        self.failures += 1;
        if self.failures > self.config.max_retries {
            return Err(ResumeError::exhausted(step, Some(error)));
        }
        tracing::debug!(%error, %step, failures = self.failures, "resumable request: retrying");
        self.emit(ResumeEvent::Interrupted {
            step,
            error: error.to_string(),
        });
        let pause = self.backoff.next_backoff();
        match tokio::time::timeout_at(self.deadline, pause).await {
            Ok(()) => Ok(()),
            Err(_elapsed) => Err(ResumeError::deadline(step)),
        }
    }

    async fn sleep(&mut self, step: Step, pause: Duration) -> Result<(), ResumeError> {
        if Instant::now() + pause > self.deadline {
            return Err(ResumeError::deadline(step));
        }
        tokio::time::sleep(pause).await;
        Ok(())
    }

    fn emit(&self, event: ResumeEvent) {
        if let Some(observer) = &self.config.observer {
            observer.emit(event);
        }
    }

    /// Records how far the last body got; returns that offset.
    fn note_sent(&mut self) -> u64 {
        let at = self.position.load(Ordering::Relaxed);
        self.furthest = self.furthest.max(at);
        at
    }
}

/// Adds `resume` (and, for a buffered source, `acknowledge`) to the request's preferences,
/// keeping the ones the caller set.
fn add_resume_preference(headers: &mut HeaderMap, acknowledge: bool) {
    let preferences = Preferences::from_headers(headers).unwrap_or_default();
    let mut wanted = Vec::new();
    if preferences.get("resume").is_none() {
        wanted.push("resume");
    }
    if acknowledge && preferences.get("acknowledge").is_none() {
        wanted.push("acknowledge");
    }
    if !wanted.is_empty() {
        let value =
            HeaderValue::try_from(wanted.join(", ")).expect("tokens are valid header values");
        headers.append(PREFER, value);
    }
}

/// A small answer's body, for error messages; empty if it fails.
async fn read_small<B>(body: B) -> Bytes
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, SMALL_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    }
}

/// The response read whole, or why it could not be.
async fn read_whole<B>(response: Response<B>, max: usize) -> Result<Response<Bytes>, BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    let bytes = Limited::new(body, max).collect().await?.to_bytes();
    Ok(Response::from_parts(parts, bytes))
}
