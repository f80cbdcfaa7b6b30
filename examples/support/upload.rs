//! One upload through the proxy, and whether the origin got exactly what was sent.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::origin::UploadReply;
use super::pattern::PatternBody;
use super::BoxError;

/// What to upload and how fast.
#[derive(Debug, Clone)]
pub(crate) struct UploadSpec {
    /// Body length.
    pub(crate) total_bytes: u64,
    /// Bytes per body frame.
    pub(crate) chunk_bytes: usize,
    /// Pause between frames (client-side throttle).
    pub(crate) chunk_delay: Duration,
    /// Seed of the body's bytes.
    pub(crate) seed: u64,
    /// `?chunk_delay_ms=N` for the origin (server-side throttle).
    pub(crate) origin_chunk_delay_ms: Option<u64>,
    /// h2c (prior knowledge) to the proxy instead of HTTP/1.1.
    pub(crate) h2: bool,
}

impl UploadSpec {
    /// `total_bytes` in frames of `chunk_bytes`, `chunk_delay` apart, HTTP/1.1.
    pub(crate) fn new(
        total_bytes: u64,
        chunk_bytes: usize,
        chunk_delay: Duration,
        seed: u64,
    ) -> Self {
        Self {
            total_bytes,
            chunk_bytes,
            chunk_delay,
            seed,
            origin_chunk_delay_ms: None,
            h2: false,
        }
    }
}

/// How one upload went.
#[derive(Debug, Clone)]
pub(crate) struct UploadOutcome {
    /// The final status the client saw.
    pub(crate) status: StatusCode,
    /// The origin's JSON answer, on a 200.
    pub(crate) reply: Option<UploadReply>,
    /// The response body when it was not an upload answer (error text from the proxy).
    pub(crate) error_body: Option<String>,
    /// Body bytes handed to the HTTP client.
    pub(crate) sent_bytes: u64,
    /// SHA-256 of the whole body (set once it was sent completely).
    pub(crate) sent_sha256: Option<String>,
    /// A 200 whose reported length and digest equal what was sent.
    pub(crate) intact: bool,
    /// From sending the request to the end of the response.
    pub(crate) elapsed: Duration,
}

impl UploadOutcome {
    /// A 200 with the right length and digest.
    pub(crate) fn succeeded(&self) -> bool {
        self.status == StatusCode::OK && self.intact
    }

    /// The origin that answered, if any.
    pub(crate) fn server(&self) -> Option<&str> {
        self.reply.as_ref().map(|reply| reply.server.as_str())
    }
}

/// Uploads `total_bytes` pattern bytes from `seed` to `POST /upload` on the proxy, streamed in
/// `chunk_bytes` frames `chunk_delay` apart, with `Content-Length`, over HTTP/1.1.
///
/// `Err` means no response at all (the connection failed); any response, even a 5xx, is an
/// `Ok` outcome to inspect.
pub(crate) async fn upload(
    proxy_addr: SocketAddr,
    total_bytes: u64,
    chunk_bytes: usize,
    chunk_delay: Duration,
    seed: u64,
) -> Result<UploadOutcome, BoxError> {
    upload_with(
        proxy_addr,
        &UploadSpec::new(total_bytes, chunk_bytes, chunk_delay, seed),
    )
    .await
}

/// [`upload`] with every knob.
pub(crate) async fn upload_with(
    proxy_addr: SocketAddr,
    spec: &UploadSpec,
) -> Result<UploadOutcome, BoxError> {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(spec.h2)
        .build_http::<PatternBody>();
    let mut uri = format!("http://{proxy_addr}/upload");
    if let Some(ms) = spec.origin_chunk_delay_ms {
        uri.push_str(&format!("?chunk_delay_ms={ms}"));
    }
    let (body, sent) = PatternBody::new(
        spec.seed,
        spec.total_bytes,
        spec.chunk_bytes,
        spec.chunk_delay,
    );
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, spec.total_bytes)
        .body(body)?;

    let started = Instant::now();
    let response = client.request(request).await?;
    let status = response.status();
    let bytes: Bytes = response.into_body().collect().await?.to_bytes();
    let elapsed = started.elapsed();

    let reply = if status == StatusCode::OK {
        serde_json::from_slice::<UploadReply>(&bytes).ok()
    } else {
        None
    };
    let error_body = match reply {
        Some(_) => None,
        None => Some(String::from_utf8_lossy(&bytes).into_owned()),
    };
    let sent_bytes = sent.bytes();
    let sent_sha256 = sent.sha256();
    let intact = match (&reply, &sent_sha256) {
        (Some(reply), Some(sha256)) => {
            reply.bytes == spec.total_bytes
                && sent_bytes == spec.total_bytes
                && &reply.sha256 == sha256
        }
        _ => false,
    };
    Ok(UploadOutcome {
        status,
        reply,
        error_body,
        sent_bytes,
        sent_sha256,
        intact,
        elapsed,
    })
}
