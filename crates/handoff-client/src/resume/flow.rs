//! The resumable exchange (docs/PROTOCOL.md part B), from the client's side, as one
//! sequence of steps:
//!
//! 1. **Send** the request with `Expect: 100-continue` and `Prefer: resume`; the body waits
//!    for the `100 Continue`, which carries the locations. A failure before that `100` and
//!    before any body byte was handed over sends the request again from the start: the
//!    server cannot have run it. Any other failure without locations is the caller's error,
//!    as it would be without the layer (the server may have run the request).
//! 2. **Complete** the body: `HEAD` on the request content for the server's offset, then
//!    `PATCH` the rest as `message/byterange`, again after every failure.
//! 3. **Fetch** the recorded response: `GET` on the response message with `Prefer: wait`,
//!    decoding `message/http`.
//!
//! A response that arrives on the original exchange is read whole, so that a cut during
//! the response falls through to step 3. Everything runs within the overall deadline.

use std::error::Error as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderName, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, EXPECT, HOST, RETRY_AFTER,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::time::Instant;
use tower::retry::backoff::{Backoff, ExponentialBackoff, MakeBackoff};
use tower::{Service, ServiceExt};

use handoff_proto::byterange;
use handoff_proto::content_range::ContentRange;
use handoff_proto::location::Locations;
use handoff_proto::message_http::{self, decode_response_lenient, INCOMPLETE_CONTENT};
use handoff_proto::prefer::{Preferences, PREFER};

use super::body::UploadBody;
use super::error::{source_failure, ResumeError, Step};
use super::event::ResumeEvent;
use super::layer::{Config, Release};
use super::locations::{self, Captured};
use super::response_body::{OnEnd, ResponseBody};
use super::source::Source;
use super::ResumeReport;
use crate::BoxError;

/// The most bytes read of a `HEAD` or `PATCH` answer.
const SMALL_BODY: usize = 64 * 1024;

/// How long a release (`DELETE`) of the stored response may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Request headers carried to the operation's resources: the party (the server binds an
/// operation to its creator, docs/PROTOCOL.md part B.7) and the virtual host.
const CARRIED: [HeaderName; 3] = [AUTHORIZATION, COOKIE, HOST];

/// One resumable request in progress.
pub(crate) struct Flow<S> {
    inner: S,
    config: Config,
    head: http::request::Parts,
    /// The caller's extensions, for the first attempt.
    extensions: Option<http::Extensions>,
    source: Arc<dyn Source>,
    deadline: Instant,
    backoff: ExponentialBackoff,
    report: ResumeReport,
    failures: u32,
    /// The absolute offset of the next byte the body being sent hands over.
    position: Arc<AtomicU64>,
    /// The furthest offset handed over since the server last started over: bytes beyond
    /// what the server holds up to here were in flight.
    furthest: u64,
    /// The last offset a `HEAD` reported.
    offset: u64,
    /// Send `Expect: 100-continue` (dropped after a `417`).
    expect: bool,
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
        mut head: http::request::Parts,
        source: Arc<dyn Source>,
    ) -> Self {
        let extensions = std::mem::take(&mut head.extensions);
        Self {
            inner,
            deadline: deadline_after(config.deadline),
            backoff: config.backoff().make_backoff(),
            config,
            head,
            extensions: Some(extensions),
            source,
            report: ResumeReport::default(),
            failures: 0,
            position: Arc::new(AtomicU64::new(0)),
            furthest: 0,
            offset: 0,
            expect: true,
            unitless: false,
        }
    }

    pub(crate) async fn run(mut self) -> Result<Response<ResponseBody<B>>, ResumeError> {
        let deadline = self.deadline;
        match tokio::time::timeout_at(deadline, self.steps()).await {
            Ok(result) => result,
            Err(_elapsed) => Err(ResumeError::deadline(None)),
        }
    }

    async fn steps(&mut self) -> Result<Response<ResponseBody<B>>, ResumeError> {
        if self.source.len_hint() == Some(0) {
            return self.plain().await;
        }
        let locations = match self.send().await? {
            Sent::Answered(response, None) => {
                let mut response = response.map(ResponseBody::live);
                response.extensions_mut().insert(self.report);
                return Ok(response);
            }
            Sent::Answered(response, Some(locations)) => {
                match read_whole(response, self.config.max_response_bytes).await {
                    Ok(response) => return Ok(self.deliver(response, &locations)),
                    Err(error) if is_too_large(&error) => {
                        return Err(self.too_large(Step::Send));
                    }
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

    /// A request without a body is not resumable (there is nothing to resume, and servers
    /// make only uploads resumable): sent once, as it is.
    async fn plain(&mut self) -> Result<Response<ResponseBody<B>>, ResumeError> {
        let mut request = Request::new(UploadBody::empty());
        *request.method_mut() = self.head.method.clone();
        *request.uri_mut() = self.head.uri.clone();
        *request.version_mut() = self.head.version;
        *request.headers_mut() = self.head.headers.clone();
        if let Some(extensions) = self.extensions.take() {
            *request.extensions_mut() = extensions;
        }
        match self.exchange(Step::Send, request).await? {
            Exchange::Answered(response) => {
                let mut response = response.map(ResponseBody::live);
                response.extensions_mut().insert(self.report);
                Ok(response)
            }
            Exchange::Failed(error) => Err(ResumeError::exhausted(Step::Send, Some(error))),
        }
    }

    /// Step 1: the request, re-sent from the start while the server cannot have run it.
    async fn send(&mut self) -> Result<Sent<B>, ResumeError> {
        loop {
            let captured = Captured::default();
            let request = self.first_request(&captured)?;
            match self.exchange(Step::Send, request).await? {
                Exchange::Answered(response) => {
                    let sent = self.note_sent();
                    // A server that does not take `Expect` (RFC 9110 §10.1.1): again
                    // without it; no body byte went out.
                    if response.status() == StatusCode::EXPECTATION_FAILED
                        && self.expect
                        && sent == 0
                    {
                        self.expect = false;
                        continue;
                    }
                    let from_interim = captured.get().and_then(Result::ok);
                    // Locations that cannot be used do not spoil a response that arrived:
                    // the layer never fails a request that succeeded without it.
                    let published = match locations::read(response.headers(), &self.head.uri) {
                        Ok(Some(found)) => Some(found),
                        Ok(None) => None,
                        Err(what) => {
                            tracing::warn!(%what, "ignoring the locations of a response");
                            None
                        }
                    };
                    // A gateway's error after the server published the operation is not the
                    // operation's answer: the operation goes on behind it.
                    if let (None, Some(found)) = (&published, &from_interim) {
                        if is_gateway_error(response.status()) {
                            return Ok(Sent::Interrupted(found.clone()));
                        }
                    }
                    return Ok(Sent::Answered(response, published.or(from_interim)));
                }
                Exchange::Failed(error) => {
                    let sent = self.note_sent();
                    match captured.get() {
                        Some(Ok(found)) => return Ok(Sent::Interrupted(found)),
                        Some(Err(what)) => return Err(ResumeError::protocol(Step::Send, what)),
                        None => {}
                    }
                    // No location. Starting over is safe only if the server cannot have run
                    // the request: no `100` came (a resumable server sends it, with the
                    // locations, before it reads the body) and no body byte was handed over.
                    if captured.continued() || sent > 0 {
                        return Err(ResumeError::exhausted(Step::Send, Some(error)));
                    }
                    self.retry_after_failure(Step::Send, error).await?;
                    self.report.restarts += 1;
                    self.emit(ResumeEvent::Restarting { resent: 0 });
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
        loop {
            let Some((held, complete)) = self.head(&target).await? else {
                continue;
            };
            if complete {
                return Ok(());
            }
            let Some(len) = self.source.len_hint() else {
                return Err(ResumeError::source(
                    Step::Patch,
                    "a body of unknown length cannot be completed".into(),
                ));
            };
            // A server that holds every byte but still says incomplete (it never learnt the
            // length) gets the last byte again, with the complete length.
            let from = held.min(len.saturating_sub(1));
            if self.patch(&target, from, len).await? {
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
        if is_retryable(status) {
            self.retry_after_status(Step::Head, response).await?;
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
        if held > self.offset {
            // Progress: the retry budget is for failures in a row.
            self.failures = 0;
        }
        self.offset = held;
        let len = self.source.len_hint();
        let complete = status.as_u16() != INCOMPLETE_CONTENT && len.is_none_or(|len| held == len);
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
        // The PATCH waits for its own `100` too, so a refusal at the part head (409, 400)
        // costs no upload.
        let captured = Captured::default();
        let body = UploadBody::new(part, data, Some(len - held), self.position.clone())
            .with_gate(captured.gate(self.config.expect_timeout))
            .with_observer(self.config.observer.clone());
        let mut request = self.protocol_request(Method::PATCH, target, body);
        let headers = request.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(byterange::CONTENT_TYPE),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(part_len));
        headers.insert(EXPECT, HeaderValue::from_static("100-continue"));
        captured.watch(&mut request, self.source.clone());
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
        if is_retryable(status) {
            self.retry_after_status(Step::Patch, response).await?;
            return Ok(false);
        }
        let body = read_small(response.into_body()).await;
        match status.as_u16() {
            // Still incomplete after the whole rest was sent: count it, or a server that
            // never progresses would be asked for ever.
            INCOMPLETE_CONTENT => {
                self.retry_after_failure(Step::Patch, "the server still misses bytes".into())
                    .await?;
                Ok(false)
            }
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
            if status == StatusCode::ACCEPTED {
                // Still running: ask again after `Retry-After` (at least the backoff's
                // minimum, at most 30 s).
                // Without one, back off: a server that ignores `Prefer: wait` is not polled
                // in a tight loop.
                match retry_after(&response) {
                    Some(pause) => {
                        let pause = pause.clamp(self.config.backoff_min, Duration::from_secs(30));
                        tokio::time::sleep(pause).await;
                    }
                    None => self.backoff.next_backoff().await,
                }
                continue;
            }
            if is_retryable(status) {
                self.retry_after_status(Step::Fetch, response).await?;
                continue;
            }
            if status != StatusCode::OK {
                let body = read_small(response.into_body()).await;
                return Err(ResumeError::refused(Step::Fetch, status, &body));
            }
            if !is_message_http(response.headers()) {
                return Err(ResumeError::protocol(
                    Step::Fetch,
                    "answered the response message with something other than message/http",
                ));
            }
            let limited = Limited::new(response.into_body(), self.config.max_response_bytes);
            let document = match limited.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) if is_too_large(&error) => return Err(self.too_large(Step::Fetch)),
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
    }

    /// The caller's response, releasing the stored copy as configured.
    fn deliver(
        &self,
        response: Response<Bytes>,
        locations: &Locations,
    ) -> Response<ResponseBody<B>> {
        let release = locations
            .response_message
            .clone()
            .map(|target| self.release(&target));
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

    /// `DELETE` of the stored response, on a task of its own, bounded in time.
    fn release(&self, target: &Uri) -> OnEnd {
        let request = self.protocol_request(Method::DELETE, target, UploadBody::empty());
        let inner = self.inner.clone();
        Box::new(move || {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                tracing::debug!("no runtime to release the stored response on");
                return;
            };
            runtime.spawn(async move {
                match tokio::time::timeout(RELEASE_TIMEOUT, inner.oneshot(request)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => {
                        let error: BoxError = error.into();
                        tracing::debug!(%error, "could not release the stored response");
                    }
                    Err(_) => tracing::debug!("releasing the stored response timed out"),
                }
            });
        })
    }

    /// The request with its own head, `Expect: 100-continue`, `Prefer: resume`, and the
    /// body from the first byte.
    fn first_request(&mut self, captured: &Captured) -> Result<Request<UploadBody>, ResumeError> {
        let data = self
            .source
            .read_from(0)
            .map_err(|error| ResumeError::source(Step::Send, error))?;
        self.position.store(0, Ordering::Relaxed);
        // The server starts over: nothing of an earlier attempt is held.
        self.furthest = 0;
        self.offset = 0;
        let len = self.source.len_hint();
        let mut body = UploadBody::new(Bytes::new(), data, len, self.position.clone())
            .with_observer(self.config.observer.clone());
        if self.expect {
            body = body.with_gate(captured.gate(self.config.expect_timeout));
        }
        let mut request = Request::new(body);
        *request.method_mut() = self.head.method.clone();
        *request.uri_mut() = self.head.uri.clone();
        *request.version_mut() = self.head.version;
        *request.headers_mut() = self.head.headers.clone();
        if let Some(extensions) = self.extensions.take() {
            *request.extensions_mut() = extensions;
        }
        let headers = request.headers_mut();
        if self.expect {
            headers.insert(EXPECT, HeaderValue::from_static("100-continue"));
        } else {
            headers.remove(EXPECT);
        }
        if let Some(len) = len {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        add_resume_preference(headers, self.source.buffered());
        captured.watch(&mut request, self.source.clone());
        Ok(request)
    }

    /// A request to one of the operation's resources, with the original's credentials and
    /// `Host`.
    fn protocol_request(
        &self,
        method: Method,
        target: &Uri,
        body: UploadBody,
    ) -> Request<UploadBody> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = target.clone();
        for name in CARRIED {
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

    /// One exchange. A failure of the upload's own body ends the request at once.
    async fn exchange(
        &mut self,
        step: Step,
        request: Request<UploadBody>,
    ) -> Result<Exchange<B>, ResumeError> {
        self.report.attempts += 1;
        match self.inner.clone().oneshot(request).await {
            Ok(response) => Ok(Exchange::Answered(response)),
            Err(error) => {
                let error: BoxError = error.into();
                if let Some(failed) = source_failure(error.as_ref()) {
                    let why = failed
                        .source()
                        .map_or_else(|| failed.to_string(), ToString::to_string);
                    return Err(ResumeError::source(step, why.into()));
                }
                Ok(Exchange::Failed(error))
            }
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
        self.backoff.next_backoff().await;
        Ok(())
    }

    /// A `429` or `5xx`: a failure, waiting `Retry-After` when the server says.
    async fn retry_after_status(
        &mut self,
        step: Step,
        response: Response<B>,
    ) -> Result<(), ResumeError> {
        let status = response.status();
        let pause = retry_after(&response);
        drop(response);
        if let Some(pause) = pause {
            tokio::time::sleep(pause.min(Duration::from_secs(30))).await;
        }
        self.retry_after_failure(step, format!("answered {status}").into())
            .await
            .map_err(|error| error.with_status(status))
    }

    fn too_large(&self, step: Step) -> ResumeError {
        ResumeError::protocol(
            step,
            format!(
                "sent a response larger than the {} bytes the client reads whole",
                self.config.max_response_bytes
            ),
        )
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

/// `now + wait`, or far in the future for a wait too long to add.
fn deadline_after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// `429`, `500`, `502`, `503`, `504`: worth another try.
fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// What a gateway answers when the server behind it is gone.
fn is_gateway_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 502..=504)
}

/// `Retry-After` in seconds, if the response has one.
fn retry_after<T>(response: &Response<T>) -> Option<Duration> {
    response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn is_message_http(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(message_http::CONTENT_TYPE)
        })
}

fn is_too_large(error: &BoxError) -> bool {
    error.downcast_ref::<LengthLimitError>().is_some()
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
